package signals

import (
	"bytes"
	"unsafe"

	"github.com/cpafeed/cpafeed/model"
)

// remembered is what cpafeed keeps of a scored bid request until its win
// notices (every imp: features as bytes, identities only as keyed hashes,
// computed once for the request).
type remembered struct {
	ts      int64 // Unix seconds the bid was seen
	bidder  string
	indexed bool // the request passed the privacy gates
	arena   []byte
	imps    []rememberedImp
	ids     []ID   // the request's identities (with the IP)
	key     string // its cache key (for snapshots)
}

// rememberedImp is one imp: its id and features in the request's arena.
type rememberedImp struct {
	id   [2]uint32               // arena[id[0]:id[1]]
	off  [NumFeatures + 1]uint32 // feature f is arena[off[f]:off[f+1]]
	noIP bool                    // ads stitched server-side (ssai=3): the IP is the stitcher's
}

// find returns the imp with id, or nil.
func (r *remembered) find(id []byte) *rememberedImp {
	for i := range r.imps {
		m := &r.imps[i]
		if bytes.Equal(r.arena[m.id[0]:m.id[1]], id) {
			return m
		}
	}
	return nil
}

// imp rebuilds the features of m as an Imp.
func (r *remembered) imp(m *rememberedImp) *Imp {
	imp := &Imp{}
	for f := range NumFeatures {
		if v := r.arena[m.off[f]:m.off[f+1]]; len(v) > 0 {
			imp.SetFeature(f, v)
		}
	}
	return imp
}

// impIDs returns the identities of imp m.
func (r *remembered) impIDs(m *rememberedImp) []ID {
	if !m.noIP {
		return r.ids
	}
	out := make([]ID, 0, len(r.ids))
	for _, id := range r.ids {
		if id.Kind != IDIP {
			out = append(out, id)
		}
	}
	return out
}

func (r *remembered) cost() int64 {
	return int64(unsafe.Sizeof(*r)) + int64(len(r.arena)) + int64(len(r.imps))*int64(unsafe.Sizeof(rememberedImp{})) +
		int64(len(r.ids))*16 + int64(len(r.key)) + 64
}

// impIDs appends the identity keys of an imp of req: the request's, without
// the IP when the imp's ads are stitched server-side (imp.ssai = 3: the IP
// is the stitcher's, not the household's).
func (x *Exposures) impIDs(req *Request, imp *Imp, dst []ID) []ID {
	start := len(dst)
	dst = req.IDs(x.hasher, dst)
	if serverStitched(imp) {
		out := dst[:start]
		for _, id := range dst[start:] {
			if id.Kind != IDIP {
				out = append(out, id)
			}
		}
		dst = out
	}
	return dst
}

func serverStitched(imp *Imp) bool { return string(imp.Feature(FeatureSSAI)) == "3" }

// Remember keeps the request (every imp) for its win notices (BidTTL): one
// cache entry, the identities hashed once. The request's bytes are copied;
// nothing of req is retained.
func (x *Exposures) Remember(req *Request, bidder string, now int64) {
	allowed, _ := Gate(req.Privacy(), x.cfg.TCFVendorID)
	n := 0
	for i := range req.Imps {
		imp := &req.Imps[i]
		n += len(imp.ID)
		for f := range NumFeatures {
			if v := imp.Feature(f); string(v) != Unknown {
				n += len(v)
			}
		}
	}
	r := &remembered{ts: now, bidder: bidder, indexed: allowed, key: string(req.ID),
		arena: make([]byte, 0, n), imps: make([]rememberedImp, len(req.Imps))}
	r.ids = req.IDs(x.hasher, make([]ID, 0, 4))
	for i := range req.Imps {
		imp, m := &req.Imps[i], &r.imps[i]
		m.id[0] = uint32(len(r.arena))
		r.arena = append(r.arena, imp.ID...)
		m.id[1] = uint32(len(r.arena))
		for f := range NumFeatures {
			m.off[f] = uint32(len(r.arena))
			if v := imp.Feature(f); string(v) != Unknown {
				r.arena = append(r.arena, v...)
			}
		}
		m.off[NumFeatures] = uint32(len(r.arena))
		m.noIP = serverStitched(imp)
	}
	x.bids.SetWithTTL(r.key, r, r.cost(), x.cfg.BidTTL)
	bidsRemembered.Add(len(req.Imps))
}

// rememberWon keeps the leaf of a won exposure, ingested at the Unix second
// ingest, for its VAST events.
func (x *Exposures) rememberWon(e *exposure, leaf model.Key, ingest int64) {
	x.won.put(wonHash(e.auction, e.imp, e.campaign), wonEntry{leaf: leaf, ts: ingest}, x.now().Unix())
}

// WaitBids blocks until remembered bids are visible to lookups (the cache
// applies sets asynchronously); for tests and shutdown.
func (x *Exposures) WaitBids() { x.bids.Wait() }
