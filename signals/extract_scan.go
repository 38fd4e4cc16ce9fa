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

// optI64 is an *int64 of openrtb2 (e.g. Video.StartDelay).
type optI64 struct {
	v   int64
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

// scanner holds the body and the nesting depth. Its methods take the index
// of the byte to read (which must exist: value readers are called at the
// first byte of a value) and return the index after what they read, or bad
// (-1) where the body is not valid JSON. next and nextElem pass bad
// through, so a loop over members or elements stops at the first error and
// returns it. Keeping the index in registers rather than in the scanner is
// what makes this fast.
type scanner struct {
	b     []byte
	ex    *Extractor // exposure batches: reads each bid request in place
	depth int        // open arrays and objects
	stack [maxNesting/64 + 1]uint64
	kbuf  [16]byte
	tmp   []byte // unquoted escaped keys
}

const bad = -1

// skipSpace returns the index of the first byte at or after i that is not a
// JSON space (len(b) at the end).
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\n', '\r', '\t':
		default:
			return i
		}
		i++
		// Spaces after it (indentation), eight at a time.
		for i+8 <= len(b) {
			if x := binary.LittleEndian.Uint64(b[i:]) ^ spaces8; x != 0 {
				i += bits.TrailingZeros64(x) >> 3
				break
			}
			i += 8
		}
	}
	return i
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
		if b[i] == '"' { // the usual stop: the end of the string
			return i + 1, esc
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

// open enters the object whose '{' is at b[i]: it returns the index of the
// first key's quote (more) or the index after "}" of an empty object.
func (s *scanner) open(i int) (j int, more bool) {
	s.depth++
	if s.depth > maxNesting {
		return bad, false
	}
	b := s.b
	if i = skipSpace(b, i+1); i >= len(b) {
		return bad, false
	}
	switch b[i] {
	case '"':
		return i, true
	case '}':
		s.depth--
		return i + 1, false
	}
	return bad, false
}

// next follows a member's value ending before b[i]: ',' then the next key's
// quote (more), or '}' (the index after it).
func (s *scanner) next(i int) (j int, more bool) {
	b := s.b
	if i < 0 {
		return bad, false
	}
	if i < len(b) && b[i] > ' ' {
		// no space before the comma (the usual)
	} else if i = skipSpace(b, i); i >= len(b) {
		return bad, false
	}
	switch b[i] {
	case ',':
		if i = skipSpace(b, i+1); i < len(b) && b[i] == '"' {
			return i, true
		}
	case '}':
		s.depth--
		return i + 1, false
	}
	return bad, false
}

// openArr enters the array whose '[' is at b[i]: it returns the index of
// the first element (more) or the index after "]" of an empty array.
func (s *scanner) openArr(i int) (j int, more bool) {
	s.depth++
	if s.depth > maxNesting {
		return bad, false
	}
	b := s.b
	if i = skipSpace(b, i+1); i >= len(b) {
		return bad, false
	}
	if b[i] == ']' {
		s.depth--
		return i + 1, false
	}
	return i, true
}

// nextElem follows an element ending before b[i]: ',' then the next
// element's first byte (more), or ']' (the index after it).
func (s *scanner) nextElem(i int) (j int, more bool) {
	b := s.b
	if i < 0 {
		return bad, false
	}
	if i < len(b) && b[i] > ' ' {
		// no space before the comma (the usual)
	} else if i = skipSpace(b, i); i >= len(b) {
		return bad, false
	}
	switch b[i] {
	case ',':
		if i = skipSpace(b, i+1); i < len(b) {
			return i, true
		}
	case ']':
		s.depth--
		return i + 1, false
	}
	return bad, false
}

// value returns the index of the value after a key's colon at b[i].
func (s *scanner) value(i int) int {
	b := s.b
	if i < len(b) && b[i] == ':' {
		i++ // no space before the colon (the usual)
	} else if i = skipSpace(b, i); i < len(b) && b[i] == ':' {
		i++
	} else {
		return bad
	}
	switch {
	case i < len(b) && b[i] > ' ':
		return i // compact JSON
	case i+1 < len(b) && b[i] == ' ' && b[i+1] > ' ':
		return i + 1 // one space after the colon
	}
	if i = skipSpace(b, i); i >= len(b) {
		return bad
	}
	return i
}

// key reads the key whose quote is at b[i] and its colon. It returns the
// key folded the way encoding/json matches struct fields (fold.go: ASCII
// letters ignore case; U+017F folds to 's' and U+212A to 'k'; no other rune
// folds to ASCII), and the index of the value. Keys that cannot equal a
// field name of ours (non-ASCII after folding, or longer than any) come
// back as "". The key aliases the body or s.kbuf: use it before the next.
func (s *scanner) key(i int) (string, int) {
	end, esc := scanString(s.b, i)
	if end < 0 {
		return "", bad
	}
	j := s.value(end)
	if j < 0 {
		return "", bad
	}
	raw := s.b[i+1 : end-1]
	if esc {
		return s.foldEscaped(raw), j
	}
	n := len(raw)
	if n > len(s.kbuf) || n == 0 {
		return "", j
	}
	// A byte without 0x20 could be upper case (digits and lower-case
	// letters have it): if none, the key is already folded.
	if n <= 8 && i+1+8 <= len(s.b) {
		mask := ^uint64(0)
		if n < 8 {
			mask = 1<<(8*n) - 1
		}
		if ^binary.LittleEndian.Uint64(s.b[i+1:])&(0x20*lsb8)&mask == 0 {
			return unsafe.String(&raw[0], n), j
		}
	} else if n > 8 { // and <= 16: two overlapping words
		if (^binary.LittleEndian.Uint64(raw)|^binary.LittleEndian.Uint64(raw[n-8:]))&(0x20*lsb8) == 0 {
			return unsafe.String(&raw[0], n), j
		}
	}
	for k, c := range raw {
		if 'A' <= c && c <= 'Z' {
			// Fold a copy; keys are almost always lower case already.
			copy(s.kbuf[:], raw)
			for m := k; m < n; m++ {
				if c := raw[m]; 'A' <= c && c <= 'Z' {
					s.kbuf[m] = c + 'a' - 'A'
				}
			}
			return unsafe.String(&s.kbuf[0], n), j
		}
	}
	return unsafe.String(&raw[0], n), j
}

// foldEscaped folds a key with escapes or non-ASCII bytes (see key).
func (s *scanner) foldEscaped(raw []byte) string {
	s.tmp = unquote(s.tmp[:0], raw)
	raw = s.tmp
	n := 0
	for k := 0; k < len(raw); {
		c := raw[k]
		if c < utf8.RuneSelf {
			k++
		} else {
			r, size := utf8.DecodeRune(raw[k:])
			k += size
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
	if n == 0 {
		return ""
	}
	return unsafe.String(&s.kbuf[0], n)
}

// Kinds of value for a struct or slice field (beginObj, beginArr).
const (
	kindOther = iota // skipped: a type error in encoding/json, the field stays
	kindNull         // null
	kindOpen         // an object (beginObj) or array (beginArr) was entered
)

// beginObj starts the value at b[i] of a field that decodes into a struct
// or a pointer to one. For an object it enters it (kindOpen; more is false
// for "{}"); null is kindNull; any other value is skipped (kindOther).
func (s *scanner) beginObj(i int) (j, kind int, more bool) {
	switch s.b[i] {
	case '{':
		j, more = s.open(i)
		return j, kindOpen, more
	case 'n':
		return literalAt(s.b, i, "null"), kindNull, false
	}
	return s.skipValue(i), kindOther, false
}

// beginArr is beginObj for a field that decodes into a slice.
func (s *scanner) beginArr(i int) (j, kind int, more bool) {
	switch s.b[i] {
	case '[':
		j, more = s.openArr(i)
		return j, kindOpen, more
	case 'n':
		return literalAt(s.b, i, "null"), kindNull, false
	}
	return s.skipValue(i), kindOther, false
}

// str reads the value at b[i] into a string field: a string sets it; null
// and values of other types leave it (encoding/json: null is a no-op for
// strings, other types are an UnmarshalTypeError).
func (s *scanner) str(i int, dst *span) int {
	if s.b[i] != '"' {
		return s.skipValue(i)
	}
	end, esc := scanString(s.b, i)
	if end >= 0 {
		*dst = span{off: int32(i + 1), end: int32(end - 1), esc: esc}
	}
	return end
}

// integer reads a number for an integer field of the given bit size. ok is
// false when encoding/json would not set the field: not a number, null, a
// fraction or exponent (3.0, 1e0) or out of range.
func (s *scanner) integer(i int, bits uint) (j int, v int64, ok bool) {
	b := s.b
	if c := b[i]; c != '-' && (c < '0' || c > '9') {
		return s.skipValue(i), 0, false
	}
	end, isInt := scanNumber(b, i)
	if end < 0 || !isInt {
		return end, 0, false
	}
	v, ok = parseInt(b[i:end], bits)
	return end, v, ok
}

func (s *scanner) int8(i int, dst *int8) int {
	j, v, ok := s.integer(i, 8)
	if ok {
		*dst = int8(v)
	}
	return j
}

func (s *scanner) int64(i int, dst *int64) int {
	j, v, ok := s.integer(i, 64)
	if ok {
		*dst = v
	}
	return j
}

// optInt8 reads into an *int8 field. null sets it to nil; any other value
// first allocates the pointer (encoding/json's indirect), so a value of the
// wrong type leaves a new pointer at 0 or an old one unchanged.
func (s *scanner) optInt8(i int, dst *optI8) int {
	if s.b[i] == 'n' {
		j := literalAt(s.b, i, "null")
		if j >= 0 {
			*dst = optI8{}
		}
		return j
	}
	if !dst.set {
		*dst = optI8{set: true}
	}
	j, v, ok := s.integer(i, 8)
	if ok {
		dst.v = int8(v)
	}
	return j
}

// optInt64 is optInt8 for an *int64 field.
func (s *scanner) optInt64(i int, dst *optI64) int {
	if s.b[i] == 'n' {
		j := literalAt(s.b, i, "null")
		if j >= 0 {
			*dst = optI64{}
		}
		return j
	}
	if !dst.set {
		*dst = optI64{set: true}
	}
	j, v, ok := s.integer(i, 64)
	if ok {
		dst.v = v
	}
	return j
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
