package dedup

import (
	"math"

	"github.com/cpafeed/cpafeed/binenc"
)

// WriteSnapshot writes the set's keys with their generations, leaving out
// the keys in skip: keys the set holds ahead of the journal record that
// stores their event (a reservation made before the record's apply ran),
// which a snapshot of the state as of the records before that record must
// not hold. A reserved key is in the set at most once (it is inserted only
// after Contains said no), so each present skipped key is one entry less.
func (d *Set) WriteSnapshot(w *binenc.Writer, skip map[Key]struct{}) {
	n := d.n
	for k := range skip {
		if d.Contains(k) {
			n--
		}
	}
	w.Tag("dedup1")
	w.Varint(d.genMs)
	w.Varint(d.cur)
	w.Uvarint(uint64(n))
	d.Each(func(k Key, gen int64) {
		if len(skip) > 0 {
			if _, ok := skip[k]; ok {
				return
			}
		}
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
	n := r.Len(math.MaxInt32) // 2^31 keys (32 GiB of keys): more than any process here holds, and an int on 32-bit platforms too
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
