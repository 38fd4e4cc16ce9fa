// Package bidder answers bid-time questions: from an OpenRTB bid request (or
// extracted features) to per-campaign conversion-rate estimates and a CPA bid
// price, in microseconds and without allocating. It holds the HTTP handlers of
// /v1/score and of the model's estimates (GET /v1/segments, HandleSegments;
// GET /v1/effects, HandleEffects), a Go client of the HTTP API, and an embeddable Scorer that follows
// a server's model snapshot so a bidder can score in process.
//
// # Scoring
//
// Rules holds what does not change while serving: the segment chain and each
// campaign's bid rule, with its root key computed once. For an
// imp and a campaign, scoring takes the imp's segment path from the chain,
// looks up the deepest node of it the estimates hold (model.Estimates.Lookup),
// and prices it: bid_cpm = 1000 × p × target_cpa × pacing clamped to
// [floor_cpm, cap_cpm] (0 = none), p the CVR or, for bid_on: cvr_lo, its
// credible interval's low end; multiplier = CVR ÷ the campaign's average CVR
// (its root's). With Thompson exploration a draw from the node's posterior
// Beta(Alpha, Beta) is added (it does not change bid_cpm). When the model
// is crossed (model.Config.Structure), the chain is the model's dimensions
// (one feature a level): the imp's values are hashed once into a
// model.Cell, each campaign's estimate is model.Estimates.LookupCell (one
// probe per effect table), the segment is the cell (the campaign and every
// dimension's value), and the Thompson draw comes from the lognormal
// posterior (model.Estimate.Sample). The HTTP handlers
// (Service) and the embedded Scorer run the same code, so for one model
// version they answer the same numbers.
//
// The package never changes the model and never writes to disk. It keeps no
// package state but VictoriaMetrics counters.
//
// # Lifetimes
//
//   - A Result belongs to its caller and is reused across calls: every byte
//     slice in it (ID, Imps[i].ID, Score.Segment) points into the Result's
//     own buffer and is valid until the next call that fills the Result.
//     Nothing in it points into the bid request's bytes, so the caller may
//     reuse those as soon as Score returns.
//   - An imp given to Scorer.ScoreImp is read during the call only.
//   - The handlers read the request (its body, its query arguments) during
//     the call only and copy what they answer into the response; the
//     Rememberer (signals.Exposures) copies what it keeps.
//   - A Snapshot, its Rules and its Estimates are immutable; a Scorer swaps
//     the snapshot it uses by atomic pointer, and a call that already
//     loaded the previous one finishes with it.
//   - A snapshot answer's bytes are cached per set of allowed campaigns
//     (the latest build) and never modified once cached (they are sent
//     without a copy).
//
// # Locking
//
// Scoring takes no lock: the estimates are an immutable table published by
// pointer swap (model.Model.Estimates), the per-campaign averages of one table
// are derived once per version and published the same way, and per-call
// scratch (extractors, campaign lists, answer buffers) comes from sync.Pools.
// Thompson draws use the runtime's per-thread generator (math/rand/v2), so
// they need no lock either. Service, Scorer and Client are safe for
// concurrent use; a Result is not. Scorer.Refresh calls are serialized among
// themselves (one download at a time) but never block scoring. Building a
// snapshot holds a per-(allowed set) mutex so that concurrent polls of one
// version build it once.
//
// # Snapshots and tenants
//
// A snapshot carries the chain, and the bid rules, average CVRs and
// estimates of the campaigns the bidder may score: nothing of the others,
// not even their ids (model.Estimates.MarshalCampaigns encodes the table
// of some campaigns). A campaign the bidder may not score is unknown to
// it, over HTTP (404, the answer for a made-up id) as in process.
// Snapshots are always whole (no deltas) and built at most once per
// Config.SnapshotInterval per set of allowed campaigns; ?since=N answers
// 304 while the version is N or no newer snapshot is due.
package bidder
