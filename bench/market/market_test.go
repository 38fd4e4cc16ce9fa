package market

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prebid/openrtb/v20/openrtb2"
)

// testScenario is a smaller market so that tests stay fast under -race.
func testScenario() Scenario {
	sc := DefaultScenario()
	sc.Inventory.Publishers = 60
	sc.Inventory.OpportunitiesPerDay = 30000
	sc.Reporting.Households = 20000
	return sc
}

func testMarket(t testing.TB, sc Scenario, seed uint64) *Market {
	t.Helper()
	m, err := NewMarket(sc, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// marketDigest renders the first n opportunities of day d as bid requests,
// exposures, win and VAST URLs, and every conversion batch of all their
// impressions (days d..d+8 flushed), and hashes the lot.
func marketDigest(t *testing.T, m *Market, d, n int) [32]byte {
	h := sha256.New()
	var buf []byte
	rep := m.NewReporter()
	it := m.Day(d)
	for i := 0; i < n; i++ {
		o := it.Next()
		buf = m.AppendBidRequest(buf[:0], o)
		for s := range o.Slots {
			for c := range m.campaigns() {
				buf = m.AppendExposure(buf, o, s, c, 0, o.Slots[s].CompetingCPM, o.Time)
				buf = m.AppendWinURL(buf, o, s, c, 1, o.Slots[s].CompetingCPM)
				out := m.Outcome(o, s, c)
				for _, ev := range out.Events() {
					buf = m.AppendVASTURL(buf, o, s, c, ev)
				}
				out.Converted = true // every impression converts, to exercise the reporter
				rep.Add(m.Conversion(o, s, c, out))
			}
		}
		h.Write(buf)
	}
	for _, c := range m.Organic(d) {
		rep.Add(c)
	}
	for _, b := range rep.Flush(m.DayStart(d + 9)) {
		h.Write(b.Body)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

func TestMarketDeterministic(t *testing.T) {
	sc := testScenario()
	a := marketDigest(t, testMarket(t, sc, 7), 2, 300)
	b := marketDigest(t, testMarket(t, sc, 7), 2, 300)
	if a != b {
		t.Fatal("same seed, different output")
	}
	if c := marketDigest(t, testMarket(t, sc, 8), 2, 300); c == a {
		t.Fatal("different seeds, same output")
	}
	// Days are independent of the order in which they are generated.
	m := testMarket(t, sc, 7)
	m.Day(0).Next()
	if marketDigest(t, m, 2, 300) != a {
		t.Fatal("day 2 depends on what was generated before")
	}
}

// ctvDeviceExt is device.ext as generated.
type ctvDeviceExt struct {
	IFAType string `json:"ifa_type"`
}

func TestBidRequestsValidOpenRTB(t *testing.T) {
	m := testMarket(t, testScenario(), 3)
	it := m.Day(0)
	var sizes []int
	var buf []byte
	podSizes := map[int]int{}
	ids := map[string]bool{}
	for i := 0; i < 3000; i++ {
		o := it.Next()
		buf = m.AppendBidRequest(buf[:0], o)
		sizes = append(sizes, len(buf))
		var br openrtb2.BidRequest
		dec := json.NewDecoder(bytes.NewReader(buf))
		dec.DisallowUnknownFields() // every field written must be an OpenRTB 2.6 field
		if err := dec.Decode(&br); err != nil {
			t.Fatalf("request %d does not decode into openrtb2.BidRequest: %v\n%s", i, err, buf)
		}
		if br.ID != m.RequestID(o) || ids[br.ID] {
			t.Fatalf("request id %q: not the RequestID or not unique", br.ID)
		}
		ids[br.ID] = true
		podSizes[len(br.Imp)]++
		if len(br.Imp) < 1 || len(br.Imp) > 4 || len(br.Imp) != len(o.Slots) {
			t.Fatalf("request %d: %d imps", i, len(br.Imp))
		}
		for j, imp := range br.Imp {
			v := imp.Video
			if v == nil || imp.ID != o.Slots[j].ImpID || v.Plcmt != 1 || v.PodID == "" || len(v.MIMEs) == 0 || v.MaxDuration == 0 {
				t.Fatalf("request %d imp %d: bad video %+v", i, j, v)
			}
			if len(br.Imp) > 1 && j == 0 && v.SlotInPod != 1 || len(br.Imp) > 1 && j == len(br.Imp)-1 && v.SlotInPod != -1 {
				t.Fatalf("request %d imp %d: slotinpod %d", i, j, v.SlotInPod)
			}
		}
		a, d := br.App, br.Device
		if a == nil || a.Bundle == "" || a.Publisher == nil || a.Publisher.ID == "" || a.Content == nil ||
			a.Content.Genre == "" || a.Content.Network == nil || a.Content.Channel == nil || a.Content.LiveStream == nil {
			t.Fatalf("request %d: incomplete app %+v", i, a)
		}
		seg := m.Segment(o, 0)
		if a.Publisher.ID != seg.Publisher || a.Bundle != seg.Bundle || a.Content.Genre != seg.Genre {
			t.Fatalf("request %d: app does not match Segment %+v", i, seg)
		}
		if d == nil || (d.DeviceType != 3 && d.DeviceType != 7) || d.IFA == "" || d.IP == "" || d.UA == "" || d.Make == "" ||
			d.Geo == nil || d.Geo.Metro != seg.Metro || d.Geo.UTCOffset == 0 || d.Lmt == nil {
			t.Fatalf("request %d: incomplete device %+v", i, d)
		}
		var ext ctvDeviceExt
		if err := json.Unmarshal(d.Ext, &ext); err != nil || ext.IFAType != m.sc.Inventory.Devices[o.Device].IFAType {
			t.Fatalf("request %d: device.ext %s", i, d.Ext)
		}
		if (*d.Lmt == 1) != (o.Privacy&PrivacyLMT != 0) || *d.Lmt == 1 && d.IFA != "00000000-0000-0000-0000-000000000000" {
			t.Fatalf("request %d: lmt %d ifa %s privacy %b", i, *d.Lmt, d.IFA, o.Privacy)
		}
		p := o.Privacy
		r := br.Regs
		if r == nil {
			r = &openrtb2.Regs{}
		}
		if (r.COPPA == 1) != (p&PrivacyCOPPA != 0) || (r.GDPR != nil && *r.GDPR == 1) != (p&PrivacyGDPR != 0) ||
			(r.USPrivacy == "1YYN") != (p&PrivacyUSPrivacyOpt != 0) || (r.GPP == gppUSNatOptOut) != (p&PrivacyGPPOptOut != 0) {
			t.Fatalf("request %d: regs %+v do not match privacy %b", i, r, p)
		}
		if r.GPP != "" && !slices.Equal(r.GPPSID, []int8{7}) {
			t.Fatalf("request %d: gpp_sid %v", i, r.GPPSID)
		}
		if p&PrivacyGDPRConsent != 0 && (br.User == nil || br.User.Consent != tcfAllGranted) {
			t.Fatalf("request %d: gdpr consent missing", i)
		}
		if br.Source == nil || br.Source.SChain == nil || br.Source.TID == "" || br.AT != 2 || len(br.Cur) != 1 {
			t.Fatalf("request %d: source/at/cur missing", i)
		}
	}
	slices.Sort(sizes)
	if med := sizes[len(sizes)/2]; med < 2000 || med > 4096 {
		t.Errorf("median request size %d bytes, want 2-4 KB", med)
	}
	if sizes[len(sizes)-1] > 6000 {
		t.Errorf("largest request %d bytes", sizes[len(sizes)-1])
	}
	for n := 1; n <= 4; n++ {
		if podSizes[n] == 0 {
			t.Errorf("no pod of %d imps in %v", n, podSizes)
		}
	}
}

func TestExposureAndURLs(t *testing.T) {
	m := testMarket(t, testScenario(), 3)
	o := m.Day(1).Next()
	body := m.AppendExposure(nil, o, 0, 1, 2, 12.5, o.Time+5)
	var e struct {
		Request  openrtb2.BidRequest `json:"request"`
		ImpID    string              `json:"imp_id"`
		Campaign string              `json:"campaign"`
		Creative string              `json:"creative"`
		Price    float64             `json:"price_cpm"`
		TS       int64               `json:"ts"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if e.Request.ID != m.RequestID(o) || e.ImpID != "1" || e.Campaign != "demo-ctv-signup" || e.Creative != "demo-ctv-signup-cr3" ||
		e.Price != 12.5 || e.TS != o.Time+5 {
		t.Fatalf("exposure %+v", e)
	}
	id := m.RequestID(o)
	f := func(got []byte, want string) {
		t.Helper()
		if string(got) != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	f(m.AppendWinURL(nil, o, 0, 0, 0, 17.25), "/v1/win?auction="+id+"&imp=1&campaign=demo-ctv-purchase&creative=demo-ctv-purchase-cr1&price=17.25")
	f(m.AppendVASTURL(nil, o, 0, 1, "midpoint"), "/v1/vast?auction="+id+"&imp=1&campaign=demo-ctv-signup&ev=midpoint")
}

func TestInventoryDistributions(t *testing.T) {
	sc := testScenario()
	m := testMarket(t, sc, 11)
	it := m.Day(0)
	n := it.Len()
	pubs := make([]int, sc.Inventory.Publishers)
	devs := make([]int, len(sc.Inventory.Devices))
	hours := make([]int, 24)
	pods := make([]int, 9)
	var coppa, gdpr, gdprConsent, usp, gpp, lmt, restricted int
	last := int64(0)
	for o := it.Next(); o != nil; o = it.Next() {
		if o.Time < last || o.Time < m.DayStart(0) || o.Time >= m.DayStart(1) {
			t.Fatalf("opportunity times not sorted within the day: %d after %d", o.Time, last)
		}
		last = o.Time
		pubs[o.Publisher]++
		devs[o.Device]++
		local := (o.Time - m.DayStart(0) + int64(m.metros[o.Metro].utcOffset)*60 + 2*86400) % 86400
		hours[local/3600]++
		if int(local/3600) != o.Hour {
			t.Fatalf("Hour %d, local time %d s", o.Hour, local)
		}
		pods[len(o.Slots)]++
		p := o.Privacy
		count := func(flag Privacy, n *int) {
			if p&flag != 0 {
				*n++
			}
		}
		count(PrivacyCOPPA, &coppa)
		count(PrivacyGDPR, &gdpr)
		count(PrivacyGDPRConsent, &gdprConsent)
		count(PrivacyUSPrivacyOpt, &usp)
		count(PrivacyGPPOptOut, &gpp)
		count(PrivacyLMT, &lmt)
		if p.Restricted() {
			restricted++
		}
	}
	share := func(k int) float64 { return float64(k) / float64(n) }
	near := func(what string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s: got %.4f, want %.4f ± %.4f", what, got, want, tol)
		}
	}
	// Zipf: the share of the top publishers follows k^-s.
	w := zipfWeights(sc.Inventory.Publishers, sc.Inventory.Zipf)
	sum := 0.0
	for _, x := range w {
		sum += x
	}
	for k := 0; k < 5; k++ {
		want := w[k] / sum
		near("publisher rank "+string(rune('1'+k))+" share", share(pubs[k]), want, 0.06*want+0.002)
	}
	// Skew: log(count) against log(rank) has slope -s over the top 20.
	var sx, sy, sxx, sxy float64
	for k := 0; k < 20; k++ {
		x, y := math.Log(float64(k+1)), math.Log(float64(pubs[k]))
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	slope := (20*sxy - sx*sy) / (20*sxx - sx*sx)
	near("zipf slope", -slope, sc.Inventory.Zipf, 0.1)

	dsum := 0.0
	for _, d := range sc.Inventory.Devices {
		dsum += d.Share
	}
	for i, d := range sc.Inventory.Devices {
		near("device "+d.Name, share(devs[i]), d.Share/dsum, 0.025)
	}
	hsum := 0.0
	for _, x := range sc.Inventory.HourWeights {
		hsum += x
	}
	for h, x := range sc.Inventory.HourWeights {
		near("local hour "+(time.Duration(h)*time.Hour).String(), share(hours[h]), x/hsum, 0.006)
	}
	psum := 0.0
	for _, x := range sc.Inventory.PodSizeWeights {
		psum += x
	}
	for i, x := range sc.Inventory.PodSizeWeights {
		near("pod size", share(pods[i+1]), x/psum, 0.01)
	}
	pv := sc.Reporting.Privacy
	near("coppa", share(coppa), pv.COPPA, 0.003)
	near("gdpr", share(gdpr), pv.GDPRNoConsent+pv.GDPRConsent, 0.004)
	near("gdpr consent", share(gdprConsent), pv.GDPRConsent, 0.003)
	near("us_privacy opt-out", share(usp), pv.USPrivacyOptOut, 0.012)
	near("gpp opt-out", share(gpp), pv.GPPOptOut, 0.012)
	wantLMT, shares := 0.0, 0.0
	for _, d := range sc.Inventory.Devices {
		l := pv.LMT
		if d.LMT != nil {
			l = *d.LMT
		}
		wantLMT += d.Share * l
		shares += d.Share
	}
	near("lmt", share(lmt), wantLMT/shares, 0.015)
	if restricted == 0 || restricted == n {
		t.Errorf("restricted exposures: %d of %d", restricted, n)
	}
}

func mixtureCDF(d DelayMixture, x float64) float64 {
	cdf := func(x float64) float64 {
		ws, p := 0.0, 0.0
		for _, c := range d.Components {
			ws += c.Weight
			p += c.Weight * (1 - math.Exp(-x/c.Mean.Seconds()))
		}
		return p / ws
	}
	if d.Max > 0 {
		return math.Min(cdf(x)/cdf(d.Max.Seconds()), 1)
	}
	return cdf(x)
}

func TestDelayMixtureQuantiles(t *testing.T) {
	sc := testScenario()
	sc.Campaigns[0].BaseCVR = 0.45 // convert nearly everything to collect delays
	m := testMarket(t, sc, 9)
	it := m.Day(0)
	var delays []float64
	for o := it.Next(); o != nil && len(delays) < 20000; o = it.Next() {
		for s := range o.Slots {
			if out := m.Outcome(o, s, 0); out.Converted {
				delays = append(delays, out.Delay.Seconds())
			}
		}
	}
	slices.Sort(delays)
	for _, x := range []time.Duration{5 * time.Minute, 15 * time.Minute, time.Hour, 8 * time.Hour, 24 * time.Hour, 72 * time.Hour, 160 * time.Hour} {
		i, _ := slices.BinarySearch(delays, x.Seconds())
		got, want := float64(i)/float64(len(delays)), mixtureCDF(sc.Truth.Delay, x.Seconds())
		if math.Abs(got-want) > 0.015 {
			t.Errorf("F(%v) = %.4f, want %.4f", x, got, want)
		}
	}
	if max := delays[len(delays)-1]; max > sc.Truth.Delay.Max.Seconds() {
		t.Errorf("delay %v s above max %v", max, sc.Truth.Delay.Max)
	}
}

func TestOutcomeVAST(t *testing.T) {
	m := testMarket(t, testScenario(), 2)
	it := m.Day(0)
	var n, started, completed int
	var vtr float64
	for o := it.Next(); o != nil && n < 40000; o = it.Next() {
		for s := range o.Slots {
			out := m.Outcome(o, s, 1)
			if out != m.Outcome(o, s, 1) {
				t.Fatal("Outcome is not a function of its arguments")
			}
			n++
			vtr += o.Truth(s, 1).VTR
			if out.Played >= 1 {
				started++
			}
			if out.Played == 5 {
				completed++
			}
			ev := out.Events()
			if ev[0] != "impression" || len(ev) != out.Played+1 {
				t.Fatalf("events %v", ev)
			}
		}
	}
	if got, want := float64(started)/float64(n), m.sc.Truth.StartRate; math.Abs(got-want) > 0.01 {
		t.Errorf("start rate %.4f, want %.4f", got, want)
	}
	if got, want := float64(completed)/float64(n), vtr/float64(n); math.Abs(got-want) > 0.01 {
		t.Errorf("completion rate %.4f, want the mean true VTR %.4f", got, want)
	}
}

// capiBody is the Meta CAPI body as the conversions endpoint reads it.
type capiBody struct {
	Data []struct {
		EventName      string `json:"event_name"`
		EventTime      int64  `json:"event_time"`
		EventID        string `json:"event_id"`
		ActionSource   string `json:"action_source"`
		EventSourceURL string `json:"event_source_url"`
		UserData       struct {
			Em              []string `json:"em"`
			ExternalID      []string `json:"external_id"`
			ClientIPAddress string   `json:"client_ip_address"`
			ClientUserAgent string   `json:"client_user_agent"`
			Fbp             string   `json:"fbp"`
			IFA             string   `json:"ifa"`
			IFAType         string   `json:"ifa_type"`
			HouseholdID     string   `json:"household_id"`
		} `json:"user_data"`
		CustomData struct {
			Value    float64 `json:"value"`
			Currency string  `json:"currency"`
			OrderID  string  `json:"order_id"`
		} `json:"custom_data"`
	} `json:"data"`
}

var sha256HexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// checkCAPIBody decodes a Meta CAPI body strictly and checks the shape rules
// of every event; it returns the decoded body.
func checkCAPIBody(t *testing.T, m *Market, body []byte, sendAt int64) capiBody {
	t.Helper()
	var cb capiBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cb); err != nil {
		t.Fatalf("CAPI body: %v\n%s", err, body)
	}
	if len(cb.Data) == 0 || len(cb.Data) > 1000 {
		t.Fatalf("CAPI body with %d events", len(cb.Data))
	}
	events := map[string]bool{}
	for _, c := range m.sc.Campaigns {
		events[c.Event] = true
	}
	for i, e := range cb.Data {
		if !events[e.EventName] || e.EventID == "" || e.EventTime <= 0 {
			t.Fatalf("data[%d]: bad name/id/time %+v", i, e)
		}
		if sendAt > 0 && (e.EventTime > sendAt || sendAt-e.EventTime > 7*86400) {
			t.Fatalf("data[%d]: event_time %d not within 7 days before the send time %d", i, e.EventTime, sendAt)
		}
		u := e.UserData
		switch e.ActionSource {
		case "website":
			if !strings.HasPrefix(e.EventSourceURL, "https://") || u.ClientUserAgent == "" {
				t.Fatalf("data[%d]: website event without event_source_url or client_user_agent", i)
			}
		case "app":
			if (u.IFA == "") != (u.IFAType == "") {
				t.Fatalf("data[%d]: ifa without ifa_type", i)
			}
		default:
			t.Fatalf("data[%d]: action_source %q", i, e.ActionSource)
		}
		for _, h := range append(slices.Clone(u.Em), u.ExternalID...) {
			if !sha256HexRE.MatchString(h) {
				t.Fatalf("data[%d]: %q is not a lower-case SHA-256 hex", i, h)
			}
		}
		if len(u.Em) == 0 && len(u.ExternalID) == 0 && u.ClientIPAddress == "" && u.IFA == "" && u.HouseholdID == "" {
			t.Fatalf("data[%d]: no identifier", i)
		}
		if e.CustomData.Currency != "USD" || e.CustomData.Value < 0 {
			t.Fatalf("data[%d]: custom_data %+v", i, e.CustomData)
		}
	}
	return cb
}

func TestConversionReporting(t *testing.T) {
	sc := testScenario()
	sc.Reporting.BatchInterval = time.Minute // many small batches: enough to measure the retry share
	sc.Reporting.BatchMax = 7
	sc.Reporting.RetryShare = 0.2
	m := testMarket(t, sc, 4)
	rep := m.NewReporter()
	it := m.Day(0)
	var convs []Conversion
	for o := it.Next(); o != nil && len(convs) < 20000; o = it.Next() {
		out := m.Outcome(o, 0, 0)
		out.Converted, out.Delay = true, out.Delay+time.Duration(o.Seq%7200)*time.Second
		c := m.Conversion(o, 0, 0, out)
		if c.EventTime != o.Time+int64(out.Delay/time.Second) || c.Exposure != o.Seq<<3 || c.Household != o.Household {
			t.Fatalf("conversion %+v", c)
		}
		convs = append(convs, c)
		rep.Add(c)
	}
	org := m.Organic(0)
	for _, c := range org {
		if c.Exposure != NoExposure {
			t.Fatal("organic conversion with an exposure")
		}
		rep.Add(c)
	}
	want := 0.0
	for c := range sc.Campaigns {
		want += sc.Truth.OrganicPerHouseholdDay * m.orgWeight[c] // the households weighted by their metro's factor
	}
	if math.Abs(float64(len(org))-want) > 4*math.Sqrt(want)+1 {
		t.Errorf("%d organic conversions, want about %.0f", len(org), want)
	}

	// Identifier and pixel shares, by where the conversion was made.
	type tally struct{ n, ip, ifa, em, hh, pixel, ifaWant float64 }
	var app, web tally
	for _, c := range convs {
		tl := &web
		if c.App {
			tl = &app
			if !m.tvs[c.TV].lmt {
				tl.ifaWant += sc.Reporting.Identifiers.App.IFA
			}
		}
		tl.n++
		for _, x := range []struct {
			id IDSet
			n  *float64
		}{{IDSetIP, &tl.ip}, {IDSetIFA, &tl.ifa}, {IDSetEmail, &tl.em}, {IDSetHouseholdID, &tl.hh}} {
			if c.IDs&x.id != 0 {
				*x.n++
			}
		}
		if c.Pixel {
			tl.pixel++
		}
	}
	near := func(what string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s: got %.4f, want %.4f", what, got, want)
		}
	}
	n := app.n + web.n
	near("app share", app.n/n, sc.Reporting.AppShare, 0.015)
	for _, src := range []struct {
		name string
		tl   tally
		ids  IdentifierShares
		tol  float64
	}{{"app", app, sc.Reporting.Identifiers.App, 0.04}, {"website", web, sc.Reporting.Identifiers.Website, 0.015}} {
		near(src.name+" ip share", src.tl.ip/src.tl.n, src.ids.IP, src.tol)
		near(src.name+" ifa share", src.tl.ifa/src.tl.n, src.tl.ifaWant/src.tl.n, src.tol)
		near(src.name+" email share", src.tl.em/src.tl.n, src.ids.Email, src.tol)
		near(src.name+" household id share", src.tl.hh/src.tl.n, src.ids.HouseholdID, src.tol)
	}
	near("pixel share of website conversions", web.pixel/web.n, sc.Reporting.PixelShare, 0.015)
	if app.pixel != 0 {
		t.Errorf("%v app conversions sent by the pixel", app.pixel)
	}

	// Half now, the rest later: nothing is sent before it is due, nothing twice.
	mid := m.DayStart(0) + 12*3600
	batches := rep.Flush(mid)
	for _, b := range batches {
		if b.SendAt > mid {
			t.Fatalf("batch due at %d flushed at %d", b.SendAt, mid)
		}
	}
	batches = append(batches, rep.Flush(m.DayStart(10))...)
	if rep.Pending() != 0 {
		t.Fatalf("%d conversions never sent", rep.Pending())
	}
	type key struct{ name, id string }
	capi := map[key]int{}
	capiAt := map[key]int64{}
	pixels := map[key]int64{}
	bodies := map[string]bool{}
	var orig, retries int
	for i, b := range batches {
		if i > 0 && b.SendAt < batches[i-1].SendAt {
			t.Fatal("batches not in send order")
		}
		cb := checkCAPIBody(t, m, b.Body, b.SendAt)
		if len(cb.Data) != len(b.Events) || len(cb.Data) > sc.Reporting.BatchMax || b.Dataset != "1234567890" {
			t.Fatalf("batch of %d events (%d in body), dataset %q", len(b.Events), len(cb.Data), b.Dataset)
		}
		switch {
		case b.Pixel:
			if len(cb.Data) != 1 || cb.Data[0].ActionSource != "website" || b.SendAt != cb.Data[0].EventTime {
				t.Fatalf("pixel batch %+v", cb.Data)
			}
			pixels[key{cb.Data[0].EventName, cb.Data[0].EventID}] = b.SendAt
		case b.Retry:
			retries++
			if !bodies[string(b.Body)] {
				t.Fatal("a retried batch differs from every batch sent before it")
			}
		default:
			orig++
			bodies[string(b.Body)] = true
			for _, e := range cb.Data {
				k := key{e.EventName, e.EventID}
				capi[k]++
				capiAt[k] = b.SendAt
			}
		}
	}
	if len(capi) != len(convs)+len(org) {
		t.Fatalf("%d distinct CAPI events, want %d", len(capi), len(convs)+len(org))
	}
	for k, c := range capi {
		if c != 1 {
			t.Fatalf("event %v in %d original batches", k, c)
		}
	}
	for k, at := range pixels {
		if capi[k] != 1 || capiAt[k] < at {
			t.Fatalf("pixel event %v has no later CAPI copy", k)
		}
	}
	if got := float64(retries) / float64(orig); math.Abs(got-sc.Reporting.RetryShare) > 0.03 {
		t.Errorf("retried batches %.3f of %d, want %.3f", got, orig, sc.Reporting.RetryShare)
	}
}

// gppUSNatCore decodes SaleOptOut, SharingOptOut and TargetedAdvertisingOptOut
// from the first GPP section (US National core segment).
func gppUSNatCore(t *testing.T, s string) (sale, sharing, targeted int) {
	t.Helper()
	parts := strings.Split(s, "~")
	if len(parts) != 2 || parts[0] != "DBABLA" {
		t.Fatalf("gpp %q: not one US National section", s)
	}
	core := strings.Split(parts[1], ".")[0]
	raw, err := base64.RawURLEncoding.DecodeString(core + strings.Repeat("A", (4-len(core)%4)%4))
	if err != nil {
		t.Fatal(err)
	}
	bit := func(i int) int { return int(raw[i/8]>>(7-i%8)) & 1 }
	field := func(i int) int { return bit(i)<<1 | bit(i+1) }
	// Version 6 bits, six 2-bit notices, then the three opt-outs.
	if v := raw[0] >> 2; v != 1 {
		t.Fatalf("usnat version %d", v)
	}
	return field(18), field(20), field(22)
}

func TestGPPStrings(t *testing.T) {
	if a, b, c := gppUSNatCore(t, gppUSNatNoOptOut); a != 2 || b != 2 || c != 2 {
		t.Errorf("no-opt-out string decodes to %d %d %d", a, b, c)
	}
	if a, b, c := gppUSNatCore(t, gppUSNatOptOut); a != 1 || b != 1 || c != 1 {
		t.Errorf("opt-out string decodes to %d %d %d", a, b, c)
	}
}

func TestReporterIncrementalFlushSameBatches(t *testing.T) {
	m := testMarket(t, testScenario(), 6)
	a, b := m.NewReporter(), m.NewReporter()
	if a.Flush(math.MaxInt64-1) != nil {
		t.Fatal("an empty reporter flushed something")
	}
	var inc [][]byte
	for _, c := range m.Organic(0) {
		a.Add(c)
		b.Add(c)
	}
	it := m.Day(0)
	for o := it.Next(); o != nil; o = it.Next() {
		for _, bt := range a.Flush(o.Time) {
			inc = append(inc, bt.Body)
		}
		for s := range o.Slots {
			if out := m.Outcome(o, s, 1); out.Converted {
				a.Add(m.Conversion(o, s, 1, out))
				b.Add(m.Conversion(o, s, 1, out))
			}
		}
	}
	for _, bt := range a.Flush(m.DayStart(9)) {
		inc = append(inc, bt.Body)
	}
	var once [][]byte
	for _, bt := range b.Flush(m.DayStart(9)) {
		once = append(once, bt.Body)
	}
	if len(once) == 0 || len(inc) != len(once) {
		t.Fatalf("%d batches flushed incrementally, %d at once", len(inc), len(once))
	}
	for i := range once {
		if !bytes.Equal(inc[i], once[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
}
