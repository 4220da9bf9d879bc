package gateway

import "testing"

// BenchmarkCheckTicket is the per-connection authentication: "cached" is
// the usual case (a ticket seen in the last two seconds), "store" a cold
// lookup of session and user in SQLite.
func BenchmarkCheckTicket(b *testing.B) {
	s, err := New(b.Context(), Config{DataDir: b.TempDir(), AdminPassword: adminPassword, Logger: testLogger(b), PasswordCost: fastHash}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	resp, err := s.signIn(b.Context(), credentials{username: "admin", password: adminPassword}, "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.checkTicket(b.Context(), resp.Ticket); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.verifyTicket(b.Context(), resp.Ticket); err != nil {
				b.Fatal(err)
			}
		}
	})
}
