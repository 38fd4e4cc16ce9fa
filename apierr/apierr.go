package apierr

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Meta Graph API error codes used on every path (Meta's SDKs read them; other
// clients can switch on them as well).
const (
	CodeInvalidParameter = 100 // bad input
	CodePermission       = 10  // token valid but not allowed for this resource
	CodeNotFound         = 803 // unknown object (campaign, dataset)
	CodeInvalidToken     = 190 // missing or unknown token
	CodeTooMany          = 4   // rate limited / shed
	CodeUnavailable      = 2   // temporarily unavailable (not ready, journal down)
	CodeInternal         = 1   // unknown server error

	// Meta's own subcodes, with the meaning Meta gives them (public
	// answers of graph.facebook.com; see README "Error answers").
	SubcodeUnknownObject   = 33      // GraphMethodException: object does not exist or cannot be loaded
	SubcodeStaleEvent      = 2804003 // event_time too old
	SubcodeMissingCurrency = 2804010 // Purchase without custom_data.currency
	SubcodeTooLittleInfo   = 2804050 // no customer information parameter at all

	// cpafeed's own subcodes (Meta publishes none for these cases).
	SubcodeFutureEvent    = 2804004 // event_time in the future
	SubcodeTooManyEvents  = 2804008 // more than the events allowed in one request
	SubcodeInvalidBatch   = 2804019 // malformed or invalid event batch
	SubcodeUnknownDataset = 2804001 // no dataset named, and the token's advertiser has several
	SubcodeMalformedBody  = 2804002 // body not JSON / form / multipart as expected
	SubcodeMissingValue   = 2804011 // Purchase without custom_data.value
)

// Detail is one problem of a batch: the item's index (-1 when not about an
// item), the JSON path of the field and the reason.
type Detail struct {
	Index  int
	Field  string
	Reason string
}

// Error is an API error, written in Meta's Graph error envelope. The zero
// Subcode is omitted from answers; an empty UserTitle or UserMsg is filled
// in from the code and the message.
type Error struct {
	Status    int    // HTTP status
	Type      string // Meta "type": OAuthException for token problems, else a readable class
	Code      int    // Meta "code"
	Subcode   int    // Meta "error_subcode", 0 = none
	Message   string
	UserTitle string // Meta "error_user_title"; "" = derived from Code
	UserMsg   string // Meta "error_user_msg"; "" = Message
	Details   []Detail
	// Cause is the error behind e, for the server's log only: its text may
	// name files of the server and is never part of an answer.
	Cause error
}

func (e *Error) Error() string { return e.Message }

// New is an error with the given status and Meta code; the type is derived.
func New(status, code int, format string, args ...any) *Error {
	return &Error{Status: status, Type: typeOf(code), Code: code, Message: fmt.Sprintf(format, args...)}
}

// BadRequest is a 400 invalid-parameter error, e.g.
// BadRequest("imp[0].id: missing").
func BadRequest(format string, args ...any) *Error {
	return New(400, CodeInvalidParameter, format, args...)
}

// Unauthorized is a 401 for a missing or unknown token.
func Unauthorized(format string, args ...any) *Error {
	return New(401, CodeInvalidToken, format, args...)
}

// Forbidden is a 403 for a token that may not touch the resource.
func Forbidden(format string, args ...any) *Error {
	return New(403, CodePermission, format, args...)
}

// NotFound is a 404.
func NotFound(format string, args ...any) *Error {
	return New(404, CodeNotFound, format, args...)
}

// Unavailable is a 503: not ready, or the journal cannot persist.
func Unavailable(format string, args ...any) *Error {
	return New(503, CodeUnavailable, format, args...)
}

// WithCause sets e.Cause to err and returns e. When err holds an operating
// system error (a syscall.Errno such as ENOSPC), its text ("no space left on
// device"), which names no file, is appended to the message after ": ".
func (e *Error) WithCause(err error) *Error {
	e.Cause = err
	var errno syscall.Errno
	if errors.As(err, &errno) {
		e.Message += ": " + errno.Error()
	}
	return e
}

// WithSubcode sets the Meta subcode and returns e.
func (e *Error) WithSubcode(sub int) *Error { e.Subcode = sub; return e }

// WithUser sets Meta's error_user_title and error_user_msg and returns e.
func (e *Error) WithUser(title, msg string) *Error { e.UserTitle, e.UserMsg = title, msg; return e }

// Transient reports whether a retry of the same request may succeed
// (Meta's is_transient, which its SDKs read to retry): 429 and 503.
func (e *Error) Transient() bool { return e.Status == 429 || e.Status == 503 }

// UnknownObject is Meta's answer for a pixel (dataset) that does not exist
// or that the token may not use: 400, GraphMethodException, code 100,
// subcode 33. Both cases answer alike, so that no token can tell another
// tenant's dataset ids from made-up ones.
func UnknownObject(method, id string) *Error {
	e := &Error{Status: 400, Type: "GraphMethodException", Code: CodeInvalidParameter, Subcode: SubcodeUnknownObject,
		Message: "Unsupported " + lowerASCII(method) + " request. Object with ID '" + id + "' does not exist, cannot be loaded due to missing permissions, or does not support this operation"}
	e.UserTitle = "Unknown dataset"
	return e
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// userTitle is error_user_title for an Error that sets none.
func (e *Error) userTitle() string {
	if e.UserTitle != "" {
		return e.UserTitle
	}
	switch {
	case e.Status == 401:
		return "Invalid access token"
	case e.Status == 403:
		return "Permission denied"
	case e.Status == 404:
		return "Unknown object"
	case e.Status == 405:
		return "Method not allowed"
	case e.Status == 408:
		return "Request timeout"
	case e.Status == 413:
		return "Request too large"
	case e.Status == 415:
		return "Unsupported body"
	case e.Status == 429:
		return "Too many requests"
	case e.Status == 431:
		return "Request headers too large"
	case e.Status == 503:
		return "Temporarily unavailable"
	case e.Status >= 500:
		return "Internal error"
	}
	return "Invalid parameter"
}

func typeOf(code int) string {
	switch code {
	case CodeInvalidToken, CodePermission, CodeInvalidParameter:
		return "OAuthException" // what Graph answers for these, and what the SDKs expect
	case CodeNotFound:
		return "GraphMethodException"
	case CodeTooMany, CodeUnavailable:
		return "OAuthException"
	default:
		return "InternalError"
	}
}

// As returns err as an *Error, turning any other error into a 500.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return New(500, CodeInternal, "internal error")
}

// AppendJSON appends the answer body for e, Meta's Graph error envelope
// with cpafeed's details[] as its one addition:
//
//	{"error":{"message":...,"type":...,"code":...,"error_subcode":...,
//	  "is_transient":...,"error_user_title":...,"error_user_msg":...,
//	  "fbtrace_id":...,"details":[{"index":...,"field":...,"reason":...}]}}
//
// error_subcode is left out when e has none, details when empty, as Meta
// leaves out what does not apply. traceID is the request id, echoed as
// fbtrace_id as Meta does.
func AppendJSON(dst []byte, e *Error, traceID string) []byte {
	dst = append(dst, `{"error":{"message":`...)
	dst = AppendString(dst, e.Message)
	dst = append(dst, `,"type":`...)
	dst = AppendString(dst, e.Type)
	dst = append(dst, `,"code":`...)
	dst = strconv.AppendInt(dst, int64(e.Code), 10)
	if e.Subcode != 0 {
		dst = append(dst, `,"error_subcode":`...)
		dst = strconv.AppendInt(dst, int64(e.Subcode), 10)
	}
	dst = append(dst, `,"is_transient":`...)
	dst = strconv.AppendBool(dst, e.Transient())
	dst = append(dst, `,"error_user_title":`...)
	dst = AppendString(dst, e.userTitle())
	dst = append(dst, `,"error_user_msg":`...)
	if e.UserMsg != "" {
		dst = AppendString(dst, e.UserMsg)
	} else {
		dst = AppendString(dst, e.Message)
	}
	dst = append(dst, `,"fbtrace_id":`...)
	dst = AppendString(dst, traceID)
	if len(e.Details) > 0 {
		dst = append(dst, `,"details":[`...)
		for i, d := range e.Details {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"index":`...)
			dst = strconv.AppendInt(dst, int64(d.Index), 10)
			dst = append(dst, `,"field":`...)
			dst = AppendString(dst, d.Field)
			dst = append(dst, `,"reason":`...)
			dst = AppendString(dst, d.Reason)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, "}}"...)
}

const hex = "0123456789abcdef"

// AppendString appends s as a JSON string literal: quotes, backslashes
// and control characters escaped, < and > too (safe inside HTML), invalid
// UTF-8 replaced by U+FFFD so the answer stays valid JSON. It is the one JSON
// string writer of every hand-written answer.
func AppendString(dst []byte, s string) []byte {
	return AppendBytes(dst, unsafe.Slice(unsafe.StringData(s), len(s)))
}

// AppendBytes is AppendString of a byte slice.
func AppendBytes(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, "\ufffd"...)
				i++
				start = i
				continue
			}
			i += n
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// traceNonce makes trace ids of different processes differ: the
// microseconds of the process start, modulo 2^32.
var traceNonce = uint32(time.Now().UnixMicro())

// AppendTraceID appends the trace id of request number id (fasthttp's
// RequestCtx.ID, unique within a process), shaped like Meta's fbtrace_id:
// "A", 8 hex digits of the process nonce and 16 of id. Every answer carries
// it as fbtrace_id, success or error, and a 5xx is logged with it.
func AppendTraceID(dst []byte, id uint64) []byte {
	dst = append(dst, 'A')
	dst = appendHex(dst, uint64(traceNonce), 8)
	return appendHex(dst, id, 16)
}

// TraceID is AppendTraceID as a string.
func TraceID(id uint64) string {
	var b [25]byte
	return string(AppendTraceID(b[:0], id))
}

func appendHex(dst []byte, v uint64, digits int) []byte {
	const hex = "0123456789abcdef"
	for i := digits - 1; i >= 0; i-- {
		dst = append(dst, hex[(v>>(4*uint(i)))&0xf])
	}
	return dst
}
