package signals

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prebid/openrtb/v20/openrtb2"
)

// This file is the reference for Extract: the typed decode of the whole
// request with encoding/json into openrtb2.BidRequest (plus the few ext
// blobs into small structs), turned into the same comparable result.

// extracted is what both readers must agree on, field for field.
type extracted struct {
	Err         string
	AuctionType int64
	ID          string
	Imps        []extractedImp
	IFA         string
	IFAType     string
	LMT         bool
	IP          string
	IPv6        string
	UserID      string
	EIDs        []extractedEID
	Privacy     extractedPrivacy
}

type extractedImp struct {
	ID       string
	Features [NumFeatures]string
	Deals    []string
}

type extractedEID struct {
	Source string
	IDs    []string
}

type extractedPrivacy struct {
	COPPA     bool
	GDPR      int8
	Consent   string
	USPrivacy string
	GPP       string
	GPPSID    []int8
}

// The ext blobs, as a bidder would decode them (prebid-server's
// openrtb_ext uses the same types).
type refDeviceExt struct {
	IFAType string `json:"ifa_type"`
}

type refUserExt struct {
	Consent string         `json:"consent"`
	EIDs    []openrtb2.EID `json:"eids"`
}

type refRegsExt struct {
	COPPA     int8   `json:"coppa"`
	GDPR      *int8  `json:"gdpr"`
	USPrivacy string `json:"us_privacy"`
	GPP       string `json:"gpp"`
	GPPSID    []int8 `json:"gpp_sid"`
}

func referenceExtract(body []byte, now int64) extracted {
	var br openrtb2.BidRequest
	if err := json.Unmarshal(body, &br); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return extracted{Err: fmt.Sprintf("body: invalid JSON at offset %d: %s", se.Offset, se.Error())}
		}
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return extracted{Err: "reference: unexpected error: " + err.Error()}
		}
		// A type error leaves the field as it was; decoding went on.
	}
	switch {
	case br.ID == "":
		return extracted{Err: "id: missing"}
	case len(br.Imp) == 0:
		return extracted{Err: "imp: must be a non-empty array"}
	case len(br.Imp) > DefaultMaxImps:
		return extracted{Err: fmt.Sprintf("imp: %d imps, at most %d", len(br.Imp), DefaultMaxImps)}
	}
	for i := range br.Imp {
		if br.Imp[i].ID == "" {
			return extracted{Err: fmt.Sprintf("imp[%d].id: missing", i)}
		}
	}
	app, site := br.App, br.Site
	if app == nil {
		app = &openrtb2.App{}
	}
	if site == nil {
		site = &openrtb2.Site{}
	}
	appPub, sitePub := app.Publisher, site.Publisher
	if appPub == nil {
		appPub = &openrtb2.Publisher{}
	}
	if sitePub == nil {
		sitePub = &openrtb2.Publisher{}
	}
	appC, siteC := app.Content, site.Content
	if appC == nil {
		appC = &openrtb2.Content{}
	}
	if siteC == nil {
		siteC = &openrtb2.Content{}
	}
	dev := br.Device
	if dev == nil {
		dev = &openrtb2.Device{}
	}
	geo := dev.Geo
	if geo == nil {
		geo = &openrtb2.Geo{}
	}
	var devExt refDeviceExt
	_ = json.Unmarshal(dev.Ext, &devExt) // type errors leave fields unset
	user := br.User
	if user == nil {
		user = &openrtb2.User{}
	}
	var userExt refUserExt
	_ = json.Unmarshal(user.Ext, &userExt)
	regs := br.Regs
	if regs == nil {
		regs = &openrtb2.Regs{}
	}
	var regsExt refRegsExt
	_ = json.Unmarshal(regs.Ext, &regsExt)

	or := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	network := func(n *openrtb2.Network) string {
		if n == nil {
			return ""
		}
		return or(n.ID, n.Name)
	}
	channel := func(c *openrtb2.Channel) string {
		if c == nil {
			return ""
		}
		return or(c.ID, c.Name)
	}
	num := func(v int64) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatInt(v, 10)
	}
	var rf [NumFeatures]string
	rf[FeaturePublisher] = or(appPub.ID, sitePub.ID)
	rf[FeatureBundle] = app.Bundle
	rf[FeatureDomain] = or(app.Domain, site.Domain)
	rf[FeatureGenre] = or(appC.Genre, siteC.Genre)
	rf[FeatureSeries] = or(appC.Series, siteC.Series)
	rf[FeatureLanguage] = or(appC.Language, siteC.Language)
	rf[FeatureRating] = or(appC.ContentRating, siteC.ContentRating)
	rf[FeatureNetwork] = or(network(appC.Network), network(siteC.Network))
	rf[FeatureChannel] = or(channel(appC.Channel), channel(siteC.Channel))
	if appC.LiveStream != nil {
		rf[FeatureLivestream] = strconv.Itoa(int(*appC.LiveStream))
	} else if siteC.LiveStream != nil {
		rf[FeatureLivestream] = strconv.Itoa(int(*siteC.LiveStream))
	}
	rf[FeatureDeviceType] = num(int64(dev.DeviceType))
	rf[FeatureMake] = dev.Make
	rf[FeatureOS] = dev.OS
	rf[FeatureCountry] = geo.Country
	rf[FeatureRegion] = geo.Region
	rf[FeatureMetro] = geo.Metro
	rf[FeatureHour] = strconv.Itoa(localHour(now, geo.UTCOffset))
	if geo.UTCOffset != 0 {
		rf[FeatureDaypart] = daypartOf(localHour(now, geo.UTCOffset))
	}
	contentLen := appC.Len
	if contentLen == 0 {
		contentLen = siteC.Len
	}
	rf[FeatureContentLen] = contentLenBucket(contentLen)
	category := func(c *openrtb2.Content) string {
		for _, cat := range c.Cat {
			if cat != "" {
				tax := int64(c.CatTax)
				if tax == 0 {
					tax = 1
				}
				return strconv.FormatInt(tax, 10) + ":" + cat
			}
		}
		return ""
	}
	rf[FeatureCategory] = or(category(appC), category(siteC))
	// Pods: fixed slots and dynamic capacities by podid (see podSizeBucket).
	dynamic := func(v *openrtb2.Video) int64 {
		if v == nil {
			return 0
		}
		return dynamicSlots(v.MaxSeq, len(v.RqdDurs), v.PodDur)
	}
	podSlots := map[string]int64{}
	for _, imp := range br.Imp {
		if v := imp.Video; v != nil && v.PodID != "" {
			podSlots[v.PodID] += max(dynamic(v), 1)
		}
	}

	out := extracted{ID: br.ID, AuctionType: br.AT}
	for _, imp := range br.Imp {
		ei := extractedImp{ID: imp.ID, Features: rf}
		if v := imp.Video; v != nil {
			if v.Plcmt != 0 {
				ei.Features[FeaturePlacement] = "plcmt:" + strconv.Itoa(int(v.Plcmt))
			} else if v.Placement != 0 {
				ei.Features[FeaturePlacement] = "placement:" + strconv.Itoa(int(v.Placement))
			}
			ei.Features[FeaturePodSeq] = num(int64(v.PodSeq))
			ei.Features[FeatureSlotInPod] = num(int64(v.SlotInPod))
			ei.Features[FeatureMaxDuration] = num(v.MaxDuration)
			if v.StartDelay != nil {
				ei.Features[FeaturePosition] = positionOf(true, int64(*v.StartDelay))
			}
			ei.Features[FeatureSlot] = slotOf(int8(v.SlotInPod), v.PodID != "", dynamic(v) > 0)
			if v.PodID != "" {
				ei.Features[FeaturePodSize] = podSizeBucket(podSlots[v.PodID])
			} else {
				ei.Features[FeaturePodSize] = podSizeBucket(dynamic(v))
			}
		}
		ei.Features[FeatureSSAI] = num(int64(imp.SSAI))
		if imp.PMP != nil {
			for _, d := range imp.PMP.Deals {
				if d.ID != "" {
					ei.Deals = append(ei.Deals, d.ID)
				}
			}
		}
		if len(ei.Deals) > 0 {
			ei.Features[FeatureDeal] = ei.Deals[0]
		}
		for f := range ei.Features {
			if ei.Features[f] == "" {
				ei.Features[f] = Unknown
			}
		}
		out.Imps = append(out.Imps, ei)
	}

	out.IFA = dev.IFA
	out.IFAType = devExt.IFAType
	out.LMT = dev.Lmt != nil && *dev.Lmt == 1
	out.IP = dev.IP
	out.IPv6 = dev.IPv6
	out.UserID = user.ID
	for _, eids := range [][]openrtb2.EID{user.EIDs, userExt.EIDs} {
		for _, e := range eids {
			ee := extractedEID{Source: e.Source}
			for _, u := range e.UIDs {
				if u.ID != "" {
					ee.IDs = append(ee.IDs, u.ID)
				}
			}
			out.EIDs = append(out.EIDs, ee)
		}
	}

	p := extractedPrivacy{GDPR: -1}
	p.COPPA = regs.COPPA == 1 || regsExt.COPPA == 1
	if regs.GDPR != nil {
		p.GDPR = *regs.GDPR
	} else if regsExt.GDPR != nil {
		p.GDPR = *regsExt.GDPR
	}
	p.Consent = or(user.Consent, userExt.Consent)
	p.USPrivacy = or(regs.USPrivacy, regsExt.USPrivacy)
	p.GPP = or(regs.GPP, regsExt.GPP)
	if len(regs.GPPSID) > 0 {
		p.GPPSID = regs.GPPSID
	} else if len(regsExt.GPPSID) > 0 {
		p.GPPSID = regsExt.GPPSID
	}
	out.Privacy = p
	return out
}

// fastExtract runs x.Extract and turns its answer into an extracted.
func fastExtract(x *Extractor, body []byte, now int64) extracted {
	r, err := x.Extract(body, now)
	if err != nil {
		return extracted{Err: err.Error()}
	}
	out := extracted{
		AuctionType: r.AuctionType,
		ID:          string(r.ID),
		IFA:         string(r.IFA),
		IFAType:     string(r.IFAType),
		LMT:         r.LMT,
		IP:          string(r.IP),
		IPv6:        string(r.IPv6),
		UserID:      string(r.UserID),
	}
	for i := range r.Imps {
		imp := &r.Imps[i]
		ei := extractedImp{ID: string(imp.ID)}
		for f := FeatureID(0); f < NumFeatures; f++ {
			ei.Features[f] = string(imp.Feature(f))
		}
		for _, d := range imp.Deals {
			ei.Deals = append(ei.Deals, string(d))
		}
		out.Imps = append(out.Imps, ei)
	}
	for _, e := range r.EIDs {
		ee := extractedEID{Source: string(e.Source)}
		for _, id := range e.IDs {
			ee.IDs = append(ee.IDs, string(id))
		}
		out.EIDs = append(out.EIDs, ee)
	}
	p := r.Privacy()
	out.Privacy = extractedPrivacy{
		COPPA:     p.COPPA,
		GDPR:      p.GDPR,
		Consent:   string(p.Consent),
		USPrivacy: string(p.USPrivacy),
		GPP:       string(p.GPP),
		GPPSID:    append([]int8(nil), p.GPPSID...),
	}
	if len(out.Privacy.GPPSID) == 0 {
		out.Privacy.GPPSID = nil
	}
	return out
}

// testNow is 2026-03-01 17:30:00 UTC.
const testNow = 1772386200

// fixtures returns every request fixture: the shared ones and ours.
func fixtures(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	// testdata/openrtb/shared holds copies of shared/fixtures/openrtb (see
	// its SOURCES.md), so the tests do not depend on where shared/ is.
	for _, pat := range []string{"testdata/openrtb/shared/*.json", "testdata/openrtb/*.json"} {
		files, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out[strings.TrimSuffix(filepath.Base(f), ".json")] = b
		}
	}
	if len(out) < 17 {
		t.Fatalf("found only %d request fixtures", len(out))
	}
	return out
}

func sortedNames(m map[string][]byte) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// compareExtract checks that Extract, on a new Extractor and on one that
// read other requests before, agrees with the reference.
func compareExtract(t *testing.T, body []byte, dirty *Extractor) {
	t.Helper()
	want := referenceExtract(body, testNow)
	got := fastExtract(NewExtractor(), body, testNow)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Extract differs from encoding/json on %q:\n got: %+v\nwant: %+v", truncate(body), got, want)
	}
	if dirty != nil {
		if got := fastExtract(dirty, body, testNow); !reflect.DeepEqual(got, want) {
			t.Fatalf("reused Extractor differs from encoding/json on %q:\n got: %+v\nwant: %+v", truncate(body), got, want)
		}
	}
}

func truncate(b []byte) string {
	if len(b) > 600 {
		return string(b[:300]) + "..." + string(b[len(b)-300:])
	}
	return string(b)
}

// TestReferenceFieldNamesFoldApart checks an assumption of Extract: in every
// struct it walks, no two JSON field names fold to the same key, so the
// order encoding/json tries them in (exact name, then folded) cannot matter.
func TestReferenceFieldNamesFoldApart(t *testing.T) {
	for _, v := range []any{
		openrtb2.BidRequest{}, openrtb2.Imp{}, openrtb2.Video{}, openrtb2.PMP{}, openrtb2.Deal{},
		openrtb2.App{}, openrtb2.Site{}, openrtb2.Publisher{}, openrtb2.Content{}, openrtb2.Network{},
		openrtb2.Channel{}, openrtb2.Device{}, openrtb2.Geo{}, openrtb2.User{}, openrtb2.EID{}, openrtb2.UID{},
		openrtb2.Regs{}, refDeviceExt{}, refUserExt{}, refRegsExt{},
	} {
		typ := reflect.TypeOf(v)
		seen := map[string]string{}
		for i := 0; i < typ.NumField(); i++ {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" {
				t.Fatalf("%s.%s has no JSON name", typ.Name(), typ.Field(i).Name)
			}
			folded := strings.ToLower(name)
			if other, dup := seen[folded]; dup {
				t.Fatalf("%s: %q and %q fold alike", typ.Name(), name, other)
			}
			seen[folded] = name
		}
	}
}
