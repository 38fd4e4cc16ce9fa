package signals

import (
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

// Privacy returns the request's privacy signals (slices valid as the
// Request's).
func (r *Request) Privacy() Privacy { return r.privacy }

// Extractor reads bid requests. It is not safe for concurrent use: keep one
// per goroutine or pool them. It allocates nothing per request once its
// buffers have grown to the size of the requests it sees.
type Extractor struct {
	s     scanner
	st    reqState
	arena []byte
	req   Request
}

// NewExtractor returns an Extractor.
func NewExtractor() *Extractor { return &Extractor{} }

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
	x.s.b, x.s.i, x.s.depth, x.s.bad = body, 0, 0, false
	x.st.reset()
	x.parseRoot()
	if x.s.bad {
		return nil, syntaxError(body)
	}
	st := &x.st
	if st.id.empty() {
		return nil, apierr.BadRequest("id: missing")
	}
	if st.imps.n == 0 {
		return nil, apierr.BadRequest("imp: must be a non-empty array")
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

func (x *Extractor) parseRoot() {
	s := &x.s
	st := &x.st
	if s.peek() != '{' {
		s.skip() // not an object: a type error, nothing set
	} else if s.enter(); s.objFirst() {
		for {
			switch s.key() {
			case "id":
				s.strVal(&st.id)
			case "imp":
				x.parseImps()
			case "app":
				x.parseSite(&st.app)
			case "site":
				x.parseSite(&st.site)
			case "device":
				x.parseDevice(&st.device)
			case "user":
				x.parseUser(&st.user)
			case "regs":
				x.parseRegs(&st.regs)
			default:
				s.skip()
			}
			if !s.objNext() {
				break
			}
		}
	}
	s.ws()
	if s.i != len(s.b) {
		s.fail()
	}
}

// beginArray starts a value that decodes into a slice: '[' enters it
// (ok=true); null and "[]" are handled by the callers through l.
func (x *Extractor) beginArray() (arr, null bool) {
	s := &x.s
	switch s.peek() {
	case '[':
		return s.enter(), false
	case 'n':
		s.literal("null")
		return false, !s.bad
	}
	s.skip()
	return false, false
}

func (x *Extractor) parseImps() {
	s := &x.s
	l := &x.st.imps
	arr, null := x.beginArray()
	if null {
		l.clear()
	}
	if !arr {
		return
	}
	n := 0
	if s.arrFirst() {
		for {
			x.parseImp(elem(l, n))
			n++
			if !s.arrNext() {
				break
			}
		}
	}
	l.done(n)
}

func (x *Extractor) parseImp(m *impState) {
	s := &x.s
	obj, more, _ := s.beginObject() // null: no-op for a struct element
	if !obj || !more {
		return
	}
	for {
		switch s.key() {
		case "id":
			s.strVal(&m.id)
		case "video":
			x.parseVideo(&m.video)
		case "pmp":
			x.parsePMP(m)
		case "ssai":
			s.int8Val(&m.ssai)
		default:
			s.skip()
		}
		if !s.objNext() {
			return
		}
	}
}

func (x *Extractor) parseVideo(v *videoState) {
	s := &x.s
	obj, more, null := s.beginObject()
	if null {
		*v = videoState{}
	}
	if !obj || !more {
		return
	}
	for {
		switch s.key() {
		case "plcmt":
			s.int8Val(&v.plcmt)
		case "placement":
			s.int8Val(&v.placement)
		case "podseq":
			s.int8Val(&v.podSeq)
		case "slotinpod":
			s.int8Val(&v.slotInPod)
		case "maxduration":
			s.int64Val(&v.maxDuration)
		default:
			s.skip()
		}
		if !s.objNext() {
			return
		}
	}
}

func (x *Extractor) parsePMP(m *impState) {
	s := &x.s
	obj, more, null := s.beginObject()
	if null {
		m.deals.clear()
	}
	if !obj || !more {
		return
	}
	for {
		switch s.key() {
		case "deals":
			l := &m.deals
			arr, null := x.beginArray()
			if null {
				l.clear()
			}
			if arr {
				n := 0
				if s.arrFirst() {
					for {
						d := elem(l, n)
						if obj, more, _ := s.beginObject(); obj && more {
							for {
								if s.key() == "id" {
									s.strVal(&d.id)
								} else {
									s.skip()
								}
								if !s.objNext() {
									break
								}
							}
						}
						n++
						if !s.arrNext() {
							break
						}
					}
				}
				l.done(n)
			}
		default:
			s.skip()
		}
		if !s.objNext() {
			return
		}
	}
}

func (x *Extractor) parseSite(a *siteState) {
	s := &x.s
	obj, more, null := s.beginObject()
	if null {
		a.reset()
	}
	if !obj || !more {
		return
	}
	for {
		switch s.key() {
		case "bundle": // a site has no bundle field: the key is skipped there
			if a == &x.st.app {
				s.strVal(&a.bundle)
			} else {
				s.skip()
			}
		case "domain":
			s.strVal(&a.domain)
		case "publisher":
			if obj, more, null := s.beginObject(); null {
				a.pubID = span{}
			} else if obj && more {
				for {
					if s.key() == "id" {
						s.strVal(&a.pubID)
					} else {
						s.skip()
					}
					if !s.objNext() {
						break
					}
				}
			}
		case "content":
			x.parseContent(&a.content)
		default:
			s.skip()
		}
		if !s.objNext() {
			return
		}
	}
}

func (x *Extractor) parseContent(c *contentState) {
	s := &x.s
	obj, more, null := s.beginObject()
	if null {
		c.reset()
	}
	if !obj || !more {
		return
	}
	for {
		switch s.key() {
		case "genre":
			s.strVal(&c.genre)
		case "series":
			s.strVal(&c.series)
		case "language":
			s.strVal(&c.language)
		case "contentrating":
			s.strVal(&c.rating)
		case "livestream":
			s.optInt8Val(&c.live)
		case "network":
			x.parseNet(&c.network)
		case "channel":
			x.parseNet(&c.channel)
		default:
			s.skip()
		}
		if !s.objNext() {
			return
		}
	}
}

func (x *Extractor) parseNet(n *netState) {
	s := &x.s
	obj, more, null := s.beginObject()
	if null {
		n.reset()
	}
	if !obj || !more {
		return
	}
	for {
		switch s.key() {
		case "id":
			s.strVal(&n.id)
		case "name":
			s.strVal(&n.name)
		default:
			s.skip()
		}
		if !s.objNext() {
			return
		}
	}
}

func (x *Extractor) parseDevice(d *deviceState) {
	s := &x.s
	obj, more, null := s.beginObject()
	if null {
		d.reset()
	}
	if !obj || !more {
		return
	}
	for {
		switch s.key() {
		case "ifa":
			s.strVal(&d.ifa)
		case "ip":
			s.strVal(&d.ip)
		case "ipv6":
			s.strVal(&d.ipv6)
		case "make":
			s.strVal(&d.make)
		case "os":
			s.strVal(&d.os)
		case "devicetype":
			s.int8Val(&d.deviceType)
		case "lmt":
			s.optInt8Val(&d.lmt)
		case "geo":
			x.parseGeo(&d.geo)
		case "ext": // RawMessage: replaced whole
			d.ifaType = span{}
			if obj, more, _ := s.beginObject(); obj && more {
				for {
					if s.key() == "ifa_type" {
						s.strVal(&d.ifaType)
					} else {
						s.skip()
					}
					if !s.objNext() {
						break
					}
				}
			}
		default:
			s.skip()
		}
		if !s.objNext() {
			return
		}
	}
}

func (x *Extractor) parseGeo(g *geoState) {
	s := &x.s
	obj, more, null := s.beginObject()
	if null {
		*g = geoState{}
	}
	if !obj || !more {
		return
	}
	for {
		switch s.key() {
		case "country":
			s.strVal(&g.country)
		case "region":
			s.strVal(&g.region)
		case "metro":
			s.strVal(&g.metro)
		case "utcoffset":
			s.int64Val(&g.utcOffset)
		default:
			s.skip()
		}
		if !s.objNext() {
			return
		}
	}
}

func (x *Extractor) parseUser(u *userState) {
	s := &x.s
	obj, more, null := s.beginObject()
	if null {
		u.reset()
	}
	if !obj || !more {
		return
	}
	for {
		switch s.key() {
		case "id":
			s.strVal(&u.id)
		case "consent":
			s.strVal(&u.consent)
		case "eids":
			x.parseEIDs(&u.eids)
		case "ext": // RawMessage: replaced whole
			u.resetExt()
			if obj, more, _ := s.beginObject(); obj && more {
				for {
					switch s.key() {
					case "consent":
						s.strVal(&u.extConsent)
					case "eids":
						x.parseEIDs(&u.extEIDs)
					default:
						s.skip()
					}
					if !s.objNext() {
						break
					}
				}
			}
		default:
			s.skip()
		}
		if !s.objNext() {
			return
		}
	}
}

func (x *Extractor) parseEIDs(l *list[eidState]) {
	s := &x.s
	arr, null := x.beginArray()
	if null {
		l.clear()
	}
	if !arr {
		return
	}
	n := 0
	if s.arrFirst() {
		for {
			e := elem(l, n)
			if obj, more, _ := s.beginObject(); obj && more {
				for {
					switch s.key() {
					case "source":
						s.strVal(&e.source)
					case "uids":
						x.parseUIDs(&e.uids)
					default:
						s.skip()
					}
					if !s.objNext() {
						break
					}
				}
			}
			n++
			if !s.arrNext() {
				break
			}
		}
	}
	l.done(n)
}

func (x *Extractor) parseUIDs(l *list[uidState]) {
	s := &x.s
	arr, null := x.beginArray()
	if null {
		l.clear()
	}
	if !arr {
		return
	}
	n := 0
	if s.arrFirst() {
		for {
			u := elem(l, n)
			if obj, more, _ := s.beginObject(); obj && more {
				for {
					if s.key() == "id" {
						s.strVal(&u.id)
					} else {
						s.skip()
					}
					if !s.objNext() {
						break
					}
				}
			}
			n++
			if !s.arrNext() {
				break
			}
		}
	}
	l.done(n)
}

func (x *Extractor) parseRegs(r *regsState) {
	s := &x.s
	obj, more, null := s.beginObject()
	if null {
		r.reset()
	}
	if !obj || !more {
		return
	}
	for {
		key := s.key()    // aliases the scanner's key buffer: used before the next key
		if key == "ext" { // RawMessage: replaced whole
			r.ext.reset()
			if obj, more, _ := s.beginObject(); obj && more {
				for {
					x.regsField(&r.ext, s.key())
					if !s.objNext() {
						break
					}
				}
			}
		} else {
			x.regsField(&r.regsFields, key)
		}
		if !s.objNext() {
			return
		}
	}
}

func (x *Extractor) regsField(r *regsFields, key string) {
	s := &x.s
	switch key {
	case "coppa":
		s.int8Val(&r.coppa)
	case "gdpr":
		s.optInt8Val(&r.gdpr)
	case "us_privacy":
		s.strVal(&r.usp)
	case "gpp":
		s.strVal(&r.gpp)
	case "gpp_sid":
		l := &r.gppSID
		arr, null := x.beginArray()
		if null {
			l.clear()
		}
		if arr {
			n := 0
			if s.arrFirst() {
				for {
					s.int8Val(&elem(l, n).v)
					n++
					if !s.arrNext() {
						break
					}
				}
			}
			l.done(n)
		}
	default:
		s.skip()
	}
}

// build turns the parsed state into x.req and its features.
func (x *Extractor) build(now int64) {
	st := &x.st
	r := &x.req
	// Every value is at most 3 times its raw bytes (an invalid UTF-8 byte
	// becomes U+FFFD); numbers and constants need little more. Reserving it
	// up front keeps every slice into the arena valid.
	need := 3*len(x.s.b) + 64*st.imps.n + 256
	if cap(x.arena) < need {
		x.arena = make([]byte, 0, need+need/4)
	}
	x.arena = x.arena[:0]
	unknown := x.put(Unknown)

	r.ID = x.val(st.id)

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
		imp.feat = rf
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
		start := len(r.deals)
		for j := 0; j < m.deals.n; j++ {
			if id := m.deals.items[j].id; !id.empty() {
				r.deals = append(r.deals, x.val(id))
			}
		}
		if len(r.deals) > start {
			imp.feat[FeatureDeal] = r.deals[start]
		}
		for f := range imp.feat {
			if len(imp.feat[f]) == 0 {
				imp.feat[f] = unknown
			}
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
