package conversions

import (
	"errors"
	"math/bits"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/dedup"
	"github.com/cpafeed/cpafeed/signals"
	"github.com/valyala/fastjson"
)

// Log is the durable journal (implemented by package journal).
type Log interface {
	// AppendApply assigns the next LSN and buffers rec; it does not wait for
	// disk. rec is only valid during the call: the journal copies it. undo
	// (may be nil) is called by the journal iff the record could not be
	// persisted, before the failure epoch increments and before any waiter
	// wakes; the Service's undo takes the dataset's dedup lock, so the
	// journal must not hold a lock that Append needs while it calls undo. A
	// failed Append never calls undo. apply runs once the record is durable,
	// in log order with every other record's apply, before Wait returns:
	// stats and attribution follow the log in the order a replay sees it.
	AppendApply(rec []byte, undo, apply func()) (lsn, epoch uint64, err error)
	// Tail is the last appended LSN and the current failure epoch.
	Tail() (lsn, epoch uint64)
	// Wait blocks until every record <= lsn is durable; it errors if a flush
	// failed after epoch.
	Wait(lsn, epoch uint64) error
}

// Tenants resolves tokens; implemented by the server. Tokens are compared in
// constant time there.
type Tenants interface {
	Advertiser(token []byte) (advertiser string, ok bool)
}

// Service is the Conversions API: it validates, hashes, deduplicates and
// journals conversions, and keeps per-dataset stats. It is safe for
// concurrent use.
type Service struct {
	cfg      Config
	log      Log
	hasher   *signals.Hasher
	tenants  Tenants
	datasets map[string]*dataset
	byAdv    map[string][]*dataset
	proxies  []netip.Prefix
	hook     atomic.Pointer[func([]StoredEvent)]

	free         chan *batch            // warm batches: unlike the sync.Pool, not emptied by the GC
	batches      sync.Pool              // *batch, beyond what free holds
	reservations sync.Pool              // *reservation
	scrub        atomic.Pointer[string] // NUL bytes, see scrubParser

	maxAgeSec, maxAgeStoreSec, maxFutureSec int64
	msgTooOld, msgTooOldStore, msgFuture    string
}

// dataset is the state of one dataset: its dedup set under mu, its stats
// under statsMu.
type dataset struct {
	id, advertiser string

	mu      sync.Mutex
	set     dedup.Set
	pending int // batches appended to the journal whose Wait has not returned
	// inflight are the reservations of those batches, with their records'
	// LSNs: a snapshot at a checkpoint leaves out the keys of records it
	// does not cover (see WriteSnapshot).
	inflight []*reservation
	// fps maps identity keys to the dedup keys of stored events without an
	// event_id (fingerprints made of those identities), so that deleting an
	// identity forgets them too. Pruned with the generations.
	fps map[uint64][]fpRef

	statsMu sync.Mutex
	stats   stats

	tests testRing // events of test batches, for GET /v1/test_events
}

// batch is the pooled working state of one request. Everything in it that
// may hold clear PII is cleared before it returns to the pool.
type batch struct {
	p        fastjson.Parser
	p2       fastjson.Parser // for the events of Meta SDKs that send them as JSON strings (eventArray)
	own      []byte          // token and test code copied out of p before p parses again
	form     []byte          // decoded form fields
	js       []byte          // the pixel's synthesized CAPI body
	scratch  []byte          // normalized user_data values
	hex      [64]byte
	num      []byte // text of numbers used as ids (per event)
	keyBuf   []byte
	events   []event
	ids      []signals.ID
	details  []apierr.Detail
	subcode  int
	dupNames []nameCount
	rec      []byte
	out      []byte
	stored   []StoredEvent

	token, testCode []byte // from the body; alias p or form
	dataset         string
	test            bool
	nowSec, nowMs   int64
	parsedBytes     int // bytes p copied (scrubbed on release)
	parsedBytes2    int // bytes p2 copied (scrubbed on release)
	source          Source
}

// reservation is the set of dedup keys one batch inserted, removed again if
// its journal record is lost. It outlives the batch: the journal may call
// undo after the request returned.
type reservation struct {
	ds     *dataset
	gen    int64
	lsn    uint64 // of the batch's record
	keys   []DedupKey
	done   bool // guarded by ds.mu
	undoFn func()
}

func (r *reservation) undo() {
	r.ds.mu.Lock()
	r.removeLocked()
	r.ds.mu.Unlock()
}

// removeLocked removes the keys once, whoever calls first (the journal's undo
// or the request after a failed Wait). ds.mu must be held.
func (r *reservation) removeLocked() {
	if r.done {
		return
	}
	r.done = true
	before := r.ds.set.Len()
	for _, k := range r.keys {
		r.ds.set.Remove(k, r.gen)
	}
	metricDedupEntries.Add(float64(r.ds.set.Len() - before))
}

// NewService returns a Service. cfg is completed with WithDefaults and
// validated; log, h and t are required.
func NewService(cfg Config, log Log, h *signals.Hasher, t Tenants) (*Service, error) {
	cfg = cfg.WithDefaults()
	errs := cfg.Validate()
	if log == nil {
		errs = append(errs, errors.New("conversions: a journal (Log) is required"))
	}
	if h == nil {
		errs = append(errs, errors.New("conversions: an identity Hasher is required"))
	}
	if t == nil {
		errs = append(errs, errors.New("conversions: Tenants is required"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s := &Service{
		cfg: cfg, log: log, hasher: h, tenants: t,
		datasets:       make(map[string]*dataset, len(cfg.Datasets)),
		byAdv:          make(map[string][]*dataset),
		maxAgeSec:      int64(cfg.MaxAge / time.Second),
		maxAgeStoreSec: int64(cfg.MaxAgePhysicalStore / time.Second),
		maxFutureSec:   int64(cfg.MaxFuture / time.Second),
		msgTooOld:      "older than " + humanDuration(cfg.MaxAge),
		msgTooOldStore: "older than " + humanDuration(cfg.MaxAgePhysicalStore) + " (action_source physical_store)",
		msgFuture:      "more than " + humanDuration(cfg.MaxFuture) + " in the future",
	}
	for _, p := range cfg.TrustedProxies {
		s.proxies = append(s.proxies, netip.MustParsePrefix(p).Masked()) // validated above
	}
	for id, adv := range cfg.Datasets {
		ds := &dataset{id: id, advertiser: adv,
			set:   s.newSet(),
			stats: stats{names: make(map[string]*nameStats), max: cfg.MaxEventNames}}
		s.datasets[id] = ds
		s.byAdv[adv] = append(s.byAdv[adv], ds)
	}
	// A batch holds a parser whose cache of values is as large as the
	// biggest body it parsed; rebuilding it costs thousands of allocations,
	// so a few stay warm for good.
	s.free = make(chan *batch, 2*runtime.GOMAXPROCS(0))
	s.batches.New = func() any { return &batch{} }
	s.reservations.New = func() any {
		r := &reservation{}
		r.undoFn = r.undo
		return r
	}
	return s, nil
}

// SetStoredHook sets fn to receive the events of every batch once they are
// durable (and, at start, those Replay decodes), in journal order: live, fn
// runs on the journal's applier goroutine, one batch at a time, in the same
// order as a replay. The slice and the events' IDs are valid only during the
// call.
func (s *Service) SetStoredHook(fn func(events []StoredEvent)) {
	if fn == nil {
		s.hook.Store(nil)
		return
	}
	s.hook.Store(&fn)
}

func (s *Service) getBatch() *batch {
	var b *batch
	select {
	case b = <-s.free:
	default:
		b = s.batches.Get().(*batch)
	}
	now := s.cfg.Now()
	b.nowSec, b.nowMs = now.Unix(), now.UnixMilli()
	return b
}

// putBatch clears what may hold clear PII (the form buffer, the normalization
// scratch, the parser's copy of the body) and pools b.
func (s *Service) putBatch(b *batch) {
	clear(b.form) // only ever appended to during a request: len covers what was written
	clear(b.js)
	clear(b.scratch[:cap(b.scratch)]) // rewound per value: a longer earlier value may linger past len
	clear(b.num[:cap(b.num)])
	clear(b.hex[:])
	clear(b.own)
	if b.parsedBytes > 0 {
		s.scrubParser(&b.p, b.parsedBytes)
	}
	if b.parsedBytes2 > 0 {
		s.scrubParser(&b.p2, b.parsedBytes2)
	}
	clear(b.stored) // drop string references
	*b = batch{p: b.p, p2: b.p2, own: b.own[:0], form: b.form[:0], js: b.js[:0], scratch: b.scratch[:0], num: b.num[:0],
		keyBuf: b.keyBuf[:0], events: b.events[:0], ids: b.ids[:0], details: b.details[:0],
		dupNames: b.dupNames[:0], rec: b.rec[:0], out: b.out[:0], stored: b.stored[:0]}
	select {
	case s.free <- b:
	default:
		s.batches.Put(b)
	}
}

// scrubParser overwrites the parser's private copy of the last body (fastjson
// copies its input and keeps it until the next Parse) by parsing n NUL bytes:
// the parse copies them over the body and fails at the first byte. That is
// one memmove of n bytes and a few small allocations for fastjson's error,
// per request. The NUL string is shared and grows to the largest body seen.
func (s *Service) scrubParser(p *fastjson.Parser, n int) {
	z := s.scrub.Load()
	if z == nil || len(*z) < n {
		str := string(make([]byte, 1<<max(bits.Len(uint(n-1)), 12)))
		z = &str
		s.scrub.Store(z)
	}
	_, _ = p.Parse((*z)[:n])
}

// parse parses JSON bytes with b's parser k (0: p, 1: p2), remembering how
// much to scrub. Values of an earlier parse by the same parser become
// invalid; the token and test code, which may alias p's copy, are copied
// out before p parses a second time.
func (b *batch) parse(k int, js []byte) (*fastjson.Value, error) {
	if k == 1 {
		b.parsedBytes2 = max(b.parsedBytes2, len(js))
		return b.p2.ParseBytes(js)
	}
	if b.parsedBytes > 0 {
		b.detach()
	}
	b.parsedBytes = max(b.parsedBytes, len(js))
	return b.p.ParseBytes(js)
}

// detach copies b.token and b.testCode into b.own.
func (b *batch) detach() {
	n := len(b.token)
	own := append(append(b.own[:0], b.token...), b.testCode...)
	b.token, b.testCode, b.own = own[:n:n], own[n:], own
}

// commit deduplicates b's valid events against ds, journals the new ones as
// one record and waits until that record, and every record this batch
// deduplicated against, is durable. Only then are stats applied and the hook
// called. It returns the number of events deduplicated.
func (s *Service) commit(b *batch, ds *dataset, src Source) (int, *apierr.Error) {
	n := len(b.events)
	ds.mu.Lock()
	before := ds.set.Len()
	ds.set.Advance(b.nowMs)
	matched := false
	for i := range b.events {
		if ds.set.Contains(b.events[i].key) {
			b.events[i].dup, matched = true, true
		}
	}
	r := s.reservations.Get().(*reservation)
	r.ds, r.gen, r.keys, r.done = ds, ds.set.Gen(b.nowMs), r.keys[:0], false
	for i := range b.events {
		e := &b.events[i]
		if e.dup {
			continue
		}
		if !ds.set.Insert(e.key, r.gen) { // a second copy within the batch
			e.dup = true
			continue
		}
		r.keys = append(r.keys, e.key)
	}
	metricDedupEntries.Add(float64(ds.set.Len() - before))
	stored := len(r.keys)
	dedup := n - stored

	// What to wait for. Our own record, if any. And if we deduplicated
	// against remembered entries, those entries must be durable too: they
	// are, unless some batch of this dataset appended its record and has not
	// returned from Wait (ds.pending > 0; a batch whose record is lost
	// removes its entries, by the journal's undo or itself, before it stops
	// being pending, and replayed entries are durable). Such a batch
	// appended under ds.mu before us, so its record comes before ours, and
	// waiting for our own record waits for it too (a lost record fails the
	// wait through the failure epoch, and drops every record after it).
	// Never the journal's tail: a later, unrelated record that fails would
	// fail our wait although our record is durable and applied, and the
	// client's retry would store our events a second time.
	var waitLSN, waitEpoch uint64
	wait := false
	counted := false         // the counts are in a record whose apply ran
	dupWaitOptional := false // only duplicates of durable events: a failed wait loses only the counts record
	if stored > 0 {
		b.collectDupNames()
		h := recordHeader{dataset: ds.id, received: b.nowMs, source: src, nReceived: n, nDedup: dedup, dupNames: b.dupNames}
		b.rec = appendRecord(b.rec[:0], &h, b.events, b.ids)
		nDedup := dedup
		lsn, epoch, err := s.log.AppendApply(b.rec, r.undoFn, func() { s.applyStored(b, ds, src, n, nDedup) })
		if err != nil {
			r.removeLocked()
			ds.mu.Unlock()
			return 0, apierr.Unavailable("journal: cannot append the batch, retry").WithCause(err)
		}
		ds.pending++
		r.lsn = lsn
		ds.inflight = append(ds.inflight, r)
		waitLSN, waitEpoch, wait = lsn, epoch, true
	} else {
		// Every event a duplicate: journal the counts (a counts record,
		// applied as a batch without events), so that they survive a
		// crash. Waiting for it also waits for every reservation matched.
		// If the journal refuses it, the counts stay in memory, and the
		// answer waits only for what dedup needs (matched reservations of
		// batches still pending).
		mustWait := matched && ds.pending > 0
		b.collectDupNames()
		b.rec = appendCountsRecord(b.rec[:0], ds.id, src, outcomeDeduplicated, n, b.dupNames)
		lsn, epoch, err := s.log.AppendApply(b.rec, nil, func() { s.applyStored(b, ds, src, n, dedup) })
		switch {
		case err == nil:
			waitLSN, waitEpoch, wait, counted = lsn, epoch, true, true
			dupWaitOptional = !mustWait
		case mustWait:
			waitLSN, waitEpoch = s.log.Tail()
			wait = true
		}
	}
	ds.mu.Unlock()

	if wait {
		err := s.log.Wait(waitLSN, waitEpoch)
		if stored > 0 {
			ds.mu.Lock()
			ds.pending--
			ds.dropInflightLocked(r)
			if err != nil {
				// Forget our keys so that a retry stores the events. If the
				// record reaches the disk anyway, Replay deduplicates it
				// against the retry's copy.
				r.removeLocked()
			}
			ds.mu.Unlock()
		}
		if err != nil && dupWaitOptional {
			// Only the counts record was lost (its apply never runs): the
			// events themselves were durable before, count in memory.
			err, counted = nil, false
		}
		if err != nil {
			return 0, apierr.Unavailable("journal: the batch is not durable, retry").WithCause(err)
		}
	}
	// Durable (the journal will never call undo; apply ran), or only
	// duplicates whose counts record the journal refused: count them here.
	r.ds = nil
	s.reservations.Put(r)
	if stored == 0 && !counted {
		s.applyStored(b, ds, src, n, dedup)
	}
	return dedup, nil
}

// dropInflightLocked forgets r once its batch's Wait returned. ds.mu held.
func (ds *dataset) dropInflightLocked(r *reservation) {
	for i, x := range ds.inflight {
		if x == r {
			last := len(ds.inflight) - 1
			ds.inflight[i] = ds.inflight[last]
			ds.inflight[last] = nil
			ds.inflight = ds.inflight[:last]
			return
		}
	}
}

// unappliedKeysLocked are the dedup keys reserved by batches whose records
// have LSN >= next, so that a checkpoint at next has not applied them: the
// set holds them, the stats and attribution do not. ds.mu held.
func (ds *dataset) unappliedKeysLocked(next uint64) map[DedupKey]struct{} {
	var skip map[DedupKey]struct{}
	for _, r := range ds.inflight {
		if r.done || r.lsn < next {
			continue
		}
		if skip == nil {
			skip = make(map[DedupKey]struct{})
		}
		for _, k := range r.keys {
			skip[k] = struct{}{}
		}
	}
	return skip
}

// collectDupNames groups the batch's duplicates by event name.
func (b *batch) collectDupNames() {
	b.dupNames = b.dupNames[:0]
	for i := range b.events {
		e := &b.events[i]
		if !e.dup {
			continue
		}
		found := false
		for j := range b.dupNames {
			if string(b.dupNames[j].name) == string(e.name) {
				b.dupNames[j].n++
				found = true
				break
			}
		}
		if !found {
			b.dupNames = append(b.dupNames, nameCount{name: e.name, n: 1})
		}
	}
}

// applyStored counts a durable batch and hands its stored events to the hook.
// For a batch with a record it runs as the record's apply (on the journal's
// applier goroutine, in log order, while the request waits in Wait).
func (s *Service) applyStored(b *batch, ds *dataset, src Source, n, dedup int) {
	s.rememberFingerprints(ds, b)
	hook := s.hook.Load()
	ds.statsMu.Lock()
	ds.stats.add(src, counts{Received: uint64(n), Stored: uint64(n - dedup), Deduplicated: uint64(dedup)})
	s.countEvents(b, ds, src, hook != nil)
	ds.statsMu.Unlock()
	metricReceived[src].Add(n)
	metricStored[src].Add(n - dedup)
	metricDeduplicated[src].Add(dedup)
	if hook != nil && len(b.stored) > 0 {
		(*hook)(b.stored)
	}
}

// countEvents counts b.events by name (ds.statsMu held) and, if collect,
// gathers the stored ones into b.stored with interned names. The stored
// events are counted first, then the duplicates (which never add a name),
// as a replay does: a record holds its duplicates by name only.
func (s *Service) countEvents(b *batch, ds *dataset, src Source, collect bool) {
	b.stored = b.stored[:0]
	for pass := range 2 {
		for i := range b.events {
			if e := &b.events[i]; e.dup == (pass == 1) {
				s.countEvent(b, ds, e, src, collect)
			}
		}
	}
}

// countEvent counts one event of b (ds.statsMu held).
func (s *Service) countEvent(b *batch, ds *dataset, e *event, src Source, collect bool) {
	st := &ds.stats
	ns := st.name(e.name, !e.dup)
	c := &st.other
	if ns != nil {
		c = &ns.c
	}
	c.Received++
	if e.dup {
		c.Deduplicated++
		return
	}
	c.Stored++
	if collect {
		var name string
		if ns != nil {
			name = ns.name
		} else {
			name = string(e.name) // more names than MaxEventNames: rare
		}
		b.stored = append(b.stored, e.stored(ds.id, name, b.nowMs, src, b.ids))
	}
}

func (e *event) stored(ds, name string, receivedMs int64, src Source, ids []signals.ID) StoredEvent {
	return StoredEvent{Dataset: ds, EventName: name, EventTime: e.time, Received: receivedMs,
		Value: e.value, Currency: e.currency, ActionSource: e.action, Source: src, Flags: e.flags,
		Key: e.key, IDs: ids[e.idOff : e.idOff+e.idN : e.idOff+e.idN]}
}

// reject counts the n events of a rejected batch (b.events holds those that
// were parsed, for their names). The counts are journaled (a counts record,
// by the names the dataset already counts) and applied before the answer,
// so that they survive a crash and a stats read right after the answer sees
// them. If the record cannot be persisted they are counted in memory only.
func (s *Service) reject(ds *dataset, src Source, b *batch, n int) {
	metricRejected[src].Add(n)
	if ds == nil || n == 0 {
		return
	}
	names := b.dupNames[:0]
	ds.statsMu.Lock()
	for i := range b.events[:min(n, len(b.events))] {
		ns := ds.stats.name(b.events[i].name, false)
		if ns == nil {
			continue
		}
		found := false
		for j := range names {
			if string(names[j].name) == ns.name {
				names[j].n++
				found = true
				break
			}
		}
		if !found {
			names = append(names, nameCount{name: []byte(ns.name), n: 1})
		}
	}
	ds.statsMu.Unlock()
	b.dupNames = names
	rec := appendCountsRecord(nil, ds.id, src, outcomeRejected, n, names)
	d, err := decodeCountsRecord(rec)
	if err != nil {
		panic("conversions: a counts record does not decode: " + err.Error())
	}
	count := func() { applyCounts(ds, &d) }
	lsn, epoch, err := s.log.AppendApply(rec, count, count) // exactly one of undo and apply runs
	if err != nil {
		count()
		return
	}
	_ = s.log.Wait(lsn, epoch) // on failure undo counted them
}

// Replay rebuilds the dedup state and the stats from one journal record at
// start (call it for every record of type RecordTypeConversionBatch, in
// journal order, before serving), and hands the record's stored events to the
// hook. An event already remembered (a batch whose answer failed although its
// record reached the disk, then retried by the client) is counted as
// deduplicated and not handed over twice. Events older than the dedup window
// are counted and handed over but not remembered. A record of a dataset that
// is no longer configured is skipped. rec is not retained.
func (s *Service) Replay(rec []byte) error {
	var d decodedRecord
	if err := decodeRecord(&d, rec); err != nil {
		return err
	}
	ds := s.datasets[d.dataset]
	if ds == nil {
		return nil
	}
	ds.mu.Lock()
	before := ds.set.Len()
	ds.set.Advance(s.cfg.Now().UnixMilli())
	g := ds.set.Gen(d.received)
	replayDups := 0
	for i := range d.events {
		e := &d.events[i]
		if ds.set.Contains(e.key) {
			e.dup = true
			replayDups++
			continue
		}
		ds.set.Insert(e.key, g)
	}
	metricDedupEntries.Add(float64(ds.set.Len() - before))
	ds.mu.Unlock()

	b := &batch{events: d.events, ids: d.ids, nowMs: d.received}
	s.rememberFingerprints(ds, b)
	hook := s.hook.Load()
	m := len(d.events)
	ds.statsMu.Lock()
	ds.stats.add(d.source, counts{Received: uint64(d.nReceived), Stored: uint64(m - replayDups),
		Deduplicated: uint64(d.nDedup + replayDups)})
	s.countEvents(b, ds, d.source, hook != nil)
	for _, nc := range d.dupNames { // the request's duplicates are in the record by name only, counted after its stored events
		c := &ds.stats.other
		if ns := ds.stats.name(nc.name, false); ns != nil {
			c = &ns.c
		}
		c.Received += uint64(nc.n)
		c.Deduplicated += uint64(nc.n)
	}
	ds.statsMu.Unlock()
	if hook != nil && len(b.stored) > 0 {
		(*hook)(b.stored)
	}
	return nil
}

// Expire drops the dedup generations that left the window in every dataset.
// Ingest does it for the dataset it touches; call Expire periodically (say,
// every minute) so that idle datasets give their memory back too.
func (s *Service) Expire() {
	now := s.cfg.Now().UnixMilli()
	for _, ds := range s.datasets {
		ds.mu.Lock()
		if dropped := ds.set.Advance(now); dropped > 0 {
			metricDedupEntries.Add(-float64(dropped))
			ds.pruneFingerprintsLocked()
		}
		ds.mu.Unlock()
		ds.tests.expire(now - s.cfg.TestEventsTTL.Milliseconds())
	}
}

// DedupEntries is the number of events remembered for deduplication.
func (s *Service) DedupEntries() int {
	n := 0
	for _, ds := range s.datasets {
		ds.mu.Lock()
		n += ds.set.Len()
		ds.mu.Unlock()
	}
	return n
}

// datasetFor resolves the dataset a request (of HTTP method) targets: id if
// given, else the advertiser's only dataset. A dataset the advertiser does
// not own, or that does not exist, answers alike, as Meta answers for an
// unknown pixel (400, code 100, subcode 33): no probing for ids.
func (s *Service) datasetFor(adv, id, method string) (*dataset, *apierr.Error) {
	if len(id) == 0 {
		own := s.byAdv[adv]
		if len(own) == 1 {
			return own[0], nil
		}
		return nil, apierr.BadRequest("dataset: required, the token's advertiser has %d datasets", len(own)).WithSubcode(apierr.SubcodeUnknownDataset)
	}
	ds := s.datasets[id]
	if ds == nil || ds.advertiser != adv {
		return nil, apierr.UnknownObject(method, id)
	}
	return ds, nil
}

// humanDuration writes d as "7 days", "10 minutes", ... for messages.
func humanDuration(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(n, 10) + " " + one + "s"
	}
	switch {
	case d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	case d%time.Second == 0:
		return unit(int64(d/time.Second), "second")
	}
	return d.String()
}
