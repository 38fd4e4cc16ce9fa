package conversions

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

// Probabilistic credit. For a conversion c of a campaign, the candidates
// are its matched real exposures i in the window and "organic"; each
// exposure weighs
//
//	w_i = m(method_i) · p̄·(p_i/p̄)^γ · g(convTS − ts_i)
//
// m the confidence of the match method (AttributionConfig.Confidence),
// p_i the model's current CVR of the exposure's segment (model.SegmentCVR,
// the crossed model's cell), p̄ the campaign's average, γ the temper, g
// the campaign's fitted delay density; organic weighs λ₀, the control
// arm's organic rate per household-second in the conversion's lift group
// (liftState.organicRates). Exposure i gets w_i ÷ (λ₀ + Σ w), organic the
// rest: the credits sum to the probability that an ad caused the
// conversion, and the model counts fractional credit. With no organic
// rate yet (no holdout data, no organic_prior) the exposures share the
// conversion; when no exposure has weight (every confidence 0), the
// conversion goes to organic, or, without an organic rate either, to the
// latest exposure (last touch).
//
// The estimates are not in log order, so a match only queues the
// conversion; FlushCredits computes the weights and journals them in one
// RecordTypeCredits record, whose apply (live and in replay) credits the
// model: the same weights either way.

// RecordTypeCredits is the journal record of probabilistic credits.
const RecordTypeCredits byte = 0x04

// maxCandidates bounds the exposures a conversion's credit is split among
// (the newest are kept).
const maxCandidates = 32

var (
	attrCreditRecords = metrics.NewCounter(`cpafeed_attribution_credit_records_total`)
	attrCreditForced  = metrics.NewCounter(`cpafeed_attribution_credit_forced_total`)
	attrAwaiting      = metrics.NewGauge(`cpafeed_attribution_awaiting_credit`, nil)
)

// awaitConv is a conversion matched to real exposures of a probabilistic
// campaign, awaiting its credit.
type awaitConv struct {
	seq       uint64
	camp      *attrCampaign
	convTS    int64
	key       DedupKey
	group     uint8
	submitted bool // in a credit record not yet applied
	done      bool
	cands     []awaitCand // newest first
}

type awaitCand struct {
	seq    uint64 // in the identity index
	ts     int64
	leaf   model.Key
	method Method
}

// creditQueue holds the conversions awaiting credit, in match order.
type creditQueue struct {
	next  uint64 // seq of the next conversion queued (from 1)
	list  []*awaitConv
	head  int
	bySeq map[uint64]*awaitConv
}

func (q *creditQueue) init() {
	q.next = 1
	q.bySeq = map[uint64]*awaitConv{}
}

func (q *creditQueue) count(c *attrCampaign) int {
	n := 0
	for _, w := range q.bySeq {
		if w.camp == c {
			n++
		}
	}
	return n
}

// awaitLocked queues a conversion matched to reals (newest first) for
// probabilistic credit; beyond MaxPending queued, the oldest gets last-touch
// credit at once (counted).
func (a *Attributor) awaitLocked(c *attrCampaign, convTS int64, key DedupKey, reals []candidate) {
	q := &a.credits
	w := &awaitConv{seq: q.next, camp: c, convTS: convTS, key: key, group: reals[0].e.Group}
	q.next++
	for _, cd := range reals[:min(len(reals), maxCandidates)] {
		w.cands = append(w.cands, awaitCand{seq: cd.seq, ts: cd.e.TS, leaf: cd.e.Leaf, method: cd.method})
	}
	a.queueLocked(w)
}

func (a *Attributor) queueLocked(w *awaitConv) {
	q := &a.credits
	q.list = append(q.list, w)
	q.bySeq[w.seq] = w
	attrAwaiting.Inc()
	for len(q.bySeq) > a.cfg.MaxPending {
		q.compact()
		old := q.list[q.head]
		if old.submitted {
			break // its record is on its way
		}
		attrCreditForced.Inc()
		ws := make([]float64, len(old.cands))
		ws[0] = 1
		a.applyOneLocked(creditEntry{seq: old.seq, weights: ws})
	}
	q.compact()
}

// indexedOf is what crediting needs of a candidate's exposure.
func indexedOf(cd awaitCand) signals.IndexedExposure {
	return signals.IndexedExposure{TS: cd.ts, Leaf: cd.leaf}
}

func (q *creditQueue) compact() {
	for q.head < len(q.list) && (q.list[q.head] == nil || q.list[q.head].done) {
		q.list[q.head] = nil
		q.head++
	}
	if q.head > 1024 && q.head*2 > len(q.list) {
		q.list = append(q.list[:0], q.list[q.head:]...)
		q.head = 0
	}
}

// creditEntry is one conversion's credits in a record: organic's and
// each candidate's, in the order of its candidates (they sum to 1).
type creditEntry struct {
	seq     uint64
	organic float64
	weights []float64
}

// FlushCredits computes the probabilistic credits of every conversion
// matched since the last call, with the model's current estimates,
// journals them in one record and waits until the record is applied (the
// model credited). It returns how many conversions it credited. The server
// calls it every attribution.credit_interval and before every refresh of
// the estimates; a simulation before each of its refreshes. Not to be
// called from an apply.
func (a *Attributor) FlushCredits(now time.Time) (int, error) {
	if a.log == nil {
		return 0, errors.New("conversions: FlushCredits without a journal (SetLog)")
	}
	a.mu.Lock()
	var batch []creditEntry
	rates := map[*attrCampaign][]float64{}
	q := &a.credits
	for _, w := range q.list[q.head:] {
		if w == nil || w.done || w.submitted {
			continue
		}
		r, ok := rates[w.camp]
		if !ok {
			r = w.camp.lift.organicRates(now.Unix(), w.camp.window, a.cfg.OrganicPrior/86400)
			rates[w.camp] = r
		}
		batch = append(batch, a.weightsLocked(w, r))
		w.submitted = true
	}
	a.mu.Unlock()
	if len(batch) == 0 {
		return 0, nil
	}
	undo := func() {
		a.mu.Lock()
		for _, e := range batch {
			if w := a.credits.bySeq[e.seq]; w != nil {
				w.submitted = false
			}
		}
		a.mu.Unlock()
	}
	lsn, epoch, err := a.log.AppendApply(appendCredits(nil, now.Unix(), batch), undo, func() { a.applyCredits(batch) })
	if err != nil {
		undo()
		return 0, err
	}
	attrCreditRecords.Inc()
	return len(batch), a.log.Wait(lsn, epoch)
}

// weightsLocked computes the credits of w (see the comment at the top);
// rates are its campaign's organic rates per lift group.
func (a *Attributor) weightsLocked(w *awaitConv, rates []float64) creditEntry {
	c := w.camp
	e := creditEntry{seq: w.seq, weights: make([]float64, len(w.cands))}
	pbar, _ := a.weigher.Estimates().CampaignCVR(c.id)
	lam := 0.0
	if int(w.group) < len(rates) {
		lam = rates[w.group]
	}
	var sum float64
	for i, cd := range w.cands {
		m := a.conf[cd.method]
		if m == 0 {
			continue
		}
		p, ok := a.weigher.SegmentCVR(cd.leaf)
		if !ok || !(p > 0) {
			p = pbar
		}
		if pbar > 0 && p > 0 {
			p = pbar * math.Pow(p/pbar, a.cfg.Temper)
		}
		g, _ := a.weigher.DelayDensity(c.id, w.convTS-cd.ts)
		e.weights[i] = m * p * g
		sum += e.weights[i]
	}
	switch {
	case sum > 0 && !math.IsInf(sum, 0):
		tot := lam + sum
		for i := range e.weights {
			e.weights[i] /= tot
		}
		e.organic = lam / tot
	case lam > 0:
		clear(e.weights)
		e.organic = 1
	default:
		clear(e.weights)
		e.weights[0] = 1 // the latest exposure
	}
	return e
}

// applyCredits credits a record's entries (its apply, and replay).
func (a *Attributor) applyCredits(batch []creditEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range batch {
		a.applyOneLocked(e)
	}
	a.credits.compact()
}

// applyOneLocked credits one conversion; an entry whose conversion is not
// awaiting (already credited, or from a record whose state a snapshot
// already holds) is skipped.
func (a *Attributor) applyOneLocked(e creditEntry) {
	w := a.credits.bySeq[e.seq]
	if w == nil || w.done || len(e.weights) != len(w.cands) {
		return
	}
	c := w.camp
	for i, cd := range w.cands {
		if wt := e.weights[i]; wt > 0 {
			a.creditLocked(c, w.convTS, w.key, candidate{seq: cd.seq, method: cd.method, e: indexedOf(cd)}, wt)
		}
	}
	if e.organic > 0 {
		c.stats.Organic += e.organic
		if a.observer != nil {
			a.observer(CreditNote{Campaign: c.id, Conversion: w.key, ConvTS: w.convTS, Weight: e.organic})
		}
	}
	w.done = true
	delete(a.credits.bySeq, e.seq)
	attrAwaiting.Dec()
}

// ReplayCredits applies a RecordTypeCredits record at start.
func (a *Attributor) ReplayCredits(rec []byte) error {
	_, batch, err := decodeCredits(rec)
	if err != nil {
		return err
	}
	a.applyCredits(batch)
	return nil
}

// appendCredits encodes a credit record: type, version 1, varint time
// (Unix s, the flush's), uvarint n, n × (uvarint seq, f64 organic, uvarint
// k, k × f64 weight).
func appendCredits(b []byte, now int64, batch []creditEntry) []byte {
	b = append(b, RecordTypeCredits, 1)
	b = binary.AppendVarint(b, now)
	b = binary.AppendUvarint(b, uint64(len(batch)))
	for _, e := range batch {
		b = binary.AppendUvarint(b, e.seq)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e.organic))
		b = binary.AppendUvarint(b, uint64(len(e.weights)))
		for _, w := range e.weights {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(w))
		}
	}
	return b
}

var errCreditRecord = errors.New("conversions: malformed credit record")

func decodeCredits(rec []byte) (int64, []creditEntry, error) {
	r := binenc.NewSlice(rec, errCreditRecord)
	if r.Byte("type") != RecordTypeCredits || r.Byte("version") != 1 {
		return 0, nil, fmt.Errorf("%w: not a credit record v1", errCreditRecord)
	}
	now := r.Varint("time")
	batch := make([]creditEntry, r.Count(10, "credits"))
	for i := range batch {
		e := &batch[i]
		e.seq = r.Uvarint("seq")
		e.organic = r.F64("organic")
		e.weights = make([]float64, r.Count(8, "weights"))
		for j := range e.weights {
			e.weights[j] = r.F64("weight")
		}
		if r.Err() != nil {
			break
		}
	}
	if r.Err() == nil && r.Len() != 0 {
		r.Fail("credits", "%d bytes after them", r.Len())
	}
	if r.Err() != nil {
		return 0, nil, r.Err()
	}
	return now, batch, nil
}
