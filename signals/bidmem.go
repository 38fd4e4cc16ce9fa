package signals

import (
	"encoding/binary"
	"hash/maphash"
	"log/slog"
	"math/bits"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// bidMemory keeps remembered bids for their win notices: each for bid_ttl,
// within a byte budget, and when the budget is reached before that, the
// oldest go first.
//
// Bids go into time-ordered generations. A generation is an append-only
// arena of []byte chunks holding the records one after the other (each
// after its uvarint length), and a map from the hash of the (auction id,
// bidder) pair to the record's place in the arena: exchanges send one
// auction id to every bidder, and two bidders of one cpafeed may score the
// same auction, so each keeps its own bid. New bids go into the newest generation,
// which is closed once it spans bid_ttl/bidGenerations or holds
// budget/bidGenerations bytes. A generation is dropped whole: once its
// newest bid is bid_ttl old (expired), or as the oldest when the budget is
// reached (its bids evicted early: counted, and logged at most once a
// minute with the memory that would hold them). Neither the chunks nor the
// map hold a pointer, so the GC does not scan them, and a dropped
// generation goes back as a few large objects. A lookup goes from the
// newest generation to the oldest: an auction remembered twice gives its
// newer request. One mutex guards the memory: a put copies one record and
// sets one map entry under it, a lookup reads at most a map a generation.
//
// The store's clock is the time of the bids it is given (Remember's now):
// it rotates and expires generations by it. Lookups take their own now and
// refuse a bid older than bid_ttl whatever generation holds it.
//
// Records are immutable and chunks are never reused: a record handed out
// stays valid after its generation is dropped (it keeps its chunk alive).
// An (auction, bidder) whose 64-bit hash (maphash, seeded per process)
// equals another's in the same generation replaces it there (for a bid
// among n in its generation, a chance of n/2^64: 5×10^-13 for 10 million);
// a lookup checks both, so it never returns another auction's bid.
type bidMemory struct {
	seed   maphash.Seed
	ttl    int64 // seconds; 0: nothing is kept
	span   int64 // seconds a generation spans at most
	budget int64 // bytes of every generation together
	genMax int64 // bytes a generation holds at most
	chunk  int   // bytes of the largest chunk
	cfgMem int64 // the configured bid_memory_bytes, for the log line
	log    *slog.Logger

	mu      sync.Mutex
	gens    []*bidGen // oldest first; the last one takes the new bids
	bytes   int64     // of every generation
	n       int       // records in every generation
	closed  bool      // after close: nothing more is kept
	early   int       // bids evicted early since the last log line
	lastLog int64     // Unix second of the last log line
}

// bidGen is one generation of remembered bids. It changes only while it is
// the newest, under the memory's lock; an older one is immutable.
type bidGen struct {
	start, first, last int64 // Unix seconds: opened at, its oldest and newest bid
	n                  int   // records (an auction remembered twice: two)
	bytes              int64 // chunks' capacity and the map's share
	chunks             [][]byte
	index              map[uint64]uint64 // bidKey of (auction id, bidder) -> chunk<<32 | offset
}

const (
	// bidGenerations is how many generations bid_ttl spans, and a full
	// memory's budget is shared by: when full, the oldest generation, about
	// a sixteenth of the bids, goes at once.
	bidGenerations = 16
	// bidIndexEntry is what a map entry (uint64 to uint64) takes, with the
	// map's spare room: 23 to 40 bytes measured from 100 to a million
	// entries, so the largest.
	bidIndexEntry = 40
	bidChunkMin   = 16 << 10
	bidChunkMax   = 1 << 20
)

var (
	bidsExpired      = metrics.NewCounter(`cpafeed_bids_expired_total`)
	bidsEvictedEarly = metrics.NewCounter(`cpafeed_bids_evicted_early_total`)
	bidsMemoryBytes  = metrics.NewGauge(`cpafeed_bids_memory_bytes`, nil)
	bidsMemoryBudget = metrics.NewGauge(`cpafeed_bids_memory_budget_bytes`, nil)
	bidsMemoryFill   = metrics.NewGauge(`cpafeed_bids_memory_fill_ratio`, nil)
	bidsKept         = metrics.NewGauge(`cpafeed_bids_kept`, nil)
	bidsKeptSeconds  = metrics.NewGauge(`cpafeed_bids_kept_seconds`, nil)
)

// newBidMemory keeps bids for ttl within budget bytes; cfgMem is the
// configured bid_memory_bytes the budget comes from (for the log line).
func newBidMemory(ttl time.Duration, budget, cfgMem int64, log *slog.Logger) *bidMemory {
	ttlSec := int64(ttl / time.Second)
	budget = max(budget, bidGenerations*bidChunkMin)
	m := &bidMemory{seed: maphash.MakeSeed(), ttl: ttlSec, span: max((ttlSec+bidGenerations-1)/bidGenerations, 1),
		budget: budget, genMax: budget / bidGenerations, cfgMem: cfgMem, log: log}
	m.chunk = int(min(max(m.genMax/4, bidChunkMin), bidChunkMax))
	if ttlSec > 0 {
		bidsMemoryBudget.Set(float64(budget))
		bidsMemoryFill.Set(0)
	}
	return m
}

// put keeps rec, a valid record no longer than maxRemembered; its time
// moves the memory's clock.
func (m *bidMemory) put(rec remembered) {
	if m.ttl == 0 {
		return
	}
	ts := rec.ts()
	h := m.bidKey(rec.key(), bytesString(rec.bidder()))
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	changed := m.expire(ts)
	g := m.current()
	if g == nil || ts >= g.start+m.span || !g.fits(rec) && g.bytes+int64(len(rec)) > m.genMax {
		g = m.open(ts)
		changed = true
	}
	loc, grown := g.append(rec, min(m.chunk, int(m.genMax-g.bytes)*7/8))
	before := len(g.index)
	g.index[h] = loc
	if len(g.index) > before { // not an auction this generation holds already
		g.bytes += bidIndexEntry
		m.bytes += bidIndexEntry
	}
	g.n++
	m.n++
	g.first, g.last = min(g.first, ts), max(g.last, ts)
	if grown > 0 {
		g.bytes += grown
		m.bytes += grown
		changed = true
	}
	var line []any
	if m.bytes > m.budget && len(m.gens) > 1 {
		line = m.evict(ts)
		changed = true
	}
	if changed {
		m.publish(ts)
	}
	m.mu.Unlock()
	if line != nil {
		m.log.Warn("bid memory full: bids pushed out before bid_ttl, their win notices will not find them; raise exposures.bid_memory_bytes (or lower bid_ttl)", line...)
	}
}

// current is the newest generation, nil if none.
func (m *bidMemory) current() *bidGen {
	if len(m.gens) == 0 {
		return nil
	}
	return m.gens[len(m.gens)-1]
}

// open starts a new generation at ts.
func (m *bidMemory) open(ts int64) *bidGen {
	g := &bidGen{start: ts, first: ts, last: ts, index: map[uint64]uint64{}}
	m.gens = append(m.gens, g)
	return g
}

// fits reports whether rec fits in g's last chunk.
func (g *bidGen) fits(rec remembered) bool {
	k := len(g.chunks)
	return k > 0 && cap(g.chunks[k-1])-len(g.chunks[k-1]) >= binary.MaxVarintLen32+len(rec)
}

// append copies rec into g's arena, in a new chunk of at most chunk bytes
// (each twice the last) if it does not fit, and returns its place and the
// bytes of the chunk it allocated (0 if none).
func (g *bidGen) append(rec remembered, chunk int) (loc uint64, grown int64) {
	if !g.fits(rec) {
		size := bidChunkMin
		if k := len(g.chunks); k > 0 {
			size = min(2*cap(g.chunks[k-1]), chunk)
		}
		g.chunks = append(g.chunks, make([]byte, 0, max(size, binary.MaxVarintLen32+len(rec))))
		grown = int64(cap(g.chunks[len(g.chunks)-1]))
	}
	k := len(g.chunks) - 1
	c := g.chunks[k]
	loc = uint64(k)<<32 | uint64(len(c))
	c = binary.AppendUvarint(c, uint64(len(rec)))
	g.chunks[k] = append(c, rec...)
	return loc, grown
}

// record is the record at loc.
func (g *bidGen) record(loc uint64) remembered {
	c := g.chunks[loc>>32]
	off := int(uint32(loc))
	n, k := binary.Uvarint(c[off:])
	start, end := off+k, off+k+int(n)
	return remembered(c[start:end:end])
}

// expire drops the generations whose newest bid is ttl old at now.
func (m *bidMemory) expire(now int64) bool {
	k := 0
	for k < len(m.gens) && now-m.gens[k].last >= m.ttl {
		bidsExpired.Add(m.gens[k].n)
		k++
	}
	m.drop(k)
	return k > 0
}

// drop forgets the k oldest generations.
func (m *bidMemory) drop(k int) {
	for _, g := range m.gens[:k] {
		m.bytes -= g.bytes
		m.n -= g.n
	}
	clear(m.gens[:k]) // nothing of the dropped ones stays reachable from here
	m.gens = append(m.gens[:0], m.gens[k:]...)
}

// evict drops the oldest generations (not the newest) until the memory
// fits its budget, and returns the log line's attributes when one is due
// (the first eviction, then at most once a minute).
func (m *bidMemory) evict(now int64) []any {
	k, over, age := 0, m.bytes-m.budget, int64(0)
	for ; k < len(m.gens)-1 && over > 0; k++ {
		g := m.gens[k]
		over -= g.bytes
		m.early += g.n
		bidsEvictedEarly.Add(g.n)
		age = now - g.last
	}
	m.drop(k)
	if m.lastLog != 0 && now-m.lastLog < 60 {
		return nil
	}
	// What would keep every bid for bid_ttl, at the rate and size of the
	// bids kept now.
	secs := max(now-m.gens[0].first, 1)
	rate := float64(m.n) / float64(secs)
	perBid := float64(m.bytes) / float64(max(m.n, 1))
	need := rate * float64(m.ttl) * perBid * float64(m.cfgMem) / float64(m.budget)
	line := []any{"evicted", m.early, "newest_evicted_age", seconds(age), "bid_ttl", seconds(m.ttl),
		"kept", m.n, "kept_for", seconds(secs), "bids_per_second", int64(rate + 0.5), "bytes_per_bid", int64(perBid + 0.5),
		"bid_memory_bytes", m.cfgMem, "bid_memory_bytes_needed", int64(need) + 1}
	m.early, m.lastLog = 0, now
	return line
}

func seconds(s int64) string { return (time.Duration(s) * time.Second).String() }

// publish sets the gauges (under the lock, when the memory changed). They
// are the process's: of the memory that changed last.
func (m *bidMemory) publish(now int64) {
	bidsMemoryBytes.Set(float64(m.bytes))
	bidsMemoryBudget.Set(float64(m.budget))
	bidsMemoryFill.Set(float64(m.bytes) / float64(m.budget))
	bidsKept.Set(float64(m.n))
	kept := 0.0
	if len(m.gens) > 0 {
		kept = float64(now - m.gens[0].first)
	}
	bidsKeptSeconds.Set(kept)
}

// bidKey is the index key of bidder's bid in auction.
func (m *bidMemory) bidKey(auction []byte, bidder string) uint64 {
	return maphash.Bytes(m.seed, auction) ^ bits.RotateLeft64(maphash.String(m.seed, bidder)*0x9e3779b97f4a7c15, 31)
}

// get returns the newest bid bidder remembered for auction, unless it is
// ttl old at now.
func (m *bidMemory) get(auction []byte, bidder string, now int64) (remembered, bool) {
	h := m.bidKey(auction, bidder)
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.gens) - 1; i >= 0; i-- {
		g := m.gens[i]
		if now-g.last >= m.ttl {
			break // this one and the older ones: expired
		}
		loc, ok := g.index[h]
		if !ok {
			continue
		}
		if r := g.record(loc); string(r.key()) == string(auction) && string(r.bidder()) == bidder {
			return r, now-r.ts() < m.ttl
		}
	}
	return nil, false
}

// live returns the bids younger than ttl at now, the newest of each
// (auction, bidder) in each generation, oldest generation first (for snapshots). The
// older generations are read after the lock is released: they no longer
// change.
func (m *bidMemory) live(now int64) []remembered {
	m.mu.Lock()
	gens := append([]*bidGen(nil), m.gens...)
	var cur []remembered
	if len(gens) > 0 {
		cur = gens[len(gens)-1].live(m, now, nil)
		gens = gens[:len(gens)-1]
	}
	m.mu.Unlock()
	var out []remembered
	for _, g := range gens {
		out = g.live(m, now, out)
	}
	return append(out, cur...)
}

// live appends the records of g that are still their (auction, bidder)'s and younger
// than ttl at now, in the order they came.
func (g *bidGen) live(m *bidMemory, now int64, out []remembered) []remembered {
	if now-g.last >= m.ttl {
		return out
	}
	for k, c := range g.chunks {
		for off := 0; off < len(c); {
			loc := uint64(k)<<32 | uint64(off)
			r := g.record(loc)
			n, w := binary.Uvarint(c[off:])
			off += w + int(n)
			if now-r.ts() < m.ttl && g.index[m.bidKey(r.key(), bytesString(r.bidder()))] == loc {
				out = append(out, r)
			}
		}
	}
	return out
}

// close forgets every bid and keeps no more.
func (m *bidMemory) close() {
	m.mu.Lock()
	m.drop(len(m.gens))
	m.closed = true
	m.publish(0)
	m.mu.Unlock()
}
