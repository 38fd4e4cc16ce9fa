package signals

import "unicode/utf8"

// Reasons BadText gives.
const (
	ReasonControl = "contains control characters"
	ReasonNotUTF8 = "not UTF-8"
)

// BadText is why s cannot be a name, an id or a label that cpafeed stores
// or derives a key from: a control character (below 0x20, or DEL; JSON
// parsers other than the bid request scanner let raw ones through, and an
// escape such as \u0001 makes one) or bytes that are not UTF-8 (which
// would be stored as they are and never equal the same value read by a
// JSON decoder, which replaces them with U+FFFD). "" when s is fine. It
// does not allocate: one pass over the ASCII prefix, utf8.Valid from the
// first other byte on.
func BadText(s []byte) string {
	for i, c := range s {
		switch {
		case c < 0x20 || c == 0x7f:
			return ReasonControl
		case c >= utf8.RuneSelf:
			for _, c := range s[i:] {
				if c < 0x20 || c == 0x7f {
					return ReasonControl
				}
			}
			if !utf8.Valid(s[i:]) {
				return ReasonNotUTF8
			}
			return ""
		}
	}
	return ""
}
