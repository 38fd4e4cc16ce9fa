package dedup

import "github.com/cpafeed/cpafeed/binenc"

// WriteSnapshot writes the set's keys with their generations.
func (d *Set) WriteSnapshot(w *binenc.Writer) {
	w.Tag("dedup1")
	w.Varint(d.genMs)
	w.Varint(d.cur)
	w.Uvarint(uint64(d.n))
	d.Each(func(k Key, gen int64) {
		w.Raw(k[:])
		w.Varint(gen)
	})
}

// ReadSnapshot adds the keys a WriteSnapshot wrote to d (an empty set made
// with the same window); keys of generations that left d's window by now
// are dropped.
func (d *Set) ReadSnapshot(r *binenc.Reader, nowMs int64) {
	r.Tag("dedup1")
	genMs := r.Varint()
	cur := r.Varint()
	n := r.Len(1 << 34)
	if r.Err() != nil {
		return
	}
	if cur > d.cur && genMs == d.genMs {
		d.cur = cur
	}
	d.Advance(nowMs)
	var k Key
	for range n {
		r.Raw(k[:])
		g := r.Varint()
		if r.Err() != nil {
			return
		}
		if genMs != d.genMs { // the window changed: re-home by time
			g = d.Gen(g * genMs)
		}
		d.Insert(k, g)
	}
}
