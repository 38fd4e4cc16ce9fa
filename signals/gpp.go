package signals

import (
	"errors"
	"math/bits"
	"strings"
)

// GPP section ids (IAB GPP "Section Information"), the ones cpafeed names.
const (
	GPPSectionTCFEU = 2
	GPPSectionUSP   = 6
	GPPSectionUSNat = 7
)

// gppMaxSectionID bounds the ids a header may list (today's highest is in
// the twenties).
const gppMaxSectionID = 127

// GPP is a decoded GPP string header: which sections it carries, and the
// encoded sections in header order. It holds the string it was decoded
// from and does not allocate.
type GPP struct {
	ids      [2]uint64 // bit id set: section id present
	sections string    // everything after the header's '~'
}

var (
	errGPPEmpty    = errors.New("gpp: empty string")
	errGPPBase64   = errors.New("gpp: header is not base64url")
	errGPPHeader   = errors.New("gpp: not a GPP v1 header")
	errGPPRange    = errors.New("gpp: bad section id range")
	errGPPSections = errors.New("gpp: number of sections does not match the header")
	errUSNat       = errors.New("gpp: usnat section too short or of an unknown version")
)

// DecodeGPP reads the header of a GPP string: type 3, version 1, then the
// section ids as a Fibonacci-coded integer range. The number of '~'
// separated sections must match the ids.
func DecodeGPP(s string) (GPP, error) {
	var g GPP
	if s == "" {
		return g, errGPPEmpty
	}
	header := s
	if i := strings.IndexByte(s, '~'); i >= 0 {
		header, g.sections = s[:i], s[i+1:]
	}
	b := bitString(header)
	if !b.valid() {
		return g, errGPPBase64
	}
	if b.bits() < 24 || b.read(0, 6) != 3 || b.read(6, 6) != 1 {
		return g, errGPPHeader
	}
	n := int(b.read(12, 12))
	pos, last := 24, 0
	for i := 0; i < n; i++ {
		if pos >= b.bits() {
			return g, errGPPRange
		}
		isRange := b.read(pos, 1) == 1
		pos++
		d, next, ok := b.fibonacci(pos)
		if !ok {
			return g, errGPPRange
		}
		pos = next
		start := last + d
		end := start
		if isRange {
			d, next, ok := b.fibonacci(pos)
			if !ok {
				return g, errGPPRange
			}
			pos = next
			end = start + d
		}
		if end > gppMaxSectionID {
			return g, errGPPRange
		}
		for id := start; id <= end; id++ {
			g.ids[id/64] |= 1 << (id % 64)
		}
		last = end
	}
	count := bits.OnesCount64(g.ids[0]) + bits.OnesCount64(g.ids[1])
	parts := 0
	if g.sections != "" || strings.IndexByte(s, '~') >= 0 {
		parts = strings.Count(g.sections, "~") + 1
	}
	if parts != count {
		return g, errGPPSections
	}
	return g, nil
}

// fibonacci reads a Fibonacci-coded integer (>= 1) at bit pos: bits of
// weights 1, 2, 3, 5, 8, ... ending with two consecutive ones.
func (b bitString) fibonacci(pos int) (v, next int, ok bool) {
	f1, f2 := 1, 2 // weight of this bit, of the next
	prev := uint64(0)
	for p := pos; p < b.bits(); p++ {
		bit := b.read(p, 1)
		if bit == 1 && prev == 1 {
			return v, p + 1, true
		}
		if bit == 1 {
			v += f1
		}
		prev = bit
		f1, f2 = f2, f1+f2
		if f1 > 1<<20 { // weights past any section id (and before they overflow)
			return 0, 0, false
		}
	}
	return 0, 0, false
}

// HasSection reports whether the header lists section id.
func (g GPP) HasSection(id int) bool {
	return id >= 0 && id <= gppMaxSectionID && g.ids[id/64]&(1<<(id%64)) != 0
}

// Section returns the encoded text of section id.
func (g GPP) Section(id int) (string, bool) {
	if !g.HasSection(id) {
		return "", false
	}
	// Sections come in increasing id order: skip the ones before id.
	skip := 0
	for i := 0; i < id; i++ {
		if g.HasSection(i) {
			skip++
		}
	}
	s := g.sections
	for ; skip > 0; skip-- {
		i := strings.IndexByte(s, '~')
		if i < 0 {
			return "", false
		}
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, '~'); i >= 0 {
		s = s[:i]
	}
	return s, true
}

// USNat holds the opt-out fields of a GPP US national section (id 7). Each
// is 0 not applicable, 1 opted out, 2 did not opt out.
type USNat struct {
	Version                   int
	SaleOptOut                int
	SharingOptOut             int
	TargetedAdvertisingOptOut int
}

// Opt-out field values of GPP US sections.
const (
	GPPNotApplicable = 0
	GPPOptedOut      = 1
	GPPDidNotOptOut  = 2
)

// DecodeUSNat reads the core segment of a usnat section (versions 1 and 2:
// Version(6), six 2-bit notices, then SaleOptOut, SharingOptOut,
// TargetedAdvertisingOptOut of 2 bits each).
func DecodeUSNat(s string) (USNat, error) {
	var u USNat
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = s[:i]
	}
	b := bitString(s)
	if !b.valid() || b.bits() < 24 {
		return u, errUSNat
	}
	u.Version = int(b.read(0, 6))
	if u.Version != 1 && u.Version != 2 {
		return u, errUSNat
	}
	u.SaleOptOut = int(b.read(18, 2))
	u.SharingOptOut = int(b.read(20, 2))
	u.TargetedAdvertisingOptOut = int(b.read(22, 2))
	return u, nil
}

// USState holds the opt-outs of a GPP US state section (ids 8-27): the sale
// opt-out and the state's second one (SharingOptOut for California,
// TargetedAdvertisingOptOut for the others). Values as in USNat.
type USState struct {
	ID, Version  int
	SaleOptOut   int
	SecondOptOut int
}

// gppUSStateFirst is the id of the first US state section (usca); the
// others follow it in gppUSStates order.
const gppUSStateFirst = 8

// gppUSStates gives, for section ids gppUSStateFirst on, the name and the
// bit offsets of SaleOptOut and of the second opt-out in the core segment
// (version 1), as the IAB library @iabgpp/cmpapi 3.2.0 lays them out (its
// fields and widths; testdata/gpp/gpp-encode.js makes the test vectors).
var gppUSStates = [...]struct {
	name         string
	sale, second int
}{
	{"usca", 12, 14}, {"usva", 12, 14}, {"usco", 12, 14}, {"usut", 14, 16}, // 8-11
	{"usct", 12, 14}, {"usfl", 12, 14}, {"usmt", 12, 14}, {"usor", 12, 14}, // 12-15
	{"ustx", 12, 14}, {"usde", 12, 14}, {"usia", 14, 16}, {"usne", 12, 14}, // 16-19
	{"usnh", 12, 14}, {"usnj", 12, 14}, {"ustn", 12, 14}, {"usmn", 12, 14}, // 20-23
	{"usmd", 16, 18}, {"usin", 16, 18}, {"usky", 16, 18}, {"usri", 16, 18}, // 24-27
}

var errUSState = errors.New("gpp: US state section unknown, too short or of an unknown version")

// DecodeUSState reads the opt-outs of US state section id from its text s
// (the core segment; a GPC sub-section after '.' is ignored). Only version
// 1 is known.
func DecodeUSState(id int, s string) (USState, error) {
	u := USState{ID: id}
	if id < gppUSStateFirst || id >= gppUSStateFirst+len(gppUSStates) {
		return u, errUSState
	}
	layout := gppUSStates[id-gppUSStateFirst]
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = s[:i]
	}
	b := bitString(s)
	if !b.valid() || b.bits() < layout.second+2 {
		return u, errUSState
	}
	if u.Version = int(b.read(0, 6)); u.Version != 1 {
		return u, errUSState
	}
	u.SaleOptOut = int(b.read(layout.sale, 2))
	u.SecondOptOut = int(b.read(layout.second, 2))
	return u, nil
}
