package conversions

import (
	"fmt"
	"math"
	"sort"

	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

func writeCounts(w *binenc.Writer, c counts) {
	w.Uvarint(c.Received)
	w.Uvarint(c.Stored)
	w.Uvarint(c.Deduplicated)
	w.Uvarint(c.Rejected)
}

func readCounts(r *binenc.Reader) counts {
	return counts{Received: r.Uvarint(), Stored: r.Uvarint(), Deduplicated: r.Uvarint(), Rejected: r.Uvarint()}
}

// WriteSnapshot writes every dataset's dedup keys, fingerprint index and
// stats as of the journal records before LSN next. Call it where no apply
// runs (a journal checkpoint at next, where every record < next is applied
// and none after it). The dedup keys of batches whose records are >= next
// are left out: they are reserved at append time, before their record is
// durable, and a snapshot holding them would make the replay of that record
// (or the client's retry, if the record never reached the disk) look like a
// duplicate, losing acknowledged events.
func (s *Service) WriteSnapshot(w *binenc.Writer, next uint64) {
	w.Tag("conversions1")
	ids := make([]string, 0, len(s.datasets))
	for id := range s.datasets {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	w.Uvarint(uint64(len(ids)))
	for _, id := range ids {
		ds := s.datasets[id]
		w.String(id)
		ds.mu.Lock()
		ds.set.WriteSnapshot(w, ds.unappliedKeysLocked(next))
		w.Uvarint(uint64(len(ds.fps)))
		for k, refs := range ds.fps {
			w.U64(k)
			w.Uvarint(uint64(len(refs)))
			for _, r := range refs {
				w.Raw(r.key[:])
				w.Varint(r.gen)
			}
		}
		ds.mu.Unlock()
		ds.statsMu.Lock()
		st := &ds.stats
		writeCounts(w, st.total)
		for _, c := range st.bySource {
			writeCounts(w, c)
		}
		writeCounts(w, st.other)
		w.Uvarint(uint64(len(st.names)))
		for name, ns := range st.names {
			w.String(name)
			writeCounts(w, ns.c)
		}
		ds.statsMu.Unlock()
	}
}

// ReadSnapshot restores what WriteSnapshot wrote into a new Service. A
// dataset no longer configured is read and dropped.
func (s *Service) ReadSnapshot(r *binenc.Reader) error {
	r.Tag("conversions1")
	now := s.cfg.Now().UnixMilli()
	n := r.Len(1 << 20)
	for range n {
		id := r.String(1 << 10)
		ds := s.datasets[id]
		if ds == nil { // read into a throwaway dataset
			ds = &dataset{id: id, set: s.newSet(), stats: stats{names: map[string]*nameStats{}, max: s.cfg.MaxEventNames}}
		}
		ds.mu.Lock()
		ds.set.ReadSnapshot(r, now)
		nf := r.Len(math.MaxInt32)
		if nf > 0 && ds.fps == nil {
			ds.fps = make(map[uint64][]fpRef, nf)
		}
		for range nf {
			k := r.U64()
			refs := make([]fpRef, r.Len(1<<20))
			for i := range refs {
				r.Raw(refs[i].key[:])
				refs[i].gen = r.Varint()
			}
			if r.Err() != nil {
				break
			}
			ds.fps[k] = refs
		}
		metricDedupEntries.Add(float64(ds.set.Len()))
		ds.mu.Unlock()
		ds.statsMu.Lock()
		st := &ds.stats
		st.total = readCounts(r)
		for i := range st.bySource {
			st.bySource[i] = readCounts(r)
		}
		st.other = readCounts(r)
		nn := r.Len(1 << 20)
		for range nn {
			name := r.String(1 << 10)
			c := readCounts(r)
			if ns := st.name([]byte(name), true); ns != nil {
				ns.c = c
			} else {
				st.other.add(c)
			}
		}
		ds.statsMu.Unlock()
		if r.Err() != nil {
			return r.Err()
		}
	}
	return r.Err()
}

// WriteSnapshot writes the attribution state (section attribution2):
// every campaign's report and lift measurement, the pending conversions,
// oldest first, and the conversions awaiting probabilistic credit, in
// match order (those of a credit record not yet applied included: the
// record's replay credits them). Call it where no apply runs.
func (a *Attributor) WriteSnapshot(w *binenc.Writer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	w.Tag("attribution2")
	ids := make([]string, 0, len(a.byID))
	for id := range a.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	w.Uvarint(uint64(len(ids)))
	for _, id := range ids {
		c := a.byID[id]
		st := &c.stats
		w.String(id)
		w.Uvarint(st.Conversions)
		w.Uvarint(st.Attributed)
		w.Uvarint(st.Unattributed)
		w.Uvarint(st.Late)
		w.F64(st.Credited)
		for _, n := range st.byMethod {
			w.Uvarint(n)
		}
		for _, n := range st.excluded {
			w.Uvarint(n)
		}
		// attribution2:
		w.Uvarint(st.Control)
		w.F64(st.Organic)
		for _, v := range st.credit {
			w.F64(v)
		}
		c.lift.write(w)
	}
	w.Uvarint(uint64(a.live))
	for _, p := range a.pending[a.head:] {
		if p == nil || p.done {
			continue
		}
		w.String(p.camp.id)
		w.Varint(p.convTS)
		w.Varint(p.deadline)
		w.Uvarint(uint64(len(p.ids)))
		for _, id := range p.ids {
			w.Byte(byte(id.Kind))
			w.U64(id.Key)
		}
		w.Raw(p.key[:]) // attribution2
	}
	q := &a.credits
	w.Uvarint(q.next)
	w.Uvarint(uint64(len(q.bySeq)))
	for _, x := range q.list[q.head:] {
		if x == nil || x.done {
			continue
		}
		w.Uvarint(x.seq)
		w.String(x.camp.id)
		w.Varint(x.convTS)
		w.Raw(x.key[:])
		w.Byte(x.group)
		w.Uvarint(uint64(len(x.cands)))
		for _, cd := range x.cands {
			w.Uvarint(cd.seq)
			w.Varint(cd.ts)
			w.U64(uint64(cd.leaf))
			w.Byte(byte(cd.method))
		}
	}
}

// ReadSnapshot restores what WriteSnapshot wrote (attribution2, or the
// older attribution1: no lift, no awaiting credits) into a new Attributor.
// Campaigns no longer configured are dropped.
func (a *Attributor) ReadSnapshot(r *binenc.Reader) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	tag := r.String(64)
	if r.Err() == nil && tag != "attribution1" && tag != "attribution2" {
		return fmt.Errorf("section %q where %q was expected", tag, "attribution2")
	}
	v2 := tag == "attribution2"
	n := r.Len(1 << 20)
	for range n {
		id := r.String(1 << 10)
		var st AttributionStats
		st.Conversions, st.Attributed, st.Unattributed, st.Late = r.Uvarint(), r.Uvarint(), r.Uvarint(), r.Uvarint()
		st.Credited = r.F64()
		for i := range st.byMethod {
			st.byMethod[i] = r.Uvarint()
		}
		for i := range st.excluded {
			st.excluded[i] = r.Uvarint()
		}
		var lift *liftState
		if v2 {
			st.Control = r.Uvarint()
			st.Organic = r.F64()
			for i := range st.credit {
				st.credit[i] = r.F64()
			}
			lift = readLift(r, a.cfg.LiftGroups)
		}
		if r.Err() != nil {
			return r.Err()
		}
		if c := a.byID[id]; c != nil {
			st.Pending = c.stats.Pending
			c.stats = st
			if lift != nil {
				c.lift = lift
			}
		}
	}
	np := r.Len(math.MaxInt32)
	for range np {
		id := r.String(1 << 10)
		convTS, deadline := r.Varint(), r.Varint()
		ids := make([]signals.ID, r.Len(1<<10))
		for i := range ids {
			ids[i] = signals.ID{Kind: signals.IDKind(r.Byte()), Key: r.U64()}
		}
		var key DedupKey
		if v2 {
			r.Raw(key[:])
		}
		if r.Err() != nil {
			return r.Err()
		}
		if c := a.byID[id]; c != nil {
			a.waitLocked(c, convTS, deadline, ids, key)
		}
	}
	if !v2 {
		return r.Err()
	}
	q := &a.credits
	q.next = r.Uvarint()
	nw := r.Len(math.MaxInt32)
	for range nw {
		x := &awaitConv{seq: r.Uvarint()}
		id := r.String(1 << 10)
		x.convTS = r.Varint()
		r.Raw(x.key[:])
		x.group = r.Byte()
		x.cands = make([]awaitCand, r.Len(maxCandidates))
		for i := range x.cands {
			cd := &x.cands[i]
			cd.seq, cd.ts, cd.leaf = r.Uvarint(), r.Varint(), model.Key(r.U64())
			if m := Method(r.Byte()); m < numMethods {
				cd.method = m
			}
		}
		if r.Err() != nil {
			return r.Err()
		}
		if c := a.byID[id]; c != nil && len(x.cands) > 0 {
			x.camp = c
			q.list = append(q.list, x)
			q.bySeq[x.seq] = x
			attrAwaiting.Inc()
		}
	}
	return r.Err()
}
