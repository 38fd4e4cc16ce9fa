package model

import (
	"cmp"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
)

// Snapshot format (little endian; version 3):
//
//	"CPAFMDL\x00" u32 format
//	u64 model version, i64 time of the last table
//	structure: u8 (0 chain, 1 crossed); crossed: u32 n and n dimension
//	  names, u32 n and n tables (name, u32 k and k u8 dimension indexes)
//	campaigns: u32 n, then per campaign: id, advertiser, event, i64 window
//	  (seconds), active, totals (u64 exposures, f64 spend, starts,
//	  completes, credited, u64 conversions, attributed, unattributed;
//	  format 3: the recent and the long counts of the CPA controller, each
//	  i64 tRef, f64 n, spend, c, [6]f64 s, f64 predicted)
//	strengths: i64 at, f64 root, bool, [16]f64 pooled, [16]bool, [16]f64
//	  shared (format 2), [16]bool, then per campaign [16]f64, [16]bool
//	learners: u32 n, then per learner: advertiser, event, i64 window,
//	  u64 seen, [6]f64 weights, bool fitted, u32 samples, u32 iterations,
//	  PCG state, u32 k and k samples (i64 exposure, i64 conversion, f64
//	  weight, f64 key)
//	crossed only: effect levels: u32 n, then per level u64 key, u64
//	  value key, u16 campaign, u8 table, label
//	nodes: u32 shards, then per shard u32 n and n nodes: u64 key, u64
//	  parent key (0 for a root), u16 campaign (index above), u8 level,
//	  label, i64 tRef, f64 n, n2, c, [6]f64 s, f64 spend, starts,
//	  completes; crossed: then one u32 level index per table (noLevel
//	  for a root or a foreign cell)
//	u32 CRC-32C of all the above
//
// Strings and labels are u32 length + bytes. Version 1 (before the crossed
// model) is version 2 of a chain without the structure byte; version 2 is
// version 3 without the recent counts (they start at zero); both are still
// read.
const (
	snapMagic   = "CPAFMDL\x00"
	snapVersion = 3
)

// WriteSnapshot writes the model's complete mutable state (nodes with their
// counts, accumulators, reference times, labels and parents; campaign
// totals; fitted strengths; delay reservoirs, fitted weights and random
// states) to w. It copies each part under its lock (all node shards at
// once, so the copy is a consistent cut between whole writes) and writes
// outside the locks. For a cut that matches a journal position exactly,
// call it while no write is in flight. No raw identifiers are kept by the
// model, so none are written.
func (m *Model) WriteSnapshot(w io.Writer) error {
	cs := m.camps.Load()
	fs := m.fit.Load()
	est := m.est.Load()

	// Copy the nodes and totals under every shard lock.
	type shardCopy struct {
		nodes  []node
		labels []byte
		lv     []uint32
	}
	copies := make([]shardCopy, len(m.shards))
	for i := range m.shards {
		m.shards[i].mu.Lock()
	}
	for i := range m.shards {
		sh := &m.shards[i]
		copies[i] = shardCopy{nodes: append([]node(nil), sh.nodes...), labels: sh.labels[:len(sh.labels):len(sh.labels)], lv: append([]uint32(nil), sh.lv...)}
	}
	var levels []level
	var lvLabels []byte
	if m.cr != nil {
		m.cr.mu.Lock()
		levels, lvLabels = append([]level(nil), m.cr.levels...), m.cr.labels[:len(m.cr.labels):len(m.cr.labels)]
		m.cr.mu.Unlock()
	}
	tots := make([]campTotals, len(cs.list))
	for i, c := range cs.list {
		tots[i] = *c.tot
	}
	ver := m.ver.Load()
	for i := range m.shards {
		m.shards[i].mu.Unlock()
	}

	e := newEncoder(w)
	e.buf = append(e.buf, snapMagic...)
	e.u32(snapVersion)
	e.u64(ver)
	e.i64(est.at)
	if m.cr == nil {
		e.u8(0)
	} else {
		e.u8(1)
		e.u32(uint32(len(m.cr.dims)))
		for _, d := range m.cr.dims {
			e.str(d)
		}
		e.u32(uint32(len(m.cr.tables)))
		for _, t := range m.cr.tables {
			e.str(t.name)
			e.bytes(t.dims)
		}
	}

	e.u32(uint32(len(cs.list)))
	for i, c := range cs.list {
		e.str(c.c.ID)
		e.str(c.c.Advertiser)
		e.str(c.c.Event)
		e.i64(c.win)
		e.bool(c.active)
		t := &tots[i]
		e.u64(t.exposures)
		e.f64(t.spend)
		e.f64(t.starts)
		e.f64(t.completes)
		e.f64(t.credited)
		e.u64(t.conversions)
		e.u64(t.attributed)
		e.u64(t.unattribed)
		for _, r := range [...]*recent{&t.r, &t.long} {
			e.i64(r.tRef)
			e.f64(r.n)
			e.f64(r.spend)
			e.f64(r.c)
			for _, x := range r.s {
				e.f64(x)
			}
			e.f64(r.p)
		}
	}

	e.i64(fs.at)
	e.f64(fs.root)
	e.bool(fs.rootFitted)
	for l := range MaxLevels {
		e.f64(fs.pooled[l])
	}
	for l := range MaxLevels {
		e.bool(fs.pooledFitted[l])
	}
	for l := range MaxLevels {
		e.f64(fs.shared[l])
	}
	for l := range MaxLevels {
		e.bool(fs.sharedFitted[l])
	}
	for ci := range cs.list {
		var lv [MaxLevels]float64
		var ft [MaxLevels]bool
		if ci < len(fs.levels) {
			lv, ft = fs.levels[ci], fs.fitted[ci]
		}
		for l := range MaxLevels {
			e.f64(lv[l])
		}
		for l := range MaxLevels {
			e.bool(ft[l])
		}
	}

	m.lmu.Lock()
	ls := make([]*learner, 0, len(m.learners))
	for _, l := range m.learners {
		ls = append(ls, l)
	}
	m.lmu.Unlock()
	slices.SortFunc(ls, func(a, b *learner) int {
		return cmp.Or(cmp.Compare(a.advertiser, b.advertiser), cmp.Compare(a.event, b.event), cmp.Compare(a.g.w, b.g.w))
	})
	e.u32(uint32(len(ls)))
	for _, l := range ls {
		f := l.fit.Load()
		l.mu.Lock()
		heap := append([]delaySample(nil), l.heap...)
		seen := l.seen
		pcg, err := l.pcg.MarshalBinary()
		l.mu.Unlock()
		if err != nil {
			return fmt.Errorf("cannot encode delay learner state: %w", err)
		}
		e.str(l.advertiser)
		e.str(l.event)
		e.i64(int64(l.g.w))
		e.u64(seen)
		for j := range nComp {
			e.f64(f.pi[j])
		}
		e.bool(f.fitted)
		e.u32(uint32(f.samples))
		e.u32(uint32(f.iters))
		e.bytes(pcg)
		e.u32(uint32(len(heap)))
		for _, s := range heap {
			e.i64(s.exp)
			e.i64(s.conv)
			e.f64(s.w)
			e.f64(s.key)
		}
	}

	if m.cr != nil {
		e.u32(uint32(len(levels)))
		for _, l := range levels {
			e.u64(uint64(l.key))
			e.u64(l.vk)
			e.u16(l.camp)
			e.u8(l.table)
			e.bytes(lvLabels[l.labelOff : l.labelOff+uint32(l.labelLen)])
		}
	}
	e.u32(uint32(len(copies)))
	for si := range copies {
		c := &copies[si]
		e.u32(uint32(len(c.nodes)))
		for i := range c.nodes {
			nd := &c.nodes[i]
			e.u64(uint64(nd.key))
			var pk Key
			if nd.parent != noNode {
				psh, plocal := nd.parent&uint32(m.shardMask), nd.parent>>m.shardBits
				pk = copies[psh].nodes[plocal].key
			}
			e.u64(uint64(pk))
			e.u16(nd.camp)
			e.u8(nd.level)
			e.bytes(c.labels[nd.labelOff : nd.labelOff+uint32(nd.labelLen)])
			e.i64(nd.tRef)
			e.f64(nd.n)
			e.f64(nd.n2)
			e.f64(nd.c)
			for j := range nComp {
				e.f64(nd.s[j])
			}
			e.f64(nd.spend)
			e.f64(nd.starts)
			e.f64(nd.completes)
			if m.cr != nil {
				t := len(m.cr.tables)
				for _, id := range c.lv[i*t : (i+1)*t] {
					e.u32(id)
				}
			}
		}
	}
	return e.finish()
}

// ReadSnapshot replaces the model's state with the snapshot in r (written
// by WriteSnapshot) and publishes a table rebuilt at the time of the
// snapshot's last table, with that table's version (later ones continue
// from it). Call it before any
// write (at start-up): it is not atomic with respect to concurrent writes.
//
// State is matched to the model's configured campaigns by ID. Nodes of a
// campaign no longer configured are dropped (counted in Restored). A campaign whose Window changed keeps its counts,
// but its delay accumulators cannot be carried over: its past exposures are
// treated as matured. Delay learners are matched by (advertiser, event,
// window). A malformed snapshot is refused whole, leaving the model as it
// was.
func (m *Model) ReadSnapshot(r io.Reader) (Restored, error) {
	d := newDecoder(r)
	var res Restored
	var magic [8]byte
	d.read(magic[:])
	if d.e == nil && string(magic[:]) != snapMagic {
		return res, fmt.Errorf("%w: not a model snapshot", errCorrupt)
	}
	format := d.u32()
	if d.e == nil && (format < 1 || format > snapVersion) {
		return res, fmt.Errorf("model snapshot format %d, want 1 to %d", format, snapVersion)
	}
	ver := d.u64()
	at := d.i64()
	// The structure the snapshot was written under. Its nodes below the
	// campaigns are kept only under the same structure (and for the
	// crossed model the same dimensions and tables); otherwise only the
	// campaigns' roots are (StructureChanged).
	crossedSnap := false
	var sdims []string
	var stables []effTable
	if format >= 2 {
		switch d.u8() {
		case 0:
		case 1:
			crossedSnap = true
			nd := d.count(MaxLevels, "dimensions")
			for range nd {
				sdims = append(sdims, d.str(1<<10, "dimension"))
			}
			nt := d.count(MaxLevels, "effect tables")
			for range nt {
				t := effTable{name: d.str(1<<12, "effect key")}
				t.dims = d.bytesMax(MaxLevels, "effect dimensions")
				for _, x := range t.dims {
					if int(x) >= nd {
						d.fail("effect %q: dimension %d", t.name, x)
					}
				}
				stables = append(stables, t)
			}
		default:
			d.fail("structure")
		}
	}
	keepAll := !crossedSnap && m.cr == nil || crossedSnap && m.cr != nil && m.cr.same(sdims, stables)
	res.StructureChanged = !keepAll

	cs := m.camps.Load()
	type snapCamp struct {
		cur     *campState // nil: not configured now
		win     int64
		resetS  bool
		tot     campTotals
		levels  [MaxLevels]float64
		fitted  [MaxLevels]bool
		advert  string
		event   string
		present bool
	}
	nc := d.count(1<<16, "campaigns")
	camps := make([]snapCamp, 0, min(nc, 1024))
	for i := 0; i < nc && d.e == nil; i++ {
		id := d.str(1<<16, "campaign id")
		var sc snapCamp
		sc.advert = d.str(1<<16, "advertiser")
		sc.event = d.str(1<<16, "event")
		sc.win = d.i64()
		d.bool() // active then; the current config decides now
		t := &sc.tot
		t.exposures = d.u64()
		t.spend = d.fin("spend")
		t.starts = d.fin("starts")
		t.completes = d.fin("completes")
		t.credited = d.fin("credited")
		t.conversions = d.u64()
		t.attributed = d.u64()
		t.unattribed = d.u64()
		if format >= 3 {
			for _, r := range [...]*recent{&t.r, &t.long} {
				r.tRef = d.i64()
				r.n = d.fin("recent exposures")
				r.spend = d.fin("recent spend")
				r.c = d.fin("recent conversions")
				for j := range r.s {
					r.s[j] = d.fin("recent delay accumulator")
				}
				r.p = d.fin("recent predicted conversions")
			}
		}
		if sc.win < 1 {
			d.fail("campaign %q: window %d", id, sc.win)
		}
		if c := cs.byID[id]; c != nil {
			sc.cur = c
			sc.resetS = c.win != sc.win
		}
		camps = append(camps, sc)
	}

	fs := &fitState{levels: make([][MaxLevels]float64, len(cs.list)), fitted: make([][MaxLevels]bool, len(cs.list))}
	fs.at = d.i64()
	fs.root = d.strength()
	fs.rootFitted = d.bool()
	for l := range MaxLevels {
		fs.pooled[l] = d.strength()
	}
	for l := range MaxLevels {
		fs.pooledFitted[l] = d.bool()
	}
	if format >= 2 {
		for l := range MaxLevels {
			fs.shared[l] = d.strength()
		}
		for l := range MaxLevels {
			fs.sharedFitted[l] = d.bool()
		}
	}
	for i := range camps {
		for l := range MaxLevels {
			camps[i].levels[l] = d.strength()
		}
		for l := range MaxLevels {
			camps[i].fitted[l] = d.bool()
		}
	}
	if !(fs.root > 0) && d.e == nil {
		d.fail("root strength %g", fs.root)
	}
	if sw := int64(1) << 40; d.e == nil && (at < -sw || at > sw) {
		d.fail("time %d", at)
	}

	type snapLearner struct {
		l      *learner
		seen   uint64
		fit    *delayFit
		pcg    []byte
		heap   []delaySample
		window int64
	}
	nl := d.count(1<<16, "learners")
	var learners []snapLearner
	m.lmu.Lock()
	cur := make(map[learnerKey]*learner, len(m.learners))
	for k, l := range m.learners {
		cur[k] = l
	}
	m.lmu.Unlock()
	for i := 0; i < nl && d.e == nil; i++ {
		var sl snapLearner
		k := learnerKey{advertiser: d.str(1<<16, "advertiser"), event: d.str(1<<16, "event")}
		k.window = d.i64()
		sl.window = k.window
		sl.seen = d.u64()
		var pi [nComp]float64
		var sum float64
		for j := range nComp {
			pi[j] = d.fin("delay weight")
			if pi[j] < 0 {
				d.fail("negative delay weight")
			}
			sum += pi[j]
		}
		if d.e == nil && (sum < 0.999 || sum > 1.001) {
			d.fail("delay weights sum to %g", sum)
		}
		fitted := d.bool()
		samples, iters := d.u32(), d.u32()
		sl.pcg = d.bytesMax(64, "random state")
		nh := d.count(1<<24, "delay samples")
		for j := 0; j < nh && d.e == nil; j++ {
			s := delaySample{exp: d.i64(), conv: d.i64(), w: d.fin("delay weight"), key: d.fin("delay key")}
			if !(s.w > 0) && d.e == nil {
				d.fail("delay sample weight %g", s.w)
			}
			sl.heap = append(sl.heap, s)
		}
		if l := cur[k]; l != nil && d.e == nil {
			sl.l = l
			f := newDelayFit(&l.g, pi)
			f.fitted, f.samples, f.iters = fitted, int(samples), int(iters)
			sl.fit = f
			heapifyAll(sl.heap)
			for len(sl.heap) > l.max { // a smaller reservoir now: keep the largest keys
				last := len(sl.heap) - 1
				sl.heap[0] = sl.heap[last]
				sl.heap = sl.heap[:last]
				heapDown(sl.heap, 0)
			}
			if err := new(rand.PCG).UnmarshalBinary(sl.pcg); err != nil {
				d.fail("random state: %v", err)
			}
		}
		learners = append(learners, sl)
	}

	// Effect levels (crossed), renumbered: those of campaigns no longer
	// configured are dropped with their cells.
	var remap []uint32 // snapshot level index → new id
	var levels []level
	var lvLabels []byte
	lvIndex := map[Key]uint32{}
	if crossedSnap {
		nlv := d.count(1<<28, "effect levels")
		for i := 0; i < nlv && d.e == nil; i++ {
			k := Key(d.u64())
			vk := d.u64()
			ci := int(d.u16())
			t := int(d.u8())
			label := d.bytesMax(maxLabel, "level label")
			if ci >= len(camps) || t >= len(stables) {
				d.fail("level %x: campaign %d, table %d", uint64(k), ci, t)
				break
			}
			if !keepAll || camps[ci].cur == nil {
				remap = append(remap, noLevel)
				continue
			}
			if _, dup := lvIndex[k]; dup {
				d.fail("level %x twice", uint64(k))
				break
			}
			id := uint32(len(levels))
			lvIndex[k] = id
			levels = append(levels, level{key: k, vk: vk, labelOff: uint32(len(lvLabels)), labelLen: uint16(len(label)), camp: uint16(camps[ci].cur.idx), table: uint8(t)})
			lvLabels = append(lvLabels, label...)
			remap = append(remap, id)
		}
	}
	ntab := 0
	if m.cr != nil {
		ntab = len(m.cr.tables)
	}

	// Nodes, into fresh shards.
	shards := make([]shard, len(m.shards))
	for i := range shards {
		shards[i].index = make(map[Key]uint32)
	}
	parentKeys := make([][]Key, len(shards))
	nsh := d.count(256, "shards")
	for si := 0; si < nsh && d.e == nil; si++ {
		nn := d.count(1<<28, "nodes")
		for i := 0; i < nn && d.e == nil; i++ {
			k := Key(d.u64())
			pk := Key(d.u64())
			ci := int(d.u16())
			level := int(d.u8())
			label := d.bytesMax(maxLabel, "label")
			var nd node
			nd.tRef = d.i64()
			nd.n = d.fin("n")
			nd.n2 = d.fin("n2")
			nd.c = d.fin("c")
			for j := range nComp {
				nd.s[j] = d.fin("s")
			}
			nd.spend = d.fin("spend")
			nd.starts = d.fin("starts")
			nd.completes = d.fin("completes")
			var lv [MaxLevels]uint32
			if crossedSnap {
				for t := range stables {
					lv[t] = d.u32()
					if lv[t] != noLevel && int(lv[t]) >= len(remap) {
						d.fail("node %x: level %d", uint64(k), lv[t])
					}
				}
			}
			if d.e != nil {
				break
			}
			if !(nd.n >= 0 && nd.n2 >= 0 && nd.c >= 0 && nd.spend >= 0 && nd.starts >= 0 && nd.completes >= 0) {
				d.fail("node %x: negative count", uint64(k))
				break
			}
			for _, v := range nd.s {
				if v < 0 {
					d.fail("node %x: negative delay accumulator", uint64(k))
				}
			}
			if ci >= len(camps) || level >= MaxLevels {
				d.fail("node %x: campaign %d, level %d", uint64(k), ci, level)
				break
			}
			sc := &camps[ci]
			if sc.cur == nil || !keepAll && level > 0 {
				res.DroppedNodes++
				continue
			}
			if sc.resetS {
				nd.s = [nComp]float64{}
			}
			dst := uint64(k) & m.shardMask
			sh := &shards[dst]
			if _, dup := sh.index[k]; dup {
				d.fail("node %x twice", uint64(k))
				break
			}
			local := sh.add(k, noNode, uint16(sc.cur.idx), level, label, nd.tRef)
			x := &sh.nodes[local]
			x.n, x.n2, x.c, x.s, x.spend, x.starts, x.completes = nd.n, nd.n2, nd.c, nd.s, nd.spend, nd.starts, nd.completes
			for t := range ntab {
				id := noLevel
				if crossedSnap && level > 0 && lv[t] != noLevel {
					id = remap[lv[t]]
				}
				sh.lv = append(sh.lv, id)
			}
			parentKeys[dst] = append(parentKeys[dst], pk)
			res.Nodes++
		}
	}
	if err := d.finish(); err != nil {
		return Restored{}, err
	}
	// Link parents by key.
	for si := range shards {
		for local := range shards[si].nodes {
			nd := &shards[si].nodes[local]
			if nd.level == 0 {
				if RootKey(cs.list[nd.camp].c.ID) != nd.key {
					return Restored{}, fmt.Errorf("%w: root %x is not its campaign's", errCorrupt, uint64(nd.key))
				}
				continue
			}
			pk := parentKeys[si][local]
			ps := uint64(pk) & m.shardMask
			pl, ok := shards[ps].index[pk]
			if !ok {
				return Restored{}, fmt.Errorf("%w: node %x: parent %x missing", errCorrupt, uint64(nd.key), uint64(pk))
			}
			p := &shards[ps].nodes[pl]
			if p.camp != nd.camp || int(p.level) != int(nd.level)-1 {
				return Restored{}, fmt.Errorf("%w: node %x: parent %x of another campaign or level", errCorrupt, uint64(nd.key), uint64(pk))
			}
			nd.parent = m.nodeID(ps, pl)
		}
	}

	// Install.
	m.rmu.Lock()
	defer m.rmu.Unlock()
	for i := range m.shards {
		m.shards[i].mu.Lock()
	}
	for i := range m.shards {
		sh := &m.shards[i]
		sh.index, sh.nodes, sh.labels, sh.lv = shards[i].index, shards[i].nodes, shards[i].labels, shards[i].lv
	}
	if m.cr != nil {
		m.cr.mu.Lock()
		m.cr.levels, m.cr.labels, m.cr.index = levels, lvLabels, lvIndex
		m.cr.mu.Unlock()
	}
	for i := range camps {
		sc := &camps[i]
		if sc.cur == nil {
			continue
		}
		*sc.cur.tot = sc.tot
		if sc.resetS {
			sc.cur.tot.r.s = [nComp]float64{} // built on the old window's rates
			sc.cur.tot.long.s = [nComp]float64{}
			res.WindowChanged = append(res.WindowChanged, sc.cur.c.ID)
		}
		if keepAll { // strengths of other levels or tables mean nothing here
			fs.levels[sc.cur.idx], fs.fitted[sc.cur.idx] = sc.levels, sc.fitted
		}
		res.Campaigns++
	}
	for i := range m.shards {
		m.shards[i].mu.Unlock()
	}
	for _, sl := range learners {
		if sl.l == nil {
			continue
		}
		sl.l.mu.Lock()
		sl.l.heap = sl.heap
		sl.l.seen = sl.seen
		_ = sl.l.pcg.UnmarshalBinary(sl.pcg) // checked above
		sl.l.mu.Unlock()
		sl.l.fit.Store(sl.fit)
		res.Learners++
	}
	for _, cs := range cs.list {
		m.ensureRoot(cs)
	}
	m.fit.Store(fs)
	if !keepAll {
		fs.pooled, fs.pooledFitted = [MaxLevels]float64{}, [MaxLevels]bool{}
		fs.shared, fs.sharedFitted = [MaxLevels]float64{}, [MaxLevels]bool{}
	}
	m.ver.Store(max(ver, 1) - 1) // the rebuilt table takes the snapshot's version
	m.rs = refreshState{}
	m.rs.cx.cold = true
	m.rebuild(at, false)
	return res, nil
}

// Restored tells what ReadSnapshot restored.
type Restored struct {
	Campaigns, Learners, Nodes int
	// DroppedNodes belonged to campaigns no longer configured.
	DroppedNodes int
	// WindowChanged lists the campaigns whose Window differs from the
	// snapshot's: their past exposures now count as matured.
	WindowChanged []string
	// StructureChanged is set when the snapshot was written under another
	// Structure (or, crossed, other Effects): only the campaigns' roots
	// (their counts, totals and delay learners) were restored; the finer
	// nodes are in DroppedNodes, and the crossed model counts the roots'
	// exposures in the campaigns' bases until they decay.
	StructureChanged bool
}

func heapifyAll(h []delaySample) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		heapDown(h, i)
	}
}

// strength reads a prior strength: finite, ≥ 0 (0 = not fitted), at most 1e12.
func (d *decoder) strength() float64 {
	v := d.fin("strength")
	if !(v >= 0 && v <= 1e12) && d.e == nil {
		d.fail("strength %g", v)
	}
	return v
}
