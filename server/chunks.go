package server

import "io"

// chunks is an in-memory buffer of fixed-size chunks: writing never copies
// what was written before (a bytes.Buffer of hundreds of MB would copy and
// clear itself at every doubling). The chunks are kept for the next use.
type chunks struct {
	bufs [][]byte
	n    int // chunks in use
}

const chunkSize = 4 << 20

func (c *chunks) Write(p []byte) (int, error) {
	written := len(p)
	for len(p) > 0 {
		if c.n == 0 || len(c.bufs[c.n-1]) == chunkSize {
			if c.n == len(c.bufs) {
				c.bufs = append(c.bufs, make([]byte, 0, chunkSize))
			}
			c.bufs[c.n] = c.bufs[c.n][:0]
			c.n++
		}
		cur := &c.bufs[c.n-1]
		k := min(len(p), chunkSize-len(*cur))
		*cur = append(*cur, p[:k]...)
		p = p[k:]
	}
	return written, nil
}

// Len is the number of bytes written since the last Reset.
func (c *chunks) Len() int {
	if c.n == 0 {
		return 0
	}
	return (c.n-1)*chunkSize + len(c.bufs[c.n-1])
}

// WriteTo writes everything to w.
func (c *chunks) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for _, b := range c.bufs[:c.n] {
		k, err := w.Write(b)
		total += int64(k)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Reset empties the buffer, keeping up to keep bytes of chunks for reuse.
func (c *chunks) Reset(keep int) {
	c.n = 0
	if max := keep / chunkSize; len(c.bufs) > max {
		clear(c.bufs[max:])
		c.bufs = c.bufs[:max]
	}
}
