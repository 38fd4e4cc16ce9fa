package signals

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"

	"github.com/cpafeed/cpafeed/apierr"
)

// trickyRequests are inputs where a careless reader and encoding/json part
// ways. Each is checked against the reference and seeds the fuzzer.
var trickyRequests = []string{
	// escapes in keys and values
	`{"id":"r","imp":[{"id":"1"}],"app":{"bundle":"\u0063om.x","\u0064omain":"d\/x"}}`,
	`{"id":"r","imp":[{"id":"1"}],"app":{"bundle":"\ud83d\ude00 \ud800 \ud800\u0041 \udc00 \ud800\ud800"}}`,
	`{"id":"r","imp":[{"id":"1"}],"app":{"bundle":"a\u0000b\tc\"d\\e"}}`,
	// numbers
	`{"id":"r","imp":[{"id":"1","video":{"plcmt":3.0,"placement":1e0,"podseq":-0,"maxduration":30}}],"device":{"devicetype":3.5}}`,
	`{"id":"r","imp":[{"id":"1","video":{"maxduration":9223372036854775807,"podseq":128,"slotinpod":-128}}],"device":{"devicetype":-129,"lmt":1E0}}`,
	`{"id":"r","imp":[{"id":"1","video":{"maxduration":9223372036854775808}}],"device":{"geo":{"utcoffset":-9223372036854775808}}}`,
	`{"id":"r","imp":[{"id":"1","ssai":"3"}],"device":{"devicetype":"3","lmt":"1"},"regs":{"gdpr":"1","ext":{"gdpr":1}}}`,
	// null
	`{"id":"r","imp":[{"id":"1","video":null,"pmp":null}],"app":null,"site":{"domain":null},"device":{"lmt":null,"ifa":null},"regs":{"gdpr":null,"ext":{"gdpr":1}}}`,
	`{"id":null,"imp":[{"id":"1"}]}`,
	`{"id":"r","imp":null}`,
	`{"id":"r","imp":[null]}`,
	`{"id":"r","imp":[{"id":"1"},null,{"id":"3"}]}`,
	`null`,
	// duplicate keys
	`{"id":"a","id":"b","imp":[{"id":"1"}],"app":{"bundle":"x","publisher":{"id":"p"}},"app":{"domain":"d"}}`,
	`{"id":"r","imp":[{"id":"1","video":{"plcmt":1}},{"id":"2","video":{"plcmt":2}}],"imp":[{"id":"3"}]}`,
	`{"id":"r","imp":[{"id":"1","pmp":{"deals":[{"id":"d1"},{"id":"d2"}]}},{"id":"2"}],"imp":[{"id":"3"}],"imp":[{"pmp":{"deals":[{}]}},{"ssai":2}]}`,
	`{"id":"r","imp":[{"id":"1"},{"id":"2"}],"imp":[],"imp":[{"id":"3"},{"ssai":1}]}`,
	`{"id":"r","imp":[{"id":"1"},{"id":"2"}],"imp":null,"imp":[{"id":"3"},{"ssai":1}]}`,
	`{"id":"r","imp":[{"id":"1","pmp":{"deals":[{"id":"d1"},{"id":"d2"}]}}],"imp":[{"pmp":{"deals":[{"bidfloor":1}]}}]}`,
	`{"id":"r","imp":[{"id":"1"}],"app":{"content":{"livestream":1}},"app":{"content":{"livestream":"x"}},"site":{"content":{"livestream":[1]}}}`,
	`{"id":"r","imp":[{"id":"1"}],"device":{"ext":{"ifa_type":"rida"}},"device":{"ext":{"other":1}}}`,
	`{"id":"r","imp":[{"id":"1"}],"device":{"ext":{"ifa_type":"rida"}},"device":{"ip":"1.2.3.4"}}`,
	`{"id":"r","imp":[{"id":"1"}],"device":{"ext":{"ifa_type":"rida","ifa_type":7}}}`,
	`{"id":"r","imp":[{"id":"1"}],"regs":{"gpp_sid":[7,8,2]},"regs":{"gpp_sid":["x",6]},"regs":{"ext":{"gpp_sid":[1]}}}`,
	`{"id":"r","imp":[{"id":"1"}],"regs":{"gpp_sid":[7,8,2]},"regs":{"gpp_sid":[]},"regs":{"gpp_sid":[null,1000,3]}}`,
	`{"id":"r","imp":[{"id":"1"}],"user":{"eids":[{"source":"a.com","uids":[{"id":"1"},{"id":"2"}]}]},"user":{"eids":[{"uids":[{}]}]}}`,
	`{"id":"r","imp":[{"id":"1"}],"user":{"ext":{"eids":[{"source":"a.com","uids":[{"id":"1"}]}],"consent":"C"}},"user":{"ext":{"eids":null}}}`,
	`{"id":"r","imp":[{"id":"1"}],"user":{"eids":[{"source":"a","uids":[{"id":"1"},{"id":"2"}]},{"source":"b","uids":[{"id":"3"}]}],"eids":[{"uids":[{}]}],"eids":[{},{"uids":[{},{"id":"4"}]}]}}`,
	`{"id":"r","imp":[{"id":"1","pmp":{"deals":[{"id":"a"},{"id":"b"},{"id":"c"}]}},{"id":"2"}],"imp":[{"pmp":{"deals":[{"id":"z"}]}}],"imp":[{"pmp":{"deals":[{},{},{},{"id":"d"}]}},{"pmp":null}]}`,
	`{"id":"r","imp":[{"id":"1"}],"regs":{"gpp_sid":[1,2,3],"gpp_sid":[4],"gpp_sid":[null,"x",{},[]]}}`,
	// CTV fields: start delay, pods, content length and categories
	`{"id":"r","imp":[{"id":"1","video":{"startdelay":null}},{"id":"2","video":{"startdelay":"x"}},{"id":"3","video":{"startdelay":-2}},{"id":"4","video":{"startdelay":15,"startdelay":-1}},{"id":"5","video":{"startdelay":-3}},{"id":"6","video":{"startdelay":{}}},{"id":"7","video":{"startdelay":1.5}}]}`,
	`{"id":"r","imp":[{"id":"1","video":{"startdelay":0}},{"id":"2","video":{"startdelay":0,"startdelay":null}},{"id":"3","video":{"startdelay":9223372036854775808}}],"imp":[{"video":null}]}`,
	`{"id":"r","imp":[{"id":"1","video":{"podid":"p","slotinpod":1}},{"id":"2","video":{"podid":"p"}},{"id":"3","video":{"podid":"p","slotinpod":-1}},{"id":"4","video":{"podid":"q","maxseq":5}},{"id":"5","video":{"podid":"q","slotinpod":2}}]}`,
	`{"id":"r","imp":[{"id":"1","video":{"podid":"\u0070","maxseq":2}},{"id":"2","video":{"podid":"p","poddur":61}},{"id":"3","video":{"rqddurs":[15,"x",null,30]}},{"id":"4","video":{"rqddurs":[1],"rqddurs":null,"poddur":300}},{"id":"5","video":{"rqddurs":[1,2],"rqddurs":{},"slotinpod":0}}]}`,
	`{"id":"r","imp":[{"id":"1","video":{"podid":"p","podid":null,"maxseq":"3"}},{"id":"2","video":{"podid":7,"rqddurs":[]}},{"id":"3","video":{"podid":"","slotinpod":0,"maxseq":8}}]}`,
	`{"id":"r","imp":[{"id":"1"}],"app":{"content":{"len":1500,"cat":["","IAB19"],"cattax":2}},"site":{"content":{"len":7000,"cat":["IAB1"]}}}`,
	`{"id":"r","imp":[{"id":"1"}],"app":{"content":{"len":0,"cat":[7,null],"cattax":7}},"site":{"content":{"len":"x","cat":["s\u0031","x"],"cattax":"5"}}}`,
	`{"id":"r","imp":[{"id":"1"}],"app":{"content":{"cat":["a","b","c"]},"content":{"cat":[1,2]},"content":{"cat":null,"len":299}}}`,
	`{"id":"r","imp":[{"id":"1"}],"app":{"content":{"cat":["a","b"],"cat":[1,"z"]}},"site":{"content":{"cat":{},"len":4500}}}`,
	`{"id":"r","imp":[{"id":"1"}],"app":{"content":{"cat":["a"],"cattax":6}},"app":{"content":{"cattax":0}},"device":{"geo":{"utcoffset":-300}}}`,
	`{"id":"r","imp":[{"id":"1"}],"app":{"content":{"cat":["a"]}},"app":null,"site":{"content":{"cat":["b"],"cattax":7}},"device":{"geo":{"utcoffset":"x"}}}`,
	`{"id":"r","imp":[{"id":"1"}],"device":{"geo":{"utcoffset":60},"geo":{"utcoffset":0}}}`,
	// keys in other letter cases (encoding/json folds them; U+017F and U+212A fold to s and k)
	`{"ID":"r","Imp":[{"Id":"1","VIDEO":{"PLCMT":1}}],"APP":{"Bundle":"b","PUBLISHER":{"iD":"p"}}}`,
	`{"id":"r","imp":[{"id":"1"}],"ſite":{"domain":"long-s.example"},"device":{"ma\u212Ae":"kelvin","geo":{"metro":"501"}}}`,
	`{"id":"r","imp":[{"id":"1"}],"\u0073ite":{"domain":"x"},"devıce":{"ip":"1.1.1.1"},"user":{"Eids":[{"SOURCE":"s","UIDS":[{"ID":"u"}]}]}}`,
	`{"id":"r","imp":[{"id":"1"}],"regs":{"US_PRIVACY":"1YYN","GPP_SID":[7],"Ext":{"GDPR":1}},"user":{"CONSENT":"x"}}`,
	`{"id":"r","imp":[{"id":"1","video":{"MaxDuration":30,"maxDURATION":60,"SlotInPod":1}}],"device":{"DeviceType":3},"app":{"content":{"ContentRating":"PG","contentratinG":"R"}}}`,
	`{"id":"r","imp":[{"id":"1","video":{"maxduration_":30,"max-duration":60,"maxdurationx":1}}],"device":{"device_type":3}}`,
	// wrong types everywhere
	`{"id":1,"imp":[{"id":"1"}]}`,
	`{"id":"r","imp":{"id":"1"}}`,
	`{"id":"r","imp":"x"}`,
	`{"id":"r","imp":[]}`,
	`{"id":"r","imp":[{"id":""}]}`,
	`{"id":"r","imp":[{"id":"1"},{"id":2}]}`,
	`{"id":"r","imp":[{"id":"1"}],"app":"x","site":[1],"device":true,"user":5,"regs":"r"}`,
	`{"id":"r","imp":[{"id":"1","video":[],"pmp":{"deals":{}}}],"app":{"publisher":"p","content":[]}}`,
	`{"id":"r","imp":[{"id":"1"}],"user":{"eids":{"source":"x"},"ext":"e"},"regs":{"ext":[1]}}`,
	`[]`,
	`"x"`,
	`5`,
	// skipped values: nesting, empty containers, mismatched brackets
	`{"id":"r","imp":[{"id":"1"}],"ext":[{"a":1},{"b":[{"c":{}}]},[[]],[[],[{}]],{"d":{"e":[1,"x",true]}}]}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":{"a":{},"b":[],"c":[{}],"d":{"e":{"f":[]}}},"x":1}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":[{"a":[1,{"b":2]}]}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":{"a":[}]}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":[{"a":{"b":[1]}},{"c":2}}]}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":[1,[2,3],]}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":{"a":1,"b":{"c":2,}}}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":{"a":{"b" 1}}}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":{"a":{1:2}}}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":[{"a":1}{"b":2}]}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":[[[[]]]}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":{"a":[[{"b":[]}],{"c":{}}]}}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":{"a":[[{"b":[]}],{"c":{}}]]}`,
	// nesting (the deep ones are in bigRequests)
	`{"id":"r","imp":[{"id":"1"}],"ext":` + strings.Repeat(`[{"a":`, 40) + "1" + strings.Repeat("}]", 40) + `}`,
	// invalid UTF-8
	"{\"id\":\"r\xff\",\"imp\":[{\"id\":\"\xc3\"}],\"app\":{\"bundle\":\"\xed\xa0\x80x\xf4\x90\x80\x80\"}}",
	"{\"id\":\"r\",\"imp\":[{\"id\":\"1\"}],\"app\":{\"bund\xffle\":\"x\"}}",
	// syntax errors
	``,
	` `,
	`{"id":"r","imp":[{"id":"1"}]}x`,
	`{"id":"r","imp":[{"id":"1"}],}`,
	`{"id":"r","imp":[{"id":"1"},]}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":01}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":1.}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":-}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":+1}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":NaN}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":"\x"}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":"\u12"}`,
	"{\"id\":\"r\",\"imp\":[{\"id\":\"1\"}],\"ext\":\"a\tb\"}",
	"\xef\xbb\xbf{\"id\":\"r\",\"imp\":[{\"id\":\"1\"}]}",
	"{\"id\":\"r\",\"imp\":[{\"id\":\"1\"}]}\x00",
	`{"id":"r","imp":[{"id":"1"}],"ext":tru}`,
	`{"id":"r" "imp":[]}`,
	"{\"id\":\"r\",\"imp\":[{\"id\":\"1\"}]\v}",
}

// bigRequests are like trickyRequests but too big to be good fuzz seeds:
// encoding/json's nesting limit (10000) and a large ext blob.
var bigRequests = []string{
	`{"id":"r","imp":[{"id":"1","ext":{"a":[` + strings.Repeat(`{"b":[1,2.5e10,"x\"y",true,false,null]},`, 300) + `{}]}}]}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":` + strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000) + `}`,
	`{"id":"r","imp":[{"id":"1"}],"ext":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	impsRequest(DefaultMaxImps),
	impsRequest(DefaultMaxImps + 1),
	`{"id":"r","imp":` + impsRequest(40)[len(`{"id":"r","imp":`):len(impsRequest(40))-1] + `,"imp":[{"id":"a"},{"ssai":3}]}`,
	`{"id":"r","imp":[{"id":"a"},{"ssai":3}],"imp":` + impsRequest(40)[len(`{"id":"r","imp":`):],
	`{"id":"r","imp":` + impsRequest(40)[len(`{"id":"r","imp":`):len(impsRequest(40))-1] + `,"imp":null}`,
	`{"id":"r","imp":` + impsRequest(40)[len(`{"id":"r","imp":`):len(impsRequest(40))-1] + `,"imp":{}}`,
}

func TestExtractMatchesReference(t *testing.T) {
	dirty := NewExtractor()
	all := fixtures(t)
	for _, name := range sortedNames(all) {
		t.Run(name, func(t *testing.T) {
			if got := referenceExtract(all[name], testNow); got.Err != "" {
				t.Fatalf("fixture does not decode: %s", got.Err)
			}
			compareExtract(t, all[name], dirty)
		})
	}
	for _, in := range append(trickyRequests, bigRequests...) {
		compareExtract(t, []byte(in), dirty)
	}
}

func TestExtractErrors(t *testing.T) {
	x := NewExtractor()
	f := func(body, wantPrefix string) {
		t.Helper()
		_, err := x.Extract([]byte(body), testNow)
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Status != 400 || !strings.HasPrefix(ae.Message, wantPrefix) {
			t.Fatalf("Extract(%.60q) = %v; want a 400 starting with %q", body, err, wantPrefix)
		}
	}
	f(`{"id":"r","imp":[{"id":"1"},{"id":"2"},{}]}`, "imp[2].id: missing")
	f(`{"imp":[{"id":"1"}]}`, "id: missing")
	f(`{"id":"","imp":[{"id":"1"}]}`, "id: missing")
	f(`{"id":"r"}`, "imp: must be a non-empty array")
	f(`{"id":"r","imp":{}}`, "imp: must be a non-empty array")
	f(`{"id":"r","imp":[]}`, "imp: must be a non-empty array")
	f(`{"id":"r","imp":[1]}`, "imp[0].id: missing")
	f(`{"id":"r",`, "body: invalid JSON at offset 10: unexpected end of JSON input")
	f(`{"id":"r"]`, "body: invalid JSON at offset 10: invalid character ']' after object key:value pair")
	f(``, "body: invalid JSON at offset 0: unexpected end of JSON input")
	f(impsRequest(DefaultMaxImps+1), "imp: 33 imps, at most 32")
	f(`{"id":"r","imp":[{"id":"1"},{"id":"2"}],"imp":`+impsRequest(100)[len(`{"id":"r","imp":`):], "imp: 100 imps, at most 32")
	x.SetMaxImps(2)
	f(impsRequest(3), "imp: 3 imps, at most 2")
	f(`{"id":"r","imp":[{"id":"1"},{"id":"2"},{}]}`, "imp: 3 imps, at most 2")
}

// impsRequest is a bid request with n imps.
func impsRequest(n int) string {
	var b strings.Builder
	b.WriteString(`{"id":"r","imp":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%d","video":{"maxduration":30}}`, i+1)
	}
	b.WriteString(`]}`)
	return b.String()
}

// TestExtractMaxImps (issue 18): a request with more imps than the limit is
// refused, and the extractor keeps no more than the limit's state however
// many imps it read past (100 000 imps cost a pooled extractor tens of MB
// and the answer 40 MB before). The last "imp" member is the one counted,
// as encoding/json keeps the last.
func TestExtractMaxImps(t *testing.T) {
	x := NewExtractor()
	r, err := x.Extract([]byte(impsRequest(DefaultMaxImps)), testNow)
	if err != nil || len(r.Imps) != DefaultMaxImps {
		t.Fatalf("%d imps: %v", DefaultMaxImps, err)
	}
	if _, err := x.Extract([]byte(impsRequest(100_000)), testNow); err == nil {
		t.Fatal("100 000 imps accepted")
	}
	if n := len(x.st.imps.items); n > DefaultMaxImps {
		t.Fatalf("the extractor holds %d imps' state", n)
	}
	r, err = x.Extract([]byte(`{"id":"r","imp":`+impsRequest(40)[len(`{"id":"r","imp":`):len(impsRequest(40))-1]+`,"imp":[{"id":"a"}]}`), testNow)
	if err != nil || len(r.Imps) != 1 || string(r.Imps[0].ID) != "a" {
		t.Fatalf("40 imps, then 1: %v", err)
	}
}

// TestExtractFeatures pins feature values read from the fixtures, so that a
// mistake shared by Extract and the reference still shows.
func TestExtractFeatures(t *testing.T) {
	all := fixtures(t)
	x := NewExtractor()
	f := func(fixture string, imp int, feat FeatureID, want string) {
		t.Helper()
		r, err := x.Extract(all[fixture], testNow)
		if err != nil {
			t.Fatalf("%s: %v", fixture, err)
		}
		if got := string(r.Imps[imp].Feature(feat)); got != want {
			t.Fatalf("%s imp[%d] %s = %q; want %q", fixture, imp, feat, got, want)
		}
	}
	f("cadent-roku-ctv-video", 0, FeatureDeviceType, "3")
	f("cadent-roku-ctv-video", 0, FeatureGenre, Unknown)
	f("startio-app-video-metro-plcmt", 0, FeatureMetro, "504")
	f("startio-app-video-metro-plcmt", 0, FeaturePlacement, "plcmt:2")
	f("startio-app-video-metro-plcmt", 0, FeaturePublisher, "192837465")
	f("startio-app-video-metro-plcmt", 0, FeatureBundle, "com.pubname.appname")
	f("startio-app-video-metro-plcmt", 0, FeatureHour, "17")
	f("openwrap-ctv-structured-adpod", 1, FeaturePlacement, "placement:5")
	f("smaato-app-video-content", 0, FeatureGenre, "content-genre")
	f("smaato-app-video-content", 0, FeatureLivestream, "1")
	f("smaato-app-video-content", 0, FeatureCategory, "1:IAB8-6")
	f("smaato-app-video-content", 0, FeaturePosition, "preroll")
	f("smaato-app-video-content", 0, FeatureDaypart, Unknown) // no utcoffset
	f("smaato-video-gdpr-usp-gpp-pod", 0, FeaturePodSize, "4-6")
	f("smaato-video-gdpr-usp-gpp-pod", 0, FeatureSlot, "any")
	f("roku-ctv-pod-gpp", 0, FeatureSlot, "first")
	f("roku-ctv-pod-gpp", 1, FeatureSlot, "middle")
	f("roku-ctv-pod-gpp", 2, FeatureSlot, "last")
	f("roku-ctv-pod-gpp", 1, FeaturePodSize, "4-6") // 2 fixed slots and a dynamic imp of maxseq 3
	f("roku-ctv-pod-gpp", 0, FeatureDaypart, "daytime")
	f("settopbox-ctv-regs-ext", 0, FeaturePosition, "midroll")
	f("settopbox-ctv-regs-ext", 1, FeaturePodSize, "2-3")
	f("openwrap-ctv-dynamic-adpod", 0, FeatureSlot, "any")
	f("openwrap-ctv-dynamic-adpod", 0, FeaturePodSize, "2-3")
	f("iab-spec-2.6-video", 0, FeatureCategory, "1:IAB2-2")
	f("cadent-roku-ctv-video", 0, FeaturePosition, Unknown)
	f("cadent-roku-ctv-video", 0, FeatureContentLen, Unknown)
}

func TestCTVFeatureValues(t *testing.T) {
	pos := func(set bool, v int64, want string) {
		t.Helper()
		if got := positionOf(set, v); got != want {
			t.Fatalf("positionOf(%v, %d) = %q; want %q", set, v, got, want)
		}
	}
	pos(false, 0, "")
	pos(true, 0, "preroll")
	pos(true, -1, "midroll")
	pos(true, 30, "midroll")
	pos(true, -2, "postroll")
	pos(true, -3, "")
	slot := func(v int8, inPod, dyn bool, want string) {
		t.Helper()
		if got := slotOf(v, inPod, dyn); got != want {
			t.Fatalf("slotOf(%d, %v, %v) = %q; want %q", v, inPod, dyn, got, want)
		}
	}
	slot(1, false, false, "first")
	slot(-1, true, false, "last")
	slot(2, true, true, "first_or_last")
	slot(0, true, false, "middle")
	slot(0, true, true, "any")
	slot(0, false, true, "any")
	slot(0, false, false, "")
	slot(3, true, false, "")
	dyn := func(maxSeq int64, rqd int, dur, want int64) {
		t.Helper()
		if got := dynamicSlots(maxSeq, rqd, dur); got != want {
			t.Fatalf("dynamicSlots(%d, %d, %d) = %d; want %d", maxSeq, rqd, dur, got, want)
		}
	}
	dyn(0, 0, 0, 0)
	dyn(4, 2, 90, 4)
	dyn(0, 2, 90, 2)
	dyn(0, 0, 90, 3)
	dyn(0, 0, 91, 4)
	dyn(0, 0, 1, 1)
	dyn(-1, 0, -5, 0)
	pod := func(n int64, want string) {
		t.Helper()
		if got := podSizeBucket(n); got != want {
			t.Fatalf("podSizeBucket(%d) = %q; want %q", n, got, want)
		}
	}
	pod(0, "")
	pod(1, "1")
	pod(3, "2-3")
	pod(4, "4-6")
	pod(6, "4-6")
	pod(7, "7+")
	dp := func(hour int, want string) {
		t.Helper()
		if got := daypartOf(hour); got != want {
			t.Fatalf("daypartOf(%d) = %q; want %q", hour, got, want)
		}
	}
	for h, want := range []string{"late_fringe", "overnight", "overnight", "overnight", "overnight", "overnight",
		"early_morning", "early_morning", "early_morning", "daytime", "daytime", "daytime", "daytime", "daytime", "daytime", "daytime",
		"early_fringe", "early_fringe", "early_fringe", "early_fringe", "prime", "prime", "prime", "late_fringe"} {
		dp(h, want)
	}
	dp(-1, "")
	dp(24, "")
	cl := func(sec int64, want string) {
		t.Helper()
		if got := contentLenBucket(sec); got != want {
			t.Fatalf("contentLenBucket(%d) = %q; want %q", sec, got, want)
		}
	}
	cl(0, "")
	cl(-5, "")
	cl(299, "clip")
	cl(300, "half_hour")
	cl(35*60-1, "half_hour")
	cl(35*60, "hour")
	cl(75*60, "long")
	ifa := func(typ string, want bool) {
		t.Helper()
		if got := DeviceIFA([]byte(typ)); got != want {
			t.Fatalf("DeviceIFA(%q) = %v; want %v", typ, got, want)
		}
	}
	ifa("", true)
	ifa("rida", true)
	ifa("dpid", true)
	ifa("newplatformid", true)
	ifa("ppid", false)
	ifa("PPID", false)
	ifa("sspid", false)
	ifa("sessionid", false)
	ifa("SessionID", false)
	ifa("session_id", false)
}

func TestLocalHour(t *testing.T) {
	f := func(now, offset int64, want int) {
		t.Helper()
		if got := localHour(now, offset); got != want {
			t.Fatalf("localHour(%d, %d) = %d; want %d", now, offset, got, want)
		}
	}
	f(testNow, 0, 17)
	f(testNow, -300, 12)
	f(testNow, 420, 0)
	f(testNow, 360, 23)
	f(testNow, 390, 0)
	f(0, -60, 23)
	f(-1, 0, 23)
	f(1<<62, 1<<62, localHour(1<<62, (1<<62)%1440))
	f(-1<<63, -1<<63, localHour(-1<<63%86400, -1<<63%1440))
}

// TestFoldRunes checks the key folding of scanner.key against encoding/json's
// rule (fold.go: foldRune, the smallest rune of the SimpleFold orbit): the
// only non-ASCII runes that fold to ASCII are U+017F and U+212A.
func TestFoldRunes(t *testing.T) {
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		f := r
		for {
			r2 := unicode.SimpleFold(f)
			if r2 <= f {
				f = r2
				break
			}
			f = r2
		}
		if f < 0x80 && r != 0x17F && r != 0x212A {
			t.Fatalf("rune %U folds to ASCII %q; scanner.key does not know it", r, f)
		}
	}
}

func TestParseInt(t *testing.T) {
	f := func(in string, bits uint, want int64, wantOK bool) {
		t.Helper()
		got, ok := parseInt([]byte(in), bits)
		if got != want || ok != wantOK {
			t.Fatalf("parseInt(%q, %d) = %d, %v; want %d, %v", in, bits, got, ok, want, wantOK)
		}
	}
	f("0", 8, 0, true)
	f("-0", 8, 0, true)
	f("127", 8, 127, true)
	f("128", 8, 0, false)
	f("-128", 8, -128, true)
	f("-129", 8, 0, false)
	f("9223372036854775807", 64, 9223372036854775807, true)
	f("9223372036854775808", 64, 0, false)
	f("-9223372036854775808", 64, -9223372036854775808, true)
	f("-9223372036854775809", 64, 0, false)
	f("99999999999999999999999", 64, 0, false)
}

func TestExtractNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not meaningful under -race")
	}
	all := fixtures(t)
	x := NewExtractor()
	for _, name := range sortedNames(all) {
		body := all[name]
		if _, err := x.Extract(body, testNow); err != nil {
			t.Fatal(err)
		}
		n := testing.AllocsPerRun(50, func() {
			if _, err := x.Extract(body, testNow); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("%s: Extract allocates %v times", name, n)
		}
	}
}

func FuzzBidRequestFeatures(f *testing.F) {
	all := fixtures(f)
	names := sortedNames(all)
	for _, name := range names {
		f.Add(all[name])
	}
	for _, in := range trickyRequests {
		f.Add([]byte(in))
	}
	// A worker process runs one input at a time, so dirty is not shared.
	dirty := NewExtractor()
	f.Fuzz(func(t *testing.T, body []byte) {
		// Leave state from a fixture behind, so stale buffers would show.
		dirty.Extract(all[names[len(body)%len(names)]], testNow)
		compareExtract(t, body, dirty)
	})
}

// TestSpecial8 checks the eight-bytes-at-a-time string scan against the byte
// table it stands for, including that its lowest flagged byte is the first
// special one.
func TestSpecial8(t *testing.T) {
	for c := 0; c < 256; c++ {
		for p := 0; p < 8; p++ {
			w := []byte("abcdefgh")
			w[p] = byte(c)
			got := special8(binary.LittleEndian.Uint64(w)) != 0
			if want := strClass[c] != sPlain; got != want {
				t.Fatalf("special8 with byte %#x at %d = %v; want %v", c, p, got, want)
			}
		}
	}
	// Two special bytes, or a special byte beside 0x00-ish values, in any places.
	for _, c1 := range []byte{0, 0x1f, '"', '\\', 0x80, 0xff, 0x21, 0x5b, 0x5d} {
		for _, c2 := range []byte{0, 0x01, 0x20, '"', '\\', 0x7f, 0x80} {
			for p1 := 0; p1 < 8; p1++ {
				for p2 := 0; p2 < 8; p2++ {
					w := []byte("        ")
					w[p1], w[p2] = c1, c2
					want := 8 // index of the first special byte
					for i, c := range w {
						if strClass[c] != sPlain {
							want = i
							break
						}
					}
					got := 8
					if m := special8(binary.LittleEndian.Uint64(w)); m != 0 {
						got = bits.TrailingZeros64(m) >> 3
					}
					if got != want {
						t.Fatalf("special8(%q) flags byte %d first; want %d", w, got, want)
					}
				}
			}
		}
	}
}

// TestExtractRandomStructures compares Extract with the reference on random
// nested values, some with one structural byte changed, in a field that is
// only validated and skipped and in one that is read (imp).
func TestExtractRandomStructures(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var gen func(b []byte, depth int) []byte
	gen = func(b []byte, depth int) []byte {
		switch k := rng.IntN(9); {
		case k < 2 && depth < 7:
			b = append(b, '{')
			for i, n := 0, rng.IntN(4); i < n; i++ {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, []string{`"id"`, `"a"`, `"video"`, `"Ext"`, `"plcmt"`, `"deals"`}[rng.IntN(6)]...)
				b = append(b, []string{":", " : ", ":\n"}[rng.IntN(3)]...)
				b = gen(b, depth+1)
			}
			return append(b, '}')
		case k < 4 && depth < 7:
			b = append(b, '[')
			for i, n := 0, rng.IntN(4); i < n; i++ {
				if i > 0 {
					b = append(b, []string{",", " ,", ",\n  "}[rng.IntN(3)]...)
				}
				b = gen(b, depth+1)
			}
			return append(b, ']')
		default:
			return append(b, []string{`1`, `-2.5e3`, `"x"`, `"\u00e9\n"`, `true`, `false`, `null`, `{}`, `[]`, `0`, `"id"`}[rng.IntN(11)]...)
		}
	}
	structural := []byte(`{}[],:" `)
	for i := 0; i < 3000; i++ {
		v := gen(nil, 0)
		if i%2 == 1 && len(v) > 0 {
			v[rng.IntN(len(v))] = structural[rng.IntN(len(structural))]
		}
		compareExtract(t, []byte(`{"id":"r","imp":[{"id":"1"}],"ext":`+string(v)+`}`), nil)
		compareExtract(t, []byte(`{"id":"r","imp":[{"id":"1"},`+string(v)+`]}`), nil)
	}
}
