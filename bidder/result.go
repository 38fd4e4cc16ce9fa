package bidder

import (
	"github.com/cpafeed/cpafeed/apierr"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

// ImpScores is the answer for one imp: a Score per campaign, in the order
// the campaigns were asked for.
type ImpScores struct {
	ID     []byte
	Scores []Score
}

// Result is the answer to one scoring call. It is reusable: each call
// overwrites it, and it allocates nothing once its buffers have grown to
// the calls' size. Its byte slices (ID, Imps[i].ID, Scores' Segment) point
// into its own buffer and are valid until the next call that fills it. A
// Result is not safe for concurrent use.
type Result struct {
	// ID is the bid request's id; empty for a features call.
	ID []byte
	// Imps holds one entry per imp of the request (one, with an empty ID,
	// for a features call).
	Imps []ImpScores
	// ModelVersion is the version of the estimates the answer used.
	ModelVersion uint64

	features bool // filled by a features call: AppendJSON writes the flat shape
	arena    []byte
	scores   []Score
	idOff    []int      // per imp: its id's end in arena (the request id first)
	cell     model.Cell // the crossed model's values of the imp being scored
}

// scoreRequest scores every imp of req for each campaign of camps into res:
// shaded when req's auction is first price, exploring (rng not nil) by
// (campaign, request id, imp id).
func (r *Rules) scoreRequest(t *table, req *signals.Request, camps []int, rng *rand.Rand, pace float64, res *Result) {
	o := scoreCtx{rng: rng, auction: req.ID, first: req.FirstPrice(), pace: clampPace(pace)}
	if o.auction == nil {
		o.auction = []byte{}
	}
	res.begin(t, len(req.Imps), len(camps), false)
	res.arena = append(res.arena, req.ID...)
	res.idOff = append(res.idOff, len(res.arena))
	for i := range req.Imps {
		res.arena = append(res.arena, req.Imps[i].ID...)
		res.idOff = append(res.idOff, len(res.arena))
	}
	hh, hasHH := r.household(req, camps)
	k := 0
	for i := range req.Imps {
		imp := &req.Imps[i]
		cell := &res.cell
		if !t.fillCell(imp, cell) {
			cell = nil
		}
		for _, ci := range camps {
			res.arena = r.score(t, ci, imp, cell, &o, &res.scores[k], res.arena)
			r.applyArm(&res.scores[k], ci, hh, hasHH)
			k++
		}
	}
	res.finish(len(camps))
}

// scoreImp scores one imp given by its features for each campaign of camps
// (shaded when first; exploring, when rng is not nil, by rng's draws).
func (r *Rules) scoreImp(t *table, imp *signals.Imp, camps []int, rng *rand.Rand, first bool, pace float64, res *Result) {
	o := scoreCtx{rng: rng, first: first, pace: clampPace(pace)}
	res.begin(t, 1, len(camps), true)
	res.idOff = append(res.idOff, 0, 0)
	cell := &res.cell
	if !t.fillCell(imp, cell) {
		cell = nil
	}
	for k, ci := range camps {
		res.arena = r.score(t, ci, imp, cell, &o, &res.scores[k], res.arena)
	}
	res.finish(len(camps))
}

func (res *Result) begin(t *table, imps, camps int, features bool) {
	res.ModelVersion = t.est.Version()
	res.features = features
	res.arena = res.arena[:0]
	res.idOff = res.idOff[:0]
	n := imps * camps
	if cap(res.scores) < n {
		res.scores = make([]Score, n, n+n/4)
	}
	res.scores = res.scores[:n]
	if cap(res.Imps) < imps {
		res.Imps = make([]ImpScores, imps, imps+imps/4)
	}
	res.Imps = res.Imps[:imps]
}

// finish points the slices into the arena (which may have moved while it
// grew).
func (res *Result) finish(camps int) {
	a := res.arena
	res.ID = a[:res.idOff[0]:res.idOff[0]]
	for i := range res.Imps {
		lo, hi := res.idOff[i], res.idOff[i+1]
		res.Imps[i] = ImpScores{ID: a[lo:hi:hi], Scores: res.scores[i*camps : (i+1)*camps : (i+1)*camps]}
	}
	for k := range res.scores {
		s := &res.scores[k]
		s.Segment = a[s.segOff : s.segOff+s.segLen : s.segOff+s.segLen]
	}
}

// AppendJSON appends the answer as the HTTP API writes it:
//
//	{"id":...,"imp":[{"id":...,"campaigns":[{"campaign":...,"cvr":...,
//	  "cvr_lo":...,"cvr_hi":...,"vtr":...,"n_eff":...,"conversions":...,
//	  "segment":...,"level":...,"bid_cpm":...,"multiplier":...,
//	  "bid_unshaded_cpm":...,"cpa_control":...,"pacing":...,"shading":...
//	  [,"cvr_sample":...,"explored":true|false][,"arm":"treatment"|"control"[,"would_bid_cpm":...]]}]}],
//	  "model_version":N}
//
// or, for a features call, {"campaigns":[...],"model_version":N}.
func (res *Result) AppendJSON(dst []byte) []byte {
	if res.features {
		dst = append(dst, `{"campaigns":`...)
		if len(res.Imps) == 1 {
			dst = appendScores(dst, res.Imps[0].Scores)
		} else {
			dst = append(dst, "[]"...)
		}
	} else {
		dst = append(dst, `{"id":`...)
		dst = apierr.AppendBytes(dst, res.ID)
		dst = append(dst, `,"imp":[`...)
		for i := range res.Imps {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"id":`...)
			dst = apierr.AppendBytes(dst, res.Imps[i].ID)
			dst = append(dst, `,"campaigns":`...)
			dst = appendScores(dst, res.Imps[i].Scores)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"model_version":`...)
	dst = strconv.AppendUint(dst, res.ModelVersion, 10)
	return append(dst, '}')
}

func appendScores(dst []byte, ss []Score) []byte {
	dst = append(dst, '[')
	for k := range ss {
		s := &ss[k]
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"campaign":`...)
		dst = apierr.AppendString(dst, s.Campaign)
		dst = append(dst, `,"cvr":`...)
		dst = appendFloat(dst, s.CVR)
		dst = append(dst, `,"cvr_lo":`...)
		dst = appendFloat(dst, s.CVRLo)
		dst = append(dst, `,"cvr_hi":`...)
		dst = appendFloat(dst, s.CVRHi)
		dst = append(dst, `,"vtr":`...)
		dst = appendFloat(dst, s.VTR)
		dst = append(dst, `,"n_eff":`...)
		dst = appendFloat(dst, s.NEff)
		dst = append(dst, `,"conversions":`...)
		dst = appendFloat(dst, s.Conversions)
		dst = append(dst, `,"segment":`...)
		dst = apierr.AppendBytes(dst, s.Segment)
		dst = append(dst, `,"level":`...)
		dst = strconv.AppendInt(dst, int64(s.Level), 10)
		dst = append(dst, `,"bid_cpm":`...)
		dst = appendFloat(dst, s.BidCPM)
		dst = append(dst, `,"multiplier":`...)
		dst = appendFloat(dst, s.Multiplier)
		dst = append(dst, `,"bid_unshaded_cpm":`...)
		dst = appendFloat(dst, s.UnshadedCPM)
		dst = append(dst, `,"cpa_control":`...)
		dst = appendFloat(dst, s.CPAControl)
		dst = append(dst, `,"pacing":`...)
		dst = appendFloat(dst, s.Pacing)
		dst = append(dst, `,"shading":`...)
		dst = appendFloat(dst, s.Shading)
		if s.Sampled {
			dst = append(dst, `,"cvr_sample":`...)
			dst = appendFloat(dst, s.Sample)
			dst = strconv.AppendBool(append(dst, `,"explored":`...), s.Explored)
		}
		switch s.Arm {
		case ArmTreatment:
			dst = append(dst, `,"arm":"treatment"`...)
		case ArmControl:
			dst = append(dst, `,"arm":"control","would_bid_cpm":`...)
			dst = appendFloat(dst, s.WouldBidCPM)
		}
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendFloat appends f rounded to six significant digits, as %g would but
// without an exponent between 1e-6 and 1e9 (NaN and infinities, which no
// estimate should hold, as 0). Six digits are far finer than any estimate's
// credible interval or a bid's price granularity. The digits are %g's
// (strconv rounds the exact value where the fast scaling is within its
// error of a tie), at 0.3 of strconv's cost (BenchmarkAppendFloat).
func appendFloat(dst []byte, f float64) []byte {
	if f == 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, '0')
	}
	if f == 1 { // multipliers at rest
		return append(dst, '1')
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	if f < 1e-6 || f >= 1e9 {
		return strconv.AppendFloat(dst, f, 'g', 6, 64)
	}
	// e = floor(log10 f), from the binary exponent (78913/2^18 is log10 2
	// to 1e-6, exact enough for |exp2| < 64), then corrected up once.
	exp2 := int(math.Float64bits(f)>>52&0x7ff) - 1023
	e := exp2 * 78913 >> 18
	if f >= pow10[e+1+6] {
		e++
	}
	// f = m × 10^(e-5) with m of six digits.
	var x float64
	if e > 5 {
		x = f / pow10[e-5+6]
	} else {
		x = f * pow10[5-e+6]
	}
	m := uint64(x + 0.5)
	if r := x - math.Floor(x); r > 0.5-1e-6 && r < 0.5+1e-6 {
		// Within the scaling's rounding error of a tie: let strconv
		// round the exact value, as %g does.
		m, e = digits6(f)
	}
	if m >= 1_000_000 { // rounded up to the next power of ten
		m /= 10
		e++
	}
	var digits [6]byte
	hi, mid, lo := m/10000, m/100%100, m%100
	digits[0], digits[1] = digitPairs[2*hi], digitPairs[2*hi+1]
	digits[2], digits[3] = digitPairs[2*mid], digitPairs[2*mid+1]
	digits[4], digits[5] = digitPairs[2*lo], digitPairs[2*lo+1]
	n := 6 // digits up to the last non-zero one after the point
	switch {
	case e >= 5: // an integer: all six digits, then zeros
		dst = append(dst, digits[:]...)
		return append(dst, "0000"[:e-5]...) // e <= 9
	case e >= 0:
		for n > e+1 && digits[n-1] == '0' {
			n--
		}
		dst = append(dst, digits[:e+1]...)
		if n > e+1 {
			dst = append(dst, '.')
			dst = append(dst, digits[e+1:n]...)
		}
		return dst
	default:
		for digits[n-1] == '0' {
			n--
		}
		dst = append(dst, "0.00000"[:1-e]...) // "0." and -e-1 zeros
		return append(dst, digits[:n]...)
	}
}

// digits6 returns f (> 0) rounded to six significant digits as m × 10^(e-5),
// by strconv's exact rounding.
func digits6(f float64) (m uint64, e int) {
	var buf [24]byte
	b := strconv.AppendFloat(buf[:0], f, 'e', 5, 64) // d.ddddde±dd
	for _, c := range b[:7] {
		if c != '.' {
			m = m*10 + uint64(c-'0')
		}
	}
	exp, _ := strconv.Atoi(string(b[8:]))
	return m, exp
}

// digitPairs holds "00" to "99".
const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

var pow10 = [...]float64{1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14}
