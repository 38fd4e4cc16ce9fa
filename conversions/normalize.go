package conversions

import (
	"crypto/sha256"
	"errors"
	"unicode"
	"unicode/utf8"
)

// A user_data field that Meta wants hashed with SHA-256 after normalization.
type field uint8

const (
	fieldNone field = iota
	fieldEmail
	fieldPhone
	fieldFirstName
	fieldLastName
	fieldGender
	fieldBirthDate
	fieldCity
	fieldState
	fieldZip
	fieldCountry
	fieldExternalID
	numFields
)

var fieldNames = [numFields]string{"", "em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"}

func parseField(name []byte) field {
	switch string(name) {
	case "em":
		return fieldEmail
	case "ph":
		return fieldPhone
	case "fn":
		return fieldFirstName
	case "ln":
		return fieldLastName
	case "ge":
		return fieldGender
	case "db":
		return fieldBirthDate
	case "ct":
		return fieldCity
	case "st":
		return fieldState
	case "zp":
		return fieldZip
	case "country":
		return fieldCountry
	case "external_id":
		return fieldExternalID
	}
	return fieldNone
}

// ErrNoValue is returned by HashUserData for a value that normalizes to
// nothing (blank, an unknown gender, a zip shorter than 2): Meta's SDKs drop
// such values silently.
var ErrNoValue = errors.New("value normalizes to nothing")

// HashUserData appends to dst what Meta expects in user_data.<field>: the lower
// case hex SHA-256 of value normalized with Meta's rules, or value itself
// (trimmed, lower-cased) when it already is a SHA-256 hex digest. field is one
// of em ph fn ln ge db ct st zp country external_id. It is the function the
// ingest path applies to clear values, exported so that clients, tests and
// load generators hash exactly as cpafeed does.
func HashUserData(dst []byte, fieldName string, value []byte) ([]byte, error) {
	f := parseField([]byte(fieldName))
	if f == fieldNone {
		return dst, errors.New("unknown user_data field " + fieldName)
	}
	var scratch [128]byte
	norm, reason, ok := normalizeUserData(scratch[:0], f, value)
	switch {
	case ok && isSHA256Hex(norm):
		return append(dst, norm...), nil
	case ok:
		return appendSHA256Hex(dst, norm), nil
	case reason != "":
		return dst, errors.New(reason)
	}
	return dst, ErrNoValue
}

// normalizeUserData appends the normalized form of v to dst with Meta's rules
// for f (section (c) of the CAPI reference; the rules of Meta's Node SDK
// ServerSideUtils, digits-only for phones as Meta's docs ask). A value that
// already is a SHA-256 hex digest (any case) is appended lower-cased and
// passes through. ok false with an empty reason means "drop silently" (as the
// SDKs do); with a reason, the value is invalid. reason never quotes v.
func normalizeUserData(dst []byte, f field, v []byte) (out []byte, reason string, ok bool) {
	v = trimSpace(v)
	if len(v) == 0 {
		return dst, "", false
	}
	start := len(dst)
	if isSHA256Hex(v) {
		return appendLower(dst, v), "", true
	}
	switch f {
	case fieldEmail:
		dst = appendLower(dst, v)
		if !looksLikeEmail(dst[start:]) {
			return dst[:start], "not an email address or a SHA-256 hex digest", false
		}
	case fieldPhone:
		dst = appendPhone(dst, v)
		if n := len(dst) - start; n < 7 || n > 15 {
			return dst[:start], "not a phone number with country code (7 to 15 digits) or a SHA-256 hex digest", false
		}
	case fieldGender:
		var letters [8]byte
		n := 0
		for _, c := range v {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if 'a' <= c && c <= 'z' {
				if n == len(letters) {
					return dst, "", false
				}
				letters[n] = c
				n++
			}
		}
		switch string(letters[:n]) {
		case "f", "female":
			dst = append(dst, 'f')
		case "m", "male":
			dst = append(dst, 'm')
		default:
			return dst, "", false
		}
	case fieldBirthDate:
		for _, c := range v {
			switch {
			case '0' <= c && c <= '9':
				dst = append(dst, c)
			case c == '-' || c == '/' || c == '.' || c == ' ':
			default:
				return dst[:start], "not a date of birth YYYYMMDD", false
			}
		}
		d := dst[start:]
		if len(d) != 8 || !validYMD(d) {
			return dst[:start], "not a date of birth YYYYMMDD", false
		}
	case fieldCity, fieldState:
		lower := appendLower(dst, v)
		dst = lower[:start]
		for _, c := range lower[start:] { // in place: the output never outruns the input
			if ('0' <= c && c <= '9') || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '(' || c == ')' || c == '.' || c == '-' {
				continue
			}
			dst = append(dst, c)
		}
		if len(dst) == start {
			return dst, "", false
		}
	case fieldZip:
		for _, c := range v {
			if c == '-' {
				break
			}
			if c == ' ' || c == '\t' {
				continue
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
		}
		if len(dst)-start < 2 {
			return dst[:start], "", false
		}
	case fieldCountry:
		dst = appendLower(dst, v)
		if !isCountry(dst[start:]) {
			return dst[:start], "not an ISO 3166-1 alpha-2 country code", false
		}
	default: // fn, ln, external_id: trimmed and lower-cased
		dst = appendLower(dst, v)
	}
	return dst, "", true
}

// appendPhone appends the digits of v, without the international prefix
// ("+" or up to two zeros) when what follows looks like a full international
// number, as Meta's SDK does.
func appendPhone(dst, v []byte) []byte {
	start := len(dst)
	for _, c := range v {
		if '0' <= c && c <= '9' {
			dst = append(dst, c)
		}
	}
	d := dst[start:]
	z := 0
	for z < 2 && z < len(d) && d[z] == '0' {
		z++
	}
	rest := d[z:]
	if z > 0 && len(rest) > 0 && rest[0] != '0' && ((rest[0] == '1' && len(rest) == 11) || (rest[0] != '1' && len(rest) >= 7)) {
		n := copy(d, rest)
		dst = dst[:start+n]
	}
	return dst
}

func validYMD(d []byte) bool {
	y := int(d[0]-'0')*1000 + int(d[1]-'0')*100 + int(d[2]-'0')*10 + int(d[3]-'0')
	m := int(d[4]-'0')*10 + int(d[5]-'0')
	day := int(d[6]-'0')*10 + int(d[7]-'0')
	return y >= 1800 && y <= 2200 && m >= 1 && m <= 12 && day >= 1 && day <= 31
}

// looksLikeEmail is a lenient check (Meta's SDK uses an RFC 2822
// approximation): one '@', a non-empty local part, a dotted domain, no spaces
// or separators.
func looksLikeEmail(s []byte) bool {
	at := -1
	for i, c := range s {
		switch {
		case c == '@':
			if at >= 0 {
				return false
			}
			at = i
		case c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == ',' || c == ';' || c == ':' || c == '(' || c == ')' || c == '[' || c == ']' || c == '\\' || c == '"':
			return false
		}
	}
	if at < 1 || at > len(s)-4 {
		return false
	}
	dom := s[at+1:]
	if dom[0] == '.' || dom[0] == '-' || dom[len(dom)-1] == '.' || dom[len(dom)-1] == '-' {
		return false
	}
	dot := false
	for i, c := range dom {
		if c == '.' {
			if dom[i-1] == '.' {
				return false
			}
			dot = true
		}
	}
	return dot
}

// hexLower maps a hex digit (any case) to its lower-case form and any other
// byte to 0.
var hexLower = func() (t [256]byte) {
	for _, c := range "0123456789abcdef" {
		t[c] = byte(c)
	}
	for _, c := range "ABCDEF" {
		t[c] = byte(c) + 'a' - 'A'
	}
	return t
}()

func isSHA256Hex(b []byte) bool {
	if len(b) != 64 {
		return false
	}
	for _, c := range b {
		if hexLower[c] == 0 {
			return false
		}
	}
	return true
}

// lowerSHA256Hex writes b lower-cased into dst if b is a SHA-256 hex digest
// (64 hex digits, any case).
func lowerSHA256Hex(dst *[64]byte, b []byte) bool {
	if len(b) != 64 {
		return false
	}
	for i, c := range b {
		l := hexLower[c]
		if l == 0 {
			return false
		}
		dst[i] = l
	}
	return true
}

const hexDigits = "0123456789abcdef"

func appendSHA256Hex(dst, v []byte) []byte {
	sum := sha256.Sum256(v)
	for _, c := range sum {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}

// appendLower appends s lower-cased (Unicode-aware, as JavaScript's
// toLowerCase that Meta's SDK applies; invalid UTF-8 passes byte for byte).
func appendLower(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, c)
		} else {
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
		}
		i += n
	}
	return dst
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
