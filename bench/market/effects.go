package market

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Effect is one term of the hidden truth: every distinct value of its key
// (a combination of the market's features, Features) gets its own normal
// draw z, standard for each campaign, and moves the rate by Sigma·z. On
// the CVR (truth.cvr_effects) and the organic rate (truth.organic_effects)
// the factor is exp(Sigma·z − Sigma²/2), log-normal with mean 1, so an
// effect spreads the rate without moving its average; on the VTR
// (truth.vtr_effects) Sigma·z is added to the logit of the completion rate.
//
// The draw of a campaign mixes a part common to every campaign (a good
// publisher is good for everyone) with the campaign's own (a retailer's
// stores are in some metros only): z = √s·z_shared + √(1−s)·z_campaign with
// s = Shared.
type Effect struct {
	// Key names the features whose combination the effect is drawn for,
	// e.g. [publisher], [genre, metro]. Order does not matter. bundle
	// implies its publisher (each app has one owner).
	Key []string `yaml:"key"`
	// Sigma is the standard deviation of the effect (of ln CVR or ln organic
	// rate, of logit VTR), 0..3.
	Sigma float64 `yaml:"sigma"`
	// Shared overrides truth.shared_across_campaigns for this effect:
	// the share (0..1) of its variance common to all campaigns. Absent:
	// truth.shared_across_campaigns.
	Shared *float64 `yaml:"shared,omitempty"`
}

// The features an effect can be keyed by. Each is known from the bid
// request (hour and daypart from the time and device.geo.utcoffset, slot and
// pod_size from the imps of the pod); cpafeed's model need not use them.
const (
	featPublisher  = iota // the app's owner (app.publisher.id)
	featBundle            // the app (app.bundle); implies the publisher
	featGenre             // content genre (app.content.genre)
	featMetro             // the household's metro (device.geo.metro)
	featHour              // the viewer's local hour, 0..23
	featDaypart           // the viewer's local daypart (see Dayparts)
	featDevice            // the TV's device type (inventory.devices)
	featDeviceType        // OpenRTB devicetype: connected TV (3) or set-top box (7)
	featLive              // live content or not (app.content.livestream)
	featSlot              // the imp's position in its pod: first, middle or last
	featPodSize           // the number of imps of the pod, 1..8
	numFeatures
)

// Features lists the names effect keys may use, in their canonical order.
var Features = []string{"publisher", "bundle", "genre", "metro", "hour", "daypart", "device", "devicetype", "live", "slot", "pod_size"}

// Dayparts names the viewer's local dayparts, after Nielsen's standard
// broadcast dayparts rounded to whole hours: overnight 1–6 am, early
// morning 6–9, daytime 9 am–4 pm, early fringe 4–7 pm, prime access 7–8,
// prime 8–11 pm, late fringe 11 pm–1 am.
var Dayparts = []string{"overnight", "early_morning", "daytime", "early_fringe", "prime_access", "prime", "late_fringe"}

// hourDaypart maps a local hour to its daypart (an index into Dayparts).
var hourDaypart = [24]uint8{6, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 4, 5, 5, 5, 6}

// Slot positions (the values of the slot feature). A pod of one imp is its
// own first slot.
const (
	slotFirst = iota
	slotMiddle
	slotLast
)

// Limits of the effect lists.
const (
	maxEffects  = 32
	maxSigma    = 3.0
	vtrOwnIndex = 128 // tag index of the first VTR effect without a CVR twin
)

// featureIndex returns the index of a feature name, or -1.
func featureIndex(name string) int { return slices.Index(Features, name) }

// canonicalKey returns the feature indexes of key in canonical order, the
// publisher dropped when the bundle is there (it adds nothing), or an error
// naming the problem.
func canonicalKey(key []string) ([]uint8, error) {
	if len(key) == 0 {
		return nil, fmt.Errorf("must name at least one feature (%s)", strings.Join(Features, ", "))
	}
	var out []uint8
	for _, k := range key {
		i := featureIndex(k)
		if i < 0 {
			return nil, fmt.Errorf("unknown feature %q (known: %s)", k, strings.Join(Features, ", "))
		}
		if slices.Contains(out, uint8(i)) {
			return nil, fmt.Errorf("feature %q twice", k)
		}
		out = append(out, uint8(i))
	}
	slices.Sort(out)
	if slices.Contains(out, featBundle) { // the bundle names its publisher
		out = slices.DeleteFunc(out, func(f uint8) bool { return f == featPublisher })
	}
	return out, nil
}

// validateEffects reports the problems of one effect list (field is its
// path, e.g. "truth.cvr_effects"); allowed, when not nil, restricts the
// features its keys may use.
func validateEffects(field string, effects []Effect, allowed []string, bad func(field, format string, args ...any)) {
	if len(effects) > maxEffects {
		bad(field, "at most %d effects, got %d", maxEffects, len(effects))
	}
	seen := map[string]int{}
	for i, e := range effects {
		f := fmt.Sprintf("%s[%d]", field, i)
		key, err := canonicalKey(e.Key)
		if err != nil {
			bad(f+".key", "%v", err)
		} else {
			for _, k := range e.Key {
				if allowed != nil && !slices.Contains(allowed, k) {
					bad(f+".key", "feature %q cannot shape this rate (allowed: %s)", k, strings.Join(allowed, ", "))
				}
			}
			id := fmt.Sprint(key)
			if j, ok := seen[id]; ok {
				bad(f+".key", "same key as %s[%d]", field, j)
			}
			seen[id] = i
		}
		if !(e.Sigma >= 0 && e.Sigma <= maxSigma) {
			bad(f+".sigma", "must be within 0..%g, got %v", maxSigma, e.Sigma)
		}
		if e.Shared != nil && !(*e.Shared >= 0 && *e.Shared <= 1) {
			bad(f+".shared", "must be within 0..1, got %v", *e.Shared)
		}
	}
}

// effect is an Effect compiled for a market.
type effect struct {
	feats   []uint8  // canonical features (see canonicalKey)
	radix   []uint64 // cardinality of each feature
	mixed   bool     // node ids by mixed radix (else by hashing: the product overflows)
	card    uint64   // number of nodes when mixed
	slot    bool     // depends on the imp's slot
	sigma   float64
	shift   float64 // −σ²/2 on the log scale (CVR, organic), 0 on the logit scale (VTR)
	shared  float64 // share of the variance common to the campaigns
	sqShare float64 // √shared
	sqOwn   float64 // √(1 − shared)
	// Hash tags of the shared and the campaign's own draws.
	tagShared, tagOwn uint64
	// VTR only: twin is the index of the CVR effect with the same key
	// (its z is mixed in with the VTR/CVR correlation), or -1.
	twin int
	// cache holds, when the effect has few nodes, every node's draw per
	// campaign at node×campaigns + campaign (for a VTR effect with a twin,
	// the correlated draw).
	cache []float64
}

// cardinalities returns the number of values of every feature in m.
func (m *Market) cardinalities() [numFeatures]uint64 {
	return [numFeatures]uint64{
		featPublisher:  uint64(len(m.pubs)),
		featBundle:     uint64(len(m.bundles)),
		featGenre:      uint64(len(m.genres)),
		featMetro:      uint64(len(m.metros)),
		featHour:       24,
		featDaypart:    uint64(len(Dayparts)),
		featDevice:     uint64(len(m.sc.Inventory.Devices)),
		featDeviceType: 2,
		featLive:       2,
		featSlot:       3,
		featPodSize:    8,
	}
}

// compileEffects compiles a validated effect list. tagShared and tagOwn are
// the base hash tags; the effect at position i draws with tag + i<<8 (a
// campaign's own draw adds (campaign+1)<<16), which keeps today's chain
// (publisher, bundle, genre, metro levels at positions 0..3) drawing what
// it always drew.
func (m *Market) compileEffects(list []Effect, shared float64, shift bool, tagShared, tagOwn uint64) []effect {
	cards := m.cardinalities()
	out := make([]effect, len(list))
	for i, spec := range list {
		key, _ := canonicalKey(spec.Key)
		e := effect{feats: key, sigma: spec.Sigma, twin: -1, mixed: true, card: 1}
		if shift {
			e.shift = -spec.Sigma * spec.Sigma / 2
		}
		s := shared
		if spec.Shared != nil {
			s = *spec.Shared
		}
		e.shared, e.sqShare, e.sqOwn = s, math.Sqrt(s), math.Sqrt(1-s)
		for _, f := range key {
			e.radix = append(e.radix, cards[f])
			if f == featSlot {
				e.slot = true
			}
			if e.mixed && e.card > math.MaxUint64/cards[f] {
				e.mixed = false
			}
			e.card *= cards[f]
		}
		e.tagShared, e.tagOwn = tagShared+uint64(i)<<8, tagOwn+uint64(i)<<8
		out[i] = e
	}
	return out
}

// node returns the effect's node id for the feature values fv.
func (e *effect) node(fv *[numFeatures]uint64) uint64 {
	var id uint64
	if e.mixed {
		for j, f := range e.feats {
			id = id*e.radix[j] + fv[f]
		}
		return id
	}
	for _, f := range e.feats {
		id = mix64(id ^ fv[f] + 0x9e3779b97f4a7c15)
	}
	return id
}

// draw is the effect's standard normal draw for campaign c at node.
func (m *Market) draw(e *effect, node uint64, c int) float64 {
	var z float64
	if e.sqShare > 0 {
		z = e.sqShare * hashNormal(m.seed, e.tagShared, node)
	}
	if e.sqOwn > 0 {
		z += e.sqOwn * hashNormal(m.seed, e.tagOwn+uint64(c+1)<<16, node)
	}
	return z
}

// cacheLimit is the most nodes × campaigns an effect's cache holds.
const cacheLimit = 1 << 16

// fillCache precomputes the draws of an effect with few nodes; vtr says
// whether it is a VTR effect (twin draws mixed in with the correlation).
func (m *Market) fillCache(e *effect, vtr bool) {
	nc := uint64(len(m.sc.Campaigns))
	if !e.mixed || e.card*nc > cacheLimit {
		return
	}
	cache := make([]float64, 0, e.card*nc)
	for node := range e.card {
		for c := range int(nc) {
			cache = append(cache, m.normal(e, vtr, node, c))
		}
	}
	e.cache = cache
}

// normal is the draw an effect adds (times its sigma) for campaign c at
// node: its own draw, or for a VTR effect with a CVR twin the correlated
// mix ρ·z_cvr + √(1−ρ²)·w.
func (m *Market) normal(e *effect, vtr bool, node uint64, c int) float64 {
	if e.cache != nil {
		return e.cache[node*uint64(len(m.sc.Campaigns))+uint64(c)]
	}
	w := m.draw(e, node, c)
	if vtr && e.twin >= 0 {
		return m.rho*m.normal(&m.cvr[e.twin], false, node, c) + m.rhoPerp*w
	}
	return w
}
