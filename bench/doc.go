// Package bench is cpafeed's synthetic CTV market and its load and bidding
// tools: a deterministic generator of bid requests, exposures, VAST events and
// Meta-format conversion batches from a scenario file; the load generator
// behind `cpafeed bench`; and the strategy simulation behind `cpafeed simulate`.
package bench
