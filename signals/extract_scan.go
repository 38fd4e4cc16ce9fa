package signals

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// This file holds the JSON scanner of the Extractor: one pass over the body
// that validates all of it exactly as encoding/json does (same grammar, same
// nesting limit) and hands the values of the few fields we read to the
// extractor. Values are kept as spans of the body and unquoted only at the
// end (see unquote), with encoding/json's rules.

// maxNesting is encoding/json's limit on nested arrays and objects
// (scanner.go, maxNestingDepth); a deeper body is a syntax error there too.
const maxNesting = 10000

// span is a JSON string value in the body: the bytes between the quotes.
// esc is set when unquote must run (escapes, or bytes >= 0x80 that may be
// invalid UTF-8).
type span struct {
	off, end int32
	esc      bool
}

func (sp span) empty() bool { return sp.end <= sp.off }

// optI8 is an *int8 of openrtb2: set is false for a nil pointer.
type optI8 struct {
	v   int8
	set bool
}

// Byte classes inside a JSON string.
const (
	sPlain = iota
	sQuote
	sEscape
	sControl
	sHigh
)

// strClass classifies bytes inside strings; it is never written after init.
var strClass = func() (t [256]uint8) {
	for c := 0; c < 0x20; c++ {
		t[c] = sControl
	}
	t['"'] = sQuote
	t['\\'] = sEscape
	for c := 0x80; c < 0x100; c++ {
		t[c] = sHigh
	}
	return t
}()

type scanner struct {
	b     []byte
	i     int
	depth int
	bad   bool // a syntax error was found; i is len(b) from then on
	stack [maxNesting/64 + 1]uint64
	kbuf  [16]byte
	tmp   []byte // unquoted escaped keys
}

func (s *scanner) fail() {
	s.bad = true
	s.i = len(s.b)
}

func (s *scanner) ws() { s.i = skipSpace(s.b, s.i) }

// skipSpace returns the index of the first byte at or after i that is not a
// JSON space (len(b) at the end).
func skipSpace(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' {
		if i+8 <= len(b) {
			// Find the first byte that is not a JSON space, eight at a
			// time (newline plus indentation is the common run).
			if m := notSpace8(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				return i + bits.TrailingZeros64(m)>>3
			}
			i += 8
			continue
		}
		switch b[i] {
		case ' ', '\n', '\t', '\r':
			i++
			continue
		}
		break
	}
	return i
}

// nonZero8 has the high bit of each byte of t that is not zero (exact per
// byte: no carries cross bytes).
func nonZero8(t uint64) uint64 {
	const low7 = ^uint64(msb8)
	return ((t & low7) + low7 | t) & msb8
}

// notSpace8 has the high bit of each byte of x that is not ' ', '\n', '\t'
// or '\r'.
func notSpace8(x uint64) uint64 {
	return nonZero8(x^spaces8) & nonZero8(x^('\n'*lsb8)) & nonZero8(x^('\t'*lsb8)) & nonZero8(x^('\r'*lsb8))
}

// SWAR constants: eight bytes at a time.
const (
	lsb8    = 0x0101010101010101
	msb8    = 0x8080808080808080
	spaces8 = 0x20 * lsb8
)

// special8 is non-zero when one of the eight bytes of x ends or escapes a
// JSON string or needs unquote: '"', '\\', a control character (< 0x20) or a
// byte >= 0x80.
func special8(x uint64) uint64 {
	q := x ^ ('"' * lsb8)
	bs := x ^ ('\\' * lsb8)
	return ((q-lsb8)&^q | (bs-lsb8)&^bs | (x-0x20*lsb8)&^x | x) & msb8
}

// peek returns the next non-space byte (0 at the end).
func (s *scanner) peek() byte {
	if i := uint(s.i); i < uint(len(s.b)) {
		if c := s.b[i]; c > ' ' {
			return c // inlined fast path: no space to skip
		}
	}
	return s.peekSpace()
}

// peekSpace is peek past spaces; kept out of line so that peek inlines.
//
//go:noinline
func (s *scanner) peekSpace() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str scans the string at s.i (which is '"').
func (s *scanner) str() span {
	end, esc := scanString(s.b, s.i)
	if end < 0 {
		s.fail()
		return span{}
	}
	sp := span{off: int32(s.i + 1), end: int32(end - 1), esc: esc}
	s.i = end
	return sp
}

// scanString validates the string whose opening quote is at b[i] and
// returns the index after its closing quote (-1 when it is not valid JSON).
// esc is set when it has escapes or bytes >= 0x80.
func scanString(b []byte, i int) (end int, esc bool) {
	i++
	for {
		// Skip to the next byte that is not plain ASCII, eight at a time.
		// The lowest flagged byte of special8 is exact (borrows only
		// flag bytes above a real match).
		for i+8 <= len(b) {
			if m := special8(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			return -1, esc
		}
		switch strClass[b[i]] {
		case sPlain:
			i++
		case sQuote:
			return i + 1, esc
		case sHigh:
			esc = true
			i++
		case sEscape:
			esc = true
			if i+1 >= len(b) {
				return -1, esc
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return -1, esc
				}
				i += 6
			default:
				return -1, esc
			}
		default: // control character
			return -1, esc
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// num scans the number at s.i (which is '-' or a digit) with JSON's grammar.
// isInt is false when it has a fraction or an exponent.
func (s *scanner) num() (start, end int, isInt bool) {
	start = s.i
	end, isInt = scanNumber(s.b, start)
	if end < 0 {
		s.fail()
		return start, start, false
	}
	s.i = end
	return start, end, isInt
}

// scanNumber validates the number at b[i] (JSON grammar) and returns the
// index after it (-1 when invalid).
func scanNumber(b []byte, i int) (end int, isInt bool) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return -1, false
	}
	switch c := b[i]; {
	case c == '0':
		i++
	case '1' <= c && c <= '9':
		i++
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return -1, false
	}
	isInt = true
	if i < len(b) && b[i] == '.' {
		isInt = false
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return -1, false
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		isInt = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return -1, false
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	return i, isInt
}

// literal consumes true, false or null at s.i.
func (s *scanner) literal(word string) {
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return
	}
	s.fail()
}

// skip validates and skips one value.
func (s *scanner) skip() {
	s.ws()
	end := s.skipValue(s.i)
	if end < 0 {
		s.fail()
		return
	}
	s.i = end
}

// skipValue validates the value at b[i] (no space before it) and returns
// the index after it, -1 when it is not valid JSON. Nested arrays and
// objects are walked with an explicit stack (s.stack, one bit per level:
// 1 object, 0 array), counting against the nesting limit.
func (s *scanner) skipValue(i int) int {
	b := s.b
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; c {
	case '"':
		end, _ := scanString(b, i)
		return end
	case '{', '[':
	case 't':
		return literalAt(b, i, "true")
	case 'f':
		return literalAt(b, i, "false")
	case 'n':
		return literalAt(b, i, "null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			end, _ := scanNumber(b, i)
			return end
		}
		return -1
	}
	base := s.depth
	depth := base
	for {
		// b[i] opens an object or an array.
		depth++
		if depth > maxNesting {
			return -1
		}
		obj := b[i] == '{'
		if obj {
			s.stack[depth>>6] |= 1 << (depth & 63)
		} else {
			s.stack[depth>>6] &^= 1 << (depth & 63)
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return -1
		}
		if b[i] == '}' && obj || b[i] == ']' && !obj {
			i++
			depth--
			goto afterValue
		}
	member:
		if obj {
			if b[i] != '"' {
				return -1
			}
			if i, _ = scanString(b, i); i < 0 {
				return -1
			}
			if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
				return -1
			}
			if i = skipSpace(b, i+1); i >= len(b) {
				return -1
			}
		}
		switch c := b[i]; c {
		case '{', '[':
			continue
		case '"':
			i, _ = scanString(b, i)
		case 't':
			i = literalAt(b, i, "true")
		case 'f':
			i = literalAt(b, i, "false")
		case 'n':
			i = literalAt(b, i, "null")
		default:
			if c == '-' || '0' <= c && c <= '9' {
				i, _ = scanNumber(b, i)
			} else {
				return -1
			}
		}
		if i < 0 {
			return -1
		}
	afterValue:
		for depth > base {
			if i = skipSpace(b, i); i >= len(b) {
				return -1
			}
			obj = s.stack[depth>>6]&(1<<(depth&63)) != 0 // the enclosing container
			switch b[i] {
			case ',':
				if i = skipSpace(b, i+1); i >= len(b) {
					return -1
				}
				goto member
			case '}':
				if !obj {
					return -1
				}
			case ']':
				if obj {
					return -1
				}
			default:
				return -1
			}
			i++
			depth--
		}
		return i
	}
}

// literalAt checks the literal word at b[i] and returns the index after it.
func literalAt(b []byte, i int, word string) int {
	if len(b)-i >= len(word) && string(b[i:i+len(word)]) == word {
		return i + len(word)
	}
	return -1
}

// enter consumes '{' or '[' and counts the nesting.
func (s *scanner) enter() bool {
	s.depth++
	if s.depth > maxNesting {
		s.fail()
		return false
	}
	s.i++
	return true
}

// objFirst is called after '{': it reports whether a key follows (false
// after consuming '}' of an empty object).
func (s *scanner) objFirst() bool {
	switch s.peek() {
	case '}':
		s.i++
		s.depth--
		return false
	case '"':
		return true
	}
	s.fail()
	return false
}

// objNext consumes ',' (true: a key follows) or '}' (false).
func (s *scanner) objNext() bool {
	switch s.peek() {
	case ',':
		s.i++
		if s.peek() == '"' {
			return true
		}
	case '}':
		s.i++
		s.depth--
		return false
	}
	s.fail()
	return false
}

func (s *scanner) arrFirst() bool {
	if s.peek() == ']' {
		s.i++
		s.depth--
		return false
	}
	return !s.bad
}

func (s *scanner) arrNext() bool {
	switch s.peek() {
	case ',':
		s.i++
		return true
	case ']':
		s.i++
		s.depth--
		return false
	}
	s.fail()
	return false
}

// colon consumes the ':' after a key.
func (s *scanner) colon() {
	if s.peek() == ':' {
		s.i++
		return
	}
	s.fail()
}

// keySkip scans a key we do not look at, and its colon.
func (s *scanner) keySkip() {
	s.str()
	s.colon()
}

// key scans a key and its colon and returns it folded the way encoding/json
// matches struct fields (fold.go: ASCII letters ignore case; U+017F folds to
// 's' and U+212A to 'k'; no other rune folds to ASCII). Keys that cannot
// equal a field name of ours (non-ASCII after folding, or longer than any)
// return "". The result aliases the body or s.kbuf: use it before the next
// key.
func (s *scanner) key() string {
	sp := s.str()
	s.colon()
	if s.bad {
		return ""
	}
	raw := s.b[sp.off:sp.end]
	if sp.esc {
		s.tmp = unquote(s.tmp[:0], raw)
		raw = s.tmp
		n := 0
		for i := 0; i < len(raw); {
			c := raw[i]
			if c < utf8.RuneSelf {
				i++
			} else {
				r, size := utf8.DecodeRune(raw[i:])
				i += size
				switch r {
				case 0x17F:
					c = 's'
				case 0x212A:
					c = 'k'
				default:
					return ""
				}
			}
			if n == len(s.kbuf) {
				return ""
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			s.kbuf[n] = c
			n++
		}
		return unsafe.String(&s.kbuf[0], n)
	}
	if len(raw) > len(s.kbuf) || len(raw) == 0 {
		return ""
	}
	for i, c := range raw {
		if 'A' <= c && c <= 'Z' {
			// Fold a copy; keys are almost always lower case already.
			copy(s.kbuf[:], raw)
			for j := i; j < len(raw); j++ {
				if c := raw[j]; 'A' <= c && c <= 'Z' {
					s.kbuf[j] = c + 'a' - 'A'
				}
			}
			return unsafe.String(&s.kbuf[0], len(raw))
		}
	}
	return unsafe.String(&raw[0], len(raw))
}

// beginObject starts a value that decodes into a struct (or pointer to one):
// for '{' it enters the object and returns obj=true (more=false for "{}");
// for null it returns null=true; any other value is skipped (a type error in
// encoding/json, which leaves the struct as it was).
func (s *scanner) beginObject() (obj, more, null bool) {
	switch s.peek() {
	case '{':
		if !s.enter() {
			return false, false, false
		}
		return true, s.objFirst(), false
	case 'n':
		s.literal("null")
		return false, false, !s.bad
	}
	s.skip()
	return false, false, false
}

// strVal reads a value into a string field: a string sets it; null and
// values of other types leave it (encoding/json: null is a no-op for
// strings, other types are an UnmarshalTypeError).
func (s *scanner) strVal(dst *span) {
	if s.peek() == '"' {
		*dst = s.str()
		return
	}
	s.skip()
}

// intVal reads a number for an integer field of the given bit size. ok is
// false when encoding/json would not set the field: not a number, null, a
// fraction or exponent (3.0, 1e0) or out of range.
func (s *scanner) intVal(bits uint) (v int64, ok bool) {
	c := s.peek()
	if c != '-' && (c < '0' || c > '9') {
		s.skip()
		return 0, false
	}
	start, end, isInt := s.num()
	if s.bad || !isInt {
		return 0, false
	}
	return parseInt(s.b[start:end], bits)
}

// parseInt parses a JSON integer literal like strconv.ParseInt(s, 10, 64)
// followed by reflect's OverflowInt for the given size.
func parseInt(b []byte, bits uint) (int64, bool) {
	neg := false
	if b[0] == '-' {
		neg = true
		b = b[1:]
	}
	var u uint64
	const cutoff = 1<<63/10 + 1
	for _, c := range b {
		if u >= cutoff {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	lim := uint64(1) << (bits - 1) // magnitude of the minimum
	if neg {
		if u > lim {
			return 0, false
		}
		return -int64(u-1) - 1, true
	}
	if u >= lim {
		return 0, false
	}
	return int64(u), true
}

func (s *scanner) int8Val(dst *int8) {
	if v, ok := s.intVal(8); ok {
		*dst = int8(v)
	}
}

func (s *scanner) int64Val(dst *int64) {
	if v, ok := s.intVal(64); ok {
		*dst = v
	}
}

// optInt8Val reads into an *int8 field. null sets it to nil; any other value
// first allocates the pointer (encoding/json's indirect), so a value of the
// wrong type leaves a new pointer at 0 or an old one unchanged.
func (s *scanner) optInt8Val(dst *optI8) {
	if s.peek() == 'n' {
		s.literal("null")
		*dst = optI8{}
		return
	}
	if !dst.set {
		*dst = optI8{set: true}
	}
	if v, ok := s.intVal(8); ok {
		dst.v = int8(v)
	}
}

// unquote appends the string value of the raw string content b (valid JSON,
// without its quotes) to dst with encoding/json's rules (decode.go,
// unquoteBytes): escapes decoded, a \u surrogate not followed by its pair
// and every byte of invalid UTF-8 become U+FFFD.
func unquote(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\\':
			switch b[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(b[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(b) && b[i] == '\\' && b[i+1] == 'u' {
						if dec := utf16.DecodeRune(r, hex4(b[i+2:])); dec != utf8.RuneError {
							i += 6
							dst = utf8.AppendRune(dst, dec)
							continue
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, b[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			dst = utf8.AppendRune(dst, r)
			i += size
		}
	}
	return dst
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r*16 + rune(c)
	}
	return r
}
