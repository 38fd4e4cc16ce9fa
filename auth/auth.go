// Package auth holds the one parser of the credentials a request carries:
// the token of an "Authorization: Bearer <token>" header (Bearer). It
// resolves nothing and keeps no state: the server's tenant table turns a
// token into a caller (server/tenants.go), once per request, before any
// handler runs; handlers receive the resolved caller, never a token.
//
// The bytes Bearer returns alias its argument: valid as long as the header
// is (for fasthttp, until the handler returns).
package auth

// Bearer returns the token of an Authorization header's value
// "Bearer <token>", or nil when the value is not one. The scheme is matched
// in any case (RFC 7235 §2.1: "bearer", "BEARER"); spaces and tabs around
// the value and between the scheme and the token are tolerated. It does
// not allocate.
func Bearer(h []byte) []byte {
	h = trim(h)
	const scheme = "bearer"
	if len(h) <= len(scheme) || (h[len(scheme)] != ' ' && h[len(scheme)] != '\t') {
		return nil
	}
	for i := 0; i < len(scheme); i++ {
		if h[i]|0x20 != scheme[i] { // ASCII letters only: scheme is lower case
			return nil
		}
	}
	return trim(h[len(scheme):])
}

func trim(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
