// Package bidder answers bid-time questions: from an OpenRTB bid request (or
// extracted features) to per-campaign conversion-rate estimates and a CPA bid
// price, in microseconds and without allocating. It holds the HTTP handlers of
// /v1/score, a Go client of the HTTP API, and an embeddable Scorer that follows
// a server's model snapshot so a bidder can score in process.
package bidder
