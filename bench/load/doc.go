// Package load is the load generator behind `cpafeed bench`, with the bare
// baseline handler it compares against and the helpers of its wrk check
// (wrkcheck.sh, internal/wrkcheck) and CPU budget (budget.sh).
//
// Run pre-generates a pool of requests from a scenario of package
// bench/market (generation is never on the hot path) and renders each as it
// goes on the wire, then drives a server over HTTP/1.1: a closed loop of
// Concurrency workers, or an open loop at a fixed rate with latency measured
// from the intended send time. Each worker owns one keep-alive connection
// (httpConn): a request is one write, its answer is read into a reused
// buffer and framed by a minimal parser (respParser: status, Content-Length
// or chunked, Connection), with no pipelining; each worker counts into its
// own histograms, merged for the report. On Linux a request and its answer
// take one write and (usually) one read system call. It only ever connects
// to loopback addresses, for a bounded time.
// It never writes raw PII anywhere: the generated identities are synthetic,
// emails are sent hashed.
package load
