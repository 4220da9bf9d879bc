package mux

import "sync"

// byteQueue is a FIFO of bytes kept as the chunks they arrived in, so that
// adding never moves what is already queued (a slice that is trimmed at the
// front and appended at the back copies everything it holds each time it
// grows).
type byteQueue struct {
	chunks [][]byte
	off    int // bytes of chunks[0] already taken
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
		rest := len(q.chunks[0]) - q.off
		if n < rest {
			q.off += n
			return
		}
		n -= rest
		if q.release != nil {
			q.release(q.chunks[0])
		}
		q.chunks[0] = nil
		q.chunks = q.chunks[1:]
		q.off = 0
	}
	if len(q.chunks) == 0 {
		q.chunks = nil
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
	for _, c := range q.chunks {
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

// framePool holds buffers for received messages.
var framePool = sync.Pool{New: func() any { b := make([]byte, maxFrame+1); return &b }}
