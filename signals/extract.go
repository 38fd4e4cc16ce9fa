package signals

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"

	"github.com/cpafeed/cpafeed/apierr"
)

// Request is what an Extractor read from one bid request. All its byte
// slices point into the Extractor's buffers and are valid until its next
// Extract call; copy what must outlive that.
type Request struct {
	ID   []byte // BidRequest.id
	Imps []Imp
	// AuctionType is BidRequest.at: 1 first price, 2 second price plus,
	// 0 when absent (OpenRTB's default is 2), above 500 exchange-specific.
	AuctionType int64

	IFA     []byte // device.ifa as sent
	IFAType []byte // device.ext.ifa_type (rida, afai, tifa, lgudid, idfa, vida, ...)
	LMT     bool   // device.lmt == 1: the IFA is left out of IDs
	IP      []byte // device.ip
	IPv6    []byte // device.ipv6
	UserID  []byte // user.id
	EIDs    []EID  // user.eids (2.6), then user.ext.eids (2.5)

	privacy Privacy
	scratch []byte   // IDs' normalization buffer
	deals   [][]byte // backing array of Imps[i].Deals
	uids    [][]byte // backing array of EIDs[i].IDs
	gppSID  []int8   // backing array of privacy.GPPSID
}

// EID is one user.eids entry: the source domain and the ids of its uids.
type EID struct {
	Source []byte
	IDs    [][]byte // non-empty uids[].id, in order
}

// Privacy holds the request's privacy signals from where OpenRTB 2.6 puts
// them, else from where 2.5 put them (regs.ext, user.ext).
type Privacy struct {
	COPPA     bool   // regs.coppa == 1 or regs.ext.coppa == 1
	GDPR      int8   // regs.gdpr, else regs.ext.gdpr; -1 when neither is given
	Consent   []byte // user.consent, else user.ext.consent (TCF v2 TC string)
	USPrivacy []byte // regs.us_privacy, else regs.ext.us_privacy
	GPP       []byte // regs.gpp, else regs.ext.gpp
	GPPSID    []int8 // regs.gpp_sid, else regs.ext.gpp_sid
}

// FirstPrice reports whether the request's auction is first price (at 1):
// the winner pays its bid.
func (r *Request) FirstPrice() bool { return r.AuctionType == 1 }

// Privacy returns the request's privacy signals (slices valid as the
// Request's).
func (r *Request) Privacy() Privacy { return r.privacy }

// SetPrivacy sets the privacy signals of a Request the caller builds itself
// (an exposure posted with pre-extracted features); Extract sets them for
// its own. The zero Privacy has GDPR 0: set GDPR to -1 when it is unknown.
func (r *Request) SetPrivacy(p Privacy) { r.privacy = p }

// Extractor reads bid requests. It is not safe for concurrent use: keep one
// per goroutine or pool them. It allocates nothing per request once its
// buffers have grown to the size of the requests it sees (an Extractor keeps
// about 3 bytes of arena per byte of the largest body it read).
//
// It does not use a general JSON parser: one pass over the body validates
// all of it with encoding/json's grammar and nesting limit, skips what it
// does not need and records where the needed values are; only those are
// unquoted. A full parse with fastjson plus the strict validation that
// fastjson's parser leaves out (control characters and escapes in strings,
// number syntax, NaN/Inf) already costs about a fifth of the encoding/json
// decode before reading a field (BenchmarkBidRequest,
// FastjsonValidateParse*), which leaves no room for an 8x speed-up.
type Extractor struct {
	s       scanner
	st      reqState
	arena   []byte
	req     Request
	maxImps int // 0: DefaultMaxImps
}

// DefaultMaxImps is the most imps a bid request may have unless
// SetMaxImps says otherwise. A CTV request carries one ad pod: OpenRTB 2.6
// describes a pod in one imp (podid, slotinpod, a dynamic pod's maxseq),
// and 2.5-style structured pods send one imp per slot, a handful (the
// fixtures have at most 4; the synthetic market at most 8). 32 leaves room
// for long structured pods and several placements while bounding what one
// request costs: every imp is scored for every campaign, answered and
// remembered, and an extractor keeps the state of the most imps it has
// read (100 000 imps, 81 KB of zstd, made a 40 MB answer before).
const DefaultMaxImps = 32

// NewExtractor returns an Extractor that refuses requests with more than
// DefaultMaxImps imps.
func NewExtractor() *Extractor { return &Extractor{} }

// SetMaxImps sets the most imps a request may have (n <= 0:
// DefaultMaxImps). A request with more is a 400 naming imp, and the
// imps past the limit are only checked as JSON, never kept.
func (x *Extractor) SetMaxImps(n int) { x.maxImps = n }

func (x *Extractor) impLimit() int {
	if x.maxImps > 0 {
		return x.maxImps
	}
	return DefaultMaxImps
}

// Extract reads the request in body; now (Unix seconds) gives the hour
// feature. A body that is not JSON, or lacks id, imp or an imp's id, is an
// *apierr.Error 400 whose message starts with the JSON path
// ("imp[2].id: missing"). Everything else that is missing or malformed reads
// as Unknown. The Request and its bytes are valid until the next call.
//
// Only the fields Request and the features name are read; the rest of the
// body is validated and skipped. Where a field is given several times, or
// with a value of the wrong type, the result is what encoding/json decoding
// into openrtb2.BidRequest would hold (the tests check this on every fixture
// and by fuzzing).
func (x *Extractor) Extract(body []byte, now int64) (*Request, error) {
	if len(body) > math.MaxInt32 {
		return nil, apierr.BadRequest("body: larger than 2 GiB")
	}
	x.s.b, x.s.depth = body, 0
	x.st.reset()
	if !x.parseRoot() {
		return nil, syntaxError(body)
	}
	return x.finish(now)
}

// parseAt reads the bid request that is the JSON value at b[i] (a member
// of a larger document, e.g. an exposure batch) into x, and returns the
// index after the value, or -1 when it is not valid JSON. finish then
// checks it and builds the Request; until then x must not be used.
func (x *Extractor) parseAt(b []byte, i int) int {
	if len(b) > math.MaxInt32 {
		return bad
	}
	x.s.b, x.s.depth = b, 0
	x.st.reset()
	return x.parseValue(i)
}

// finish checks the parsed request has an id and imps with ids, and builds
// the Request.
func (x *Extractor) finish(now int64) (*Request, error) {
	st := &x.st
	if st.id.empty() {
		return nil, apierr.BadRequest("id: missing")
	}
	if st.imps.n == 0 {
		return nil, apierr.BadRequest("imp: must be a non-empty array")
	}
	if st.impsSeen > x.impLimit() {
		return nil, apierr.BadRequest("imp: %d imps, at most %d", st.impsSeen, x.impLimit())
	}
	for i := 0; i < st.imps.n; i++ {
		if st.imps.items[i].id.empty() {
			return nil, apierr.BadRequest("imp[%d].id: missing", i)
		}
	}
	x.build(now)
	return &x.req, nil
}

// syntaxError builds the 400 for a body that is not JSON, with the offset
// and wording of encoding/json (only on this error path).
func syntaxError(body []byte) error {
	var raw json.RawMessage
	err := json.Unmarshal(body, &raw)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return apierr.BadRequest("body: invalid JSON at offset %d: %s", se.Offset, se.Error())
	}
	return apierr.BadRequest("body: invalid JSON")
}

func (x *Extractor) parseRoot() bool {
	b := x.s.b
	i := skipSpace(b, 0)
	if i >= len(b) {
		return false
	}
	i = x.parseValue(i)
	return i >= 0 && skipSpace(b, i) == len(b)
}

// parseValue reads the value at b[i] as the bid request and returns the
// index after it (-1 on a syntax error). A value that is not an object is
// a type error: nothing is set.
func (x *Extractor) parseValue(i int) int {
	s := &x.s
	st := &x.st
	b := s.b
	if b[i] != '{' {
		return s.skipValue(i)
	}
	var more bool
	for i, more = s.open(i); more; i, more = s.next(i) {
		var key string
		if key, i = s.key(i); i < 0 {
			return bad
		}
		switch key {
		case "id":
			i = s.str(i, &st.id)
		case "at":
			i = s.int64(i, &st.at)
		case "imp":
			i = x.parseImps(i)
		case "app":
			i = x.parseSite(i, &st.app, true)
		case "site":
			i = x.parseSite(i, &st.site, false)
		case "device":
			i = x.parseDevice(i, &st.device)
		case "user":
			i = x.parseUser(i, &st.user)
		case "regs":
			i = x.parseRegs(i, &st.regs)
		default:
			i = s.skipValue(i)
		}
	}
	return i
}

// The parse functions below read the value at b[i] into their state and
// return the index after it, or bad. Each loop "for i, more = s.open(i);
// more; i, more = s.next(i)" walks the members of an object (next passes
// bad through and stops).

func (x *Extractor) parseImps(i int) int {
	s := &x.s
	l := &x.st.imps
	i, kind, more := s.beginArr(i)
	if kind == kindNull {
		l.clear()
		x.st.impsSeen = 0
	}
	if kind != kindOpen {
		return i
	}
	n, limit := 0, x.impLimit()
	for ; more; i, more = s.nextElem(i) {
		if n < limit {
			i = x.parseImp(i, elem(l, n))
		} else { // finish refuses the request: only validate the rest
			i = s.skipValue(i)
		}
		n++
	}
	l.done(min(n, limit))
	x.st.impsSeen = n
	return i
}

func (x *Extractor) parseImp(i int, m *impState) int {
	s := &x.s
	i, kind, more := s.beginObj(i) // null: no-op for a struct element
	if kind != kindOpen {
		return i
	}
	for ; more; i, more = s.next(i) {
		var key string
		if key, i = s.key(i); i < 0 {
			return bad
		}
		switch key {
		case "id":
			i = s.str(i, &m.id)
		case "video":
			i = x.parseVideo(i, &m.video)
		case "pmp":
			i = x.parsePMP(i, m)
		case "ssai":
			i = s.int8(i, &m.ssai)
		default:
			i = s.skipValue(i)
		}
	}
	return i
}

func (x *Extractor) parseVideo(i int, v *videoState) int {
	s := &x.s
	i, kind, more := s.beginObj(i)
	if kind == kindNull {
		*v = videoState{}
	}
	if kind != kindOpen {
		return i
	}
	for ; more; i, more = s.next(i) {
		var key string
		if key, i = s.key(i); i < 0 {
			return bad
		}
		switch key {
		case "plcmt":
			i = s.int8(i, &v.plcmt)
		case "placement":
			i = s.int8(i, &v.placement)
		case "podseq":
			i = s.int8(i, &v.podSeq)
		case "slotinpod":
			i = s.int8(i, &v.slotInPod)
		case "maxduration":
			i = s.int64(i, &v.maxDuration)
		case "startdelay":
			i = s.optInt64(i, &v.startDelay)
		case "podid":
			i = s.str(i, &v.podID)
		case "maxseq":
			i = s.int64(i, &v.maxSeq)
		case "poddur":
			i = s.int64(i, &v.podDur)
		case "rqddurs": // only the length is used
			var kind int
			var more bool
			i, kind, more = s.beginArr(i)
			if kind == kindNull {
				v.rqdDurs = 0
			}
			if kind != kindOpen {
				continue
			}
			n := 0
			for ; more; i, more = s.nextElem(i) {
				i = s.skipValue(i)
				n++
			}
			v.rqdDurs = n
		default:
			i = s.skipValue(i)
		}
	}
	return i
}

func (x *Extractor) parsePMP(i int, m *impState) int {
	s := &x.s
	i, kind, more := s.beginObj(i)
	if kind == kindNull {
		m.deals.clear()
	}
	if kind != kindOpen {
		return i
	}
	for ; more; i, more = s.next(i) {
		var key string
		if key, i = s.key(i); i < 0 {
			return bad
		}
		if key != "deals" {
			i = s.skipValue(i)
			continue
		}
		l := &m.deals
		var kind int
		var more bool
		i, kind, more = s.beginArr(i)
		if kind == kindNull {
			l.clear()
		}
		if kind != kindOpen {
			continue
		}
		n := 0
		for ; more; i, more = s.nextElem(i) {
			i = x.parseIDObject(i, &elem(l, n).id)
			n++
		}
		l.done(n)
	}
	return i
}

// parseIDObject reads an object of which only "id" (a string) is wanted:
// a deal, a uid.
func (x *Extractor) parseIDObject(i int, id *span) int {
	s := &x.s
	i, kind, more := s.beginObj(i) // null: no-op for a struct element
	if kind != kindOpen {
		return i
	}
	for ; more; i, more = s.next(i) {
		var key string
		if key, i = s.key(i); i < 0 {
			return bad
		}
		if key == "id" {
			i = s.str(i, id)
		} else {
			i = s.skipValue(i)
		}
	}
	return i
}

func (x *Extractor) parseSite(i int, a *siteState, isApp bool) int {
	s := &x.s
	i, kind, more := s.beginObj(i)
	if kind == kindNull {
		a.reset()
	}
	if kind != kindOpen {
		return i
	}
	for ; more; i, more = s.next(i) {
		var key string
		if key, i = s.key(i); i < 0 {
			return bad
		}
		switch key {
		case "bundle": // a site has no bundle field: the key is skipped there
			if isApp {
				i = s.str(i, &a.bundle)
			} else {
				i = s.skipValue(i)
			}
		case "domain":
			i = s.str(i, &a.domain)
		case "publisher":
			var kind int
			var more bool
			i, kind, more = s.beginObj(i)
			if kind == kindNull {
				a.pubID = span{}
			}
			for ; more; i, more = s.next(i) {
				if key, i = s.key(i); i < 0 {
					return bad
				}
				if key == "id" {
					i = s.str(i, &a.pubID)
				} else {
					i = s.skipValue(i)
				}
			}
		case "content":
			i = x.parseContent(i, &a.content)
		default:
			i = s.skipValue(i)
		}
	}
	return i
}

func (x *Extractor) parseContent(i int, c *contentState) int {
	s := &x.s
	i, kind, more := s.beginObj(i)
	if kind == kindNull {
		c.reset()
	}
	if kind != kindOpen {
		return i
	}
	for ; more; i, more = s.next(i) {
		var key string
		if key, i = s.key(i); i < 0 {
			return bad
		}
		switch key {
		case "genre":
			i = s.str(i, &c.genre)
		case "series":
			i = s.str(i, &c.series)
		case "language":
			i = s.str(i, &c.language)
		case "contentrating":
			i = s.str(i, &c.rating)
		case "livestream":
			i = s.optInt8(i, &c.live)
		case "network":
			i = x.parseNet(i, &c.network)
		case "channel":
			i = x.parseNet(i, &c.channel)
		case "len":
			i = s.int64(i, &c.length)
		case "cattax":
			i = s.int64(i, &c.catTax)
		case "cat":
			l := &c.cat
			var kind int
			var more bool
			i, kind, more = s.beginArr(i)
			if kind == kindNull {
				l.clear()
			}
			if kind != kindOpen {
				continue
			}
			n := 0
			for ; more; i, more = s.nextElem(i) {
				i = s.str(i, &elem(l, n).v)
				n++
			}
			l.done(n)
		default:
			i = s.skipValue(i)
		}
	}
	return i
}

func (x *Extractor) parseNet(i int, n *netState) int {
	s := &x.s
	i, kind, more := s.beginObj(i)
	if kind == kindNull {
		n.reset()
	}
	if kind != kindOpen {
		return i
	}
	for ; more; i, more = s.next(i) {
		var key string
		if key, i = s.key(i); i < 0 {
			return bad
		}
		switch key {
		case "id":
			i = s.str(i, &n.id)
		case "name":
			i = s.str(i, &n.name)
		default:
			i = s.skipValue(i)
		}
	}
	return i
}

func (x *Extractor) parseDevice(i int, d *deviceState) int {
	s := &x.s
	i, kind, more := s.beginObj(i)
	if kind == kindNull {
		d.reset()
	}
	if kind != kindOpen {
		return i
	}
	for ; more; i, more = s.next(i) {
		var key string
		if key, i = s.key(i); i < 0 {
			return bad
		}
		switch key {
		case "ifa":
			i = s.str(i, &d.ifa)
		case "ip":
			i = s.str(i, &d.ip)
		case "ipv6":
			i = s.str(i, &d.ipv6)
		case "make":
			i = s.str(i, &d.make)
		case "os":
			i = s.str(i, &d.os)
		case "devicetype":
			i = s.int8(i, &d.deviceType)
		case "lmt":
			i = s.optInt8(i, &d.lmt)
		case "geo":
			i = x.parseGeo(i, &d.geo)
		case "ext": // RawMessage: replaced whole
			d.ifaType = span{}
			var more bool
			for i, _, more = s.beginObj(i); more; i, more = s.next(i) {
				if key, i = s.key(i); i < 0 {
					return bad
				}
				if key == "ifa_type" {
					i = s.str(i, &d.ifaType)
				} else {
					i = s.skipValue(i)
				}
			}
		default:
			i = s.skipValue(i)
		}
	}
	return i
}

func (x *Extractor) parseGeo(i int, g *geoState) int {
	s := &x.s
	i, kind, more := s.beginObj(i)
	if kind == kindNull {
		*g = geoState{}
	}
	if kind != kindOpen {
		return i
	}
	for ; more; i, more = s.next(i) {
		var key string
		if key, i = s.key(i); i < 0 {
			return bad
		}
		switch key {
		case "country":
			i = s.str(i, &g.country)
		case "region":
			i = s.str(i, &g.region)
		case "metro":
			i = s.str(i, &g.metro)
		case "utcoffset":
			i = s.int64(i, &g.utcOffset)
		default:
			i = s.skipValue(i)
		}
	}
	return i
}

func (x *Extractor) parseUser(i int, u *userState) int {
	s := &x.s
	i, kind, more := s.beginObj(i)
	if kind == kindNull {
		u.reset()
	}
	if kind != kindOpen {
		return i
	}
	for ; more; i, more = s.next(i) {
		var key string
		if key, i = s.key(i); i < 0 {
			return bad
		}
		switch key {
		case "id":
			i = s.str(i, &u.id)
		case "consent":
			i = s.str(i, &u.consent)
		case "eids":
			i = x.parseEIDs(i, &u.eids)
		case "ext": // RawMessage: replaced whole
			u.resetExt()
			var more bool
			for i, _, more = s.beginObj(i); more; i, more = s.next(i) {
				if key, i = s.key(i); i < 0 {
					return bad
				}
				switch key {
				case "consent":
					i = s.str(i, &u.extConsent)
				case "eids":
					i = x.parseEIDs(i, &u.extEIDs)
				default:
					i = s.skipValue(i)
				}
			}
		default:
			i = s.skipValue(i)
		}
	}
	return i
}

func (x *Extractor) parseEIDs(i int, l *list[eidState]) int {
	s := &x.s
	i, kind, more := s.beginArr(i)
	if kind == kindNull {
		l.clear()
	}
	if kind != kindOpen {
		return i
	}
	n := 0
	for ; more; i, more = s.nextElem(i) {
		e := elem(l, n)
		n++
		var more bool
		for i, _, more = s.beginObj(i); more; i, more = s.next(i) {
			var key string
			if key, i = s.key(i); i < 0 {
				return bad
			}
			switch key {
			case "source":
				i = s.str(i, &e.source)
			case "uids":
				i = x.parseUIDs(i, &e.uids)
			default:
				i = s.skipValue(i)
			}
		}
	}
	l.done(n)
	return i
}

func (x *Extractor) parseUIDs(i int, l *list[uidState]) int {
	s := &x.s
	i, kind, more := s.beginArr(i)
	if kind == kindNull {
		l.clear()
	}
	if kind != kindOpen {
		return i
	}
	n := 0
	for ; more; i, more = s.nextElem(i) {
		i = x.parseIDObject(i, &elem(l, n).id)
		n++
	}
	l.done(n)
	return i
}

func (x *Extractor) parseRegs(i int, r *regsState) int {
	s := &x.s
	i, kind, more := s.beginObj(i)
	if kind == kindNull {
		r.reset()
	}
	if kind != kindOpen {
		return i
	}
	for ; more; i, more = s.next(i) {
		var key string
		if key, i = s.key(i); i < 0 {
			return bad
		}
		if key != "ext" {
			i = x.regsField(i, &r.regsFields, key)
			continue
		}
		r.ext.reset() // RawMessage: replaced whole
		var more bool
		for i, _, more = s.beginObj(i); more; i, more = s.next(i) {
			if key, i = s.key(i); i < 0 {
				return bad
			}
			i = x.regsField(i, &r.ext, key)
		}
	}
	return i
}

// regsField reads the value at b[i] of key (a field of regs or regs.ext).
func (x *Extractor) regsField(i int, r *regsFields, key string) int {
	s := &x.s
	switch key {
	case "coppa":
		return s.int8(i, &r.coppa)
	case "gdpr":
		return s.optInt8(i, &r.gdpr)
	case "us_privacy":
		return s.str(i, &r.usp)
	case "gpp":
		return s.str(i, &r.gpp)
	case "gpp_sid":
		l := &r.gppSID
		i, kind, more := s.beginArr(i)
		if kind == kindNull {
			l.clear()
		}
		if kind != kindOpen {
			return i
		}
		n := 0
		for ; more; i, more = s.nextElem(i) {
			i = s.int8(i, &elem(l, n).v)
			n++
		}
		l.done(n)
		return i
	}
	return s.skipValue(i)
}

// build turns the parsed state into x.req and its features.
func (x *Extractor) build(now int64) {
	st := &x.st
	r := &x.req
	// Every value is at most 3 times its raw bytes (an invalid UTF-8 byte
	// becomes U+FFFD); numbers and constants need little more. Reserving it
	// up front keeps every slice into the arena valid.
	need := 3*len(x.s.b) + 128*st.imps.n + 256
	if cap(x.arena) < need {
		x.arena = make([]byte, 0, need+need/4)
	}
	x.arena = x.arena[:0]
	unknown := x.put(Unknown)

	r.ID = x.val(st.id)
	r.AuctionType = st.at

	// Request-level features, shared by every imp.
	var rf [NumFeatures][]byte
	app, site := &st.app, &st.site
	rf[FeaturePublisher] = x.val(first(app.pubID, site.pubID))
	rf[FeatureBundle] = x.val(app.bundle)
	rf[FeatureDomain] = x.val(first(app.domain, site.domain))
	rf[FeatureGenre] = x.val(first(app.content.genre, site.content.genre))
	rf[FeatureSeries] = x.val(first(app.content.series, site.content.series))
	rf[FeatureLanguage] = x.val(first(app.content.language, site.content.language))
	rf[FeatureRating] = x.val(first(app.content.rating, site.content.rating))
	rf[FeatureNetwork] = x.val(first(netValue(&app.content.network), netValue(&site.content.network)))
	rf[FeatureChannel] = x.val(first(netValue(&app.content.channel), netValue(&site.content.channel)))
	if l := app.content.live; l.set {
		rf[FeatureLivestream] = x.int(int64(l.v))
	} else if l := site.content.live; l.set {
		rf[FeatureLivestream] = x.int(int64(l.v))
	}
	d := &st.device
	if d.deviceType != 0 {
		rf[FeatureDeviceType] = x.int(int64(d.deviceType))
	}
	rf[FeatureMake] = x.val(d.make)
	rf[FeatureOS] = x.val(d.os)
	rf[FeatureCountry] = x.val(d.geo.country)
	rf[FeatureRegion] = x.val(d.geo.region)
	rf[FeatureMetro] = x.val(d.geo.metro)
	rf[FeatureHour] = x.int(int64(localHour(now, d.geo.utcOffset)))
	if d.geo.utcOffset != 0 { // 0 is absent in openrtb2 (omitempty): no daypart from UTC
		rf[FeatureDaypart] = x.put(daypartOf(localHour(now, d.geo.utcOffset)))
	}
	length := app.content.length
	if length == 0 {
		length = site.content.length
	}
	rf[FeatureContentLen] = x.put(contentLenBucket(length))
	if cat := firstStr(&app.content.cat); !cat.empty() {
		rf[FeatureCategory] = x.category(app.content.catTax, cat)
	} else if cat := firstStr(&site.content.cat); !cat.empty() {
		rf[FeatureCategory] = x.category(site.content.catTax, cat)
	}
	for f := range rf {
		if len(rf[f]) == 0 {
			rf[f] = unknown
		}
	}

	// Imps.
	if cap(r.Imps) < st.imps.n {
		r.Imps = make([]Imp, st.imps.n)
	}
	r.Imps = r.Imps[:st.imps.n]
	r.deals = r.deals[:0]
	for i := range r.Imps {
		m := &st.imps.items[i]
		imp := &r.Imps[i]
		imp.ID = x.val(m.id)
		imp.feat = rf // the imp-level features are Unknown there
		v := &m.video
		switch {
		case v.plcmt != 0:
			imp.feat[FeaturePlacement] = x.prefixed("plcmt:", int64(v.plcmt))
		case v.placement != 0:
			imp.feat[FeaturePlacement] = x.prefixed("placement:", int64(v.placement))
		}
		if v.podSeq != 0 {
			imp.feat[FeaturePodSeq] = x.int(int64(v.podSeq))
		}
		if v.slotInPod != 0 {
			imp.feat[FeatureSlotInPod] = x.int(int64(v.slotInPod))
		}
		if v.maxDuration != 0 {
			imp.feat[FeatureMaxDuration] = x.int(v.maxDuration)
		}
		if m.ssai != 0 {
			imp.feat[FeatureSSAI] = x.int(int64(m.ssai))
		}
		if p := positionOf(v.startDelay.set, v.startDelay.v); p != "" {
			imp.feat[FeaturePosition] = x.put(p)
		}
		dyn := dynamicSlots(v.maxSeq, v.rqdDurs, v.podDur)
		if sl := slotOf(v.slotInPod, !v.podID.empty(), dyn > 0); sl != "" {
			imp.feat[FeatureSlot] = x.put(sl)
		}
		if b := podSizeBucket(x.podSlots(i)); b != "" {
			imp.feat[FeaturePodSize] = x.put(b)
		}
		start := len(r.deals)
		for j := 0; j < m.deals.n; j++ {
			if id := m.deals.items[j].id; !id.empty() {
				r.deals = append(r.deals, x.val(id))
			}
		}
		if len(r.deals) > start {
			imp.feat[FeatureDeal] = r.deals[start]
		}
		imp.Deals = r.deals[start:] // only its length counts until re-sliced below
	}
	// r.deals may have been reallocated while appending: re-slice every imp.
	k := 0
	for i := range r.Imps {
		n := len(r.Imps[i].Deals)
		r.Imps[i].Deals = r.deals[k : k+n : k+n]
		k += n
	}

	// Identities.
	r.IFA = x.val(d.ifa)
	r.IFAType = x.val(d.ifaType)
	r.LMT = d.lmt.set && d.lmt.v == 1
	r.IP = x.val(d.ip)
	r.IPv6 = x.val(d.ipv6)
	u := &st.user
	r.UserID = x.val(u.id)
	r.EIDs = r.EIDs[:0]
	r.uids = r.uids[:0]
	x.eids(&u.eids)
	x.eids(&u.extEIDs)
	k = 0
	for i := range r.EIDs {
		n := len(r.EIDs[i].IDs)
		r.EIDs[i].IDs = r.uids[k : k+n : k+n]
		k += n
	}

	// Privacy.
	g := &st.regs
	p := Privacy{GDPR: -1}
	p.COPPA = g.coppa == 1 || g.ext.coppa == 1
	if g.gdpr.set {
		p.GDPR = g.gdpr.v
	} else if g.ext.gdpr.set {
		p.GDPR = g.ext.gdpr.v
	}
	p.Consent = x.val(first(u.consent, u.extConsent))
	p.USPrivacy = x.val(first(g.usp, g.ext.usp))
	p.GPP = x.val(first(g.gpp, g.ext.gpp))
	sid := &g.gppSID
	if sid.n == 0 {
		sid = &g.ext.gppSID
	}
	r.gppSID = r.gppSID[:0]
	for j := 0; j < sid.n; j++ {
		r.gppSID = append(r.gppSID, sid.items[j].v)
	}
	if len(r.gppSID) > 0 {
		p.GPPSID = r.gppSID
	}
	r.privacy = p
}

func (x *Extractor) eids(l *list[eidState]) {
	r := &x.req
	for i := 0; i < l.n; i++ {
		e := &l.items[i]
		n := 0
		for j := 0; j < e.uids.n; j++ {
			if id := e.uids.items[j].id; !id.empty() {
				r.uids = append(r.uids, x.val(id))
				n++
			}
		}
		// IDs is a placeholder of the right length; Extract re-slices it
		// into r.uids once r.uids stops growing.
		r.EIDs = append(r.EIDs, EID{Source: x.val(e.source), IDs: r.uids[len(r.uids)-n:]})
	}
}

// podSlots is the number of ad slots of the pod of imp i (see
// podSizeBucket): the fixed slots and dynamic capacities of every imp
// sharing its podid, or its own dynamic capacity without a podid.
func (x *Extractor) podSlots(i int) int64 {
	imps := x.st.imps.items[:x.st.imps.n]
	v := &imps[i].video
	if v.podID.empty() {
		return dynamicSlots(v.maxSeq, v.rqdDurs, v.podDur)
	}
	b := x.s.b
	raw := func(sp span) []byte { return b[sp.off:sp.end] }
	var n int64
	for j := range imps {
		w := &imps[j].video
		if w.podID.empty() {
			continue
		}
		if w.podID.esc || v.podID.esc {
			if !x.sameUnquoted(w.podID, v.podID) {
				continue
			}
		} else if !bytes.Equal(raw(w.podID), raw(v.podID)) {
			continue
		}
		if d := dynamicSlots(w.maxSeq, w.rqdDurs, w.podDur); d > 0 {
			n += d
		} else {
			n++
		}
	}
	return n
}

// sameUnquoted reports whether two string values are equal once unquoted
// (only for values with escapes; rare).
func (x *Extractor) sameUnquoted(a, b span) bool {
	ua := unquote(nil, x.s.b[a.off:a.end])
	ub := unquote(nil, x.s.b[b.off:b.end])
	return bytes.Equal(ua, ub)
}

// firstStr returns the first non-empty element of a []string.
func firstStr(l *list[strElem]) span {
	for i := 0; i < l.n; i++ {
		if v := l.items[i].v; !v.empty() {
			return v
		}
	}
	return span{}
}

// category writes the category feature, "cattax:cat" (cattax 1, IAB
// Content Category Taxonomy 1.0, when absent: OpenRTB 2.6 §3.2.16).
func (x *Extractor) category(tax int64, cat span) []byte {
	if tax == 0 {
		tax = 1
	}
	start := len(x.arena)
	x.arena = strconv.AppendInt(x.arena, tax, 10)
	x.arena = append(x.arena, ':')
	v := x.val(cat)
	if len(v) == 0 {
		x.arena = x.arena[:start]
		return nil
	}
	return x.arena[start:len(x.arena):len(x.arena)]
}

// first returns a unless it is empty, else b.
func first(a, b span) span {
	if a.empty() {
		return b
	}
	return a
}

func netValue(n *netState) span { return first(n.id, n.name) }

// localHour is the hour of the day (0-23) at Unix time now for a UTC offset
// in minutes. Offsets of a day or more wrap (they are invalid anyway).
func localHour(now, offsetMin int64) int {
	t := now%86400 + offsetMin%1440*60
	return int((t%86400 + 86400) % 86400 / 3600)
}

// val copies the value of sp into the arena (nil for an empty value).
func (x *Extractor) val(sp span) []byte {
	if sp.empty() {
		return nil
	}
	raw := x.s.b[sp.off:sp.end]
	start := len(x.arena)
	if sp.esc {
		x.arena = unquote(x.arena, raw)
	} else {
		x.arena = append(x.arena, raw...)
	}
	if len(x.arena) == start {
		return nil
	}
	return x.arena[start:len(x.arena):len(x.arena)]
}

func (x *Extractor) put(s string) []byte {
	start := len(x.arena)
	x.arena = append(x.arena, s...)
	return x.arena[start:len(x.arena):len(x.arena)]
}

func (x *Extractor) int(v int64) []byte {
	start := len(x.arena)
	x.arena = strconv.AppendInt(x.arena, v, 10)
	return x.arena[start:len(x.arena):len(x.arena)]
}

func (x *Extractor) prefixed(prefix string, v int64) []byte {
	start := len(x.arena)
	x.arena = append(x.arena, prefix...)
	x.arena = strconv.AppendInt(x.arena, v, 10)
	return x.arena[start:len(x.arena):len(x.arena)]
}
