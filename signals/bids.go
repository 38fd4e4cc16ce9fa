package signals

import (
	"unsafe"

	"github.com/cpafeed/cpafeed/model"
)

// remembered is what cpafeed keeps of one imp of a scored bid request until
// its win notice, or of a won exposure until its VAST events: features as
// bytes, identities only as keyed hashes.
type remembered struct {
	ts      int64 // Unix seconds the bid was seen
	bidder  string
	indexed bool // the request passed the privacy gates
	arena   []byte
	off     [NumFeatures + 1]uint16 // feature f is arena[off[f]:off[f+1]]
	ids     []ID
	leaf    model.Key // won exposures: the leaf to count VAST events on
	camp    string    // won exposures: the campaign
	key     string    // its cache key (for snapshots)
}

func (r *remembered) feature(f FeatureID) []byte { return r.arena[r.off[f]:r.off[f+1]] }

// imp rebuilds the features of r as an Imp.
func (r *remembered) imp() *Imp {
	imp := &Imp{}
	for f := range NumFeatures {
		if v := r.feature(f); len(v) > 0 {
			imp.SetFeature(f, v)
		}
	}
	return imp
}

func (r *remembered) cost() int64 {
	return int64(unsafe.Sizeof(*r)) + int64(len(r.arena)) + int64(len(r.ids))*16 + int64(len(r.bidder)) + 64
}

func bidKey(auction, imp []byte) string {
	b := make([]byte, 0, len(auction)+len(imp)+1)
	b = append(b, auction...)
	b = append(b, 0)
	b = append(b, imp...)
	return string(b)
}

func wonKey(auction, imp []byte, campaign string) string {
	b := make([]byte, 0, len(auction)+len(imp)+len(campaign)+3)
	b = append(b, 'w', 0)
	b = append(b, auction...)
	b = append(b, 0)
	b = append(b, imp...)
	b = append(b, 0)
	b = append(b, campaign...)
	return string(b)
}

// impIDs appends the identity keys of an imp of req: the request's, without
// the IP when the imp's ads are stitched server-side (imp.ssai = 3: the IP
// is the stitcher's, not the household's).
func (x *Exposures) impIDs(req *Request, imp *Imp, dst []ID) []ID {
	start := len(dst)
	dst = req.IDs(x.hasher, dst)
	if string(imp.Feature(FeatureSSAI)) == "3" {
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

// Remember keeps every imp of req for its win notice (BidTTL). The request's
// bytes are copied; nothing of req is retained.
func (x *Exposures) Remember(req *Request, bidder string, now int64) {
	allowed, _ := Gate(req.Privacy(), x.cfg.TCFVendorID)
	var ids []ID
	for i := range req.Imps {
		imp := &req.Imps[i]
		r := &remembered{ts: now, bidder: bidder, indexed: allowed}
		n := 0
		for f := range NumFeatures {
			n += len(imp.Feature(f))
		}
		r.arena = make([]byte, 0, n)
		for f := range NumFeatures {
			r.off[f] = uint16(len(r.arena))
			if v := imp.Feature(f); string(v) != Unknown && len(r.arena)+len(v) < 1<<16 {
				r.arena = append(r.arena, v...)
			}
		}
		r.off[NumFeatures] = uint16(len(r.arena))
		ids = x.impIDs(req, imp, ids[:0])
		r.ids = append([]ID(nil), ids...)
		r.key = bidKey(req.ID, imp.ID)
		x.bids.SetWithTTL(r.key, r, r.cost(), x.cfg.BidTTL)
	}
	bidsRemembered.Add(len(req.Imps))
}

// rememberWon keeps the leaf of a won exposure for its VAST events.
func (x *Exposures) rememberWon(e *exposure, leaf model.Key) {
	r := &remembered{ts: x.now().Unix(), leaf: leaf, camp: e.campaign, key: wonKey(e.auction, e.imp, e.campaign)}
	x.bids.SetWithTTL(r.key, r, r.cost(), x.cfg.BidTTL)
}

// WaitBids blocks until remembered bids are visible to lookups (the cache
// applies sets asynchronously); for tests and shutdown.
func (x *Exposures) WaitBids() { x.bids.Wait() }
