package signals

import (
	"strconv"
	"unsafe"
)

// exposureFields are the members of one exposure object, read with the bid
// request scanner in one pass over the body: scalars decoded, the bid
// request and the small objects kept as raw JSON (the request goes straight
// to the Extractor, without being parsed twice).
type exposureFields struct {
	campaign, impID, requestID []byte
	ts, price                  float64
	hasTS, hasPrice            bool
	badTS, badPrice, badString bool
	// ghost, bid_cpm and win_prob of a ghost exposure.
	ghost, badGhost        bool
	bid, winProb           float64
	hasBid, hasWinProb     bool
	badBid, badWinProb     bool
	badField               string // the first member of the wrong type
	request                bool   // a bid request object was read into the Extractor
	notObject              bool   // "request" is not an object
	features, ids, privacy []byte // raw JSON values; nil when absent or null
}

// exposureBatch walks a POST /v1/exposures body, {"exposures": [...]} (other
// top-level members are ignored), and calls fn for every element: the
// element index and, for an object, its fields (nil for any other value).
// It returns the number of elements, or -1 with the byte offset of the
// first syntax error.
func exposureBatch(body []byte, ex *Extractor, fn func(i int, f *exposureFields)) (n int, errAt int) {
	s := &scanner{b: body, ex: ex}
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return -1, i
	}
	found := false
	i, more := s.open(i)
	for more {
		var k string
		k, i = s.key(i)
		if i < 0 {
			return -1, 0
		}
		if k == "exposures" && body[i] == '[' {
			found = true
			var more bool
			i, more = s.openArr(i)
			for more {
				i = s.element(i, n, fn)
				n++
				i, more = s.nextElem(i)
			}
		} else {
			i = s.skipValue(i)
		}
		i, more = s.next(i)
	}
	if i < 0 {
		return -1, 0
	}
	if i = skipSpace(body, i); i != len(body) {
		return -1, i
	}
	if !found {
		return 0, -1
	}
	return n, -1
}

// exposureLine reads one NDJSON line holding one exposure object.
func exposureLine(line []byte, idx int, ex *Extractor, fn func(i int, f *exposureFields)) (errAt int) {
	s := &scanner{b: line, ex: ex}
	i := skipSpace(line, 0)
	if i >= len(line) {
		return i
	}
	if i = s.element(i, idx, fn); i < 0 {
		return 0
	}
	if i = skipSpace(line, i); i != len(line) {
		return i
	}
	return -1
}

// element reads the array element at b[i].
func (s *scanner) element(i, idx int, fn func(int, *exposureFields)) int {
	if s.b[i] != '{' {
		i = s.skipValue(i)
		if i >= 0 {
			fn(idx, nil)
		}
		return i
	}
	var f exposureFields
	i = s.exposure(i, &f)
	if i >= 0 {
		fn(idx, &f)
	}
	return i
}

// exposure reads the exposure object at b[i] into f.
func (s *scanner) exposure(i int, f *exposureFields) int {
	b := s.b
	i, more := s.open(i)
	for more {
		var k string
		k, i = s.key(i)
		if i < 0 {
			return bad
		}
		switch k {
		case "campaign":
			i = s.field(i, &f.campaign, f, "campaign")
		case "imp_id":
			i = s.field(i, &f.impID, f, "imp_id")
		case "request_id":
			i = s.field(i, &f.requestID, f, "request_id")
		case "ts":
			i = s.number(i, &f.ts, &f.hasTS, &f.badTS)
		case "price_cpm":
			i = s.number(i, &f.price, &f.hasPrice, &f.badPrice)
		case "ghost":
			switch b[i] {
			case 't':
				i, f.ghost = literalAt(b, i, "true"), true
			case 'f':
				i, f.ghost = literalAt(b, i, "false"), false
			case 'n':
				i = literalAt(b, i, "null")
			default:
				f.badGhost = true
				i = s.skipValue(i)
			}
		case "bid_cpm":
			i = s.number(i, &f.bid, &f.hasBid, &f.badBid)
		case "win_prob":
			i = s.number(i, &f.winProb, &f.hasWinProb, &f.badWinProb)
		case "request":
			// Parsed in place by the Extractor (one pass over the bytes);
			// finish builds it once the exposure's ts is known.
			switch b[i] {
			case '{':
				if i = s.ex.parseAt(b, i); i >= 0 {
					f.request, f.notObject = true, false
				}
			case 'n':
				i = literalAt(b, i, "null")
			default:
				f.notObject = true
				i = s.skipValue(i)
			}
		case "features":
			i = s.raw(i, &f.features)
		case "ids":
			i = s.raw(i, &f.ids)
		case "privacy":
			i = s.raw(i, &f.privacy)
		default:
			i = s.skipValue(i)
		}
		if i < 0 {
			return bad
		}
		i, more = s.next(i)
	}
	return i
}

// field reads a string member; another type sets badString.
func (s *scanner) field(i int, dst *[]byte, f *exposureFields, name string) int {
	b := s.b
	switch b[i] {
	case '"':
		end, esc := scanString(b, i)
		if end < 0 {
			return bad
		}
		raw := b[i+1 : end-1]
		if esc {
			raw = unquote(nil, raw)
		}
		*dst = raw
		return end
	case 'n':
		return literalAt(b, i, "null")
	}
	if !f.badString {
		f.badString, f.badField = true, name
	}
	return s.skipValue(i)
}

// number reads a numeric member; another type sets its bad flag.
func (s *scanner) number(i int, dst *float64, has, badType *bool) int {
	b := s.b
	c := b[i]
	if c == '-' || ('0' <= c && c <= '9') {
		end, _ := scanNumber(b, i)
		if end < 0 {
			return bad
		}
		v, err := strconv.ParseFloat(unsafe.String(&b[i], end-i), 64)
		*dst, *has, *badType = v, true, err != nil
		return end
	}
	if c == 'n' {
		return literalAt(b, i, "null")
	}
	*badType = true
	return s.skipValue(i)
}

// raw keeps the raw JSON of a member (nil for null).
func (s *scanner) raw(i int, dst *[]byte) int {
	end := s.skipValue(i)
	if end < 0 {
		return bad
	}
	if v := s.b[i:end]; string(v) != "null" {
		*dst = v
	}
	return end
}
