// Package shading lowers first-price bids to where they earn the most:
// from the bids a campaign placed and their outcomes (won, lost) it
// estimates the win-rate curve W(b) of each coarse cut of its traffic,
// and a bid worth v is shaded to the b that maximizes the expected surplus
// (v − b)·W(b) (Pan et al., AdKDD 2020: win-rate shading). In a
// second-price auction the winner pays the competition's price, not its
// bid, so bids are never shaded there.
//
// # The curve
//
// W(b) = 1 / (1 + e^−(A + K·ln b)), b in CPM: the logit of the win rate is
// linear in the log bid (a log-logistic distribution of the highest
// competing bid; K = 1 is the b/(c + b) of the reference). Outcomes are
// counted per (campaign, cut) in bins of ln b, decayed by
// 2^(−age/HalfLife); Refit fits (A, K) by penalized maximum likelihood
// (Newton on the binned logistic likelihood): a campaign's curve over all
// its outcomes, with a weak prior, and each cut's curve shrunk toward its
// campaign's by Strength pseudo-outcomes spread over the cut's own bids.
// A campaign with fewer than MinWins wins or MinLosses losses has no
// curve and is not shaded.
//
// The cut is a uint64 key chosen by the caller: cpafeed uses the first
// segment level below the campaign (the publisher in the default chain),
// whose key names the campaign too.
//
// # The shaded bid
//
// Shade(v) solves the first-order condition b = (v − b)·K·(1 − W(b)) on
// (0, v) by safeguarded Newton steps: a few exponentials, no allocation.
//
// # State and durability
//
// A Book changes only through Observe, which the caller runs where
// outcomes are applied in log order (journal record 0x12 of package
// signals); Refit publishes an immutable Curves table by pointer swap.
// WriteSnapshot and ReadSnapshot keep the counts (section shading1); the
// curves are derived and refitted after a start.
//
// # Lifetimes and locking
//
// A *Curves is immutable and safe for concurrent use; its lookups take no
// lock and do not allocate. Book methods are safe for concurrent use (one
// mutex); Refit holds it while copying the counts.
package shading
