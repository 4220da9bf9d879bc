package conffile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteIfAbsent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "gateway.json")
	if err := WriteIfAbsent(path, "first"); err != nil {
		t.Fatal(err)
	}
	if err := WriteIfAbsent(path, "second"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if string(b) != "first" || fi.Mode().Perm() != 0o640 {
		t.Fatalf("%q %v: an existing file must never be overwritten", b, fi.Mode())
	}
}
