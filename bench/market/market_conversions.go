package market

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Conversion is one conversion of a campaign: caused by an exposure (after
// its delay) or organic (caused by no ad). It carries what the advertiser
// knows of the converting person, which is not what the bid request knew:
// a conversion on a phone shares with the TV exposure only the household IP,
// a hashed email or a household id; only conversions in the advertiser's TV
// app carry the TV's IFA.
type Conversion struct {
	Campaign  int   // index in Scenario.Campaigns
	Household int32 // household index
	TV        int32 // the exposed TV (organic: one of the household's TVs)
	Person    int32 // the household member who converted

	// Exposure is o.Seq<<3 | slot of the causing impression, or NoExposure.
	Exposure     uint64
	ExposureTime int64         // unix seconds (0 when organic)
	Delay        time.Duration // EventTime − ExposureTime
	EventTime    int64         // unix seconds

	EventID string  // unique per conversion; the dedup key with event_name
	Value   float64 // custom_data.value, USD (0 for non-purchase events)

	IDs   IDSet // identifiers in user_data
	App   bool  // action_source "app" (in the TV app) instead of "website"
	Pixel bool  // the browser pixel reports it too (website only)
}

// NoExposure marks an organic conversion.
const NoExposure = math.MaxUint64

// IDSet is the set of identifiers a conversion carries.
type IDSet uint8

// Identifiers of a conversion's user_data.
const (
	IDSetIP          IDSet = 1 << iota // client_ip_address: the household IP
	IDSetIFA                           // ifa + ifa_type of the exposed TV
	IDSetEmail                         // em: SHA-256 of a member's email
	IDSetHouseholdID                   // household_id of the identity graph
	IDSetExternalID                    // external_id (matches no exposure)
)

// Conversion draws the conversion caused by showing campaign c in slot s of
// o, given its outcome (out.Converted must be true). Like Outcome it is a
// function of (seed, o.Seq, s, c).
func (m *Market) Conversion(o *Opportunity, s, c int, out Outcome) Conversion {
	r := splitmix{s: hash3(m.seed, tagConversion, o.Seq<<9|uint64(s&7)<<6|uint64(c&63))}
	cv := Conversion{
		Campaign:     c,
		Household:    o.Household,
		TV:           o.TV,
		Exposure:     o.Seq<<3 | uint64(s&7),
		ExposureTime: o.Time,
		Delay:        out.Delay,
		EventTime:    o.Time + int64(out.Delay/time.Second),
	}
	m.fillConversion(&cv, &r)
	return cv
}

func (m *Market) fillConversion(cv *Conversion, r *splitmix) {
	hh := &m.households[cv.Household]
	cv.Person = hh.p0 + int32(r.next()%uint64(hh.np))
	rp := &m.sc.Reporting
	ids := &rp.Identifiers.Website
	if r.float() < rp.AppShare {
		cv.App = true
		ids = &rp.Identifiers.App
		// A limited device gives the app no IFA either.
		if bernoulli(r, ids.IFA) && !m.tvs[cv.TV].lmt {
			cv.IDs |= IDSetIFA
		}
	}
	if r.float() < ids.IP {
		cv.IDs |= IDSetIP
	}
	if r.float() < ids.Email {
		cv.IDs |= IDSetEmail
	}
	if r.float() < ids.HouseholdID {
		cv.IDs |= IDSetHouseholdID
	}
	if r.float() < ids.ExternalID || cv.IDs == 0 {
		cv.IDs |= IDSetExternalID
	}
	cv.Pixel = !cv.App && r.float() < m.sc.Reporting.PixelShare
	if mu := m.valueMu[cv.Campaign]; mu != 0 {
		z := normalFromBits(r.next(), r.next())
		cv.Value = math.Round(math.Exp(mu+0.5*z)*100) / 100
	}
	var b [19]byte
	cv.EventID = string(appendHex64(append(b[:0], "ev-"...), r.next()))
}

// bernoulli is true with probability p; it draws only when p is within
// (0, 1).
func bernoulli(r *splitmix, p float64) bool {
	if p >= 1 || p <= 0 {
		return p >= 1
	}
	return r.float() < p
}

// Organic returns the organic conversions of day d for every campaign (a
// Poisson number per campaign, OrganicPerHouseholdDay × households on
// average, in households drawn uniformly, or with organic effects in
// proportion to their metro's factor), sorted by event time. They are the
// same for every strategy of a simulation.
func (m *Market) Organic(d int) []Conversion {
	var out []Conversion
	perHH := m.sc.Truth.OrganicPerHouseholdDay
	for c := range m.sc.Campaigns {
		r := rand.New(rand.NewPCG(m.seed, hash3(m.seed, tagOrganic, uint64(d)<<8|uint64(c))))
		lambda := perHH * float64(len(m.households))
		if m.orgAlias != nil {
			lambda = perHH * m.orgWeight[c]
		}
		n := poisson(r, lambda)
		for range n {
			var h int32
			if m.orgAlias != nil {
				hs := m.hhByMetro[m.orgAlias[c].drawRand(r)]
				h = hs[r.IntN(len(hs))]
			} else {
				h = int32(r.IntN(len(m.households)))
			}
			hh := &m.households[h]
			cv := Conversion{
				Campaign:  c,
				Household: h,
				TV:        hh.tv0 + int32(r.IntN(int(hh.ntv))),
				Exposure:  NoExposure,
				EventTime: m.DayStart(d) + int64(r.IntN(86400)),
			}
			sm := splitmix{s: r.Uint64()}
			m.fillConversion(&cv, &sm)
			out = append(out, cv)
		}
	}
	slices.SortStableFunc(out, func(a, b Conversion) int { return cmp.Compare(a.EventTime, b.EventTime) })
	return out
}

// buildOrganic prepares the draws of organic households when organic
// effects exist: per campaign, every metro weighted by its households × its
// rate factor.
func (m *Market) buildOrganic() {
	if len(m.org) == 0 {
		return
	}
	m.hhByMetro = make([][]int32, len(m.metros))
	for h := range m.households {
		mt := m.households[h].metro
		m.hhByMetro[mt] = append(m.hhByMetro[mt], int32(h))
	}
	m.orgAlias = make([]alias, m.campaigns())
	m.orgWeight = make([]float64, m.campaigns())
	var fv [numFeatures]uint64
	for c := range m.orgAlias {
		w := make([]float64, len(m.metros))
		for mt := range w {
			fv[featMetro] = uint64(mt)
			f := 0.0
			for i := range m.org {
				e := &m.org[i]
				f += e.sigma*m.normal(e, false, e.node(&fv), c) + e.shift
			}
			w[mt] = float64(len(m.hhByMetro[mt])) * math.Exp(f)
			m.orgWeight[c] += w[mt]
		}
		m.orgAlias[c] = newAlias(w)
	}
}

// Batch is one delivery of conversions to cpafeed, as the advertiser (a CAPI
// batch) or the browser (a pixel hit) sends it.
type Batch struct {
	SendAt  int64  // unix seconds
	Dataset string // dataset (pixel) id
	// Pixel is set for a browser pixel copy of one website conversion, sent
	// at its event time; its Body is a one-event Meta body with the same
	// event_name and event_id, to post through the pixel path (or CAPI).
	Pixel bool
	// Retry is set for a resend of an earlier CAPI batch (same Body).
	Retry  bool
	Events []Conversion
	// Body is the Meta CAPI request body {"data":[...]}.
	Body []byte
	// PatchAt are the offsets in Body of 8 hex digits ending each event_id
	// ("-00000000"), set only by a Reporter made patchable (SetPatchable):
	// a load generator rewrites them to keep event ids unique across its
	// passes over the same batches.
	PatchAt []int
}

// Reporter turns conversions into the batches an advertiser sends: CAPI
// batches flushed every BatchInterval (at most BatchMax events each, some
// sent twice), plus browser pixel copies. It is not safe for concurrent use;
// use one per simulated strategy.
type Reporter struct {
	m       *Market
	pending []Conversion // waiting for their CAPI flush
	pixels  []Conversion // waiting for their pixel hit
	retries []Batch      // built, waiting for their resend time
	patch   bool         // build patchable bodies (load generator)
	// due is the earliest send time of anything queued (MaxInt64 when
	// empty), so that Flush returns at once when nothing is due.
	due int64
}

// NewReporter returns an empty Reporter.
func (m *Market) NewReporter() *Reporter { return &Reporter{m: m, due: math.MaxInt64} }

// Add queues a conversion; it will be sent after its event time.
func (r *Reporter) Add(c Conversion) {
	r.pending = append(r.pending, c)
	r.due = min(r.due, r.flushAt(&c))
	if c.Pixel {
		r.pixels = append(r.pixels, c)
		r.due = min(r.due, c.EventTime)
	}
}

// SetPatchable makes the event ids of the batches built from now on end in
// "-00000000", with their offsets in Batch.PatchAt.
func (r *Reporter) SetPatchable(patch bool) { r.patch = patch }

// Pending is the number of conversions not yet sent by CAPI.
func (r *Reporter) Pending() int { return len(r.pending) }

// flushAt is when the advertiser's server sends a conversion: the first
// multiple of BatchInterval (since the epoch) strictly after its event time.
func (r *Reporter) flushAt(c *Conversion) int64 {
	iv := int64(r.m.sc.Reporting.BatchInterval / time.Second)
	return (c.EventTime/iv + 1) * iv
}

// Flush returns every batch due at or before until (unix seconds), ordered by
// send time, and forgets them. Bodies are built here. When nothing is due it
// returns nil at once, so it may be called for every opportunity.
func (r *Reporter) Flush(until int64) []Batch {
	if until < r.due {
		return nil
	}
	defer r.updateDue()
	var out []Batch
	rp := r.m.sc.Reporting

	// Pixel hits, at the event time.
	keep := r.pixels[:0]
	for _, c := range r.pixels {
		if c.EventTime > until {
			keep = append(keep, c)
			continue
		}
		b := Batch{SendAt: c.EventTime, Dataset: r.m.sc.Campaigns[c.Campaign].Dataset, Pixel: true, Events: []Conversion{c}}
		b.Body, b.PatchAt = r.m.appendCAPIBatch(nil, b.Events, r.patch)
		out = append(out, b)
	}
	r.pixels = keep

	// CAPI batches: group the due conversions by (flush time, dataset).
	var due []Conversion
	keep = r.pending[:0]
	for _, c := range r.pending {
		if r.flushAt(&c) <= until {
			due = append(due, c)
		} else {
			keep = append(keep, c)
		}
	}
	r.pending = keep
	slices.SortStableFunc(due, func(a, b Conversion) int {
		if c := cmp.Compare(r.flushAt(&a), r.flushAt(&b)); c != 0 {
			return c
		}
		if c := cmp.Compare(r.m.sc.Campaigns[a.Campaign].Dataset, r.m.sc.Campaigns[b.Campaign].Dataset); c != 0 {
			return c
		}
		if c := cmp.Compare(a.EventTime, b.EventTime); c != 0 {
			return c
		}
		return cmp.Compare(a.EventID, b.EventID)
	})
	for i := 0; i < len(due); {
		at, ds := r.flushAt(&due[i]), r.m.sc.Campaigns[due[i].Campaign].Dataset
		j := i
		for j < len(due) && j-i < rp.BatchMax && r.flushAt(&due[j]) == at && r.m.sc.Campaigns[due[j].Campaign].Dataset == ds {
			j++
		}
		ev := slices.Clone(due[i:j])
		b := Batch{SendAt: at, Dataset: ds, Events: ev}
		b.Body, b.PatchAt = r.m.appendCAPIBatch(nil, ev, r.patch)
		out = append(out, b)
		if unitFloat(hash3(r.m.seed, tagRetry, uint64(at)^hashString(ev[0].EventID))) < rp.RetryShare {
			rb := b
			rb.Retry = true
			rb.SendAt = at + int64(rp.RetryDelay/time.Second)
			r.retries = append(r.retries, rb)
		}
		i = j
	}

	keepR := r.retries[:0]
	for _, b := range r.retries {
		if b.SendAt <= until {
			out = append(out, b)
		} else {
			keepR = append(keepR, b)
		}
	}
	r.retries = keepR
	slices.SortStableFunc(out, func(a, b Batch) int { return cmp.Compare(a.SendAt, b.SendAt) })
	return out
}

func (r *Reporter) updateDue() {
	r.due = math.MaxInt64
	for i := range r.pending {
		r.due = min(r.due, r.flushAt(&r.pending[i]))
	}
	for i := range r.pixels {
		r.due = min(r.due, r.pixels[i].EventTime)
	}
	for i := range r.retries {
		r.due = min(r.due, r.retries[i].SendAt)
	}
}

func hashString(s string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 0x100000001b3
	}
	return h
}

// AppendCAPIBatch appends a Meta CAPI request body {"data":[...]} with the
// events.
func (m *Market) AppendCAPIBatch(dst []byte, events []Conversion) []byte {
	dst, _ = m.appendCAPIBatch(dst, events, false)
	return dst
}

func (m *Market) appendCAPIBatch(dst []byte, events []Conversion, patch bool) ([]byte, []int) {
	var offs []int
	dst = append(dst, `{"data":[`...)
	for i := range events {
		if i > 0 {
			dst = append(dst, ',')
		}
		var at int
		dst, at = m.appendCAPIEvent(dst, &events[i], patch)
		if at >= 0 {
			offs = append(offs, at)
		}
	}
	return append(dst, "]}"...), offs
}

// appendCAPIEvent appends one server event. With patch, the event_id ends in
// "-00000000" and patchAt is the offset in dst of those 8 hex digits (the
// load generator rewrites them to keep event ids unique across passes).
func (m *Market) appendCAPIEvent(dst []byte, c *Conversion, patch bool) (out []byte, patchAt int) {
	cs := &m.sc.Campaigns[c.Campaign]
	hh := &m.households[c.Household]
	p := &m.persons[c.Person]
	tv := &m.tvs[c.TV]
	dst = append(dst, '{')
	dst = appendKV(dst, "event_name", cs.Event)
	dst = appendKI(dst, "event_time", c.EventTime)
	dst = appendKey(dst, "event_id")
	dst = append(dst, '"')
	dst = append(dst, c.EventID...)
	patchAt = -1
	if patch {
		dst = append(dst, '-')
		patchAt = len(dst)
		dst = append(dst, "00000000"...)
	}
	dst = append(dst, '"')
	if c.App {
		dst = appendKV(dst, "action_source", "app")
	} else {
		dst = appendKV(dst, "action_source", "website")
		dst = appendKV(dst, "event_source_url", "https://"+cs.Domain+eventPaths[c.Campaign%len(eventPaths)])
	}
	dst = append(dst, `,"user_data":{`...)
	if c.IDs&IDSetEmail != 0 {
		dst = append(dst, `"em":["`...)
		dst = append(dst, p.em...)
		dst = append(dst, `"]`...)
	}
	if c.IDs&IDSetExternalID != 0 {
		dst = appendKey(dst, "external_id")
		dst = append(dst, `["`...)
		dst = append(dst, p.ext...)
		dst = append(dst, `"]`...)
	}
	if c.IDs&IDSetIP != 0 {
		dst = append(m.appendIP(append(appendKey(dst, "client_ip_address"), '"'), c.Household, m.dayOf(c.EventTime)), '"')
	}
	if c.App {
		dst = appendKV(dst, "client_user_agent", m.sc.Inventory.Devices[tv.dev].UA)
		if c.IDs&IDSetIFA != 0 {
			dst = appendKV(dst, "ifa", tv.ifa)
			dst = appendKV(dst, "ifa_type", m.sc.Inventory.Devices[tv.dev].IFAType)
		}
	} else {
		dst = appendKV(dst, "client_user_agent", phoneUAs[p.ua])
		dst = appendKV(dst, "fbp", p.fbp)
	}
	if c.IDs&IDSetHouseholdID != 0 {
		dst = appendKV(dst, "household_id", hh.id)
	}
	dst = append(dst, `},"custom_data":{`...)
	if c.Value > 0 {
		dst = appendPrice(appendKey(dst, "value"), c.Value)
		dst = append(dst, `,"currency":"USD","order_id":"`...)
		dst = append(dst, c.EventID[3:]...)
		dst = append(dst, '"')
	} else {
		dst = append(dst, `"currency":"USD"`...)
	}
	dst = append(dst, "}}"...)
	return dst, patchAt
}

var eventPaths = [...]string{"/checkout/thanks", "/signup/done", "/order/complete"}
