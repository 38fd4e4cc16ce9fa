// Package model owns cpafeed's estimates: segment keys, per-segment statistics
// (exposures, attributed conversions, video starts and completes, spend) with
// lazy exponential decay and delay correction, the hierarchical empirical-Bayes
// conversion-rate estimate of every segment node, and snapshots of that state.
//
// It never does I/O, never reads a clock (every time is passed in as Unix
// seconds) and knows nothing of HTTP or OpenRTB. It imports nothing of cpafeed.
//
// Lifetime: an *Estimates handed out by Model.Estimates is immutable and stays
// valid for as long as the caller holds it; a newer one replaces it by pointer
// swap, never by mutation.
package model
