// Package apierr is the one error shape of cpafeed's public API: an HTTP
// status, Meta-compatible type/code/subcode, a message that starts with what
// was wrong, and per-item details naming the JSON path of each problem.
//
// Domain packages return *Error from their handlers; package server writes it.
// It imports nothing of cpafeed and keeps no state.
package apierr
