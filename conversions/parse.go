package conversions

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"strconv"
	"unsafe"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/signals"
	"github.com/valyala/fastjson"
	"github.com/valyala/fastjson/fastfloat"
)

// Limits of one server event (Meta documents none of these; they bound memory
// and the journal record).
const (
	maxEventName      = 100 // bytes of event_name
	maxEventID        = 500 // bytes of event_id and order_id
	maxHouseholdID    = 256 // bytes of household_id
	maxValuesPerField = 10  // values of one user_data field (em: ["a", "b", ...])
	maxNumberText     = 64  // bytes of a JSON number used as an id
)

// Reasons of validation problems. They never quote the value (it may be PII).
const (
	reasonRequired     = "required"
	reasonNotString    = "not a string"
	reasonNotObject    = "not an object"
	reasonNotBool      = "not a boolean"
	reasonNotInteger   = "not an integer"
	reasonNotStringArr = "not a string or an array of strings"
	reasonTooLong      = "too long"
	reasonNotIP        = "not an IP address"
	reasonPurchase     = "required for Purchase events"
)

// event is one server event during ingest. Its byte slices alias the request
// and are valid only during the call.
type event struct {
	name     []byte
	key      DedupKey
	time     int64
	value    float64
	currency string // a substring of iso4217, "" unless FlagValue
	action   ActionSource
	flags    Flags
	idOff    int // b.ids[idOff:idOff+idN] are the event's identities
	idN      int
	dup      bool
	ldu      lduOutcome
	// unmatchable: valid for Meta through its own ids only (fbp, lead_id,
	// ...), which cpafeed cannot match to an exposure.
	unmatchable bool
}

// lduOutcome is what Limited Data Use did to an event (README "Limited Data
// Use"). Indexes metricLDU.
type lduOutcome uint8

const (
	lduNone           lduOutcome = iota // no LDU asked
	lduGeolocate                        // restricted: country or state 0 or absent, which Meta geolocates and cpafeed cannot
	lduCoveredState                     // restricted: US and a state LDU covers (Config.LDUStates)
	lduOutsideUS                        // kept: a country other than the US
	lduUncoveredState                   // kept: US and a state LDU does not cover
	numLDUOutcomes
)

// restricted reports whether the event's identifiers are discarded.
func (o lduOutcome) restricted() bool { return o == lduGeolocate || o == lduCoveredState }

type rawEvent struct {
	name, time, id, action, url, user, custom, optOut, dpo, dpoCountry, dpoState, app *fastjson.Value
}

type rawUser struct {
	multi                                        [numFields]*fastjson.Value
	ip, ua, fbc, fbp, madid, anonID, ifa, ifaTyp *fastjson.Value
	household                                    *fastjson.Value
	// platform are Meta's own ids (lead_id, page_id, ig_account_id, ...):
	// an event that has one is valid for Meta but cannot be matched here.
	platform [maxPlatformIDs]platformID
	nPlat    int
}

type platformID struct {
	name []byte
	v    *fastjson.Value
}

// maxPlatformIDs bounds the Meta-only id fields read from one user_data
// (there are 9 besides fbp and fbc, and ig_* ones); more are ignored.
const maxPlatformIDs = 16

// isPlatformID reports whether a user_data key is one of Meta's own ids
// that make an event valid for Meta though cpafeed cannot match them.
func isPlatformID(k []byte) bool {
	switch string(k) {
	case "lead_id", "subscription_id", "fb_login_id", "page_id", "page_scoped_user_id", "ctwa_clid":
		return true
	}
	return len(k) > 3 && string(k[:3]) == "ig_" // ig_account_id, ig_sid
}

func present(v *fastjson.Value) bool { return v != nil && v.Type() != fastjson.TypeNull }

func stringOf(v *fastjson.Value) ([]byte, bool) {
	if v.Type() != fastjson.TypeString {
		return nil, false
	}
	s, _ := v.StringBytes()
	return s, true
}

// s2b views s as bytes for a call that only reads them.
func s2b(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// b2s views b as a string for a call that does not keep it.
func b2s(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// parseEvents validates every event of data into b.events, hashing the
// identities of valid ones unless b.test. Problems go to b.details; the
// returned error is for a data field that is not a non-empty array of at most
// MaxEvents.
func (s *Service) parseEvents(b *batch, data *fastjson.Value) *apierr.Error {
	if !present(data) {
		return apierr.BadRequest("data: missing; send {\"data\": [server events]}").WithSubcode(apierr.SubcodeMalformedBody)
	}
	arr, err := data.Array()
	if err != nil {
		return apierr.BadRequest("data: not an array").WithSubcode(apierr.SubcodeMalformedBody)
	}
	if len(arr) == 0 {
		return apierr.BadRequest("data: empty; send at least one event").WithSubcode(apierr.SubcodeInvalidBatch)
	}
	if len(arr) > s.cfg.MaxEvents {
		return apierr.BadRequest("data: %d events, more than the limit of %d per request", len(arr), s.cfg.MaxEvents).WithSubcode(apierr.SubcodeTooManyEvents)
	}
	if cap(b.events) < len(arr) {
		b.events = make([]event, 0, len(arr))
	}
	for i, v := range arr {
		s.parseEvent(b, i, v)
	}
	return nil
}

func (s *Service) parseEvent(b *batch, i int, v *fastjson.Value) {
	b.events = append(b.events, event{idOff: len(b.ids)})
	e := &b.events[len(b.events)-1]
	o, err := v.Object()
	if err != nil {
		b.fail(i, apierr.SubcodeInvalidBatch, "", reasonNotObject)
		return
	}
	var r rawEvent
	o.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "event_name":
			r.name = v
		case "event_time":
			r.time = v
		case "event_id":
			r.id = v
		case "action_source":
			r.action = v
		case "event_source_url":
			r.url = v
		case "user_data":
			r.user = v
		case "custom_data":
			r.custom = v
		case "opt_out":
			r.optOut = v
		case "data_processing_options":
			r.dpo = v
		case "data_processing_options_country":
			r.dpoCountry = v
		case "data_processing_options_state":
			r.dpoState = v
		case "app_data":
			r.app = v
		}
	})
	b.num = b.num[:0]

	// event_name
	if !present(r.name) {
		b.fail(i, apierr.SubcodeInvalidBatch, "event_name", reasonRequired)
	} else if name, ok := stringOf(r.name); !ok {
		b.fail(i, apierr.SubcodeInvalidBatch, "event_name", reasonNotString)
	} else if len(name) == 0 {
		b.fail(i, apierr.SubcodeInvalidBatch, "event_name", reasonRequired)
	} else if len(name) > maxEventName {
		b.fail(i, apierr.SubcodeInvalidBatch, "event_name", "longer than 100 bytes")
	} else if why := signals.BadText(name); why != "" {
		b.fail(i, apierr.SubcodeInvalidBatch, "event_name", why)
	} else {
		e.name = name
	}

	// action_source (before event_time: it decides the age limit)
	if !present(r.action) {
		b.fail(i, apierr.SubcodeInvalidBatch, "action_source", reasonRequired)
	} else if a, ok := stringOf(r.action); !ok {
		b.fail(i, apierr.SubcodeInvalidBatch, "action_source", reasonNotString)
	} else if e.action = parseActionSource(a); e.action == ActionNone {
		b.fail(i, apierr.SubcodeInvalidBatch, "action_source", "not one of website, app, email, phone_call, chat, physical_store, system_generated, business_messaging, other")
	}

	// event_time
	if !present(r.time) {
		b.fail(i, apierr.SubcodeInvalidBatch, "event_time", reasonRequired)
	} else if t, ok := unixSeconds(r.time); !ok {
		b.fail(i, apierr.SubcodeInvalidBatch, "event_time", "not a Unix time in seconds")
	} else {
		e.time = t
		maxAge, tooOld := s.maxAgeSec, s.msgTooOld
		if e.action == ActionPhysicalStore {
			maxAge, tooOld = s.maxAgeStoreSec, s.msgTooOldStore
		}
		switch {
		case t <= 0:
			b.fail(i, apierr.SubcodeInvalidBatch, "event_time", "not a Unix time in seconds")
		case t > b.nowSec+s.maxFutureSec && t/1000 <= b.nowSec+s.maxFutureSec && t/1000 > b.nowSec-maxAge:
			b.fail(i, apierr.SubcodeFutureEvent, "event_time", "in milliseconds; send Unix seconds")
		case t > b.nowSec+s.maxFutureSec:
			b.fail(i, apierr.SubcodeFutureEvent, "event_time", s.msgFuture)
		case t < b.nowSec-maxAge:
			b.fail(i, apierr.SubcodeStaleEvent, "event_time", tooOld)
		}
	}

	// event_id
	var eventID []byte
	if present(r.id) {
		id, ok := b.scalar(r.id)
		switch {
		case !ok:
			b.fail(i, apierr.SubcodeInvalidBatch, "event_id", reasonNotString)
		case len(id) > maxEventID:
			b.fail(i, apierr.SubcodeInvalidBatch, "event_id", reasonTooLong)
		case signals.BadText(id) != "":
			b.fail(i, apierr.SubcodeInvalidBatch, "event_id", signals.BadText(id))
		default:
			eventID = id
		}
	}

	// event_source_url
	hasURL := false
	if present(r.url) {
		u, ok := stringOf(r.url)
		if !ok {
			b.fail(i, apierr.SubcodeInvalidBatch, "event_source_url", reasonNotString)
		}
		hasURL = !ok || len(trimSpace(u)) > 0 // a wrong type is reported once
	}
	if e.action == ActionWebsite && !hasURL {
		b.fail(i, apierr.SubcodeInvalidBatch, "event_source_url", "required for action_source website")
	}

	// opt_out
	if present(r.optOut) {
		switch r.optOut.Type() {
		case fastjson.TypeTrue:
			e.flags |= FlagOptOut
		case fastjson.TypeFalse:
		default:
			b.fail(i, apierr.SubcodeInvalidBatch, "opt_out", reasonNotBool)
		}
	}

	// data_processing_options (+ _country, _state)
	e.ldu = s.parseLDU(b, i, &r)
	ldu := e.ldu.restricted()
	if ldu {
		e.flags |= FlagLDU
	}

	// app_data
	tracking := b.parseAppData(i, r.app)

	// custom_data (Purchase needs value and currency, on the CAPI; a pixel
	// hit without them is kept, as Meta's pixel keeps it)
	purchase := b.source != SourcePixel && string(e.name) == "Purchase"
	orderID := s.parseCustomData(b, i, e, r.custom, purchase)

	// user_data: the clear values are normalized, hashed and dropped here.
	// Once the batch is known to be rejected, values are only validated.
	matchable, platform, hasUA := s.parseUserData(b, i, e, r.user, !ldu && !b.test && len(b.details) == 0, tracking)
	if e.action == ActionWebsite && !hasUA {
		b.fail(i, apierr.SubcodeInvalidBatch, "user_data.client_user_agent", "required for action_source website")
	}
	if matchable == 0 && !ldu {
		if platform == 0 {
			b.fail(i, apierr.SubcodeTooLittleInfo, "user_data", "no customer information parameter: send em, ph, external_id, ifa, madid, client_ip_address or household_id (Meta's fbp, fbc, lead_id, ... ids are accepted too, but never matched)")
		}
		e.unmatchable = true
	}

	if len(b.details) > 0 || b.test { // the batch will not be stored
		b.ids = b.ids[:e.idOff]
		e.idN = 0
		return
	}
	e.idN = len(b.ids) - e.idOff
	s.dedupKey(b, e, eventID, orderID)
}

// dedupKey sets e.key: SHA-256 over (dataset, event_name, event_id), or over
// a fingerprint (dataset, event_name, event_time, order_id, value, currency,
// identities) when there is no event_id. Length prefixes keep fields apart.
// It is journaled: never change the derivation of an existing version.
func (s *Service) dedupKey(b *batch, e *event, eventID, orderID []byte) {
	k := b.keyBuf[:0]
	if len(eventID) > 0 {
		k = append(k, "cpafeed dedup v1"...)
		k = appendLP(k, b.dataset)
		k = appendLP(k, e.name)
		k = appendLP(k, eventID)
	} else {
		e.flags |= FlagFingerprint
		k = append(k, "cpafeed fingerprint v1"...)
		k = appendLP(k, b.dataset)
		k = appendLP(k, e.name)
		k = binary.AppendVarint(k, e.time)
		k = appendLP(k, orderID)
		if e.flags&FlagValue != 0 {
			k = binary.LittleEndian.AppendUint64(k, math.Float64bits(e.value))
			k = append(k, e.currency...)
		}
		for _, id := range b.ids[e.idOff : e.idOff+e.idN] {
			k = append(k, byte(id.Kind))
			k = binary.LittleEndian.AppendUint64(k, id.Key)
		}
	}
	sum := sha256.Sum256(k)
	copy(e.key[:], sum[:len(e.key)])
	b.keyBuf = k
}

// EventDedupKey is the dedup key of an event with an event_id, as ingest
// derives it: what StoredEvent.Key and CreditNote.Conversion carry (for
// callers that know their events by id, such as a simulation's judge).
func EventDedupKey(dataset, eventName, eventID string) DedupKey {
	k := append([]byte(nil), "cpafeed dedup v1"...)
	k = appendLP(k, dataset)
	k = appendLP(k, eventName)
	k = appendLP(k, eventID)
	sum := sha256.Sum256(k)
	var key DedupKey
	copy(key[:], sum[:len(key)])
	return key
}

func appendLP[T ~string | ~[]byte](dst []byte, s T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// parseDPO reads data_processing_options and reports whether it asks for LDU.
func (b *batch) parseDPO(i int, v *fastjson.Value) (ldu bool) {
	if !present(v) {
		return false
	}
	check := func(j int, x *fastjson.Value) {
		if !present(x) {
			return
		}
		s, ok := stringOf(x)
		switch {
		case !ok:
			b.fail(i, apierr.SubcodeInvalidBatch, indexed("data_processing_options", j), reasonNotString)
		case equalFoldASCII(s, "ldu"):
			ldu = true
		case len(trimSpace(s)) == 0:
		default:
			b.fail(i, apierr.SubcodeInvalidBatch, indexed("data_processing_options", j), "unknown option; the only one is LDU")
		}
	}
	switch v.Type() {
	case fastjson.TypeArray:
		arr, _ := v.Array()
		for j, x := range arr {
			check(j, x)
		}
	case fastjson.TypeString:
		check(-1, v)
	default:
		b.fail(i, apierr.SubcodeInvalidBatch, "data_processing_options", "not an array of strings")
	}
	return ldu
}

// parseLDU reads data_processing_options with its country and state and
// says what Limited Data Use does to the event. Meta's codes: country 1 is
// the US, state 1000 California, 0 (or absent) "geolocate": Meta finds
// where the person is, cpafeed cannot, so such an event stays restricted.
// A country other than the US, or a US state that Config.LDUStates does not
// list, keeps the identifiers.
func (s *Service) parseLDU(b *batch, i int, r *rawEvent) lduOutcome {
	ldu := b.parseDPO(i, r.dpo)
	country, cok := intOf(r.dpoCountry)
	if present(r.dpoCountry) && !cok {
		b.fail(i, apierr.SubcodeInvalidBatch, "data_processing_options_country", reasonNotInteger)
	}
	state, sok := intOf(r.dpoState)
	if present(r.dpoState) && !sok {
		b.fail(i, apierr.SubcodeInvalidBatch, "data_processing_options_state", reasonNotInteger)
	}
	switch {
	case !ldu:
		return lduNone
	case country == 0:
		return lduGeolocate
	case country != 1:
		return lduOutsideUS
	case state == 0:
		return lduGeolocate
	}
	for _, st := range s.cfg.LDUStates {
		if int64(st) == state {
			return lduCoveredState
		}
	}
	return lduUncoveredState
}

// parseAppData checks app_data's shape (extinfo as an array or as an object
// keyed "0".."15", both as Meta's SDKs send it) and reports whether the user
// allows tracking: advertiser_tracking_enabled false (iOS ATT not granted)
// makes the event's device ids (madid, ifa) unusable.
func (b *batch) parseAppData(i int, v *fastjson.Value) (tracking bool) {
	if !present(v) {
		return true
	}
	o, err := v.Object()
	if err != nil {
		b.fail(i, apierr.SubcodeInvalidBatch, "app_data", reasonNotObject)
		return true
	}
	tracking = true
	o.Visit(func(k []byte, x *fastjson.Value) {
		switch string(k) {
		case "advertiser_tracking_enabled":
			switch x.Type() {
			case fastjson.TypeNull, fastjson.TypeTrue:
			case fastjson.TypeFalse:
				tracking = false
			case fastjson.TypeNumber:
				n, err := x.Int()
				if err != nil || n < 0 || n > 1 {
					b.fail(i, apierr.SubcodeInvalidBatch, "app_data.advertiser_tracking_enabled", reasonNotBool)
				}
				tracking = n != 0
			default:
				b.fail(i, apierr.SubcodeInvalidBatch, "app_data.advertiser_tracking_enabled", reasonNotBool)
			}
		case "extinfo":
			switch x.Type() {
			case fastjson.TypeNull, fastjson.TypeArray, fastjson.TypeObject:
			default:
				b.fail(i, apierr.SubcodeInvalidBatch, "app_data.extinfo", "not an array or an object")
			}
		}
	})
	return tracking
}

// parseCustomData reads value, currency and order_id; the rest is ignored.
// A Purchase (purchase) needs value and currency, as Meta requires.
func (s *Service) parseCustomData(b *batch, i int, e *event, v *fastjson.Value, purchase bool) (orderID []byte) {
	if !present(v) {
		if purchase {
			b.fail(i, apierr.SubcodeMissingCurrency, "custom_data.currency", reasonPurchase)
			b.fail(i, apierr.SubcodeMissingValue, "custom_data.value", reasonPurchase)
		}
		return nil
	}
	o, err := v.Object()
	if err != nil {
		b.fail(i, apierr.SubcodeInvalidBatch, "custom_data", reasonNotObject)
		return nil
	}
	var value, currency, order *fastjson.Value
	o.Visit(func(k []byte, x *fastjson.Value) {
		switch string(k) {
		case "value":
			value = x
		case "currency":
			currency = x
		case "order_id":
			order = x
		}
	})
	if present(order) {
		id, ok := b.scalar(order)
		switch {
		case !ok:
			b.fail(i, apierr.SubcodeInvalidBatch, "custom_data.order_id", reasonNotString)
		case len(id) > maxEventID:
			b.fail(i, apierr.SubcodeInvalidBatch, "custom_data.order_id", reasonTooLong)
		case signals.BadText(id) != "":
			b.fail(i, apierr.SubcodeInvalidBatch, "custom_data.order_id", signals.BadText(id))
		default:
			orderID = id
		}
	}
	cur := ""
	if purchase && !present(currency) {
		b.fail(i, apierr.SubcodeMissingCurrency, "custom_data.currency", reasonPurchase)
	}
	if present(currency) {
		c, ok := stringOf(currency)
		if !ok {
			b.fail(i, apierr.SubcodeInvalidBatch, "custom_data.currency", reasonNotString)
		} else if cur = currencyCode(trimSpace(c)); cur == "" {
			b.fail(i, apierr.SubcodeInvalidBatch, "custom_data.currency", "not an ISO 4217 currency code")
		}
	}
	if !present(value) {
		if purchase {
			b.fail(i, apierr.SubcodeMissingValue, "custom_data.value", reasonPurchase)
		}
		return orderID
	}
	f, ok := number(value)
	switch {
	case !ok:
		b.fail(i, apierr.SubcodeInvalidBatch, "custom_data.value", "not a number")
	case math.IsNaN(f) || math.IsInf(f, 0) || f < 0:
		b.fail(i, apierr.SubcodeInvalidBatch, "custom_data.value", "not a finite number >= 0")
	case !present(currency) && purchase: // reported above
	case !present(currency):
		b.fail(i, apierr.SubcodeInvalidBatch, "custom_data.currency", "required with custom_data.value")
	case cur != "":
		e.value, e.currency = f, cur
		e.flags |= FlagValue
	}
	return orderID
}

// parseUserData validates user_data and, if hash, appends the event's keyed
// identities to b.ids. It returns the number of matchable identifiers seen
// (valid em, ph, external_id, client_ip_address, household_id, and ifa/madid
// when tracking is allowed), the number of Meta's own ids seen (fbp, fbc,
// anon_id, lead_id, page_id, ig_*, ...: valid for Meta, never matched here)
// and whether client_user_agent was sent.
func (s *Service) parseUserData(b *batch, i int, e *event, v *fastjson.Value, hash, tracking bool) (matchable, platform int, hasUA bool) {
	if !present(v) {
		return 0, 0, false
	}
	o, err := v.Object()
	if err != nil {
		b.fail(i, apierr.SubcodeInvalidBatch, "user_data", reasonNotObject)
		return 0, 0, false
	}
	var u rawUser
	o.Visit(func(k []byte, x *fastjson.Value) {
		if f := parseField(k); f != fieldNone {
			u.multi[f] = x
			return
		}
		switch string(k) {
		case "client_ip_address":
			u.ip = x
		case "client_user_agent":
			u.ua = x
		case "fbc":
			u.fbc = x
		case "fbp":
			u.fbp = x
		case "madid":
			u.madid = x
		case "anon_id":
			u.anonID = x
		case "ifa":
			u.ifa = x
		case "ifa_type":
			u.ifaTyp = x
		case "household_id":
			u.household = x
		default:
			if isPlatformID(k) && u.nPlat < len(u.platform) {
				u.platform[u.nPlat] = platformID{k, x}
				u.nPlat++
			}
		}
	})

	for f := fieldEmail; f < numFields; f++ {
		x := u.multi[f]
		if !present(x) {
			continue
		}
		switch x.Type() {
		case fastjson.TypeArray:
			arr, _ := x.Array()
			if len(arr) > maxValuesPerField {
				b.fail(i, apierr.SubcodeInvalidBatch, "user_data."+fieldNames[f], "more than 10 values")
				continue
			}
			for j, y := range arr {
				if present(y) {
					matchable += s.userValue(b, i, j, f, y, hash)
				}
			}
		default:
			matchable += s.userValue(b, i, -1, f, x, hash)
		}
	}

	if present(u.ip) {
		ip, ok := stringOf(u.ip)
		if !ok {
			b.fail(i, apierr.SubcodeInvalidBatch, "user_data.client_ip_address", reasonNotString)
		} else if ip = trimSpace(ip); len(ip) > 0 {
			var norm []byte
			if norm, ok = signals.NormalizeIP(b.scratch[:0], ip); !ok {
				b.fail(i, apierr.SubcodeInvalidBatch, "user_data.client_ip_address", reasonNotIP)
			} else {
				matchable++
				if hash {
					b.addID(s.hasher.ID(signals.IDIP, norm))
				}
			}
			b.scratch = norm
		}
	}
	for _, d := range [...]struct {
		v    *fastjson.Value
		name string
	}{{u.madid, "user_data.madid"}, {u.ifa, "user_data.ifa"}} {
		if !present(d.v) {
			continue
		}
		ifa, ok := stringOf(d.v)
		if !ok {
			b.fail(i, apierr.SubcodeInvalidBatch, d.name, reasonNotString)
			continue
		}
		norm, ok := signals.NormalizeIFA(b.scratch[:0], ifa)
		b.scratch = norm
		if ok && tracking { // an all-zero IFA is a device that opted out: ignored
			matchable++
			if hash {
				b.addID(s.hasher.ID(signals.IDIFA, norm))
			}
		}
	}
	if present(u.household) {
		h, ok := b.scalar(u.household)
		h = trimSpace(h)
		switch {
		case !ok:
			b.fail(i, apierr.SubcodeInvalidBatch, "user_data.household_id", reasonNotString)
		case len(h) > maxHouseholdID:
			b.fail(i, apierr.SubcodeInvalidBatch, "user_data.household_id", reasonTooLong)
		case signals.BadText(h) != "":
			b.fail(i, apierr.SubcodeInvalidBatch, "user_data.household_id", signals.BadText(h))
		case len(h) > 0:
			matchable++
			if hash {
				b.addID(s.hasher.ID(signals.IDHousehold, h))
			}
		}
	}
	for _, d := range [...]struct {
		v    *fastjson.Value
		name string
	}{{u.ua, "user_data.client_user_agent"}, {u.fbc, "user_data.fbc"}, {u.fbp, "user_data.fbp"}, {u.anonID, "user_data.anon_id"}, {u.ifaTyp, "user_data.ifa_type"}} {
		if !present(d.v) {
			continue
		}
		x, ok := stringOf(d.v)
		if !ok {
			b.fail(i, apierr.SubcodeInvalidBatch, d.name, reasonNotString)
		}
		if d.v == u.ua && (!ok || len(trimSpace(x)) > 0) { // a wrong type is reported once
			hasUA = true
		}
		if ok && (d.v == u.fbc || d.v == u.fbp || d.v == u.anonID) && len(trimSpace(x)) > 0 {
			platform++
		}
	}
	for _, p := range u.platform[:u.nPlat] {
		if !present(p.v) {
			continue
		}
		x, ok := b.scalar(p.v)
		switch {
		case !ok:
			b.fail(i, apierr.SubcodeInvalidBatch, "user_data."+string(p.name), reasonNotString)
		case len(trimSpace(x)) > 0:
			platform++
		}
	}
	return matchable, platform, hasUA
}

// userValue normalizes one value of a hashed user_data field and, for em, ph
// and external_id with hash set, appends its keyed identity. It returns 1 if
// the value is a matchable identifier.
func (s *Service) userValue(b *batch, i, j int, f field, v *fastjson.Value, hash bool) int {
	raw, ok := b.scalar(v)
	if !ok {
		b.fail(i, apierr.SubcodeInvalidBatch, indexed("user_data."+fieldNames[f], j), reasonNotStringArr)
		return 0
	}
	var kind signals.IDKind
	switch f {
	case fieldEmail:
		kind = signals.IDEmail
	case fieldPhone:
		kind = signals.IDPhone
	case fieldExternalID:
		kind = signals.IDExternalID
	}
	if kind != signals.IDNone && lowerSHA256Hex(&b.hex, raw) { // hashed by the sender: the common case
		if hash {
			b.addID(s.hasher.ID(kind, b.hex[:]))
		}
		return 1
	}
	norm, reason, ok := normalizeUserData(b.scratch[:0], f, raw)
	b.scratch = norm
	if !ok {
		if reason != "" {
			b.fail(i, apierr.SubcodeInvalidBatch, indexed("user_data."+fieldNames[f], j), reason)
		}
		return 0
	}
	if kind == signals.IDNone {
		return 0 // fn, ln, ge, db, ct, st, zp, country: validated, not kept (no identity kind)
	}
	if hash {
		hexed := norm // already a SHA-256 hex digest, lower-cased
		if !isSHA256Hex(norm) {
			hexed = appendSHA256Hex(b.hex[:0], norm)
		}
		b.addID(s.hasher.ID(kind, hexed))
	}
	return 1
}

// addID appends id to the identities of the current event unless it has it.
func (b *batch) addID(id signals.ID) {
	off := b.events[len(b.events)-1].idOff
	for _, x := range b.ids[off:] {
		if x == id {
			return
		}
	}
	b.ids = append(b.ids, id)
}

// scalar returns a string's bytes or a number's text (ids sent as numbers).
func (b *batch) scalar(v *fastjson.Value) ([]byte, bool) {
	switch v.Type() {
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		return s, true
	case fastjson.TypeNumber:
		start := len(b.num)
		b.num = v.MarshalTo(b.num)
		if len(b.num)-start > maxNumberText {
			return nil, false
		}
		return b.num[start:len(b.num):len(b.num)], true
	}
	return nil, false
}

// unixSeconds reads event_time: a JSON number (a fraction is truncated) or a
// string of decimal digits, as some SDKs send.
func unixSeconds(v *fastjson.Value) (int64, bool) {
	switch v.Type() {
	case fastjson.TypeNumber:
		if n, err := v.Int64(); err == nil {
			return n, true
		}
		f, err := v.Float64()
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e17 {
			return 0, false
		}
		return int64(f), true
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		s = trimSpace(s)
		if len(s) == 0 || len(s) > 18 {
			return 0, false
		}
		var n int64
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int64(c-'0')
		}
		return n, true
	}
	return 0, false
}

// number reads a JSON number or a numeric string.
func number(v *fastjson.Value) (float64, bool) {
	switch v.Type() {
	case fastjson.TypeNumber:
		f, err := v.Float64()
		return f, err == nil
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		s = trimSpace(s)
		if len(s) == 0 || len(s) > 64 {
			return 0, false
		}
		f, err := fastfloat.Parse(b2s(s))
		return f, err == nil
	}
	return 0, false
}

// intOf reads an integer sent as a JSON number or a string of digits (the
// PHP SDK sends data_processing_options_state as "0"); absent or null is 0.
func intOf(v *fastjson.Value) (int64, bool) {
	if !present(v) {
		return 0, false
	}
	switch v.Type() {
	case fastjson.TypeNumber:
		n, err := v.Int64()
		return n, err == nil
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		n, err := strconv.ParseInt(b2s(trimSpace(s)), 10, 32)
		return n, err == nil
	}
	return 0, false
}

// fail records a problem of event i (field relative to data[i]). The first
// problem's subcode becomes the answer's. Only called on the error path, so
// it may allocate.
func (b *batch) fail(i, subcode int, field, reason string) {
	if len(b.details) == 0 {
		b.subcode = subcode
	}
	path := "data[" + strconv.Itoa(i) + "]"
	if field != "" {
		path += "." + field
	}
	b.details = append(b.details, apierr.Detail{Index: i, Field: path, Reason: reason})
}

// indexed is field, or field[j] for j >= 0 (error path only).
func indexed(field string, j int) string {
	if j < 0 {
		return field
	}
	return field + "[" + strconv.Itoa(j) + "]"
}

// validationError is the answer for a batch with problems: every detail,
// the first one's subcode, and a message naming the first problem.
func (b *batch) validationError() *apierr.Error {
	d := b.details[0]
	msg := d.Field + ": " + d.Reason
	if n := len(b.details) - 1; n > 0 {
		msg += " (and " + strconv.Itoa(n) + " more problems; see details)"
	}
	e := apierr.BadRequest("%s", msg).WithSubcode(b.subcode)
	e.Details = append([]apierr.Detail(nil), b.details...)
	switch b.subcode { // Meta's user-facing words for its public subcodes
	case apierr.SubcodeMissingCurrency:
		e.WithUser("Missing Currency for Purchase Event", "Your purchase event doesn't include a currency parameter. Enter a currency parameter. For example: USD")
	case apierr.SubcodeMissingValue:
		e.WithUser("Missing Value for Purchase Event", "Your purchase event doesn't include a value parameter. Enter the purchase's value. For example: 129.90")
	}
	return e
}
