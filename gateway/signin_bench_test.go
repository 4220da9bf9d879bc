package gateway

import (
	"net/http"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/spnego"

	"github.com/porthole/porthole/internal/adtest"
)

// BenchmarkSignInMethods measures one sign-in by each method against the
// test domain (Samba AD on this machine), with the local password
// sign-in at the gateway's real argon2id cost as the baseline of the same
// run: "directory" finds the account and its groups with the service
// account and binds as the user (two LDAPS connections), "kerberos"
// proves a SPNEGO token with the keytab and reads the account from the
// directory. Each prints its time as a ratio of the local sign-in.
//
//	go test ./gateway -run '^$' -bench SignInMethods -benchtime 30x
func BenchmarkSignInMethods(b *testing.B) {
	d := adtest.Get(b)
	user := adtest.Name("b")
	userDN := d.AddUser(b, user, "Bench-Passw0rd!")
	grp := adtest.Name("bg")
	d.AddMember(b, d.AddGroup(b, grp), userDN)
	cfg := Config{DataDir: b.TempDir(), AdminPassword: adminPassword, Logger: testLogger(b),
		Directory: &DirectoryConfig{URL: d.URL, CAFile: d.CAFile, ServerName: "127.0.0.1", BindDN: d.BindDN, BindPassword: d.BindPassword, BaseDN: d.BaseDN},
		Kerberos:  &KerberosConfig{Keytab: d.Keytab}}
	s, err := New(b.Context(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	// Every sign-in from its own address, so the rate limits stay out of
	// the measurement.
	n := 0
	addr := func() string { n++; return "10.77." + itoa(n/250%250) + "." + itoa(n%250) }

	perOp := map[string]time.Duration{}
	measure := func(name string, f func(b *testing.B)) {
		b.Run(name, func(b *testing.B) {
			start := time.Now()
			f(b)
			perOp[name] = time.Since(start) / time.Duration(b.N)
		})
	}
	measure("local", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.signIn(b.Context(), credentials{username: "admin", password: adminPassword}, addr()); err != nil {
				b.Fatal(err)
			}
		}
	})
	measure("directory", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.signIn(b.Context(), credentials{username: user, password: "Bench-Passw0rd!"}, addr()); err != nil {
				b.Fatal(err)
			}
		}
	})
	kc, err := config.Load(d.Krb5Conf)
	if err != nil {
		b.Fatal(err)
	}
	cl := client.NewWithPassword(user, d.Realm, "Bench-Passw0rd!", kc, client.DisablePAFXFAST(true))
	if err := cl.Login(); err != nil {
		b.Fatal(err)
	}
	defer cl.Destroy()
	measure("kerberos", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			// A fresh token each time (the replay cache refuses a second use);
			// getting it from the KDC is the client's cost, not timed.
			req, _ := http.NewRequest("POST", "http://localhost/", nil)
			if err := spnego.SetSPNEGOHeader(cl, req, "HTTP/localhost"); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			u, _, err := s.krb.accept(req)
			if err != nil {
				b.Fatal(err)
			}
			acct, err := s.dir.Lookup(b.Context(), u)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.syncDirectoryAccount(b.Context(), acct); err != nil {
				b.Fatal(err)
			}
		}
	})
	if base := perOp["local"]; base > 0 {
		for _, name := range []string{"directory", "kerberos"} {
			b.Logf("%s sign-in: %s, %.2fx the local password sign-in (%s) in the same run", name, perOp[name].Round(time.Microsecond), float64(perOp[name])/float64(base), base.Round(time.Microsecond))
		}
	}
}
