package signals

import (
	"errors"
	"strings"
)

// TCF is the core segment of an IAB TCF v2 consent string (TC string), read
// without copying: VendorConsent reads the vendor bits from the text on
// demand. It holds the string it was decoded from.
type TCF struct {
	Version           int
	CMPID             int
	VendorListVersion int
	PolicyVersion     int
	PurposesConsent   uint32 // bit p-1 set: purpose p (1..24) consented
	PurposesLI        uint32 // legitimate interest, same layout
	MaxVendorID       int

	core        bitString
	rangeCoding bool
	numEntries  int
}

// Bit offsets of the TCF v2 core segment (IAB "TCF v2.x: Consent string and
// vendor list formats", core segment table).
const (
	tcfVersionBits      = 6
	tcfCMPIDAt          = 78
	tcfVendorListAt     = 120
	tcfPolicyAt         = 132
	tcfPurposesAt       = 152
	tcfPurposesLIAt     = 176
	tcfMaxVendorAt      = 213
	tcfRangeFlagAt      = 229
	tcfVendorSectionAt  = 230
	tcfMaxRangeEntries  = 1 << 12
	tcfVendorIDBits     = 16
	tcfNumEntriesBits   = 12
	tcfPurposeFieldBits = 24
)

var (
	errTCFEmpty    = errors.New("tcf: empty consent string")
	errTCFBase64   = errors.New("tcf: not base64url")
	errTCFShort    = errors.New("tcf: core segment too short")
	errTCFVersion  = errors.New("tcf: not version 2")
	errTCFVendors  = errors.New("tcf: vendor consent section truncated")
	errTCFBadRange = errors.New("tcf: vendor range out of order or above the maximum")
)

// DecodeTCF reads the core segment of a TCF v2 TC string: version, CMP,
// purposes and the vendor consent section (bit field or ranges). Other
// segments (after the first '.') are not read. It does not allocate.
func DecodeTCF(s string) (TCF, error) {
	var t TCF
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimRight(s, "=")
	if s == "" {
		return t, errTCFEmpty
	}
	t.core = bitString(s)
	if !t.core.valid() {
		return t, errTCFBase64
	}
	t.Version = int(t.core.read(0, tcfVersionBits))
	if t.Version != 2 {
		return t, errTCFVersion
	}
	if t.core.bits() < tcfVendorSectionAt {
		return t, errTCFShort
	}
	t.CMPID = int(t.core.read(tcfCMPIDAt, 12))
	t.VendorListVersion = int(t.core.read(tcfVendorListAt, 12))
	t.PolicyVersion = int(t.core.read(tcfPolicyAt, 6))
	t.PurposesConsent = reverse24(uint32(t.core.read(tcfPurposesAt, tcfPurposeFieldBits)))
	t.PurposesLI = reverse24(uint32(t.core.read(tcfPurposesLIAt, tcfPurposeFieldBits)))
	t.MaxVendorID = int(t.core.read(tcfMaxVendorAt, tcfVendorIDBits))
	t.rangeCoding = t.core.read(tcfRangeFlagAt, 1) == 1
	if !t.rangeCoding {
		if t.core.bits() < tcfVendorSectionAt+t.MaxVendorID {
			return t, errTCFVendors
		}
		return t, nil
	}
	if t.core.bits() < tcfVendorSectionAt+tcfNumEntriesBits {
		return t, errTCFVendors
	}
	t.numEntries = int(t.core.read(tcfVendorSectionAt, tcfNumEntriesBits))
	// Walk the ranges once so VendorConsent can trust them.
	pos := tcfVendorSectionAt + tcfNumEntriesBits
	last := 0
	for i := 0; i < t.numEntries; i++ {
		start, end, next, ok := t.rangeAt(pos)
		if !ok {
			return t, errTCFVendors
		}
		if start <= last || end < start || end > t.MaxVendorID {
			return t, errTCFBadRange
		}
		last, pos = end, next
	}
	return t, nil
}

// rangeAt reads the range entry at bit pos.
func (t *TCF) rangeAt(pos int) (start, end, next int, ok bool) {
	n := t.core.bits()
	if pos+1+tcfVendorIDBits > n {
		return 0, 0, 0, false
	}
	isRange := t.core.read(pos, 1) == 1
	start = int(t.core.read(pos+1, tcfVendorIDBits))
	next = pos + 1 + tcfVendorIDBits
	end = start
	if isRange {
		if next+tcfVendorIDBits > n {
			return 0, 0, 0, false
		}
		end = int(t.core.read(next, tcfVendorIDBits))
		next += tcfVendorIDBits
	}
	return start, end, next, true
}

// reverse24 turns a 24-bit field read MSB-first (purpose 1 is the first bit)
// into a mask with purpose p at bit p-1.
func reverse24(v uint32) uint32 {
	var m uint32
	for i := 0; i < tcfPurposeFieldBits; i++ {
		if v&(1<<(tcfPurposeFieldBits-1-i)) != 0 {
			m |= 1 << i
		}
	}
	return m
}

// PurposeConsent reports whether purpose p (1-based) is consented.
func (t TCF) PurposeConsent(p int) bool {
	return p >= 1 && p <= tcfPurposeFieldBits && t.PurposesConsent&(1<<(p-1)) != 0
}

// VendorConsent reports whether vendor id is consented in the vendor
// consent section. Call it only on a TCF that DecodeTCF returned without
// error.
func (t TCF) VendorConsent(id int) bool {
	if id < 1 || id > t.MaxVendorID || t.Version != 2 {
		return false
	}
	if !t.rangeCoding {
		return t.core.read(tcfVendorSectionAt+id-1, 1) == 1
	}
	pos := tcfVendorSectionAt + tcfNumEntriesBits
	for i := 0; i < t.numEntries; i++ {
		start, end, next, ok := t.rangeAt(pos)
		if !ok || start > id {
			return false
		}
		if id <= end {
			return true
		}
		pos = next
	}
	return false
}

// bitString reads bits, most significant first, from base64url text (the
// URL-safe alphabet; '+' and '/' are accepted too).
type bitString string

// b64Table maps base64url (and standard) characters to their 6-bit value,
// -1 for others; it is never written after init.
var b64Table = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	t['+'], t['/'] = 62, 63
	return t
}()

func b64val(c byte) int { return int(b64Table[c]) }

func (b bitString) valid() bool {
	for i := 0; i < len(b); i++ {
		if b64val(b[i]) < 0 {
			return false
		}
	}
	return true
}

func (b bitString) bits() int { return 6 * len(b) }

// read returns n (<= 64) bits from bit pos, a character (6 bits) at a
// time; bits past the end read as 0. The text must be valid (see valid).
func (b bitString) read(pos, n int) uint64 {
	var v uint64
	for n > 0 {
		c, off := pos/6, pos%6
		var six uint64
		if c < len(b) {
			six = uint64(b64Table[b[c]]) & 63
		}
		take := min(6-off, n)
		v = v<<take | six>>(6-off-take)&(1<<take-1)
		pos += take
		n -= take
	}
	return v
}
