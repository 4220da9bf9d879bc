//go:build ignore

// gen draws Porthole's icons: go run gen.go (from this folder).
package main

import (
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
)

// porthole draws a ring (the porthole's frame) with a filled centre.
func porthole(size int, frame, glass color.RGBA, dot color.RGBA) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	c := float64(size) / 2
	outer, inner, centre := c*0.96, c*0.70, c*0.30
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			// 4x4 supersampling for smooth edges.
			var r, g, b, a float64
			for sy := 0; sy < 4; sy++ {
				for sx := 0; sx < 4; sx++ {
					px, py := float64(x)+(float64(sx)+0.5)/4, float64(y)+(float64(sy)+0.5)/4
					d := math.Hypot(px-c, py-c)
					var col color.RGBA
					switch {
					case d <= centre:
						col = dot
					case d <= inner:
						col = glass
					case d <= outer:
						col = frame
					default:
						continue
					}
					r, g, b, a = r+float64(col.R), g+float64(col.G), b+float64(col.B), a+float64(col.A)
				}
			}
			img.SetRGBA(x, y, color.RGBA{uint8(r / 16), uint8(g / 16), uint8(b / 16), uint8(a / 16)})
		}
	}
	return img
}

func save(name string, img image.Image) {
	f, err := os.Create(name)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		log.Fatal(err)
	}
}

func main() {
	frame := color.RGBA{0x0f, 0x1b, 0x2d, 0xff}
	glass := color.RGBA{0xdb, 0xe7, 0xf7, 0xff}
	save("app.png", porthole(256, frame, glass, color.RGBA{0x1f, 0x6f, 0xeb, 0xff}))
	save("tray-idle.png", porthole(64, color.RGBA{0x6b, 0x72, 0x80, 0xff}, glass, color.RGBA{0x9c, 0xa3, 0xaf, 0xff}))
	save("tray-open.png", porthole(64, frame, glass, color.RGBA{0x1a, 0x9f, 0x3f, 0xff}))
	save("tray-error.png", porthole(64, frame, glass, color.RGBA{0xd9, 0x2d, 0x20, 0xff}))
}
