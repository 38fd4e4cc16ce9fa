// Package simulate is the strategy simulation behind `cpafeed simulate`: it
// plays the synthetic market of package bench/market day by day, once per
// bidding strategy on identical traffic, each strategy through its own
// in-process cpafeed (server.NewEngine over an in-memory journal on a
// simulated clock), and reports what each bought, what cpafeed's model
// learned, and how far each is from the oracle that bids on the true CVR.
//
// Run is the entry point; its result is a pure function of the options
// (scenario, seed, days, config): the same options give the same JSON bytes,
// whatever the number of goroutines. Wall and CPU time are reported beside
// it, never in it. The HTML report (Result.WriteHTML) is one self-contained
// page with no script and no external reference.
package simulate
