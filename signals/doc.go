// Package signals reads the bidder's world: OpenRTB 2.5/2.6 bid requests into
// features, segment keys and identity keys (without decoding the whole
// request), the exposures a bidder reports (POST /v1/exposures, win notices,
// VAST beacons), the privacy gates an exposure passes before it may be matched
// to a person, and the exposure index (identity key -> recent exposures).
//
// Win notices and VAST beacons carry no token: they book only what the
// bidder that remembered the bid may book (Bidders), signed when that
// bidder has a win secret (WinSigner).
//
// Identity keys are keyed hashes (HMAC-SHA-256, truncated to 64 bits); no raw
// device id or IP is kept past the call that read it.
//
// Lifetime: the byte slices of a Request returned by an Extractor point into
// the Extractor's buffers and are valid until its next Extract call.
package signals
