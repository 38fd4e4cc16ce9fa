package signals

import (
	"fmt"
	"math"

	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/model"
)

// WriteSnapshot writes the whole index: the campaign table (campaigns[n]
// is the id of campaign number n), both rings and the map of heads. Writers
// (Add, Delete, Sweep) must not run concurrently (the server takes
// snapshots at a journal checkpoint, on the applier goroutine).
//
// Exposures carry their campaign as a number (its position in the config),
// so the table goes with them: a restart with campaigns reordered, added
// or removed renumbers them by id (ReadSnapshot), and an exposure never
// credits another campaign, possibly another advertiser's.
func (x *Index) WriteSnapshot(w *binenc.Writer, campaigns []string) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	w.Tag("index3")
	w.Uvarint(uint64(len(campaigns)))
	for _, id := range campaigns {
		w.String(id)
	}
	w.Uvarint(uint64(x.cfg.MaxExposures))
	w.Uvarint(x.pcap)
	w.Uvarint(x.eseq)
	w.Uvarint(x.pseq)
	w.Uvarint(uint64(len(x.exps)))
	for i := range x.exps {
		e := &x.exps[i]
		w.Varint(e.TS)
		w.U64(uint64(e.Leaf))
		w.U64(uint64(e.Campaign)<<48 | uint64(e.Group)<<40 | uint64(e.flags)<<32 | uint64(floatBits(e.Cost)))
	}
	w.Uvarint(uint64(len(x.posts)))
	for _, p := range x.posts {
		w.U64(uint64(p.exp)<<32 | uint64(p.next))
	}
	w.Uvarint(uint64(len(x.heads)))
	for k, h := range x.heads {
		w.U64(k)
		w.Uvarint(uint64(h))
	}
}

// ReadSnapshot restores an index written by WriteSnapshot (index3, or the
// older index2 and index1) into x, which
// must be empty. The snapshot's capacities win over x's config (the rings'
// positions depend on them); a different config takes effect after the
// next restart without a snapshot. number maps a campaign id to its number
// in the current config: exposures are renumbered by id, and those of a
// campaign no longer configured are dropped (marked deleted). A snapshot
// before the campaign table ("index1") keeps its numbers as they are.
func (x *Index) ReadSnapshot(r *binenc.Reader, number func(id string) (uint16, bool)) error {
	tag := r.String(64)
	if r.Err() == nil && tag != "index1" && tag != "index2" && tag != "index3" {
		return fmt.Errorf("section %q where %q was expected", tag, "index3")
	}
	var remap []int32 // old number -> new number, -1 = gone; nil = keep
	if tag != "index1" {
		nc := r.Len(1 << 16)
		remap = make([]int32, nc)
		for i := range remap {
			id := r.String(1 << 10)
			remap[i] = -1
			if n, ok := number(id); ok {
				remap[i] = int32(n)
			}
		}
	}
	maxExp := r.Len(math.MaxInt32)
	pcap := r.Uvarint()
	eseq, pseq := r.Uvarint(), r.Uvarint()
	ne := r.Len(maxExp)
	if r.Err() != nil {
		return r.Err()
	}
	if maxExp == 0 || pcap == 0 || pcap >= 1<<32 || eseq == 0 || pseq == 0 {
		return fmt.Errorf("%w: index capacities %d/%d", binenc.ErrCorrupt, maxExp, pcap)
	}
	exps := make([]IndexedExposure, ne)
	for i := range exps {
		e := &exps[i]
		e.TS = r.Varint()
		e.Leaf = model.Key(r.U64())
		v := r.U64()
		// index3 adds the lift group (bits 40-47) and the ghost flag;
		// both are 0 in older sections.
		e.Campaign, e.Group, e.flags, e.Cost = uint16(v>>48), uint8(v>>40), uint8(v>>32), floatFrom(uint32(v))
		if remap != nil {
			if int(e.Campaign) >= len(remap) || remap[e.Campaign] < 0 {
				e.Campaign, e.flags = 0, e.flags|flagDeleted
			} else {
				e.Campaign = uint16(remap[e.Campaign])
			}
		}
	}
	np := r.Len(int(pcap))
	posts := make([]posting, np)
	for i := range posts {
		v := r.U64()
		posts[i] = posting{exp: uint32(v >> 32), next: uint32(v)}
	}
	nh := r.Len(math.MaxInt32)
	if r.Err() != nil {
		return r.Err()
	}
	heads := make(map[uint64]uint32, nh)
	for range nh {
		k := r.U64()
		heads[k] = uint32(r.Uvarint())
	}
	if r.Err() != nil {
		return r.Err()
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.cfg.MaxExposures, x.pcap, x.eseq, x.pseq = maxExp, pcap, eseq, pseq
	x.exps, x.posts, x.heads = exps, posts, heads
	return nil
}
