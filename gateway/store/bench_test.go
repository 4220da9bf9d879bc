package store

import (
	"testing"
	"time"
)

// BenchmarkAppendEvent is one audit row, written for every tunnel opened
// and closed.
func BenchmarkAppendEvent(b *testing.B) {
	s, err := OpenSQLite(b.Context(), b.TempDir()+"/porthole.db")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := Event{Time: time.Now(), Actor: "alice", Kind: "tunnel.open", Target: "mysql", Outcome: "ok",
		Details: []byte(`{"id":1,"user":"alice","context":"mysql","target":"db:3306","remote":"10.0.0.8"}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.AppendEvent(b.Context(), e); err != nil {
			b.Fatal(err)
		}
	}
}
