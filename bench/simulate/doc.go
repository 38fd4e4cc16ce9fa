// Package simulate is the strategy simulation behind `cpafeed simulate`: it
// plays the synthetic market of package bench/market day by day, once per
// bidding strategy on identical traffic, each strategy through its own
// in-process cpafeed (server.NewEngine over an in-memory journal on a
// simulated clock), and reports what each bought, what cpafeed's model
// learned, and how far each is from the oracle that bids on the true CVR.
// The headline is uplift capture at equal spend (Headline): how much of the
// oracle's gain over VTR bidding cpafeed captures.
//
// Run plays one scenario and seed; RunMatrix every (scenario, seed) pair,
// some at a time. A run's result is a pure function of its options
// (scenario, seed, days, config, strategies): the same options give the
// same JSON bytes whatever the number of goroutines (Options.Workers,
// MatrixOptions.Jobs) and however many strategies share memory
// (Options.Group). Wall and CPU time are reported beside it, never in it.
// The HTML report (Result.WriteHTML) is one self-contained page with no
// script and no external reference.
//
// Memory: a strategy's cpafeed holds its identity index and segment nodes,
// about 200 MB after 14 default days; strategies are played two at a time
// (Options.Group), so a run's live heap stays under 500 MB.
package simulate
