package model

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Config tunes the estimator. It is passed by value to New; zero fields take
// the defaults below (WithDefaults).
type Config struct {
	// HalfLife is how fast counts are forgotten: an event of age a weighs
	// 2^(−a/HalfLife). Default 168h. Negative: no decay.
	HalfLife time.Duration `yaml:"half_life"`

	// Quantiles are the lower and upper posterior probabilities of the
	// credible interval (Estimate.Lo, Estimate.Hi). Default [0.05, 0.95]
	// (a 90% interval); a zero pair means the default.
	Quantiles [2]float64 `yaml:"quantiles"`

	// RefreshInterval is how often the server should call Refresh (rebuild
	// and publish the bid-time table); estimates lag writes by up to this.
	// Default 2s. Measured on the 2-core dev box: a rebuild of 100k nodes
	// costs ~35 ms of one core (under 2% of a core at 2s), 1M nodes ~330 ms
	// and 130 MB of fresh table; the first rebuild after a Refit recomputes
	// every credible interval, ~2.5 µs a node. The server waits at least
	// ten times the last rebuild's duration between two (so refreshes take
	// at most a tenth of a core: 3-7 s at a million nodes). The model
	// itself never schedules.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// RefitInterval is how often the server should call Refit (delay weights
	// and empirical-Bayes strengths). Default 10m; a refit costs about as
	// much as a rebuild plus ~1 µs a node and a few ms per delay learner.
	RefitInterval time.Duration `yaml:"refit_interval"`

	// MinSiblings is how many nodes of a level (over all campaigns) must
	// expect at least one conversion for the level's prior strength to be
	// fitted by empirical Bayes; below it the level inherits the strength of
	// the level above. Also the number of campaigns needed to fit the
	// campaigns' own prior strength. Default 20.
	MinSiblings int `yaml:"min_siblings"`
	// DefaultStrength is the prior strength of a level before (or without) a
	// fit, in pseudo-conversions: a node is shrunk to its parent as if it
	// had seen DefaultStrength conversions at the parent's rate. It is 1/CV²
	// of children's CVRs around their parent (4 ⇔ a ±50% spread).
	// Default 4.
	DefaultStrength float64 `yaml:"default_strength"`
	// MinStrength and MaxStrength clamp fitted strengths, in
	// pseudo-conversions. Defaults 0.25 and 1000 (a level whose children do
	// not differ measurably gets MaxStrength).
	MinStrength float64 `yaml:"min_strength"`
	MaxStrength float64 `yaml:"max_strength"`
	// StrengthSpread is how far, in natural-log units (one standard
	// deviation), a campaign's fitted strength of a level may stray from that
	// level's strength pooled over all campaigns: the campaign's own fit is
	// a maximum a posteriori under that prior, so a campaign with little data
	// keeps the pooled strength. Default 0.5 (a factor of 1.65).
	StrengthSpread float64 `yaml:"strength_spread"`
	// PooledStrengthSpread is the standard deviation, in natural-log units,
	// of the prior of a level's strength pooled over all campaigns, centred
	// on DefaultStrength: the pooled fit is a penalized (maximum a
	// posteriori) likelihood rather than the bare marginal likelihood, whose
	// maximum sits on the MaxStrength boundary whenever the siblings' spread
	// is lost in chance (Chung et al., Psychometrika 2013, on the same
	// failure of variance-component estimates). Default 0.5. Without it, on
	// the synthetic market, fitted strengths jumped between 35 and 1000 from
	// one day to the next and flattened every estimate (see BENCHMARKS.md).
	PooledStrengthSpread float64 `yaml:"pooled_strength_spread"`
	// PriorConversions is the strength, in pseudo-conversions, of a
	// campaign's PriorCVR as the prior of its root node. Default 2. With
	// MinSiblings campaigns or more it is fitted across campaigns instead.
	PriorConversions float64 `yaml:"prior_conversions"`

	// VTRPrior is the strength, in pseudo-starts, with which a node's video
	// completion rate is shrunk toward its parent's. Default 20.
	VTRPrior float64 `yaml:"vtr_prior"`
	// PriorVTR is the completion rate a campaign's root is shrunk toward.
	// Default 0.9.
	PriorVTR float64 `yaml:"prior_vtr"`

	// DelaySamples is how many credited conversions each delay learner
	// (advertiser, event, window) keeps for refits. Default 4096; 24 bytes
	// each.
	DelaySamples int `yaml:"delay_samples"`
	// MinDelaySamples is how many delays a learner needs before its fit
	// replaces the default delay distribution. Default 100.
	MinDelaySamples int `yaml:"min_delay_samples"`
	// DelayPrior is the weight, in pseudo-delays, of the default delay
	// distribution in a fit. Default 20.
	DelayPrior float64 `yaml:"delay_prior"`
	// DelayRecency is the time scale of the delay learners' preference for
	// recent exposures: an exposure is e times likelier to be kept than one
	// DelayRecency older. Default: HalfLife (168h if decay is off).
	DelayRecency time.Duration `yaml:"delay_recency"`
	// NoDelayCorrection turns the delay correction off: n_eff is the plain
	// decayed exposure count (young segments then look worse than they are).
	// Default false.
	NoDelayCorrection bool `yaml:"no_delay_correction"`

	// Shards is the number of lock shards of the node store, a power of two
	// in [1, 256]. Default 64.
	Shards int `yaml:"shards"`

	// Structure is the shape of the estimator: "chain" (each campaign's
	// segments are the nodes of the backoff chain the server's segments
	// configure, each shrunk to its parent) or "crossed" (log CVR = the
	// campaign's base + one effect per key of Effects, each table's spread
	// fitted from the data; see doc.go). Default StructureCrossed.
	Structure string `yaml:"structure"`
	// Effects are the keys of the crossed model's effect tables, each a
	// bid-request feature or a tuple of them (a level of [publisher, bundle]
	// is one app of one publisher). The dimensions of a cell are the union
	// of their features, in order of first use (Dims); at most
	// MaxLevels−1 keys and MaxLevels−1 features. Default DefaultEffects.
	// Unused by the chain.
	Effects [][]string `yaml:"effects"`
	// SharedEffects shrinks each campaign's effect of a value toward that
	// value's effect over all campaigns of its advertiser (itself fitted,
	// with a strength of its own), instead of toward no effect: a campaign
	// with little data borrows its siblings' measurement, one with much
	// data keeps its own; a value only its siblings have seen gets theirs.
	// Crossed model only. Default false.
	SharedEffects bool `yaml:"shared_effects"`
	// Sweeps is how many backfitting sweeps (one update of every effect
	// table) each Refresh runs, warm-started from the last fit; Refit and
	// the first rebuild after a start run up to MaxSweeps, until the
	// effects move by less than 0.1%. Default 2; 1 to MaxSweeps.
	Sweeps int `yaml:"sweeps"`
}

// Estimator structures (Config.Structure).
const (
	StructureChain   = "chain"
	StructureCrossed = "crossed"
)

// MaxSweeps bounds the backfitting sweeps of one Refit.
const MaxSweeps = 50

// DefaultEffects are the effect keys of the crossed model when none are
// configured: what CTV buyers plan and report on, one table each, and two
// crosses where a main effect is plausibly not the same everywhere.
//
//   - [publisher], [publisher, bundle]: the seller, then its app (an app is
//     nested in its publisher, so it refines the publisher's effect).
//   - [genre], [metro]: what is watched and where (DMA-level planning).
//   - [daypart]: when (early morning ... overnight; from the viewer's local
//     hour).
//   - [devicetype], [make]: the screen (CTV, set-top box, connected device)
//     and the platform (Roku, Fire TV, Samsung, ...).
//   - [position]: pre-, mid- or post-roll.
//   - [livestream], [contentlen]: live events and the programme's length.
//   - [genre, daypart]: sports or news in prime is not sports or news at
//     noon; [publisher, genre]: an app's audience for a genre differs by
//     app.
//
// The slot in the pod and the pod's size (features slot and podsize) are
// left out on purpose: under last-touch credit, a campaign that shows in
// several slots of one break has the conversion credited to its last one,
// so the effect measured from attributed conversions is mostly that
// artifact (on the synthetic market, where one campaign may win several
// slots of a pod, the first slot came out at 0.1× the last, and the
// held-out CVRs, scored on the first imp, 0.15× the truth). Add them where
// the supply de-duplicates ads within a pod (OpenRTB poddedupe).
//
// A key whose feature a market does not carry costs nothing: all its
// traffic falls in one "unknown" level, which the centring keeps at 1.
var DefaultEffects = [][]string{
	{"publisher"}, {"publisher", "bundle"}, {"genre"}, {"metro"}, {"daypart"},
	{"devicetype"}, {"make"}, {"position"}, {"livestream"}, {"contentlen"},
	{"genre", "daypart"}, {"publisher", "genre"},
}

// Dims returns the dimensions of the crossed model's cells: the features of
// the Effects keys, each once, in order of first use (a new slice).
func (c Config) Dims() []string {
	var dims []string
	for _, key := range c.Effects {
		for _, f := range key {
			if !slices.Contains(dims, f) {
				dims = append(dims, f)
			}
		}
	}
	return dims
}

// EffectName is the name of an effect key: its features joined with "+"
// ("publisher+bundle"), as GET /v1/effects?key= takes it.
func EffectName(key []string) string { return strings.Join(key, "+") }

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.HalfLife == 0 {
		c.HalfLife = 168 * time.Hour
	}
	if c.Quantiles == [2]float64{} {
		c.Quantiles = [2]float64{0.05, 0.95}
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = 2 * time.Second
	}
	if c.RefitInterval == 0 {
		c.RefitInterval = 10 * time.Minute
	}
	if c.MinSiblings == 0 {
		c.MinSiblings = 20
	}
	if c.DefaultStrength == 0 {
		c.DefaultStrength = 4
	}
	if c.MinStrength == 0 {
		c.MinStrength = 0.25
	}
	if c.MaxStrength == 0 {
		c.MaxStrength = 1000
	}
	if c.StrengthSpread == 0 {
		c.StrengthSpread = 0.5
	}
	if c.PooledStrengthSpread == 0 {
		c.PooledStrengthSpread = 0.5
	}
	if c.PriorConversions == 0 {
		c.PriorConversions = 2
	}
	if c.VTRPrior == 0 {
		c.VTRPrior = 20
	}
	if c.PriorVTR == 0 {
		c.PriorVTR = 0.9
	}
	if c.DelaySamples == 0 {
		c.DelaySamples = 4096
	}
	if c.MinDelaySamples == 0 {
		c.MinDelaySamples = 100
	}
	if c.DelayPrior == 0 {
		c.DelayPrior = 20
	}
	if c.DelayRecency == 0 {
		c.DelayRecency = c.HalfLife
		if c.DelayRecency < 0 {
			c.DelayRecency = 168 * time.Hour
		}
	}
	if c.Shards == 0 {
		c.Shards = 64
	}
	if c.Structure == "" {
		c.Structure = StructureCrossed
	}
	if len(c.Effects) == 0 {
		c.Effects = make([][]string, len(DefaultEffects))
		for i, k := range DefaultEffects {
			c.Effects[i] = slices.Clone(k)
		}
	}
	if c.Sweeps == 0 {
		c.Sweeps = 2
	}
	return c
}

// Validate reports every problem of c (after WithDefaults) together.
func (c Config) Validate() []error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("model.%s: "+format, append([]any{field}, a...)...))
	}
	q := c.Quantiles
	if !(q[0] > 0 && q[0] < q[1] && q[1] < 1) {
		bad("quantiles", "want 0 < lo < hi < 1, got %v", q)
	}
	if c.RefreshInterval < 0 {
		bad("refresh_interval", "negative")
	}
	if c.RefitInterval < 0 {
		bad("refit_interval", "negative")
	}
	if c.MinSiblings < 2 {
		bad("min_siblings", "want ≥ 2, got %d", c.MinSiblings)
	}
	if !(c.MinStrength > 0 && c.MinStrength <= c.MaxStrength) {
		bad("min_strength", "want 0 < min_strength ≤ max_strength, got %g and %g", c.MinStrength, c.MaxStrength)
	}
	if !(c.DefaultStrength > 0) {
		bad("default_strength", "want > 0, got %g", c.DefaultStrength)
	}
	if !(c.StrengthSpread > 0) {
		bad("strength_spread", "want > 0, got %g", c.StrengthSpread)
	}
	if !(c.PooledStrengthSpread > 0) {
		bad("pooled_strength_spread", "want > 0, got %g", c.PooledStrengthSpread)
	}
	if !(c.PriorConversions > 0) {
		bad("prior_conversions", "want > 0, got %g", c.PriorConversions)
	}
	if !(c.VTRPrior > 0) {
		bad("vtr_prior", "want > 0, got %g", c.VTRPrior)
	}
	if !(c.PriorVTR > 0 && c.PriorVTR <= 1) {
		bad("prior_vtr", "want in (0, 1], got %g", c.PriorVTR)
	}
	if c.DelaySamples < 1 {
		bad("delay_samples", "want ≥ 1, got %d", c.DelaySamples)
	}
	if c.MinDelaySamples < 1 {
		bad("min_delay_samples", "want ≥ 1, got %d", c.MinDelaySamples)
	}
	if c.DelayPrior < 0 {
		bad("delay_prior", "negative")
	}
	if c.DelayRecency <= 0 {
		bad("delay_recency", "want > 0, got %v", c.DelayRecency)
	}
	if c.Shards < 1 || c.Shards > 256 || c.Shards&(c.Shards-1) != 0 {
		bad("shards", "want a power of two in [1, 256], got %d", c.Shards)
	}
	if c.Structure != StructureChain && c.Structure != StructureCrossed {
		bad("structure", "want %s or %s, got %q", StructureChain, StructureCrossed, c.Structure)
	}
	if c.Sweeps < 1 || c.Sweeps > MaxSweeps {
		bad("sweeps", "want 1 to %d, got %d", MaxSweeps, c.Sweeps)
	}
	if len(c.Effects) > MaxLevels-1 {
		bad("effects", "%d keys, at most %d", len(c.Effects), MaxLevels-1)
	}
	if d := c.Dims(); len(d) > MaxLevels-1 {
		bad("effects", "%d features in all, at most %d", len(d), MaxLevels-1)
	}
	seen := map[string]int{}
	for i, key := range c.Effects {
		if len(key) == 0 {
			bad(fmt.Sprintf("effects[%d]", i), "no feature")
			continue
		}
		for j, f := range key {
			if f == "" || strings.ContainsAny(f, "+=/") {
				bad(fmt.Sprintf("effects[%d][%d]", i, j), "feature name %q: empty or with + = /", f)
			}
			if slices.Contains(key[:j], f) {
				bad(fmt.Sprintf("effects[%d]", i), "feature %q twice", f)
			}
		}
		name := EffectName(key)
		if k, dup := seen[name]; dup {
			bad(fmt.Sprintf("effects[%d]", i), "key %s is already effects[%d]", name, k)
		}
		seen[name] = i
	}
	return errs
}
