package connstr

import (
	"strings"
	"testing"
)

func TestFor(t *testing.T) {
	tests := map[string]struct {
		kind Kind
		port int
		want []string
	}{
		"mysql":       {MySQL, 13306, []string{"-P 13306", "jdbc:mysql://localhost:13306/", "Port=13306"}},
		"postgres":    {PostgreSQL, 15432, []string{"port=15432", "jdbc:postgresql://localhost:15432/"}},
		"sql server":  {SQLServer, 11433, []string{"localhost,11433", "jdbc:sqlserver://localhost:11433;"}},
		"oracle":      {Oracle, 11521, []string{"//localhost:11521/SERVICE"}},
		"unknown":     {Unknown, 9000, []string{"jdbc:mysql://localhost:9000", "jdbc:postgresql://localhost:9000", "localhost:9000"}},
		"no port yet": {MySQL, 0, []string{"-P PORT"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var all strings.Builder
			for _, e := range For(tc.kind, tc.port) {
				if e.Label == "" || e.Text == "" {
					t.Fatalf("empty example %+v", e)
				}
				all.WriteString(e.Text + "\n")
			}
			for _, w := range tc.want {
				if !strings.Contains(all.String(), w) {
					t.Fatalf("no %q in\n%s", w, all.String())
				}
			}
		})
	}
	if Guess(3306) != MySQL || Guess(5432) != PostgreSQL || Guess(1433) != SQLServer || Guess(8080) != Unknown {
		t.Fatal("Guess")
	}
}
