package signals

import (
	"sync"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cespare/xxhash/v2"
)

// Households assigns bid requests to households, for the holdout of a
// campaign's lift measurement: a household is held out of a campaign when
// Held(its key, the campaign's salt, the campaign's share), so that the
// same household stays in the same arm across days and devices.
//
// The household key of a request is the keyed hash (HMAC-SHA-256 under
// the holdout key, 64 bits) of one of its identities, by precedence: the
// household id (user.eids of a household graph source), else the IP
// (device.ip, else the /64 of device.ipv6; left out when an imp's ads are
// stitched server-side, imp.ssai = 3), else the IFA. Its weaknesses: an IP
// changes (a household keyed by its IP moves to another key, and maybe
// arm, when its line is renumbered) and is shared (households behind one
// carrier-grade NAT share a key, so an arm); a TV that limits ad tracking
// has no IFA.
//
// A bounded cache makes keys stick: every identity of a request is
// remembered with the household key the request got, and a later request
// takes the key of its first remembered identity, looked up in the order
// household id, IFA, IP, IPv6 (a device's IFA outlives its IP), before
// any precedence applies. So a TV first seen on one IP keeps its
// household's key after the IP changes, a second TV first seen on the
// household's IP joins it, and a request whose household id arrives only
// sometimes keeps the key its IP or IFA had. When a request's identities
// are remembered with different households (a shared IP whose first user
// was another household; a device moved), the first in that order wins
// and none is re-pointed: the other household keeps its key (counted in
// cpafeed_holdout_household_disagreements_total). A household evicted
// from the cache (least recently seen first) is keyed afresh by
// precedence, which may move it to the other arm: the cache must hold the
// identities of the households seen within the measurement's span.
//
// A request that fails the privacy gates (Gate) is assigned like any
// other, so that a held-out household is not shown the ad on its gated
// requests (in the synthetic market, leaving them out put 13 % of the
// control households in front of the ad); but its identities are only
// looked up, never remembered, and its key lives only during the call
// (its exposure is never indexed either). Without the cache, a household
// id that comes only sometimes would move such a household between keys:
// its fresh key is by IP first (IP, household id, IFA). It is safe for
// concurrent use and does not allocate in steady state.
type Households struct {
	hasher *Hasher // under the holdout key; knows the household eid sources
	tcf    int
	seed   uint64 // of the cache's hashes (internal only)
	cache  hhCache
	bufs   sync.Pool // *[]byte: the identity a new key is hashed from
}

var (
	householdHits          = metrics.NewCounter(`cpafeed_holdout_household_lookups_total{result="remembered"}`)
	householdNew           = metrics.NewCounter(`cpafeed_holdout_household_lookups_total{result="new"}`)
	householdNone          = metrics.NewCounter(`cpafeed_holdout_household_lookups_total{result="none"}`)
	householdDisagreements = metrics.NewCounter(`cpafeed_holdout_household_disagreements_total`)
	householdEvicted       = metrics.NewCounter(`cpafeed_holdout_household_cache_evicted_total`)
)

// DefaultHouseholdCache is the default number of identities the household
// cache keeps (about 40 bytes each).
const DefaultHouseholdCache = 1 << 20

// NewHouseholds returns the household assigner of holdout key key (not
// empty; derive it from the identity secret, never use the secret
// itself: embedded scorers receive it), the user.eids sources whose ids
// are household ids, the TCF vendor id of the privacy gates, and a cache
// of about cacheEntries identities (0: DefaultHouseholdCache).
func NewHouseholds(key []byte, householdSources []string, tcfVendorID, cacheEntries int) *Households {
	if cacheEntries <= 0 {
		cacheEntries = DefaultHouseholdCache
	}
	h := &Households{hasher: NewHasher(key, householdSources...), tcf: tcfVendorID}
	h.seed = h.hasher.ID(idKindSalt, []byte("household cache")).Key
	h.cache.init(cacheEntries)
	h.bufs.New = func() any { b := make([]byte, 0, 128); return &b }
	return h
}

// idKindSalt is the kind byte of the salts derived with a Hasher: no
// identity has it.
const idKindSalt IDKind = 0xff

// CampaignSalt is a campaign's salt of assignment (Held): a keyed hash of
// its id, so that arms are independent across campaigns and unpredictable
// without the key.
func (h *Households) CampaignSalt(campaign string) uint64 {
	var buf [256]byte
	b := append(append(buf[:0], "campaign\x00"...), campaign...)
	return h.hasher.ID(idKindSalt, b).Key
}

// Held reports whether household hh is held out (the control arm) of the
// campaign with salt and share: a keyed uniform draw below share.
func Held(hh, salt uint64, share float64) bool {
	if !(share > 0) {
		return false
	}
	x := hh ^ salt
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11)*(1.0/(1<<53)) < share
}

// hhIdentity is one identity of a request as the assigner sees it.
type hhIdentity struct {
	kind  IDKind
	v6    bool   // the IP is device.ipv6's
	cache uint64 // the cache's hash of (kind, value)
}

// Key returns the household key of req (see Households); false when req
// carries no identity.
func (h *Households) Key(req *Request) (uint64, bool) {
	gated, _ := Gate(req.Privacy(), h.tcf)
	gated = !gated
	var ids [4]hhIdentity // household id, IFA, IP, IPv6: the lookup order
	n := 0
	if v := h.householdID(req); v != nil {
		ids[n] = hhIdentity{kind: IDHousehold, cache: h.cacheHash(IDHousehold, v)}
		n++
	}
	var ifaBuf, v4Buf, v6Buf [64]byte
	if !req.LMT && DeviceIFA(req.IFAType) {
		if v, ok := NormalizeIFA(ifaBuf[:0], req.IFA); ok {
			ids[n] = hhIdentity{kind: IDIFA, cache: h.cacheHash(IDIFA, v)}
			n++
		}
	}
	if !stitched(req) {
		v4, ok4 := NormalizeIP(v4Buf[:0], req.IP)
		if ok4 {
			ids[n] = hhIdentity{kind: IDIP, cache: h.cacheHash(IDIP, v4)}
			n++
		}
		if v6, ok := NormalizeIP(v6Buf[:0], req.IPv6); ok && (!ok4 || string(v6) != string(v4)) {
			ids[n] = hhIdentity{kind: IDIP, v6: true, cache: h.cacheHash(IDIP, v6)}
			n++
		}
	}
	if n == 0 {
		householdNone.Inc()
		return 0, false
	}
	var found [4]uint64
	var hh uint64
	for i := range n {
		if v, ok := h.cache.get(ids[i].cache); ok {
			found[i] = v
			if hh == 0 {
				hh = v
			} else if v != hh {
				householdDisagreements.Inc()
			}
		}
	}
	if hh == 0 {
		householdNew.Inc()
		hh = h.fresh(req, ids[:n], gated)
	} else {
		householdHits.Inc()
	}
	if gated {
		return hh, true // looked up, not remembered
	}
	for i := range n {
		if found[i] == 0 {
			h.cache.put(ids[i].cache, hh)
		}
	}
	return hh, true
}

// fresh is the household key of req's identities (ids), none of which is
// remembered: the keyed hash of the first by precedence (household id,
// IP, IFA; with ipFirst, for a gated request, IP, household id, IFA),
// normalized again here into a pooled buffer (the hash's input escapes).
func (h *Households) fresh(req *Request, ids []hhIdentity, ipFirst bool) uint64 {
	best := 0
	rank := func(k IDKind) int {
		switch k {
		case IDHousehold:
			if ipFirst {
				return 1
			}
			return 0
		case IDIP:
			if ipFirst {
				return 0
			}
			return 1
		}
		return 2
	}
	for i := 1; i < len(ids); i++ {
		if rank(ids[i].kind) < rank(ids[best].kind) {
			best = i
		}
	}
	bp := h.bufs.Get().(*[]byte)
	v := (*bp)[:0]
	switch id := ids[best]; {
	case id.kind == IDHousehold:
		v = append(v, h.householdID(req)...)
	case id.kind == IDIFA:
		v, _ = NormalizeIFA(v, req.IFA)
	case id.v6:
		v, _ = NormalizeIP(v, req.IPv6)
	default:
		v, _ = NormalizeIP(v, req.IP)
	}
	k := h.hasher.ID(ids[best].kind, v).Key
	*bp = v
	h.bufs.Put(bp)
	return k
}

// householdID returns the first household id of req's eids (nil: none).
func (h *Households) householdID(req *Request) []byte {
	for _, e := range req.EIDs {
		if h.hasher.household(e.Source) && len(e.IDs) > 0 {
			return e.IDs[0]
		}
	}
	return nil
}

// stitched reports whether an imp of req has its ads stitched server-side
// (its IP is the stitcher's).
func stitched(req *Request) bool {
	for i := range req.Imps {
		if serverStitched(&req.Imps[i]) {
			return true
		}
	}
	return false
}

// cacheHash is the cache's key of an identity: a fast hash, seeded from
// the holdout key, that never leaves the process.
func (h *Households) cacheHash(kind IDKind, v []byte) uint64 {
	x := xxhash.Sum64(v) ^ (h.seed + uint64(kind)*0x9e3779b97f4a7c15)
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	if x == 0 {
		x = 1
	}
	return x
}

// hhCache maps identities (their cache hashes) to household keys, in
// shards of two generations of maps: a lookup that finds an identity in
// the older generation brings it into the newer one, and the older one is
// dropped whole when the newer one is full, so the identities seen least
// recently go first. Deterministic: what is kept depends only on the order
// of the calls.
type hhCache struct {
	limit  int // entries of a shard's generation
	shards [hhShards]hhShard
}

const hhShards = 16

type hhShard struct {
	mu        sync.Mutex
	cur, prev map[uint64]uint64
	_         [48]byte
}

func (c *hhCache) init(entries int) {
	c.limit = max(entries/(2*hhShards), 16)
	for i := range c.shards {
		c.shards[i].cur = make(map[uint64]uint64)
	}
}

func (c *hhCache) get(k uint64) (uint64, bool) {
	s := &c.shards[k>>60]
	s.mu.Lock()
	v, ok := s.cur[k]
	if !ok {
		if v, ok = s.prev[k]; ok {
			c.putLocked(s, k, v)
		}
	}
	s.mu.Unlock()
	return v, ok
}

func (c *hhCache) put(k, v uint64) {
	s := &c.shards[k>>60]
	s.mu.Lock()
	c.putLocked(s, k, v)
	s.mu.Unlock()
}

func (c *hhCache) putLocked(s *hhShard, k, v uint64) {
	if len(s.cur) >= c.limit {
		householdEvicted.Add(len(s.prev))
		s.prev, s.cur = s.cur, make(map[uint64]uint64, len(s.cur))
	}
	s.cur[k] = v
}
