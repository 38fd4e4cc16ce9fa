package market

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Market is the synthetic CTV market of a scenario and a seed: its inventory,
// its households and their devices, and the hidden truth. It is built once by
// NewMarket and is read-only afterwards, so it is safe for concurrent use;
// the iterators and reporters it hands out are not (one per goroutine).
//
// Everything it produces is a deterministic function of (scenario, seed):
// the same seed gives byte-identical requests, exposures and conversion
// batches.
type Market struct {
	sc   Scenario
	seed uint64

	genres  []string
	metros  []metroInfo
	pubs    []publisher
	bundles []bundle

	households []household
	tvs        []tvDevice
	persons    []person

	hhAlias, pubAlias, bundleRank, genreAlias, hourAlias, podAlias, delayAlias alias
	delayMeans                                                                 []float64 // seconds
	delayMax                                                                   float64   // seconds, 0 = none

	// The truth: the compiled effects of the CVR, the VTR and the organic
	// rate (see Effect).
	cvr, vtr, org     []effect
	cvrSlot, vtrSlot  bool    // some CVR (VTR) effect depends on the slot
	rho, rhoPerp      float64 // VTR/CVR correlation of twin effects
	logitBaseVTR      float64
	segNorm           float64 // sd of the campaign-averaged log-CVR deviation
	compRho, compPerp float64
	valueMu           []float64 // per campaign, ln of the median order value
	logBaseCVR        []float64 // per campaign
	creativeIDs       [][]string
	// Organic conversions with organic effects: per campaign, the metros
	// weighted by households × rate factor, their total weight, and the
	// households of each metro. Nil without organic effects.
	orgAlias  []alias
	orgWeight []float64
	hhByMetro [][]int32
	ipChurn   float64 // reporting.ip.churn_per_day
}

type publisher struct {
	id, name, domain string
	firstBundle      int32
}

type bundle struct {
	id, name, storeURL string
	pub, genre         int32
}

type household struct {
	ip       string // public IP on day 0 (shared with its CGNAT group, if any)
	id       string // identity-graph household id
	line     int32  // its internet line: own (= its index) or shared (households + group)
	metro    int32
	tv0, p0  int32
	ntv, np  uint8
	usp, gpp uint8 // 0 absent, 1 present, 2 present and opted out
}

type tvDevice struct {
	ifa string
	hh  int32
	dev uint8
	lmt bool
}

type person struct {
	em, ext, fbp string // SHA-256 hex of the email and of the customer id; fbp cookie
	hh           int32
	ua           uint8
}

// Seeds of the stateless hash draws, one per kind of draw.
const (
	tagCVRShared = 0x100 + iota
	tagCVROwn
	tagVTRShared
	tagVTROwn
	tagOutcome
	tagConversion
	tagRequestID
	tagRetry
	tagDay
	tagOrganic
	tagBuild
	tagOrganicShared
	tagOrganicOwn
	tagSharedIP
	tagIPChurn
)

// NewMarket builds the market of sc (which must be valid: see
// Scenario.Validate) and seed.
func NewMarket(sc Scenario, seed uint64) (*Market, error) {
	sc = sc.WithDefaults()
	if errs := sc.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("invalid scenario: %w", joinErrs(errs))
	}
	m := &Market{sc: sc, seed: seed}
	r := rand.New(rand.NewPCG(seed, tagBuild))
	inv, rp, tr := sc.Inventory, sc.Reporting, sc.Truth

	m.genres = make([]string, inv.Genres)
	for i := range m.genres {
		if i < len(builtinGenres) {
			m.genres[i] = builtinGenres[i]
		} else {
			m.genres[i] = "Genre " + strconv.Itoa(i+1)
		}
	}
	m.metros = make([]metroInfo, inv.Metros)
	for i := range m.metros {
		if i < len(builtinMetros) {
			m.metros[i] = builtinMetros[i]
		} else {
			m.metros[i] = metroInfo{code: strconv.Itoa(900 + i), name: "Metro " + strconv.Itoa(i+1), region: "TX", utcOffset: -360}
		}
	}
	m.genreAlias = newAlias(zipfWeights(inv.Genres, inv.Zipf))
	m.pubAlias = newAlias(zipfWeights(inv.Publishers, inv.Zipf))
	m.bundleRank = newAlias(zipfWeights(inv.BundlesPerPublisher, inv.Zipf))
	m.hourAlias = newAlias(inv.HourWeights)
	m.podAlias = newAlias(inv.PodSizeWeights)

	m.pubs = make([]publisher, inv.Publishers)
	m.bundles = make([]bundle, 0, inv.Publishers*inv.BundlesPerPublisher)
	for i := range m.pubs {
		w1 := nameWords1[i%len(nameWords1)]
		w2 := nameWords2[(i/len(nameWords1)+i)%len(nameWords2)]
		name := w1 + " " + w2
		if i >= len(nameWords1)*len(nameWords2) {
			name += " " + strconv.Itoa(i/(len(nameWords1)*len(nameWords2))+1)
		}
		slug := strings.ToLower(strings.ReplaceAll(name, " ", ""))
		tld := ".com"
		if i%3 == 1 {
			tld = ".tv"
		}
		p := publisher{id: fmt.Sprintf("pub-%05d", i+1), name: name, domain: slug + tld, firstBundle: int32(len(m.bundles))}
		for j := range inv.BundlesPerPublisher {
			suffix := bundleSuffixes[(i+j)%len(bundleSuffixes)]
			b := bundle{name: w1 + " " + suffix, pub: int32(i), genre: int32(m.genreAlias.drawRand(r))}
			if j >= len(bundleSuffixes) {
				b.name += " " + strconv.Itoa(j/len(bundleSuffixes)+1)
			}
			bslug := strings.ToLower(strings.ReplaceAll(b.name, " ", ""))
			switch (i + j) % 3 {
			case 0: // Roku channel store: numeric id
				b.id = strconv.Itoa(100000 + int(hash3(seed, tagBuild, uint64(len(m.bundles)))%800000))
				b.storeURL = "https://channelstore.roku.com/details/" + b.id
			case 1: // Android / Google TV package
				b.id = "com." + slug + "." + bslug
				b.storeURL = "https://play.google.com/store/apps/details?id=" + b.id
			default: // Amazon appstore ASIN
				b.id = fmt.Sprintf("B0%08X", uint32(hash3(seed, tagBuild, uint64(len(m.bundles)))))
				b.storeURL = "https://www.amazon.com/dp/" + b.id
			}
			m.bundles = append(m.bundles, b)
		}
		m.pubs[i] = p
	}

	// Households, their TVs and persons.
	devW := make([]float64, len(inv.Devices))
	for i, d := range inv.Devices {
		devW[i] = d.Share
	}
	devAlias := newAlias(devW)
	lmtShare := make([]float64, len(inv.Devices))
	for i, d := range inv.Devices {
		lmtShare[i] = rp.Privacy.LMT
		if d.LMT != nil {
			lmtShare[i] = *d.LMT
		}
	}
	metroAlias := newAlias(zipfWeights(inv.Metros, inv.Zipf))
	tvAlias := newAlias(rp.TVsPerHousehold)
	personAlias := newAlias(rp.PersonsPerHousehold)
	m.households = make([]household, rp.Households)
	hhW := make([]float64, rp.Households)
	for h := range m.households {
		hh := &m.households[h]
		hh.metro = int32(metroAlias.drawRand(r))
		u := r.Uint64()
		hh.ip = ipFromBits(u)
		hh.id = fmt.Sprintf("hh-%016x", r.Uint64())
		hhW[h] = math.Exp(rp.HouseholdActivitySigma * r.NormFloat64())
		pv := rp.Privacy
		if x := r.Float64(); x < pv.USPrivacyOptOut {
			hh.usp = 2
		} else if x < pv.USPrivacyPresent {
			hh.usp = 1
		}
		if x := r.Float64(); x < pv.GPPOptOut {
			hh.gpp = 2
		} else if x < pv.GPPPresent {
			hh.gpp = 1
		}
		hh.tv0, hh.ntv = int32(len(m.tvs)), uint8(tvAlias.drawRand(r)+1)
		hh.line = int32(h)
		for range hh.ntv {
			ifa := uuid(r.Uint64(), r.Uint64())
			dev := devAlias.drawRand(r)
			m.tvs = append(m.tvs, tvDevice{ifa: ifa, hh: int32(h), dev: uint8(dev), lmt: r.Float64() < lmtShare[dev]})
		}
		hh.p0, hh.np = int32(len(m.persons)), uint8(personAlias.drawRand(r)+1)
		for range hh.np {
			email := firstNames[r.IntN(len(firstNames))] + "." + lastNames[r.IntN(len(lastNames))] +
				strconv.Itoa(r.IntN(1000)) + "@" + emailDomains[r.IntN(len(emailDomains))]
			cust := "cust-" + strconv.FormatUint(r.Uint64()%1e10, 10)
			m.persons = append(m.persons, person{
				em:  sha256Hex(email),
				ext: sha256Hex(cust),
				fbp: fmt.Sprintf("fb.1.%d.%d", sc.Start.UnixMilli()-int64(r.IntN(90*86400))*1000, r.Uint32()),
				hh:  int32(h),
				ua:  uint8(r.IntN(len(phoneUAs))),
			})
		}
	}
	m.hhAlias = newAlias(hhW)
	m.shareIPs(rp.IP)
	m.ipChurn = rp.IP.ChurnPerDay

	// Truth constants.
	m.rho, m.rhoPerp = tr.VTRCVRCorrelation, math.Sqrt(1-tr.VTRCVRCorrelation*tr.VTRCVRCorrelation)
	m.logitBaseVTR = math.Log(tr.BaseVTR / (1 - tr.BaseVTR))
	m.compileTruth()
	m.buildOrganic()
	m.compRho = sc.Market.CompetingCVRCorrelation
	m.compPerp = math.Sqrt(1 - m.compRho*m.compRho)

	dw := make([]float64, len(tr.Delay.Components))
	m.delayMeans = make([]float64, len(dw))
	for i, c := range tr.Delay.Components {
		dw[i] = c.Weight
		m.delayMeans[i] = c.Mean.Seconds()
	}
	m.delayAlias = newAlias(dw)
	m.delayMax = tr.Delay.Max.Seconds()

	m.logBaseCVR = make([]float64, len(sc.Campaigns))
	for c, cs := range sc.Campaigns {
		m.logBaseCVR[c] = math.Log(cs.BaseCVR)
	}
	m.valueMu = make([]float64, len(sc.Campaigns))
	m.creativeIDs = make([][]string, len(sc.Campaigns))
	for c, cs := range sc.Campaigns {
		if cs.Value > 0 {
			m.valueMu[c] = math.Log(cs.Value) - 0.125 // log-normal, sigma 0.5, mean Value
		}
		for k := range cs.Creatives {
			m.creativeIDs[c] = append(m.creativeIDs[c], cs.ID+"-cr"+strconv.Itoa(k+1))
		}
	}
	return m, nil
}

func joinErrs(errs []error) error {
	var b strings.Builder
	for i, e := range errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Error())
	}
	return fmt.Errorf("%s", b.String())
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func uuid(a, b uint64) string {
	var x [16]byte
	for i := range 8 {
		x[i], x[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	x[6] = x[6]&0x0f | 0x40 // version 4
	x[8] = x[8]&0x3f | 0x80 // variant
	var s [36]byte
	hex.Encode(s[0:8], x[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], x[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], x[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], x[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], x[10:16])
	return string(s[:])
}

// Scenario returns the scenario of the market (with defaults applied).
func (m *Market) Scenario() Scenario { return m.sc }

// Seed returns the seed of the market.
func (m *Market) Seed() uint64 { return m.seed }

// Campaigns returns the campaign ids, in scenario order (the campaign index
// used everywhere else).
func (m *Market) Campaigns() []string {
	ids := make([]string, len(m.sc.Campaigns))
	for i, c := range m.sc.Campaigns {
		ids[i] = c.ID
	}
	return ids
}

// Creative returns the id of creative k of campaign c ("<campaign>-cr<k+1>").
func (m *Market) Creative(c, k int) string {
	ids := m.creativeIDs[c]
	return ids[k%len(ids)]
}

// DayStart is the unix time (seconds) at which simulated day d begins.
func (m *Market) DayStart(d int) int64 { return m.sc.Start.Unix() + int64(d)*86400 }

// Households is the number of households.
func (m *Market) Households() int { return len(m.households) }

// Privacy is the set of privacy signals of a bid request.
type Privacy uint8

// Privacy signals.
const (
	PrivacyCOPPA        Privacy = 1 << iota // regs.coppa=1
	PrivacyGDPR                             // regs.gdpr=1
	PrivacyGDPRConsent                      // with user.consent granting every purpose
	PrivacyUSPrivacyOpt                     // regs.us_privacy opt-out ("1YYN")
	PrivacyGPPOptOut                        // regs.gpp US National opt-out of sale/sharing/targeting
	PrivacyLMT                              // device.lmt=1 (ifa zeroed)
)

// Restricted reports whether an exposure under these signals must not be
// matched to a person (it may still count in segment totals): COPPA, GDPR
// without consent, a US privacy or GPP opt-out.
func (p Privacy) Restricted() bool {
	return p&(PrivacyCOPPA|PrivacyUSPrivacyOpt|PrivacyGPPOptOut) != 0 ||
		p&(PrivacyGDPR|PrivacyGDPRConsent) == PrivacyGDPR
}

// Opportunity is one bid request of the market with its ground truth. It is
// owned by the DayIter that returned it and valid until its next call to
// Next; copy what must outlive it.
type Opportunity struct {
	// Seq identifies the opportunity within the market: day<<32 | its index
	// in the day, in time order.
	Seq  uint64
	Day  int
	Time int64 // unix seconds

	// Household is the household watching: an index (0..Households()-1),
	// stable for the market's life, that a caller may hash (a holdout
	// assignment per household, say). The bid request shows only its IP,
	// its TV's ifa and sometimes its identity-graph id.
	Household int32
	TV        int32 // the TV showing the ad (index into the market's TVs)
	Device    int   // index into Scenario.Inventory.Devices
	Hour      int   // the viewer's local hour, 0..23

	Publisher, Bundle, Genre, Metro int32 // indexes into the inventory

	Privacy Privacy
	Live    bool

	// Slots are the imps of the ad pod, in pod order.
	Slots []Slot

	// truth is the hidden truth of slot s and campaign c at
	// s×campaigns + c (see Truth).
	truth []Truth

	content   uint64
	midroll   bool
	eid       bool
	gdprNoTCF bool
}

// Slot is one imp of an opportunity's pod.
type Slot struct {
	ImpID        string  // "1", "2", ...
	SlotInPod    int     // OpenRTB slotinpod: 1 first, -1 last, 0 any
	MaxDuration  int     // seconds
	CompetingCPM float64 // the highest competing bid, USD CPM
	FloorCPM     float64 // imp.bidfloor, USD CPM (0 = none)
}

// Truth is the hidden truth of a campaign's impression in one slot of an
// opportunity: what the simulation knows and no bidder sees.
type Truth struct {
	CVR float64 // probability that the impression causes a conversion
	VTR float64 // probability that the video completes (completes per impression)
}

// Truth returns the truth of campaign c (Scenario.Campaigns order) in slot s.
func (o *Opportunity) Truth(s, c int) Truth { return o.truth[s*o.campaigns()+c] }

func (o *Opportunity) campaigns() int { return len(o.truth) / len(o.Slots) }

// CopyTo copies o into dst, reusing dst's slices.
func (o *Opportunity) CopyTo(dst *Opportunity) {
	slots, truth := dst.Slots, dst.truth
	*dst = *o
	dst.Slots = append(slots[:0], o.Slots...)
	dst.truth = append(truth[:0], o.truth...)
}

// Segment names the values of an opportunity's segment chain.
type Segment struct {
	Campaign, Publisher, Bundle, Genre, Metro string
}

// Segment returns the names of o's segment chain for campaign c, as they
// appear in the bid request (publisher id, bundle, content genre, metro code).
func (m *Market) Segment(o *Opportunity, c int) Segment {
	return Segment{
		Campaign:  m.sc.Campaigns[c].ID,
		Publisher: m.pubs[o.Publisher].id,
		Bundle:    m.bundles[o.Bundle].id,
		Genre:     m.genres[o.Genre],
		Metro:     m.metros[o.Metro].code,
	}
}

// DayIter iterates over the opportunities of one simulated day in time order.
type DayIter struct {
	m   *Market
	day int
	idx []daySlot
	i   int
	pcg rand.PCG
	rng *rand.Rand
	op  Opportunity
}

type daySlot struct {
	seed uint64
	t    int32 // seconds into the day
	hh   int32
}

// Day returns an iterator over the opportunities of day d (0-based). Days are
// independent: Day(d) gives the same opportunities whether or not earlier
// days were generated. It allocates OpportunitiesPerDay × 16 bytes.
func (m *Market) Day(d int) *DayIter {
	n := m.sc.Inventory.OpportunitiesPerDay
	it := &DayIter{m: m, day: d, idx: make([]daySlot, n)}
	r := rand.New(rand.NewPCG(m.seed, hash3(m.seed, tagDay, uint64(d))))
	for i := range it.idx {
		hh := int32(m.hhAlias.drawRand(r))
		local := m.hourAlias.drawRand(r)*3600 + r.IntN(3600)
		t := (local - m.metros[m.households[hh].metro].utcOffset*60) % 86400
		if t < 0 {
			t += 86400
		}
		it.idx[i] = daySlot{seed: r.Uint64(), t: int32(t), hh: hh}
	}
	// Sort by time; ties by seed (a total order, so the result does not
	// depend on the sort algorithm).
	slices.SortFunc(it.idx, func(a, b daySlot) int {
		if a.t != b.t {
			return int(a.t - b.t)
		}
		return cmp.Compare(a.seed, b.seed)
	})
	it.rng = rand.New(&it.pcg)
	it.op.Slots = make([]Slot, 0, 8)
	it.op.truth = make([]Truth, 0, 8*len(m.sc.Campaigns))
	return it
}

// Len is the number of opportunities of the day.
func (it *DayIter) Len() int { return len(it.idx) }

// Next returns the next opportunity, or nil after the last. The result is
// valid until the following call.
func (it *DayIter) Next() *Opportunity {
	if it.i >= len(it.idx) {
		return nil
	}
	ds := it.idx[it.i]
	seq := uint64(it.day)<<32 | uint64(it.i)
	it.i++
	it.m.expand(&it.op, it.rng, &it.pcg, ds, seq, it.day)
	return &it.op
}

func (m *Market) expand(o *Opportunity, r *rand.Rand, pcg *rand.PCG, ds daySlot, seq uint64, day int) {
	pcg.Seed(ds.seed, m.seed)
	inv, pv := m.sc.Inventory, m.sc.Reporting.Privacy
	hh := &m.households[ds.hh]
	o.Seq, o.Day, o.Time = seq, day, m.DayStart(day)+int64(ds.t)
	o.Household = ds.hh
	o.TV = hh.tv0 + int32(r.IntN(int(hh.ntv)))
	tv := &m.tvs[o.TV]
	o.Device = int(tv.dev)
	o.Metro = hh.metro
	local := (int(ds.t) + m.metros[hh.metro].utcOffset*60) % 86400
	if local < 0 {
		local += 86400
	}
	o.Hour = local / 3600
	o.Publisher = int32(m.pubAlias.drawRand(r))
	o.Bundle = m.pubs[o.Publisher].firstBundle + int32(m.bundleRank.drawRand(r))
	if r.Float64() < inv.BundleGenreAffinity {
		o.Genre = m.bundles[o.Bundle].genre
	} else {
		o.Genre = int32(m.genreAlias.drawRand(r))
	}
	var p Privacy
	if r.Float64() < pv.COPPA {
		p |= PrivacyCOPPA
	}
	o.gdprNoTCF = false
	if x := r.Float64(); x < pv.GDPRNoConsent {
		p |= PrivacyGDPR
		o.gdprNoTCF = r.IntN(2) == 0
	} else if x < pv.GDPRNoConsent+pv.GDPRConsent {
		p |= PrivacyGDPR | PrivacyGDPRConsent
	}
	if hh.usp == 2 {
		p |= PrivacyUSPrivacyOpt
	}
	if hh.gpp == 2 {
		p |= PrivacyGPPOptOut
	}
	if tv.lmt {
		p |= PrivacyLMT
	}
	o.Privacy = p
	o.Live = r.Float64() < inv.LiveShare
	o.eid = r.Float64() < inv.HouseholdEIDShare
	o.content = r.Uint64()
	o.midroll = r.IntN(3) != 0

	// The pod, its truth, and the competition for each of its slots. The
	// competing price correlates with the slot's campaign-averaged log-CVR
	// deviation, standardized: others know good inventory too.
	n := m.podAlias.drawRand(r) + 1
	o.Slots = o.Slots[:n]
	dev := m.truth(o)
	cm := m.sc.Market.CompetingCPM
	for i := range n {
		s := Slot{ImpID: impIDs[i], MaxDuration: 30, FloorCPM: m.sc.Market.FloorCPM}
		switch {
		case n == 1:
			s.SlotInPod = 0
		case i == 0:
			s.SlotInPod = 1
		case i == n-1:
			s.SlotInPod = -1
		}
		if r.IntN(4) == 0 {
			s.MaxDuration = 15
		}
		seg := dev[i]
		if m.segNorm > 0 {
			seg /= float64(m.campaigns()) * m.segNorm
		}
		z := m.compRho*seg + m.compPerp*r.NormFloat64()
		s.CompetingCPM = math.Round(math.Exp(cm.Mu+cm.Sigma*z)*100) / 100
		o.Slots[i] = s
	}
}

var impIDs = [...]string{"1", "2", "3", "4", "5", "6", "7", "8"}

func (m *Market) campaigns() int { return len(m.sc.Campaigns) }

// slotPosition is the value of the slot feature of slot i of a pod of n.
func slotPosition(i, n int) uint64 {
	switch {
	case i == 0:
		return slotFirst
	case i == n-1:
		return slotLast
	}
	return slotMiddle
}

// features returns the values of o's features (those of its first slot
// for the slot feature).
func (m *Market) features(o *Opportunity) [numFeatures]uint64 {
	dt := 0
	if m.sc.Inventory.Devices[o.Device].DeviceType == 7 {
		dt = 1
	}
	live := 0
	if o.Live {
		live = 1
	}
	return [numFeatures]uint64{
		featPublisher:  uint64(o.Publisher),
		featBundle:     uint64(o.Bundle),
		featGenre:      uint64(o.Genre),
		featMetro:      uint64(o.Metro),
		featHour:       uint64(o.Hour),
		featDaypart:    uint64(hourDaypart[o.Hour]),
		featDevice:     uint64(o.Device),
		featDeviceType: uint64(dt),
		featLive:       uint64(live),
		featSlot:       slotFirst,
		featPodSize:    uint64(len(o.Slots) - 1),
	}
}

// truth fills o.truth for every slot and campaign from the effects and
// returns, per slot, the sum over campaigns of their log-CVR deviations
// Σ σ·z (the slot-independent effects are added first, in list order, then
// the slot's: with none of the latter every slot gets the same numbers).
func (m *Market) truth(o *Opportunity) (dev [8]float64) {
	nc := m.campaigns()
	n := len(o.Slots)
	if cap(o.truth) < n*nc {
		o.truth = make([]Truth, n*nc)
	}
	o.truth = o.truth[:n*nc]
	fv := m.features(o)
	startRate := m.sc.Truth.StartRate
	var devOpp float64
	for c := range nc {
		logCVR := m.logBaseCVR[c]
		for i := range m.cvr {
			e := &m.cvr[i]
			if e.slot {
				continue
			}
			z := m.normal(e, false, e.node(&fv), c)
			logCVR += e.sigma*z + e.shift
			devOpp += e.sigma * z
		}
		logitVTR := m.logitBaseVTR
		for i := range m.vtr {
			if e := &m.vtr[i]; !e.slot {
				logitVTR += e.sigma * m.normal(e, true, e.node(&fv), c)
			}
		}
		for s := range n {
			fv[featSlot] = slotPosition(s, n)
			lc, lv := logCVR, logitVTR
			if m.cvrSlot {
				for i := range m.cvr {
					if e := &m.cvr[i]; e.slot {
						z := m.normal(e, false, e.node(&fv), c)
						lc += e.sigma*z + e.shift
						dev[s] += e.sigma * z
					}
				}
			}
			if m.vtrSlot {
				for i := range m.vtr {
					if e := &m.vtr[i]; e.slot {
						lv += e.sigma * m.normal(e, true, e.node(&fv), c)
					}
				}
			}
			o.truth[s*nc+c] = Truth{
				CVR: math.Min(math.Exp(lc), 0.5),
				VTR: math.Min(1/(1+math.Exp(-lv)), startRate),
			}
		}
	}
	for s := range n {
		dev[s] += devOpp
	}
	return dev
}

// compileTruth compiles the scenario's effect lists (see compileEffects)
// and precomputes the draws of the small ones.
func (m *Market) compileTruth() {
	tr := m.sc.Truth
	m.cvr = m.compileEffects(tr.CVREffects, tr.SharedAcrossCampaigns, true, tagCVRShared, tagCVROwn)
	m.vtr = m.compileEffects(tr.VTREffects, tr.SharedAcrossCampaigns, false, tagVTRShared, tagVTROwn)
	m.org = m.compileEffects(tr.OrganicEffects, tr.SharedAcrossCampaigns, true, tagOrganicShared, tagOrganicOwn)
	// A VTR effect draws with the tag position of its CVR twin (the twin's
	// draw is mixed in), or past every CVR position when it has none.
	for j := range m.vtr {
		v := &m.vtr[j]
		pos := uint64(vtrOwnIndex + j)
		for i := range m.cvr {
			if slices.Equal(m.cvr[i].feats, v.feats) {
				v.twin, pos = i, uint64(i)
				break
			}
		}
		v.tagShared, v.tagOwn = tagVTRShared+pos<<8, tagVTROwn+pos<<8
	}
	// The sd of the campaign-averaged log-CVR deviation: an effect's
	// shared part is common to the campaigns, its own part averages out.
	// (Effects that all share as much are summed first, as the nested
	// chain always was.)
	nc := float64(m.campaigns())
	var v, sum float64
	same := true
	for i := range m.cvr {
		e := &m.cvr[i]
		v += e.sigma * e.sigma * (e.shared + (1-e.shared)/nc)
		sum += e.sigma * e.sigma
		same = same && e.shared == tr.SharedAcrossCampaigns
		m.cvrSlot = m.cvrSlot || e.slot
	}
	if same {
		v = sum * (tr.SharedAcrossCampaigns + (1-tr.SharedAcrossCampaigns)/nc)
	}
	m.segNorm = math.Sqrt(v)
	for i := range m.cvr {
		m.fillCache(&m.cvr[i], false)
	}
	for i := range m.vtr {
		m.vtrSlot = m.vtrSlot || m.vtr[i].slot
		m.fillCache(&m.vtr[i], true)
	}
	for i := range m.org {
		m.fillCache(&m.org[i], false)
	}
}

// vastEvents are the VAST event names in the order a video reaches them.
var vastEvents = [...]string{"impression", "start", "firstQuartile", "midpoint", "thirdQuartile", "complete"}

// VASTEvent is the name of VAST event i (0 impression, 1 start,
// 2 firstQuartile, 3 midpoint, 4 thirdQuartile, 5 complete), or "".
func VASTEvent(i int) string {
	if i < 0 || i >= len(vastEvents) {
		return ""
	}
	return vastEvents[i]
}

// Outcome is what happens after an impression: whether it causes a
// conversion, after which delay, and how far the video plays.
type Outcome struct {
	Converted bool
	Delay     time.Duration // exposure to conversion, when Converted
	// Played is the furthest VAST event fired (see VASTEvent): 0 the
	// impression only, 1 start, ..., 5 complete.
	Played int
}

// Events returns the names of the VAST events the impression fires, in
// order (a new slice; VASTEvent(0..Played) does not allocate).
func (o Outcome) Events() []string { return append([]string(nil), vastEvents[:o.Played+1]...) }

// Outcome draws the outcome of showing campaign c in slot s of o. It is a
// function of (seed, o.Seq, s, c): every strategy of a simulation that shows
// the same ad gets the same outcome.
func (m *Market) Outcome(o *Opportunity, s, c int) Outcome {
	r := splitmix{s: hash3(m.seed, tagOutcome, o.Seq<<9|uint64(s&7)<<6|uint64(c&63))}
	t := o.Truth(s, c)
	var out Outcome
	if r.float() < t.CVR {
		out.Converted = true
		out.Delay = time.Duration(drawExpMixture(&r, &m.delayAlias, m.delayMeans, m.delayMax) * float64(time.Second)).Round(time.Second)
	}
	start := m.sc.Truth.StartRate
	u := r.float()
	// P(reach level) falls linearly from the start rate to the VTR.
	for lvl := 5; lvl >= 1; lvl-- {
		p := t.VTR + (start-t.VTR)*float64(5-lvl)/4
		if u < p {
			out.Played = lvl
			break
		}
	}
	return out
}

// Auction settles one slot for a bid (USD CPM): whether it wins and the price
// paid (USD CPM), under the scenario's auction kind and floor.
func (m *Market) Auction(s Slot, bidCPM float64) (won bool, priceCPM float64) {
	clear := math.Max(s.CompetingCPM, s.FloorCPM)
	if bidCPM <= clear {
		return false, 0
	}
	if m.sc.Market.Auction == FirstPrice {
		return true, bidCPM
	}
	return true, clear
}
