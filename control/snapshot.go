package control

import (
	"fmt"
	"slices"

	"github.com/cpafeed/cpafeed/binenc"
)

// snapTag starts the controller's snapshot section.
const snapTag = "control1"

// WriteSnapshot writes every campaign's state and explored counts, by id:
// tag "control1", uvarint n, then per campaign bytes id, f64 I, LogU, Q,
// varint At, f64 CPA, Share, varint xRef, f64 explored-count spend and
// explored. Run it where no apply runs (the journal's checkpoint).
func (c *Controller) WriteSnapshot(w *binenc.Writer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.camps))
	for id := range c.camps {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	w.Tag(snapTag)
	w.Uvarint(uint64(len(ids)))
	for _, id := range ids {
		k := c.camps[id]
		w.String(id)
		w.F64(k.st.I)
		w.F64(k.st.LogU)
		w.F64(k.st.Q)
		w.Varint(k.st.At)
		w.F64(k.st.CPA)
		w.F64(k.st.Share)
		w.Varint(k.xRef)
		w.F64(k.xSpend)
		w.F64(k.xExpl)
	}
}

// ReadSnapshot restores what WriteSnapshot wrote into a fresh controller
// (configured with SetCampaigns first: their parameters stay).
func (c *Controller) ReadSnapshot(r *binenc.Reader) error {
	r.Tag(snapTag)
	n := r.Len(1 << 20)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < n && r.Err() == nil; i++ {
		id := r.String(1 << 16)
		st := State{I: r.F64(), LogU: r.F64(), Q: r.F64(), At: r.Varint(), CPA: r.F64(), Share: r.F64()}
		xRef, xs, xe := r.Varint(), r.F64(), r.F64()
		if r.Err() != nil {
			break
		}
		if !st.valid() || !(xs >= 0) || !(xe >= 0) || xe > xs*(1+1e-9)+1e-9 {
			return fmt.Errorf("control: campaign %q: state out of range", id)
		}
		k := c.camps[id]
		if k == nil {
			k = &camp{seed: Seed(id)}
			c.camps[id] = k
		}
		k.st, k.xRef, k.xSpend, k.xExpl = st, xRef, xs, xe
		if k.configured && !k.p.Enabled {
			k.st.I, k.st.LogU = 0, 0
		}
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	c.publishLocked()
	return nil
}
