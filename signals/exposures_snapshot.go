package signals

import (
	"time"

	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/model"
)

// WriteSnapshot writes the exposure side's own state: the idempotency keys,
// the remembered bids and the won exposures (the index has its own
// snapshot). Call it where no apply runs (a journal checkpoint).
func (x *Exposures) WriteSnapshot(w *binenc.Writer) {
	w.Tag("exposures2")
	x.mu.Lock()
	x.seen.WriteSnapshot(w)
	x.mu.Unlock()
	x.bids.Wait()
	var rs []*remembered
	x.bids.IterValues(func(r *remembered) bool {
		rs = append(rs, r)
		return false
	})
	w.Uvarint(uint64(len(rs)))
	for _, r := range rs {
		w.String(r.key)
		w.Varint(r.ts)
		w.String(r.bidder)
		flags := byte(0)
		if r.indexed {
			flags = 1
		}
		w.Byte(flags)
		w.Bytes(r.arena)
		w.Uvarint(uint64(len(r.imps)))
		for _, m := range r.imps {
			w.Uvarint(uint64(m.id[0]))
			w.Uvarint(uint64(m.id[1]))
			for _, o := range m.off {
				w.Uvarint(uint64(o))
			}
			if m.noIP {
				w.Byte(1)
			} else {
				w.Byte(0)
			}
		}
		w.Uvarint(uint64(len(r.ids)))
		for _, id := range r.ids {
			w.Byte(byte(id.Kind))
			w.U64(id.Key)
		}
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

// ReadSnapshot restores what WriteSnapshot wrote; remembered bids keep the
// rest of their time to live.
func (x *Exposures) ReadSnapshot(r *binenc.Reader) error {
	r.Tag("exposures2")
	now := x.now()
	x.mu.Lock()
	x.seen.ReadSnapshot(r, now.UnixMilli())
	x.mu.Unlock()
	n := r.Len(1 << 30)
	for range n {
		m := &remembered{}
		m.key = r.String(1 << 16)
		m.ts = r.Varint()
		m.bidder = r.String(1 << 10)
		m.indexed = r.Byte()&1 == 1
		m.arena = r.Bytes(1 << 24)
		m.imps = make([]rememberedImp, r.Len(1<<12))
		ok := true
		for i := range m.imps {
			mi := &m.imps[i]
			mi.id[0], mi.id[1] = uint32(r.Uvarint()), uint32(r.Uvarint())
			for j := range mi.off {
				mi.off[j] = uint32(r.Uvarint())
			}
			mi.noIP = r.Byte() == 1
			ok = ok && mi.id[0] <= mi.id[1] && int(mi.id[1]) <= len(m.arena)
			for j := 1; j < len(mi.off); j++ {
				ok = ok && mi.off[j-1] <= mi.off[j] && int(mi.off[j]) <= len(m.arena)
			}
		}
		m.ids = make([]ID, r.Len(1<<10))
		for i := range m.ids {
			m.ids[i] = ID{Kind: IDKind(r.Byte()), Key: r.U64()}
		}
		if r.Err() != nil {
			return r.Err()
		}
		if !ok {
			return binenc.ErrCorrupt
		}
		ttl := time.Unix(m.ts, 0).Add(x.cfg.BidTTL).Sub(now)
		if ttl > 0 {
			x.bids.SetWithTTL(m.key, m, m.cost(), ttl)
		}
	}
	x.bids.Wait()
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
