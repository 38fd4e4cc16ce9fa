package signals

import (
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/cpafeed/cpafeed/model"
)

// wonMemory remembers each won exposure's leaf segment for its VAST events,
// by a 64-bit hash of (auction, imp, campaign), for at least ttl seconds
// and less than twice that. Each shard keeps two generations of
// pointer-free maps (the GC does not scan them) and drops the older one
// whole when the newer one is ttl old or full, so a put or get is one map
// operation under a shard lock, synchronous: a VAST event right after its
// exposure finds it. Bounded: at most limit entries a shard and generation;
// entries dropped early for room are counted.
//
// Won exposures used to share the ristretto cache of remembered bids; that
// cost every ingested exposure an allocated string key, a cache item and
// the cache's admission work (about a sixth of exposure ingest CPU).
type wonMemory struct {
	ttl    int64 // seconds
	limit  int   // entries a shard and generation
	shards [wonShards]wonShard
}

const (
	wonShards     = 16
	wonEntryBytes = 48 // a map entry of wonEntry with its share of the map's overhead
)

type wonShard struct {
	mu        sync.Mutex
	cur, prev map[uint64]wonEntry
	start     int64 // Unix second cur began
	_         [64]byte
}

type wonEntry struct {
	leaf model.Key
	ts   int64 // Unix second of the exposure's ingest
}

var wonEvictedEarly = metrics.NewCounter(`cpafeed_won_exposures_evicted_early_total`)

// newWonMemory bounds the memory to about maxBytes.
func newWonMemory(ttl int64, maxBytes int64) *wonMemory {
	w := &wonMemory{ttl: max(ttl, 1), limit: int(max(maxBytes/wonEntryBytes/(2*wonShards), 64))}
	for i := range w.shards {
		w.shards[i].cur = map[uint64]wonEntry{}
	}
	return w
}

// wonHash is the FNV-1a hash of the length-prefixed parts: stable, so that
// snapshots keep it.
func wonHash(auction, imp []byte, campaign string) uint64 {
	return fnvPart(fnvPart(fnvPart(14695981039346656037, auction), imp), campaign)
}

// fnvPart adds the length of p, then its bytes, to the FNV-1a hash h.
func fnvPart[T ~string | ~[]byte](h uint64, p T) uint64 {
	const prime = 1099511628211
	h = (h ^ uint64(len(p))) * prime
	for i := 0; i < len(p); i++ {
		h = (h ^ uint64(p[i])) * prime
	}
	return h
}

func (w *wonMemory) shard(h uint64) *wonShard { return &w.shards[h>>60] }

// put remembers e under h at now (Unix seconds).
func (w *wonMemory) put(h uint64, e wonEntry, now int64) {
	s := w.shard(h)
	s.mu.Lock()
	if now-s.start >= w.ttl || len(s.cur) >= w.limit {
		if len(s.cur) >= w.limit {
			wonEvictedEarly.Add(len(s.prev))
		}
		s.prev, s.cur, s.start = s.cur, make(map[uint64]wonEntry, len(s.cur)), now
	}
	s.cur[h] = e
	s.mu.Unlock()
}

// get returns the entry under h unless it is older than the ttl at now.
func (w *wonMemory) get(h uint64, now int64) (wonEntry, bool) {
	s := w.shard(h)
	s.mu.Lock()
	e, ok := s.cur[h]
	if !ok {
		e, ok = s.prev[h]
	}
	s.mu.Unlock()
	return e, ok && now-e.ts < w.ttl
}

// each calls fn with every entry younger than the ttl at now.
func (w *wonMemory) each(now int64, fn func(h uint64, e wonEntry)) {
	for i := range w.shards {
		s := &w.shards[i]
		s.mu.Lock()
		for _, m := range []map[uint64]wonEntry{s.prev, s.cur} {
			for h, e := range m {
				if now-e.ts < w.ttl {
					fn(h, e)
				}
			}
		}
		s.mu.Unlock()
	}
}
