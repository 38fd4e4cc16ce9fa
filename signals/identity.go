package signals

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"net/netip"
	"sync"
	"unsafe"
)

// IDKind is the kind of an identity key. It is part of the hashed input, so
// the same bytes as an email and as an IFA give different keys.
type IDKind uint8

// Identity kinds. The values are persisted (journal, snapshots): append only.
const (
	IDNone       IDKind = iota
	IDIFA               // device advertising id (value lower-cased)
	IDIP                // household IP: IPv4 address, or the /64 of an IPv6 address
	IDEmail             // SHA-256 hex of the normalized email
	IDPhone             // SHA-256 hex of the normalized phone
	IDExternalID        // advertiser's user id (SHA-256 hex)
	IDHousehold         // household id from a graph vendor
	IDEID               // OpenRTB user.eids: source + "/" + id
	IDUserID            // OpenRTB user.id (exchange-specific)
	numIDKinds
)

var idKindNames = [numIDKinds]string{"none", "ifa", "ip", "email", "phone", "external_id", "household", "eid", "user_id"}

func (k IDKind) String() string {
	if k < numIDKinds {
		return idKindNames[k]
	}
	return "unknown"
}

// Deterministic reports whether a match on this kind identifies a person or a
// device (IFA, email, phone, external id, eids) rather than a household.
func (k IDKind) Deterministic() bool {
	switch k {
	case IDIFA, IDEmail, IDPhone, IDExternalID, IDEID, IDUserID:
		return true
	}
	return false
}

// ID is a keyed hash of one identity: the only form in which cpafeed keeps an
// identity past the request that carried it.
type ID struct {
	Kind IDKind
	Key  uint64
}

// Hasher turns identity values into IDs with HMAC-SHA-256 under a secret from
// config, truncated to 64 bits. It is safe for concurrent use and does not
// allocate in steady state.
type Hasher struct {
	pool       sync.Pool
	households map[string]bool // eid sources whose ids are household ids
}

type hmacState struct {
	h   hash.Hash
	buf [sha256.Size]byte
}

// NewHasher returns a Hasher for secret, which must not be empty.
// householdSources are the OpenRTB user.eids sources (household graph
// vendors) whose ids are household ids: they are keyed as IDHousehold, so
// they match a conversion's household_id, rather than as IDEID.
func NewHasher(secret []byte, householdSources ...string) *Hasher {
	s := append([]byte(nil), secret...)
	h := &Hasher{}
	if len(householdSources) > 0 {
		h.households = map[string]bool{}
		for _, src := range householdSources {
			h.households[src] = true
		}
	}
	h.pool.New = func() any { return &hmacState{h: hmac.New(sha256.New, s)} }
	return h
}

// household reports whether an eid source is a household graph's.
func (h *Hasher) household(source []byte) bool {
	return h.households != nil && h.households[string(source)]
}

// ID returns the keyed hash of value as an identity of the given kind. The
// value must already be normalized (see NormalizeIP, NormalizeIFA).
func (h *Hasher) ID(kind IDKind, value []byte) ID {
	st := h.pool.Get().(*hmacState)
	st.h.Reset()
	st.buf[0] = byte(kind)
	st.h.Write(st.buf[:1])
	st.h.Write(value)
	sum := st.h.Sum(st.buf[:0])
	key := binary.LittleEndian.Uint64(sum)
	h.pool.Put(st)
	if key == 0 { // 0 means "no identity" in the index
		key = 1
	}
	return ID{Kind: kind, Key: key}
}

// NormalizeIP appends the household form of an IP address to dst: the
// canonical text of an IPv4 address (also for IPv4-mapped IPv6), or the /64
// prefix of an IPv6 address ("2001:db8:1:2::/64"). ok is false when s is not
// an IP address.
func NormalizeIP(dst, s []byte) (out []byte, ok bool) {
	if len(s) == 0 || badIPv4(s) {
		return dst, false
	}
	// unsafe.String avoids a copy: the string does not outlive this call
	// (ParseAddr keeps it only in an error that is dropped here).
	a, err := netip.ParseAddr(unsafe.String(&s[0], len(s)))
	if err != nil {
		return dst, false
	}
	a = a.Unmap()
	if a.Is4() {
		return a.AppendTo(dst), true
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return dst, false
	}
	return p.AppendTo(dst), true
}

// badIPv4 reports whether s, without a colon, cannot be an IPv4 address
// (a field over 255, not four fields, a character other than a digit or
// a dot): refused before netip.ParseAddr, whose error allocates. It never
// refuses an address ParseAddr accepts.
func badIPv4(s []byte) bool {
	if bytes.IndexByte(s, ':') >= 0 {
		return false // IPv6: ParseAddr decides
	}
	fields, v, digits := 1, 0, 0
	for _, c := range s {
		switch {
		case c == '.':
			if digits == 0 {
				return true
			}
			fields, v, digits = fields+1, 0, 0
		case '0' <= c && c <= '9':
			v = v*10 + int(c-'0')
			digits++
			if v > 255 || digits > 3 {
				return true
			}
		default:
			return true
		}
	}
	return fields != 4 || digits == 0
}

// NormalizeIFA appends the IFA lower-cased and trimmed of spaces to dst. ok is
// false for an empty or all-zero IFA (a device that opted out sends zeros).
func NormalizeIFA(dst, s []byte) (out []byte, ok bool) {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	for len(s) > 0 && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	zero := true
	start := len(dst)
	for _, c := range s {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != '0' && c != '-' {
			zero = false
		}
		dst = append(dst, c)
	}
	if len(s) == 0 || zero {
		return dst[:start], false
	}
	return dst, true
}
