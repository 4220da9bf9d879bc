package assets

import (
	"bytes"
	"image/png"
	"testing"
)

func TestIcons(t *testing.T) {
	for name, b := range map[string][]byte{"app": AppIcon, "idle": TrayIdle, "open": TrayOpen, "error": TrayError} {
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r := img.Bounds(); r.Dx() != r.Dy() || r.Dx() < 64 {
			t.Fatalf("%s is %v", name, r)
		}
	}
	if bytes.Equal(TrayOpen, TrayError) || bytes.Equal(TrayOpen, TrayIdle) {
		t.Fatal("tray states share an icon")
	}
}
