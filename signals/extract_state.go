package signals

// This file mirrors, for the fields we read, what encoding/json leaves in an
// openrtb2.BidRequest: the same merging of repeated keys (last wins; a
// repeated object merges into the struct already there; null resets a
// pointer), and the same slice reuse (decode.go, array: a repeated array
// decodes element i into whatever element i of the backing array holds,
// including elements past the current length left by an earlier, longer
// array; "[]" and null drop them).

// list is a slice of openrtb2 structs as encoding/json fills it. items is
// storage kept across requests; n is the length; ret counts the elements
// that hold data (from this or an earlier array of the same field), the rest
// are zero when they come into use.
type list[T any] struct {
	items []T
	n     int
	ret   int
}

type resetter[T any] interface {
	*T
	reset()
}

// elem returns element i for decoding array element i into it.
func elem[T any, PT resetter[T]](l *list[T], i int) PT {
	if i >= len(l.items) {
		var zero T
		l.items = append(l.items, zero)
	}
	if i >= l.ret {
		PT(&l.items[i]).reset()
		l.ret = i + 1
	}
	return PT(&l.items[i])
}

// clear is null or a fresh RawMessage: nothing retained.
func (l *list[T]) clear() { l.n, l.ret = 0, 0 }

// done sets the length after an array of n elements ("[]" drops the backing
// array: reflect.MakeSlice(t, 0, 0)).
func (l *list[T]) done(n int) {
	l.n = n
	if n == 0 {
		l.ret = 0
	}
}

type netState struct{ id, name span } // content.network, content.channel

func (n *netState) reset() { *n = netState{} }

type contentState struct {
	genre, series, language, rating span
	live                            optI8
	network, channel                netState
	length, catTax                  int64 // content.len, content.cattax
	cat                             list[strElem]
}

// reset zeroes the content, keeping the storage of cat.
func (c *contentState) reset() {
	cat := c.cat
	*c = contentState{cat: cat}
	c.cat.clear()
}

// strElem is an element of a []string.
type strElem struct{ v span }

func (e *strElem) reset() { *e = strElem{} }

// siteState is an app or a site.
type siteState struct {
	bundle, domain span
	pubID          span
	content        contentState
}

func (s *siteState) reset() {
	s.bundle, s.domain, s.pubID = span{}, span{}, span{}
	s.content.reset() // keeps the storage of content.cat
}

type geoState struct {
	country, region, metro span
	utcOffset              int64
}

type deviceState struct {
	ifa, ip, ipv6, make, os span
	deviceType              int8
	lmt                     optI8
	geo                     geoState
	ifaType                 span // device.ext.ifa_type
}

func (d *deviceState) reset() { *d = deviceState{} }

type uidState struct{ id span }

func (u *uidState) reset() { *u = uidState{} }

type eidState struct {
	source span
	uids   list[uidState]
}

func (e *eidState) reset() {
	e.source = span{}
	e.uids.clear()
}

type int8Elem struct{ v int8 }

func (e *int8Elem) reset() { e.v = 0 }

type userState struct {
	id, consent span
	eids        list[eidState]
	// user.ext (a RawMessage: each "ext" replaces the previous one whole)
	extConsent span
	extEIDs    list[eidState]
}

func (u *userState) reset() {
	u.id, u.consent = span{}, span{}
	u.eids.clear()
	u.resetExt()
}

func (u *userState) resetExt() {
	u.extConsent = span{}
	u.extEIDs.clear()
}

type regsFields struct {
	coppa  int8
	gdpr   optI8
	usp    span
	gpp    span
	gppSID list[int8Elem]
}

func (r *regsFields) reset() {
	r.coppa, r.gdpr, r.usp, r.gpp = 0, optI8{}, span{}, span{}
	r.gppSID.clear()
}

type regsState struct {
	regsFields
	ext regsFields // regs.ext (RawMessage)
}

func (r *regsState) reset() {
	r.regsFields.reset()
	r.ext.reset()
}

type dealState struct{ id span }

func (d *dealState) reset() { *d = dealState{} }

type videoState struct {
	plcmt, placement, podSeq, slotInPod int8
	maxDuration                         int64
	startDelay                          optI64
	podID                               span
	maxSeq, podDur                      int64
	rqdDurs                             int // len(rqddurs)
}

type impState struct {
	id    span
	video videoState
	deals list[dealState] // imp.pmp.deals
	ssai  int8
}

func (m *impState) reset() {
	m.id, m.video, m.ssai = span{}, videoState{}, 0
	m.deals.clear()
}

type reqState struct {
	id       span
	at       int64          // BidRequest.at
	imps     list[impState] // at most the extractor's limit
	impsSeen int            // elements of the imp array, counted past the limit
	app      siteState
	site     siteState
	device   deviceState
	user     userState
	regs     regsState
}

func (r *reqState) reset() {
	r.id = span{}
	r.at = 0
	r.imps.clear()
	r.impsSeen = 0
	r.app.reset()
	r.site.reset()
	r.device.reset()
	r.user.reset()
	r.regs.reset()
}
