package conversions

import (
	"bytes"
	"image/gif"
	"strings"
	"testing"

	"github.com/cpafeed/cpafeed/signals"
	"github.com/valyala/fasthttp"
)

func TestPixelAnswersTransparentGIF(t *testing.T) {
	e := newTestEnv(t, nil)
	r := e.pixel("id=" + testDataset + "&ev=Purchase&eid=g-1&dl=https://shop.example.com")
	img, err := gif.Decode(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1 || b.Dy() != 1 {
		t.Fatalf("bounds %v", b)
	}
	if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
		t.Fatalf("pixel not transparent: alpha %d", a)
	}
	h := &r.ctx.Response.Header
	if string(h.ContentType()) != "image/gif" || !bytes.Contains(h.Peek("Cache-Control"), []byte("no-store")) ||
		string(h.Peek("Pragma")) != "no-cache" {
		t.Fatalf("headers: %s", h.String())
	}
}

func TestPixelClientIP(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "fd00::/8"} })
	h := signals.NewHasher([]byte(testSecret))
	f := func(remote, xff, want string) {
		t.Helper()
		before := len(e.hook.all())
		hdr := []string{"Remote: " + remote}
		if xff != "" {
			hdr = append(hdr, "X-Forwarded-For: "+xff)
		}
		e.pixel("id="+testDataset+"&ev=Purchase&eid="+remote+xff+"&dl=https://x", hdr...)
		got := e.hook.all()
		if len(got) != before+1 {
			t.Fatalf("remote %s xff %q: not stored", remote, xff)
		}
		var ip []signals.ID
		for _, id := range got[len(got)-1].IDs {
			if id.Kind == signals.IDIP {
				ip = append(ip, id)
			}
		}
		norm, _ := signals.NormalizeIP(nil, []byte(want))
		if len(ip) != 1 || ip[0] != h.ID(signals.IDIP, norm) {
			t.Fatalf("remote %s xff %q: IP identity %v, want that of %s", remote, xff, ip, want)
		}
	}
	f("198.51.100.1", "", "198.51.100.1")
	f("198.51.100.2", "1.2.3.4", "198.51.100.2")            // an untrusted peer cannot claim an address
	f("10.1.2.3", "1.2.3.4", "1.2.3.4")                     // a trusted proxy can
	f("10.1.2.3", "6.6.6.6, 1.2.3.5, 10.9.9.9", "1.2.3.5")  // right-most untrusted hop
	f("10.1.2.3", "garbage, 1.2.3.6", "1.2.3.6")            // stops at what it cannot parse
	f("10.1.2.3", "2001:db8:aa:bb::1", "2001:db8:aa:bb::1") // IPv6 client behind the proxy
	f("::ffff:198.51.100.3", "", "198.51.100.3")            // IPv4-mapped peer
}

func TestPixelRejectedCounts(t *testing.T) {
	e := newTestEnv(t, nil)
	e.pixel("id=" + testDataset + "&eid=x")                                       // no event name
	e.pixel("id=" + testDataset + "&ev=Purchase&eid=y")                           // no URL (no dl, no Referer)
	e.pixel("id=" + testDataset + "&ev=Purchase&eid=z&dl=https://x&cd[value]=-3") // negative value
	r := e.pixel("id=" + testDataset + "&ev=Purchase&eid=w&dl=https://x&cd[value]=3&cd[currency]=usd&dpo=LDU")
	if string(r.body) != signals.TransparentGIF {
		t.Fatal("no GIF")
	}
	st := e.stats(t)
	px := st["by_source"].(map[string]any)["pixel"].(map[string]any)
	if num(px, "rejected") != 3 || num(px, "stored") != 1 {
		t.Fatalf("pixel stats %v", px)
	}
	got := e.hook.all()
	if len(got) != 1 || got[0].Flags != FlagLDU|FlagValue || len(got[0].IDs) != 0 || got[0].Currency != "USD" {
		t.Fatalf("stored %+v", got)
	}
}

// TestPixelRejectsBadBytes (issue 18): a hit whose event name or id is not
// UTF-8 or holds control bytes is rejected (the GIF, counted), not stored
// with the bytes replaced.
func TestPixelRejectsBadBytes(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, q := range []string{
		"ev=Pur%FFchase&eid=b-1", "ev=Purchase&eid=b-2%C3", "ev=Pur%01chase&eid=b-3", "ev=Purchase&eid=b%7F4",
		"ev=Purchase&eid=b-5&order_id=o%FF", "ev=Purchase&eid=b-6&household_id=h%00h",
	} {
		if r := e.pixel("id=" + testDataset + "&dl=https://x&" + q); string(r.body) != signals.TransparentGIF {
			t.Fatalf("%s: no GIF", q)
		}
	}
	e.pixel("id=" + testDataset + "&dl=https://x&ev=Purchase&eid=b-7")
	px := e.stats(t)["by_source"].(map[string]any)["pixel"].(map[string]any)
	if num(px, "rejected") != 6 || num(px, "stored") != 1 {
		t.Fatalf("pixel stats %v", px)
	}
}

func TestStatsJSON(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxEventNames = 2 })
	now := testNow.Unix()
	e.postCAPI(batchOf(ev("Purchase", "s-1", now, `"em":"a@b.co"`), ev("Lead", "s-2", now, `"em":"a@b.co"`),
		ev("Search", "s-3", now, `"em":"a@b.co"`), ev("Purchase", "s-1", now, `"em":"a@b.co"`)))
	e.postCAPI(batchOf(ev("Purchase", "s-4", now-9*86400, `"em":"a@b.co"`))) // rejected
	st := e.stats(t)
	if st["dataset"] != testDataset || num(st, "received") != 4 || num(st, "stored") != 3 || num(st, "deduplicated") != 1 ||
		num(st, "rejected") != 1 || num(st, "dedup_entries") != 3 {
		t.Fatalf("stats %v", st)
	}
	names := st["by_event_name"].(map[string]any)
	p, l, o := names["Purchase"].(map[string]any), names["Lead"].(map[string]any), names["(other)"].(map[string]any)
	if num(p, "received") != 2 || num(p, "stored") != 1 || num(p, "deduplicated") != 1 || num(p, "rejected") != 1 ||
		num(l, "stored") != 1 || num(o, "stored") != 1 || len(names) != 3 {
		t.Fatalf("by_event_name %v", names)
	}
	// The over-the-limit name still reaches the hook under its own name.
	if got := e.hook.all(); len(got) != 3 || got[2].EventName != "Search" {
		t.Fatalf("hook %+v", got)
	}
	r := call(e.asAdvertiser(func(ctx *fasthttp.RequestCtx, _ Body, adv string) error { return e.s.HandleStats(ctx, adv) }), "GET", "/v1/stats?dataset=999", "",
		"Authorization: Bearer "+testToken)
	if r.status != 400 || r.err.Subcode != 33 || !strings.HasPrefix(r.err.Message, "Unsupported get request. Object with ID '999'") {
		t.Fatalf("other advertiser's stats: %d %s", r.status, r.body)
	}
}
