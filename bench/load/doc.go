// Package load is the load generator behind `cpafeed bench`, with the bare
// baseline handler it compares against and the helpers of its wrk check
// (wrkcheck.sh, internal/wrkcheck) and CPU budget (budget.sh).
//
// Run pre-generates a pool of requests from a scenario of package
// bench/market (generation is never on the hot path), then drives a server
// over HTTP with fasthttp's HostClient: a closed loop of Concurrency workers,
// or an open loop at a fixed rate with latency measured from the intended
// send time. It only ever connects to loopback addresses, for a bounded time.
// It never writes raw PII anywhere: the generated identities are synthetic,
// emails are sent hashed.
package load
