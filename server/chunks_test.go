package server

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestChunks(t *testing.T) {
	var c chunks
	var want bytes.Buffer
	r := rand.New(rand.NewPCG(1, 2))
	for range 3 {
		c.Reset(0)
		want.Reset()
		for range 200 {
			p := make([]byte, r.IntN(100_000))
			for i := range p {
				p[i] = byte(r.Uint32())
			}
			c.Write(p)
			want.Write(p)
		}
		if c.Len() != want.Len() {
			t.Fatalf("Len %d, want %d", c.Len(), want.Len())
		}
		var got bytes.Buffer
		if n, err := c.WriteTo(&got); err != nil || n != int64(want.Len()) || !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("WriteTo: %d %v, equal %v", n, err, bytes.Equal(got.Bytes(), want.Bytes()))
		}
	}
}
