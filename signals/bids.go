package signals

import (
	"bytes"
	"encoding/binary"
	"sync"
	"time"
	"unsafe"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/model"
)

// remembered is what cpafeed keeps of a scored bid request until its win
// notices: one pointer-free record (so the garbage collector never scans
// it, and a request costs one allocation), identities only as keyed
// hashes computed once for the request. Layout:
//
//	ts       int64, little endian: Unix seconds the bid was seen
//	flags    byte: bit 0 set when the request passed the privacy gates;
//	         bit 1 set when the imps hold NumFeatures features (else the
//	         numFeaturesV1 of records written before FeaturePosition)
//	key      uvarint length, bytes: the auction id (the cache key)
//	bidder   uvarint length, bytes
//	ids      uvarint count, then per id its kind (byte) and key (uint64 LE)
//	imps     uvarint count, then per imp its id (uvarint length, bytes) and
//	         per feature a uvarint code: 0 the previous imp's value (a
//	         pod's imps share the request's features), else 1 + the
//	         value's length, then the value (code 1: Unknown)
//
// Records are immutable once stored: the slices decoded from one alias it.
type remembered []byte

const rememberedHeader = 9 // ts and flags

func (r remembered) ts() int64     { return int64(binary.LittleEndian.Uint64(r)) }
func (r remembered) indexed() bool { return r[8]&1 == 1 }

// features is how many features per imp the record holds.
func (r remembered) features() int {
	if len(r) >= rememberedHeader && r[8]&2 != 0 {
		return int(NumFeatures)
	}
	return numFeaturesV1
}

// cost is what the record holds in the bid memory, so that
// bid_memory_bytes bounds the heap: its bytes and about 110 more (size-class
// rounding, the cache's map entry and policy; a 302-byte record took 473
// bytes of heap, measured), besides the 64 of its item that ristretto adds.
func (r remembered) cost() int64 { return int64(len(r)) + 110 }

// appendRemembered appends the record of a request to dst.
func appendRemembered(dst []byte, key []byte, bidder string, ts int64, indexed bool, ids []ID, imps []Imp) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(ts))
	flags := byte(2)
	if indexed {
		flags |= 1
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	dst = binary.AppendUvarint(dst, uint64(len(bidder)))
	dst = append(dst, bidder...)
	dst = binary.AppendUvarint(dst, uint64(len(ids)))
	for _, id := range ids {
		dst = append(dst, byte(id.Kind))
		dst = binary.LittleEndian.AppendUint64(dst, id.Key)
	}
	dst = binary.AppendUvarint(dst, uint64(len(imps)))
	for i := range imps {
		imp := &imps[i]
		dst = binary.AppendUvarint(dst, uint64(len(imp.ID)))
		dst = append(dst, imp.ID...)
		for f := range NumFeatures {
			v := knownFeature(imp, f)
			if i > 0 && bytes.Equal(v, knownFeature(&imps[i-1], f)) {
				dst = append(dst, 0)
				continue
			}
			dst = binary.AppendUvarint(dst, uint64(len(v))+1)
			dst = append(dst, v...)
		}
	}
	return dst
}

// knownFeature is feature f of imp, empty when Unknown (the extractor
// writes the word).
func knownFeature(imp *Imp, f FeatureID) []byte {
	if v := imp.feat[f]; string(v) != Unknown {
		return v
	}
	return nil
}

// maxRemembered bounds a remembered bid's record, so that every record a
// snapshot holds can be read back (ReadSnapshot refuses longer ones). A
// CTV request takes a few hundred bytes; one over 1 MiB (tens of thousands
// of imps) is not remembered, and counted.
const maxRemembered = 1 << 20

// key returns the auction id of the record.
func (r remembered) key() []byte {
	d := binenc.NewSlice(r, errRecord)
	d.Raw(rememberedHeader, "remembered bid")
	return d.Bytes("auction id")
}

// head decodes the record up to its imps: the key, the bidder and the
// identities (appended to ids), and returns the number of imps.
func (r remembered) head(d *binenc.Slice, ids []ID) (key, bidder []byte, _ []ID, nImps int) {
	*d = binenc.NewSlice(r, errRecord)
	d.Raw(rememberedHeader, "remembered bid")
	key = d.Bytes("auction id")
	bidder = d.Bytes("bidder")
	for range d.Count(9, "identities") {
		ids = append(ids, ID{Kind: IDKind(d.Byte("identity kind")), Key: d.U64("identity")})
	}
	return key, bidder, ids, d.Count(1+r.features(), "imps")
}

// nextImp decodes the next imp of a record of nf features into imp, whose
// features hold the previous imp's (the first: zero values).
func nextImp(d *binenc.Slice, imp *Imp, first bool, nf int) {
	imp.ID = d.Bytes("imp id")
	for f := range FeatureID(nf) {
		switch c := d.Uvarint("feature"); {
		case c == 0 && first:
			d.Fail("feature", "the first imp refers to a previous one")
		case c > 0 && c-1 <= uint64(d.Len()):
			imp.feat[f] = d.Raw(int(c-1), "feature")
		case c > 0:
			d.Fail("feature", "truncated")
		}
	}
}

// find decodes the imp with id into imp and returns its identities (the
// request's, without the IP when its ads are stitched server-side).
func (r remembered) find(id []byte, imp *Imp) (ids []ID, ok bool) {
	var d binenc.Slice
	_, _, ids, n := r.head(&d, nil)
	for i := 0; i < n && d.Err() == nil; i++ {
		nextImp(&d, imp, i == 0, r.features())
		if d.Err() == nil && bytes.Equal(imp.ID, id) {
			if serverStitched(imp) {
				ids = withoutIP(ids)
			}
			return ids, true
		}
	}
	return nil, false
}

// valid reports whether the record decodes to its end (snapshots).
func (r remembered) valid() bool {
	var d binenc.Slice
	_, _, _, n := r.head(&d, nil)
	var imp Imp
	for i := 0; i < n && d.Err() == nil; i++ {
		nextImp(&d, &imp, i == 0, r.features())
	}
	return d.Err() == nil && d.Len() == 0
}

// withoutIP removes the IP identities from ids, in place.
func withoutIP(ids []ID) []ID {
	out := ids[:0]
	for _, id := range ids {
		if id.Kind != IDIP {
			out = append(out, id)
		}
	}
	return out
}

// impIDs appends the identity keys of an imp of req: the request's, without
// the IP when the imp's ads are stitched server-side (imp.ssai = 3: the IP
// is the stitcher's, not the household's).
func (x *Exposures) impIDs(req *Request, imp *Imp, dst []ID) []ID {
	start := len(dst)
	dst = req.IDs(x.hasher, dst)
	if serverStitched(imp) {
		dst = dst[:start+len(withoutIP(dst[start:]))]
	}
	return dst
}

func serverStitched(imp *Imp) bool { return string(imp.Feature(FeatureSSAI)) == "3" }

// Remember keeps the request (every imp) for its win notices (BidTTL): one
// cache entry, one allocation, the identities hashed once. The request's
// bytes are copied; nothing of req is retained.
func (x *Exposures) Remember(req *Request, bidder string, now int64) {
	allowed, _ := Gate(req.Privacy(), x.cfg.TCFVendorID)
	var idBuf [8]ID
	ids := req.IDs(x.hasher, idBuf[:0])
	// Encoded in a scratch buffer, then copied to a record of its exact size.
	buf := x.recBufs.Get().(*[]byte)
	*buf = appendRemembered((*buf)[:0], req.ID, bidder, now, allowed, ids, req.Imps)
	if len(*buf) > maxRemembered {
		bidsTooLarge.Inc()
		return // and the buffer is left to the GC
	}
	r := remembered(bytes.Clone(*buf))
	x.recBufs.Put(buf)
	x.batch.add(r)
	bidsRemembered.Add(len(req.Imps))
}

// bidBatch gathers remembered bids for the cache: the bids of a millisecond
// (at most 64) go to it together, from a goroutine of its own, rather than
// one Set per scored request on the request's goroutine. That raised the
// POST /v1/score rate by 9-15 % (cpafeed bench, 6 alternating rounds, two
// runs).
// Lookups find a bid while it waits here and while the cache applies it
// (ristretto applies sets asynchronously), so a win never misses a bid that
// was remembered before it.
type bidBatch struct {
	cache *ristretto.Cache[string, remembered]
	ttl   time.Duration

	flushMu sync.Mutex          // held by a flush
	seen    map[string]struct{} // a flush's keys (under flushMu)

	mu       sync.Mutex   // guards the slices and closed
	pending  []pendingBid // not handed to the cache yet
	flushing []pendingBid // being handed to the cache now
	spare    []pendingBid
	closed   bool // after close: no goroutine, bids go to the cache one by one

	kick    chan struct{} // a batch started or filled up
	stop    chan struct{}
	stopped chan struct{}
}

// pendingBid is a bid waiting for the cache; key aliases rec.
type pendingBid struct {
	key string
	rec remembered
}

const (
	bidBatchSize = 64
	bidBatchWait = time.Millisecond
)

// newBidBatch starts the batch of cache, whose bids live for ttl.
func newBidBatch(cache *ristretto.Cache[string, remembered], ttl time.Duration) *bidBatch {
	b := &bidBatch{cache: cache, ttl: ttl, seen: make(map[string]struct{}, bidBatchSize),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go b.run()
	return b
}

// set hands one bid to the cache (which keeps only the key's hashes).
func (b *bidBatch) set(p pendingBid) { b.cache.SetWithTTL(p.key, p.rec, p.rec.cost(), b.ttl) }

// add queues r.
func (b *bidBatch) add(r remembered) {
	key := r.key()
	p := pendingBid{unsafe.String(unsafe.SliceData(key), len(key)), r}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.set(p)
		return
	}
	b.pending = append(b.pending, p)
	n := len(b.pending)
	b.mu.Unlock()
	if n == 1 || n == bidBatchSize {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// run hands each batch to the cache once it is full or bidBatchWait old.
func (b *bidBatch) run() {
	defer close(b.stopped)
	for {
		select {
		case <-b.kick:
		case <-b.stop:
			b.flush()
			return
		}
		t := time.NewTimer(bidBatchWait)
		select {
		case <-b.kick:
		case <-t.C:
		case <-b.stop:
		}
		t.Stop()
		b.flush()
	}
}

// flush hands the pending bids to the cache and waits until it applied
// them (one flush at a time: the batch and the spare slice alternate).
func (b *bidBatch) flush() {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	batch := b.pending
	b.pending, b.flushing = b.spare[:0], batch
	b.mu.Unlock()
	// An auction remembered twice in a batch: only the newest goes, since
	// the cache keeps the first of two new items with one key.
	clear(b.seen)
	for i := len(batch) - 1; i >= 0; i-- {
		if _, dup := b.seen[batch[i].key]; !dup {
			b.seen[batch[i].key] = struct{}{}
			b.set(batch[i])
		}
	}
	b.cache.Wait() // applied: lookups find them in the cache from now on
	b.mu.Lock()
	clear(batch) // no record stays reachable from here (under mu: find reads it)
	b.flushing, b.spare = nil, batch[:0]
	b.mu.Unlock()
}

// find looks for a bid still waiting for the cache.
func (b *bidBatch) find(key []byte) (remembered, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range [2][]pendingBid{b.pending, b.flushing} {
		for i := len(q) - 1; i >= 0; i-- { // the newest, if remembered twice
			if q[i].key == string(key) {
				return q[i].rec, true
			}
		}
	}
	return nil, false
}

// close hands what is pending to the cache and stops the goroutine.
func (b *bidBatch) close() {
	b.mu.Lock()
	closed := b.closed
	b.closed = true
	b.mu.Unlock()
	if !closed {
		close(b.stop)
		<-b.stopped
	}
}

// rememberWon keeps the leaf of a won exposure, ingested at the Unix second
// ingest, for its VAST events.
func (x *Exposures) rememberWon(e *exposure, leaf model.Key, ingest int64) {
	x.won.put(wonHash(e.auction, e.imp, e.campaign), wonEntry{leaf: leaf, ts: ingest}, x.now().Unix())
}

// WaitBids blocks until remembered bids are in the cache and visible to
// its lookups (it applies sets asynchronously); for tests, snapshots and
// shutdown.
func (x *Exposures) WaitBids() { x.batch.flush() }

// lookupBid returns the remembered bid of an auction. The batch is looked
// at first: a bid leaves it only once the cache has applied it, so in this
// order a bid moving from one to the other is not missed.
func (x *Exposures) lookupBid(auction []byte) (remembered, bool) {
	if r, ok := x.batch.find(auction); ok {
		return r, true
	}
	return x.bids.Get(string(auction))
}
