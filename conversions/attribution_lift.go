package conversions

import (
	"math"
	"math/bits"

	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/signals"
)

// The lift measurement of a campaign with a holdout. Households are
// assigned to arms by the bidder (signals.Households): in the control arm
// the bidder holds its bid back and reports a ghost exposure instead. Both
// arms are counted here from what the identity index sees, with the same
// matcher, so matching noise (a missed match, another household's
// conversion on a shared IP) hits both alike:
//
//   - households reached: the distinct household keys of the arm's
//     indexed exposures (real or ghost), per lift group and in all (a
//     HyperLogLog each: about 1.6 % error, 4 KiB);
//   - conversions: those matched to at least one of the arm's exposures
//     within the window (a conversion matched to both arms counts in both),
//     with Σ y² over the converting households for the variance;
//   - for the control arm, the time each household was matchable (the
//     union of its ghost exposures' windows, up to now): the organic
//     rate per household-second that probabilistic credit weighs
//     "organic" with.
//
// A household key is the keyed hash of the identity a household is best
// known by among those given: household id, else IP, else IFA, else any.

// Lift arms.
const (
	armTreatment = 0
	armControl   = 1
)

// liftState is one campaign's lift measurement, guarded by the
// Attributor's lock.
type liftState struct {
	groups int // lift groups: 1..groups, 0 = unknown value
	arms   [2]liftArm
	// The control arm's households: the last ghost exposure of each and
	// its group, and per group the window seconds of households closed so
	// far (the union of windows before each household's last exposure).
	ctrl   map[uint64]ctrlHousehold
	closed []float64
}

type liftArm struct {
	all       hll
	hh        []*hll    // per group, allocated on first use
	exposures []float64 // per group
	conv      []float64 // matched conversions per group
	sq        []float64 // Σ y² of converting households per group
	convHH    map[uint64]uint32
}

type ctrlHousehold struct {
	last  int64
	group uint8
}

func newLiftState(groups int) *liftState {
	l := &liftState{groups: groups, ctrl: map[uint64]ctrlHousehold{}, closed: make([]float64, groups+1)}
	for i := range l.arms {
		a := &l.arms[i]
		a.hh = make([]*hll, groups+1)
		a.exposures = make([]float64, groups+1)
		a.conv = make([]float64, groups+1)
		a.sq = make([]float64, groups+1)
		a.convHH = map[uint64]uint32{}
	}
	return l
}

// householdOf is the household key of a set of identities (0: none).
func householdOf(ids []signals.ID) uint64 {
	var best uint64
	rank := 99
	for _, id := range ids {
		r := 3
		switch id.Kind {
		case signals.IDHousehold:
			r = 0
		case signals.IDIP:
			r = 1
		case signals.IDIFA:
			r = 2
		}
		if r < rank && id.Key != 0 {
			best, rank = id.Key, r
		}
	}
	return best
}

func (l *liftState) group(g uint8) int {
	if int(g) > l.groups {
		return 0
	}
	return int(g)
}

// exposure counts an indexed exposure (window: the campaign's, seconds).
func (l *liftState) exposure(e signals.IndexedExposure, ids []signals.ID, window int64) {
	hh := householdOf(ids)
	if hh == 0 {
		return
	}
	arm := armTreatment
	if e.Ghost() {
		arm = armControl
	}
	g := l.group(e.Group)
	a := &l.arms[arm]
	a.exposures[g]++
	a.all.add(hh)
	if a.hh[g] == nil {
		a.hh[g] = new(hll)
	}
	a.hh[g].add(hh)
	if arm != armControl {
		return
	}
	if h, ok := l.ctrl[hh]; ok {
		if e.TS > h.last {
			l.closed[h.group] += float64(min(e.TS-h.last, window))
			h.last = e.TS
			l.ctrl[hh] = h
		}
		return
	}
	l.ctrl[hh] = ctrlHousehold{last: e.TS, group: uint8(g)}
}

// conversion counts a conversion matched to the arm in group g; ids are
// the conversion's identities (its household).
func (l *liftState) conversion(arm int, g uint8, ids []signals.ID) {
	gi := l.group(g)
	a := &l.arms[arm]
	a.conv[gi]++
	hh := householdOf(ids)
	if hh == 0 {
		a.sq[gi]++
		return
	}
	k := hh ^ uint64(gi)<<56
	y := a.convHH[k]
	a.convHH[k] = y + 1
	a.sq[gi] += float64(2*y + 1) // (y+1)² − y²
}

// forget drops the per-household state of the identity keys (deletion
// requests); the aggregates stay.
func (l *liftState) forget(keys []uint64) {
	for _, k := range keys {
		delete(l.ctrl, k)
		for i := range l.arms {
			for g := 0; g <= l.groups; g++ {
				delete(l.arms[i].convHH, k^uint64(g)<<56)
			}
		}
	}
}

// matchable returns, per group, the control households' matchable seconds
// up to now (each household's closed windows plus its last window's part
// before now).
func (l *liftState) matchable(now, window int64) []float64 {
	u := make([]float64, len(l.closed))
	copy(u, l.closed)
	for _, h := range l.ctrl {
		if d := now - h.last; d > 0 {
			u[h.group] += float64(min(d, window))
		}
	}
	return u
}

// organicRates returns the organic rate (matched conversions per household
// and second) of the control arm per group, each shrunk toward the
// campaign's (itself shrunk toward prior, per household and second, when
// prior > 0) with 2 pseudo-conversions. Without control data and prior,
// every rate is 0.
func (l *liftState) organicRates(now, window int64, prior float64) []float64 {
	const s = 2
	u := l.matchable(now, window)
	var y, ut float64
	for g := range u {
		y += l.arms[armControl].conv[g]
		ut += u[g]
	}
	var camp float64
	switch {
	case prior > 0:
		camp = (y + s) / (ut + s/prior)
	case y > 0 && ut > 0:
		camp = y / ut
	}
	out := make([]float64, len(u))
	if camp == 0 {
		return out
	}
	for g := range u {
		out[g] = (l.arms[armControl].conv[g] + s) / (u[g] + s/camp)
	}
	return out
}

// Incrementality returns a campaign's lift measurement since it started,
// for its CPA controller (control.Measure.Lift): the treated arm's
// matched conversions, the organic conversions among them that the
// control arm's rate per household predicts (its conversions ÷ its
// households × the treated households), and the control arm's
// conversions; false for a campaign without both arms.
func (a *Attributor) Incrementality(campaign string) (treated, organic, control float64, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.byID[campaign]
	if c == nil {
		return 0, 0, 0, false
	}
	f := c.lift.figures(nil, make([]float64, c.lift.groups+1)) // the matchable time is not needed
	e := f.estimate()
	if !e.ok {
		return 0, 0, 0, false
	}
	yT, yC := f.conv[armTreatment], f.conv[armControl]
	return yT, yT - e.incremental, yC, true
}

// liftFigures are one cut of a lift report (a group, or the campaign).
type liftFigures struct {
	households  [2]float64
	exposures   [2]float64
	conv        [2]float64
	sq          [2]float64
	matchable   float64 // control household-seconds
	groupLabel  int     // -1: every group
	groupValues []string
}

// figures sums the arms' counters over the groups in gs (nil: all, with
// the all-groups household counts).
func (l *liftState) figures(gs []int, u []float64) liftFigures {
	f := liftFigures{groupLabel: -1}
	if len(gs) == 1 {
		f.groupLabel = gs[0]
	}
	for arm := range l.arms {
		a := &l.arms[arm]
		if gs == nil {
			f.households[arm] = a.all.estimate()
		}
		for g := 0; g <= l.groups; g++ {
			if gs != nil && !containsInt(gs, g) {
				continue
			}
			if gs != nil && a.hh[g] != nil {
				f.households[arm] += a.hh[g].estimate()
			}
			f.exposures[arm] += a.exposures[g]
			f.conv[arm] += a.conv[g]
			f.sq[arm] += a.sq[g]
			if arm == armControl {
				f.matchable += u[g]
			}
		}
	}
	return f
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// liftEstimate is the lift of one cut: conversions per household in each
// arm, the incremental conversions of the treatment arm (its conversions
// less what the control arm's rate predicts for its households), the lift
// (ratio of the rates − 1) with its 90 % interval.
//
// The interval is the conditional one: given n = Y_T + Y_C, Y_T is
// binomial with p = λ_T·H_T ÷ (λ_T·H_T + λ_C·H_C), so a Wilson interval
// for p gives one for λ_T/λ_C = p/(1−p)·H_C/H_T. Households converting
// more than once widen it: n is divided by the dispersion Σy² ÷ Σy (≥ 1).
// Exact enough with a handful of control conversions, where the normal
// interval of the log ratio is not.
type liftEstimate struct {
	rate        [2]float64 // conversions per household
	incremental float64
	lift        float64 // NaN when the control arm has no conversion
	lo, hi      float64 // NaN / +Inf when unbounded
	ok          bool    // both arms reached households
}

// z90 is the standard normal quantile of 0.95 (a two-sided 90 % interval).
const z90 = 1.6448536269514722

func (f liftFigures) estimate() liftEstimate {
	var e liftEstimate
	hT, hC := f.households[armTreatment], f.households[armControl]
	yT, yC := f.conv[armTreatment], f.conv[armControl]
	if !(hT > 0 && hC > 0) {
		e.lift, e.lo, e.hi = math.NaN(), math.NaN(), math.NaN()
		return e
	}
	e.ok = true
	e.rate = [2]float64{yT / hT, yC / hC}
	e.incremental = yT - e.rate[armControl]*hT
	e.lift = math.NaN()
	if yC > 0 {
		e.lift = e.rate[armTreatment]/e.rate[armControl] - 1
	}
	n := yT + yC
	if n == 0 {
		e.lo, e.hi = math.NaN(), math.NaN()
		return e
	}
	phi := math.Max(1, (f.sq[armTreatment]+f.sq[armControl])/n)
	ne := n / phi
	p := yT / n
	z2 := z90 * z90
	den := 1 + z2/ne
	center := (p + z2/(2*ne)) / den
	half := z90 * math.Sqrt(p*(1-p)/ne+z2/(4*ne*ne)) / den
	ratio := func(q float64) float64 {
		if q >= 1 {
			return math.Inf(1)
		}
		return q / (1 - q) * hC / hT
	}
	e.lo = ratio(math.Max(center-half, 0)) - 1
	e.hi = ratio(math.Min(center+half, 1)) - 1
	return e
}

// hll is a HyperLogLog sketch of 2^12 registers (about 1.6 % standard
// error) of 64-bit keys, which are keyed hashes already (mixed again).
type hll struct{ reg [1 << hllBits]uint8 }

const hllBits = 12

func (h *hll) add(x uint64) {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	i := x >> (64 - hllBits)
	r := uint8(bits.LeadingZeros64(x<<hllBits|1<<(hllBits-1)) + 1)
	if r > h.reg[i] {
		h.reg[i] = r
	}
}

// estimate is the sketch's cardinality: HyperLogLog with the small-range
// correction (linear counting while registers are empty).
func (h *hll) estimate() float64 {
	const m = 1 << hllBits
	var sum float64
	zeros := 0
	for _, r := range h.reg {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	alpha := 0.7213 / (1 + 1.079/m)
	e := alpha * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		return m * math.Log(float64(m)/float64(zeros))
	}
	return e
}

// writeLift writes a campaign's lift state.
func (l *liftState) write(w *binenc.Writer) {
	w.Uvarint(uint64(l.groups))
	for i := range l.arms {
		a := &l.arms[i]
		w.Raw(a.all.reg[:])
		for g := 0; g <= l.groups; g++ {
			if a.hh[g] == nil {
				w.Byte(0)
			} else {
				w.Byte(1)
				w.Raw(a.hh[g].reg[:])
			}
			w.F64(a.exposures[g])
			w.F64(a.conv[g])
			w.F64(a.sq[g])
		}
		w.Uvarint(uint64(len(a.convHH)))
		for k, y := range a.convHH {
			w.U64(k)
			w.Uvarint(uint64(y))
		}
	}
	for g := 0; g <= l.groups; g++ {
		w.F64(l.closed[g])
	}
	w.Uvarint(uint64(len(l.ctrl)))
	for k, h := range l.ctrl {
		w.U64(k)
		w.Varint(h.last)
		w.Byte(h.group)
	}
}

// readLift reads what write wrote. A state of another number of groups
// (lift_groups changed) is read and dropped: its groups mean other values.
func readLift(r *binenc.Reader, groups int) *liftState {
	n := r.Len(255)
	l := newLiftState(n)
	for i := range l.arms {
		a := &l.arms[i]
		r.Raw(a.all.reg[:])
		for g := 0; g <= n; g++ {
			if r.Byte() == 1 {
				a.hh[g] = new(hll)
				r.Raw(a.hh[g].reg[:])
			}
			a.exposures[g], a.conv[g], a.sq[g] = r.F64(), r.F64(), r.F64()
		}
		nh := r.Len(math.MaxInt32)
		for range nh {
			k := r.U64()
			a.convHH[k] = uint32(r.Uvarint())
			if r.Err() != nil {
				break
			}
		}
	}
	for g := 0; g <= n; g++ {
		l.closed[g] = r.F64()
	}
	nc := r.Len(math.MaxInt32)
	for range nc {
		k := r.U64()
		last := r.Varint()
		g := r.Byte()
		if r.Err() != nil {
			break
		}
		if int(g) > n {
			g = 0
		}
		l.ctrl[k] = ctrlHousehold{last: last, group: g}
	}
	if n != groups {
		return newLiftState(groups)
	}
	return l
}
