// Package conversions is cpafeed's Conversions API, wire-compatible with
// Meta's: parsing of CAPI bodies and pixel hits, validation with Meta's rules,
// normalization and hashing of user data (the clear value is dropped at once),
// exact deduplication across the CAPI and the pixel, attribution of a stored
// conversion to the exposures that preceded it, and crediting the model.
//
// It never writes raw PII anywhere: a journal record holds keyed hashes only.
package conversions
