// Package model owns cpafeed's estimates: segment keys, per-segment statistics
// (exposures, attributed conversions, video starts and completes, spend) with
// lazy exponential decay and delay correction, the hierarchical empirical-Bayes
// conversion-rate estimate of every segment node (the chain) or the crossed
// effects of every configured key (the crossed model), and snapshots of that
// state.
//
// It never does I/O except through the io.Writer and io.Reader handed to it,
// never reads a clock (every time is passed in as Unix seconds) and knows
// nothing of HTTP or OpenRTB. It imports nothing of cpafeed.
//
// # Lifetimes and locking
//
//   - An *Estimates handed out by Model.Estimates or Refresh is immutable and
//     stays valid for as long as the caller holds it; a newer one replaces it
//     by pointer swap, never by mutation. Its lookups take no lock and do not
//     allocate; Label returns memory owned by the table (do not modify).
//   - Writes (Expose, Credit, Video, CampaignConversion) are safe from any
//     number of goroutines; each locks one node shard at a time. Labels passed
//     to Expose are copied when a node is created and not retained.
//   - Refresh and Refit are serialized with each other and hold a shard's lock
//     only while copying its counts (about a millisecond per 16k nodes).
//     The server calls them on its schedule (Config.RefreshInterval,
//     RefitInterval); nothing here runs in the background.
//   - ReadSnapshot is for start-up, before writes. WriteSnapshot may run
//     alongside writes (it copies every shard under lock, then encodes).
//
// # The estimator
//
// A campaign's segment is a backoff chain of nodes, campaign → … → leaf.
// Every node keeps, decayed by 2^(−age/HalfLife) to its reference time:
// exposures n = Σ w_i, Σ w_i² (for the Kish effective size N²/Σw²), credited
// conversions c (decayed by the exposure's time, not the conversion's), spend,
// video starts and completes, and for each of six delay components
// S_j = Σ_unconverted w_i e^{−λ_j·age_i}.
//
// Delay. F(τ) = P(delay ≤ τ | converts within the window W) is a mixture of
// exponentials with fixed means W/4, W/12, …, W/972, truncated to W; only
// the weights are learned, per (advertiser, event, window), by EM on a
// reservoir of credited delays with right-censoring (a delay d of an
// exposure at t is observed only if d ≤ min(W, now − t)). The effective
// exposures are n_eff = c + Σ_unconverted F(age_i) = c + A·(n − c) − Σ_j b_j S_j
// (Chapelle's likelihood with F known, b.5 Option B of the reference), so a
// segment opened an hour ago is not read as a low converter. An exposure
// older than W counts up to 1.9%·π_slowest more than 1 (the fixed grid cannot
// switch it off); see delay.go.
//
// Hierarchy. With the Kish-scaled counts k = f·c, n = f·n_eff:
//
//	alpha = k + σ,  beta = n − k + σ(1−μ)/μ,  CVR = alpha/(alpha+beta)
//
// where μ is the parent's posterior mean without the node's own counts
// (PriorCVR for a campaign's root) and σ the level's strength s in
// pseudo-conversions, widened for the uncertainty of μ:
// 1/σ = 1/s + CV²(μ)(1 + 1/s). This is p = (c + m·p_parent)/(n_eff + m) with
// m = σ/μ. The credible interval is the Config.Quantiles of Beta(alpha,
// beta). Strengths are fitted by Refit: per level by maximum marginal
// likelihood (negative binomial) pooled over campaigns, then per (campaign,
// level) as a maximum a posteriori around the pooled value; a level with too
// few informative nodes inherits the level above. VTR = (completes + V·vtr_parent)/(starts + V).
//
// Bid time. Refresh computes every node's estimate and publishes an
// open-addressing table (flat arrays, no per-entry pointers);
// Estimates.Lookup returns the deepest node of a path that the table knows.
//
// # The crossed model (Config.Structure "crossed")
//
// A campaign's log CVR is its base plus one effect per configured key
// (Config.Effects: a feature, or a tuple such as [publisher, bundle]):
// CVR = β·Π_t m_{t,ℓ_t}, every multiplier m drawn from Gamma(s_t, s_t)
// (mean 1, CV² 1/s_t) with its table's strength s_t fitted from the data as
// the chain's level strengths are, so a table whose feature does not
// matter gets multipliers near 1. The counters live in cells: a cell is
// the tuple of values of every dimension (Config.Dims, the union of the
// keys' features), a node at level 1 below its campaign's root with the
// chain's decay and delay correction; the exposure's path is root → …
// → cell and only the root and the cell (its last key) are counted. An
// exposure whose path does not have the dimensions' depth (one journaled
// under another configuration) is a foreign cell: counted in the base,
// in no effect. The fit (crossed_fit.go) is backfitting: sweeps of exact
// conditional (mean-field) updates over the cells' delay-corrected,
// decayed counts, warm-started from the last fit, Config.Sweeps per
// Refresh and to convergence on Refit; never on the bid path.
//
// With Config.SharedEffects a campaign's multiplier of a value is shrunk
// toward that value's multiplier over all campaigns of its advertiser
// (leave-one-out, itself fitted with a strength of its own) instead of
// toward 1, and a value only the campaign's siblings have seen is
// published for it with their multiplier.
//
// The published table holds each campaign's root and the levels of its
// effect tables (no cells). Estimates.LookupCell probes one level per
// table, sums in log space and gives the mean, the lognormal credible
// interval and the Thompson draw (Estimate.Sample) of the posterior;
// Estimates.Effects lists a table's multipliers. For Segments, level 0 is
// the campaign and level t+1 the levels of effect table t, each with the
// fitted CVR of its own traffic: a crossed model's segment is the traffic
// of one value of one key ("genre=Sports").
package model
