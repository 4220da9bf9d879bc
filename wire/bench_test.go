package wire

import (
	"io"
	"testing"
)

// BenchmarkPipe moves data app -> pump -> WebSocket -> pump -> target over
// real loopback sockets, the shape of a tunnel; b.SetBytes makes the
// result a throughput, and allocations per op show per-message garbage.
func BenchmarkPipe(b *testing.B) {
	for _, size := range []int{64, 32 << 10, 1 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			f := newTunnel(b, b.Context(), Options{})
			msg := make([]byte, size)
			done := make(chan struct{})
			go func() {
				buf := make([]byte, 64<<10)
				var got int
				want := size * b.N
				for got < want {
					n, err := f.target.Read(buf)
					got += n
					if err != nil {
						break
					}
				}
				close(done)
			}()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := f.app.Write(msg); err != nil {
					b.Fatal(err)
				}
			}
			<-done
			b.StopTimer()
			f.app.Close()
			f.target.Close()
			io.Copy(io.Discard, f.app)
		})
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return "1MiB"
	case n >= 1<<10:
		return "32KiB"
	}
	return "64B"
}
