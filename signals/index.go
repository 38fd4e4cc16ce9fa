package signals

import (
	"math"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/cpafeed/cpafeed/model"
)

// IndexConfig bounds the exposure index.
type IndexConfig struct {
	// MaxExposures is how many exposures the index remembers; when full, the
	// oldest is evicted first (counted in cpafeed_index_evicted_total).
	// Memory grows with use up to about 40 bytes per exposure plus ~30 bytes
	// per distinct identity. Default 10 000 000.
	MaxExposures int `yaml:"max_exposures"`
	// MaxIDsPerExposure caps the identity keys indexed per exposure (IFA, IP,
	// eids, ...); extra keys are ignored. Default 6.
	MaxIDsPerExposure int `yaml:"max_ids_per_exposure"`
	// Window is how long an exposure can be matched: the longest attribution
	// window of any campaign. Default 168h.
	Window time.Duration `yaml:"window"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c IndexConfig) WithDefaults() IndexConfig {
	if c.MaxExposures == 0 {
		c.MaxExposures = 10_000_000
	}
	if c.MaxIDsPerExposure == 0 {
		c.MaxIDsPerExposure = 6
	}
	if c.Window == 0 {
		c.Window = 7 * 24 * time.Hour
	}
	return c
}

// IndexedExposure is what the index remembers of one exposure: enough to
// credit its segment (the leaf key; the model knows the parents) at its time.
type IndexedExposure struct {
	TS       int64     // Unix seconds of the impression
	Leaf     model.Key // deepest segment node of the exposure
	Cost     float32   // price paid, currency units
	Campaign uint16    // caller's campaign number
	flags    uint8
	// Group is the exposure's lift group: its value of the lift feature
	// (attribution.lift_feature, e.g. the metro) hashed into a few groups
	// (ExposureConfig.LiftGroups), 1 and up; 0 when the value is unknown.
	Group uint8
}

const (
	flagDeleted = 1 << 0
	flagGhost   = 1 << 1 // a ghost exposure (an auction held back for the holdout)
)

// Ghost reports whether e is a ghost exposure: an auction the bidder held
// back because the household is in the campaign's control arm.
func (e IndexedExposure) Ghost() bool { return e.flags&flagGhost != 0 }

// SetGhost marks e as a ghost exposure (or not).
func (e *IndexedExposure) SetGhost(ghost bool) {
	if ghost {
		e.flags |= flagGhost
	} else {
		e.flags &^= flagGhost
	}
}

// posting links one identity key to one exposure; postings of a key form a
// list from newest to oldest through next.
type posting struct {
	exp  uint32 // low 32 bits of the exposure's sequence number
	next uint32 // low 32 bits of the sequence number of the next posting; 0 = end
}

// Index maps identity keys to the recent exposures that carried them, so a
// conversion can find the exposures of its household or device. Exposures
// and postings live in two rings of plain structs (no pointers, so the GC
// does not scan them); the map holds, per identity key, the newest posting.
// It is safe for concurrent use.
type Index struct {
	cfg    IndexConfig
	window int64

	mu    sync.RWMutex
	exps  []IndexedExposure // ring by exposure sequence number
	eseq  uint64            // sequence number of the next exposure (first is 1)
	posts []posting         // ring by posting sequence number
	pseq  uint64            // sequence number of the next posting (first is 1)
	pcap  uint64
	heads map[uint64]uint32 // identity key -> low 32 bits of its newest posting
}

var (
	indexAdded   = metrics.NewCounter(`cpafeed_index_exposures_added_total`)
	indexEvicted = metrics.NewCounter(`cpafeed_index_exposures_evicted_total`)
	indexDeleted = metrics.NewCounter(`cpafeed_index_exposures_deleted_total`)
)

// NewIndex returns an empty index.
func NewIndex(cfg IndexConfig) *Index {
	cfg = cfg.WithDefaults()
	return &Index{
		cfg:    cfg,
		window: int64(cfg.Window / time.Second),
		eseq:   1,
		pseq:   1,
		pcap:   uint64(cfg.MaxExposures) * 3,
		heads:  make(map[uint64]uint32),
	}
}

// full reconstructs a 64-bit sequence number from its low 32 bits, given
// the next sequence number of the ring (all live numbers are within 2^31 of
// it).
func full(next uint64, low uint32) uint64 {
	return next - uint64(uint32(next)-low)
}

// Add remembers exposure e under every identity key in ids (at most
// MaxIDsPerExposure of them; zero keys are skipped) and returns its
// sequence number.
func (x *Index) Add(e IndexedExposure, ids []ID) uint64 {
	if len(ids) > x.cfg.MaxIDsPerExposure {
		ids = ids[:x.cfg.MaxIDsPerExposure]
	}
	e.flags &= flagGhost
	x.mu.Lock()
	seq := x.eseq
	x.eseq++
	max := uint64(x.cfg.MaxExposures)
	if uint64(len(x.exps)) < max {
		x.exps = append(x.exps, e)
	} else {
		x.exps[(seq-1)%max] = e
		indexEvicted.Inc()
	}
	for _, id := range ids {
		if id.Key == 0 {
			continue
		}
		p := posting{exp: uint32(seq)}
		if h, ok := x.heads[id.Key]; ok && x.postingLive(h) {
			p.next = h
		}
		ps := x.pseq
		x.pseq++
		if uint64(len(x.posts)) < x.pcap {
			x.posts = append(x.posts, p)
		} else {
			x.posts[(ps-1)%x.pcap] = p
		}
		x.heads[id.Key] = uint32(ps)
	}
	x.mu.Unlock()
	indexAdded.Inc()
	return seq
}

// Last returns the sequence number of the exposure added last (0: none).
func (x *Index) Last() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.eseq - 1
}

// postingLive reports whether the posting with low bits low is still in
// the ring. Callers hold mu.
func (x *Index) postingLive(low uint32) bool {
	if low == 0 {
		return false
	}
	ps := full(x.pseq, low)
	return ps != 0 && ps < x.pseq && x.pseq-ps <= min(x.pcap, uint64(len(x.posts)))
}

// exposure returns the live exposure with low bits low, or nil. Exposure
// number s sits at (s-1) mod MaxExposures. Callers hold mu.
func (x *Index) exposure(low uint32) (*IndexedExposure, uint64) {
	es := full(x.eseq, low)
	if es == 0 || es >= x.eseq || x.eseq-es > uint64(len(x.exps)) {
		return nil, 0
	}
	return &x.exps[(es-1)%uint64(x.cfg.MaxExposures)], es
}

// Visit calls fn for every live, undeleted exposure of key with
// since <= TS <= until, newest first, until fn returns false. seq is the
// exposure's sequence number (the same exposure found under two keys has the
// same seq). fn must not call back into the index.
func (x *Index) Visit(key uint64, since, until int64, fn func(seq uint64, e IndexedExposure) bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	h, ok := x.heads[key]
	for ok && x.postingLive(h) {
		ps := full(x.pseq, h)
		p := x.post(ps)
		e, es := x.exposure(p.exp)
		if e == nil {
			return // older postings point to older exposures: all evicted
		}
		if e.TS < since-x.window { // far older than anything asked for
			return
		}
		if e.flags&flagDeleted == 0 && e.TS >= since && e.TS <= until {
			if !fn(es, *e) {
				return
			}
		}
		h, ok = p.next, p.next != 0
	}
}

// post returns the posting with sequence number ps (live, checked by the
// caller), which sits at (ps-1) mod pcap.
func (x *Index) post(ps uint64) posting { return x.posts[(ps-1)%x.pcap] }

// Delete marks every exposure reachable through the identity keys whose
// campaign number passes keep (nil: every campaign) as deleted, so that no
// other key finds them either, and forgets a key once it reaches no live
// exposure. It returns how many exposures were deleted.
func (x *Index) Delete(keys []uint64, match func(campaign uint16) bool) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for _, key := range keys {
		h, ok := x.heads[key]
		others := false
		for ok && x.postingLive(h) {
			p := x.post(full(x.pseq, h))
			if e, _ := x.exposure(p.exp); e != nil && e.flags&flagDeleted == 0 {
				if match == nil || match(e.Campaign) {
					e.flags |= flagDeleted
					n++
				} else {
					others = true
				}
			}
			h, ok = p.next, p.next != 0
		}
		if !others {
			delete(x.heads, key)
		}
	}
	indexDeleted.Add(n)
	return n
}

// Sweep drops, in bulk, the identity keys whose newest exposure is evicted
// or older than now minus the window. It returns how many keys it dropped.
func (x *Index) Sweep(now int64) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for key, h := range x.heads {
		if !x.postingLive(h) {
			delete(x.heads, key)
			n++
			continue
		}
		p := x.post(full(x.pseq, h))
		if e, _ := x.exposure(p.exp); e == nil || e.TS < now-x.window {
			delete(x.heads, key)
			n++
		}
	}
	return n
}

// IndexStats describes the index's size.
type IndexStats struct {
	Exposures  int // exposures held (live or not yet overwritten)
	Postings   int
	Identities int
}

// Stats returns the index's size.
func (x *Index) Stats() IndexStats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return IndexStats{Exposures: len(x.exps), Postings: len(x.posts), Identities: len(x.heads)}
}

func floatBits(f float32) uint32 { return math.Float32bits(f) }
func floatFrom(b uint32) float32 { return math.Float32frombits(b) }
