package signals

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/model"
)

// WriteSnapshot writes the exposure side's own state as of the journal
// records before LSN next: the idempotency keys, the remembered bids (oldest
// first) and the won exposures (the index has its own snapshot). Call it
// where no apply runs (a journal checkpoint at next). The keys of records
// >= next, reserved before those records were durable, are left out: held
// in a snapshot, they would make a client's retry of a record that never
// reached the disk look like a duplicate.
func (x *Exposures) WriteSnapshot(w *binenc.Writer, next uint64) {
	w.Tag("exposures4")
	x.mu.Lock()
	x.seen.WriteSnapshot(w, x.unappliedKeysLocked(next))
	x.mu.Unlock()
	rs := x.bids.live(x.now().Unix())
	w.Uvarint(uint64(len(rs)))
	for _, r := range rs {
		w.Bytes(r)
	}
	type won struct {
		h uint64
		e wonEntry
	}
	var ws []won
	x.won.each(x.now().Unix(), func(h uint64, e wonEntry) { ws = append(ws, won{h, e}) })
	w.Uvarint(uint64(len(ws)))
	for _, v := range ws {
		w.U64(v.h)
		w.U64(uint64(v.e.leaf))
		w.Varint(v.e.ts)
	}
}

// ReadSnapshot restores what WriteSnapshot wrote, or an older layout:
// "exposures3" (the bids of the ristretto cache, in no order) or
// "exposures2" (before remembered bids became single records). Remembered
// bids keep the rest of their time to live.
func (x *Exposures) ReadSnapshot(r *binenc.Reader) error {
	tag := r.String(64)
	switch {
	case r.Err() != nil:
		return r.Err()
	case tag != "exposures2" && tag != "exposures3" && tag != "exposures4":
		return fmt.Errorf("section %q where %q was expected", tag, "exposures4")
	}
	now := x.now()
	x.mu.Lock()
	x.seen.ReadSnapshot(r, now.UnixMilli())
	x.mu.Unlock()
	n := r.Len(1 << 30)
	var buf []byte
	var unordered []remembered // the older layouts: put in time order below
	for range n {
		var m remembered
		switch tag {
		case "exposures2":
			m = readRemembered2(r)
		case "exposures3":
			m = r.Bytes(maxRemembered)
		default: // oldest first: into the memory as they come, through buf
			k := r.Len(maxRemembered)
			buf = slices.Grow(buf[:0], k)[:k]
			r.Raw(buf)
			m = buf
		}
		if r.Err() != nil {
			return r.Err()
		}
		if !m.valid() {
			return binenc.ErrCorrupt
		}
		switch {
		case now.Unix()-m.ts() >= x.bids.ttl:
		case tag == "exposures4":
			x.bids.put(m)
		default:
			unordered = append(unordered, m)
		}
	}
	slices.SortStableFunc(unordered, func(a, b remembered) int { return cmp.Compare(a.ts(), b.ts()) })
	for _, m := range unordered {
		x.bids.put(m)
	}
	n = r.Len(1 << 30)
	for range n {
		h, leaf, ts := r.U64(), model.Key(r.U64()), r.Varint()
		if r.Err() != nil {
			return r.Err()
		}
		x.won.put(h, wonEntry{leaf: leaf, ts: ts}, now.Unix())
	}
	return r.Err()
}

// readRemembered2 reads a remembered bid of the "exposures2" layout (a
// struct of key, time, bidder, flags, an arena of imp ids and features
// with offsets per imp, and identities) and returns it as a record; nil
// when it does not fit together.
func readRemembered2(r *binenc.Reader) remembered {
	key := r.Bytes(1 << 16)
	ts := r.Varint()
	bidder := r.String(1 << 10)
	indexed := r.Byte()&1 == 1
	arena := r.Bytes(1 << 24)
	imps := make([]Imp, r.Len(1<<12))
	ok := true
	span := func(a, b uint64) []byte {
		if a > b || b > uint64(len(arena)) {
			ok = false
			return nil
		}
		return arena[a:b]
	}
	for i := range imps {
		imp := &imps[i]
		imp.ID = span(r.Uvarint(), r.Uvarint())
		var off [numFeaturesV1 + 1]uint64 // the layout had the features of then
		for j := range off {
			off[j] = r.Uvarint()
		}
		for f := range FeatureID(numFeaturesV1) {
			imp.feat[f] = span(off[f], off[f+1])
		}
		r.Byte() // server-stitched: derived from the ssai feature now
	}
	ids := make([]ID, r.Len(1<<10))
	for i := range ids {
		ids[i] = ID{Kind: IDKind(r.Byte()), Key: r.U64()}
	}
	if r.Err() != nil || !ok {
		return nil
	}
	return appendRemembered(nil, key, bidder, ts, indexed, ids, imps)
}
