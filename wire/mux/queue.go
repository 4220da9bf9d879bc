package mux

import "sync"

// byteQueue is a FIFO of bytes kept as the chunks they arrived in, so that
// adding never moves what is already queued (a slice that is trimmed at the
// front and appended at the back copies everything it holds each time it
// grows).
type byteQueue struct {
	chunks [][]byte // chunks[head:] are queued
	head   int
	off    int // bytes of chunks[head] already taken
	n      int // bytes queued
	// release, when set, is given each chunk once all of it is taken.
	release func([]byte)
}

// Len is the number of bytes queued.
func (q *byteQueue) Len() int { return q.n }

// push adds b (which the queue keeps: the caller must not change it).
func (q *byteQueue) push(b []byte) {
	if len(b) == 0 {
		return
	}
	q.chunks = append(q.chunks, b)
	q.n += len(b)
}

// discard drops n bytes from the front.
func (q *byteQueue) discard(n int) {
	q.n -= n
	for n > 0 {
		c := q.chunks[q.head]
		rest := len(c) - q.off
		if n < rest {
			q.off += n
			return
		}
		n -= rest
		if q.release != nil {
			q.release(c)
		}
		q.chunks[q.head] = nil
		q.head++
		q.off = 0
	}
	if q.head == len(q.chunks) {
		// Empty: start again at the front of the same array, so a queue
		// that is filled and emptied in turn does not allocate.
		q.chunks, q.head = q.chunks[:0], 0
	}
}

// peek copies up to len(p) bytes from skip bytes in, without taking them.
func (q *byteQueue) peek(p []byte, skip int) int {
	n := 0
	q.each(skip, len(p), func(b []byte) { n += copy(p[n:], b) })
	return n
}

// read takes up to len(p) bytes into p.
func (q *byteQueue) read(p []byte) int {
	n := q.peek(p, 0)
	q.discard(n)
	return n
}

// each calls fn on the queued bytes from skip on, n of them at most, as the
// slices they are kept in.
func (q *byteQueue) each(skip, n int, fn func([]byte)) {
	skip += q.off
	for _, c := range q.chunks[q.head:] {
		if n <= 0 {
			return
		}
		if skip >= len(c) {
			skip -= len(c)
			continue
		}
		b := c[skip:]
		skip = 0
		if len(b) > n {
			b = b[:n]
		}
		fn(b)
		n -= len(b)
	}
}

// Pools of buffers for received messages and records. They hold pointers
// to arrays: a slice converts to one and back without allocating (putting
// a slice's address would allocate on every use).
var (
	framePool     = sync.Pool{New: func() any { return new([maxFrame + 1]byte) }}
	bodyPool      = sync.Pool{New: func() any { return new([maxRecord]byte) }}
	smallBodyPool = sync.Pool{New: func() any { return new([smallBody]byte) }}
)

// smallBody is the size of the buffers for the many small records (a
// query, a row, a window offer).
const smallBody = 4 << 10

func newFrame() []byte { return framePool.Get().(*[maxFrame + 1]byte)[:] }

func releaseFrame(b []byte) { framePool.Put((*[maxFrame + 1]byte)(b[:maxFrame+1])) }

// newBody returns a buffer of n bytes (at most maxRecord) for a record.
func newBody(n int) []byte {
	if n <= smallBody {
		return smallBodyPool.Get().(*[smallBody]byte)[:n]
	}
	return bodyPool.Get().(*[maxRecord]byte)[:n]
}

// releaseBody gives a buffer from newBody back once it is not needed; any
// other slice is left to the collector.
func releaseBody(b []byte) {
	switch cap(b) {
	case maxRecord:
		bodyPool.Put((*[maxRecord]byte)(b[:maxRecord]))
	case smallBody:
		smallBodyPool.Put((*[smallBody]byte)(b[:smallBody]))
	}
}
