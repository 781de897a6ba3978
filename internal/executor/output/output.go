// Package output captures a program's output streams up to a byte limit.
package output

import "bytes"

// Capped keeps the first Limit bytes written to it and drops the rest,
// remembering that it did. It never fails a write, so the producer keeps
// draining the stream and the program is never blocked by a full pipe.
type Capped struct {
	limit     int64
	buf       bytes.Buffer
	truncated bool
}

// NewCapped returns a writer that keeps at most limit bytes.
func NewCapped(limit int64) *Capped { return &Capped{limit: limit} }

// Keep writes p and returns the part of it that was kept (for streaming
// exactly what the final output will hold).
func (c *Capped) Keep(p []byte) []byte {
	before := c.buf.Len()
	_, _ = c.Write(p)
	return c.buf.Bytes()[before:]
}

// Write keeps what fits and reports every byte as written.
func (c *Capped) Write(p []byte) (int, error) {
	room := c.limit - int64(c.buf.Len())
	if int64(len(p)) > room {
		c.truncated = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	c.buf.Write(p)
	return len(p), nil
}

// Bytes returns what was kept.
func (c *Capped) Bytes() []byte { return c.buf.Bytes() }

// Truncated reports whether anything was dropped.
func (c *Capped) Truncated() bool { return c.truncated }
