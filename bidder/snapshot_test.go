package bidder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
)

// snapshotOf returns the snapshot bytes HandleSnapshot sends to b.
func snapshotOf(tb testing.TB, w *world, b testBidder) []byte {
	tb.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/v1/model/snapshot")
	if err := w.svc.HandleSnapshot(&ctx, b); err != nil {
		tb.Fatal(err)
	}
	if string(ctx.Response.Header.ContentType()) != SnapshotContentType {
		tb.Fatalf("content type %q", ctx.Response.Header.ContentType())
	}
	return append([]byte(nil), ctx.Response.Body()...)
}

// TestSnapshotRoundTrip: a Scorer on the decoded snapshot answers every
// fixture exactly as the handler does, and the snapshot carries the chain,
// the bid rules and the campaign averages.
func TestSnapshotRoundTrip(t *testing.T) {
	t.Run("chain", func(t *testing.T) { testSnapshotRoundTrip(t, newWorld(t)) })
	t.Run("crossed", func(t *testing.T) { testSnapshotRoundTrip(t, newCrossedWorld(t)) })
}

func testSnapshotRoundTrip(t *testing.T, w *world) {
	all := fixtures(t)
	w.feedFixtures(t, all)
	everyone := testBidder{name: "all"}
	data := snapshotOf(t, w, everyone)
	sn, err := ParseSnapshot(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	est := w.m.Estimates()
	if sn.Version() != est.Version() || sn.Estimates().Len() != est.Len() || sn.Size() != len(data) {
		t.Fatalf("version %d of %d, %d of %d nodes", sn.Version(), est.Version(), sn.Estimates().Len(), est.Len())
	}
	if got, want := sn.Rules().Levels(), w.rules.Levels(); len(got) != len(want) || got[3][0] != "metro" || sn.Estimates().Crossed() != est.Crossed() {
		t.Fatalf("levels %v, want %v", got, want)
	}
	for i, c := range w.rules.Campaigns() {
		if sn.Rules().Campaigns()[i] != c {
			t.Fatalf("campaign %d: %+v, want %+v", i, sn.Rules().Campaigns()[i], c)
		}
		if sn.tab.avg[i] != newTable(w.rules, est, nil).avg[i] {
			t.Fatalf("campaign %d: average %g", i, sn.tab.avg[i])
		}
	}
	sc := NewScorerFromSnapshot(sn)
	sc.SetClock(func() time.Time { return time.Unix(w.now, 0) })
	var res Result
	for _, name := range sortedNames(all) {
		_, want := call(w.svc, "POST", "/v1/score", all[name], everyone)
		if err := sc.Score(all[name], ScoreOptions{}, &res); err != nil {
			t.Fatal(err)
		}
		if got := res.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("%s:\nscorer %s\n  HTTP %s", name, got, want)
		}
	}
	// The same version is cached: a second poll sends the same bytes.
	if again := snapshotOf(t, w, everyone); !bytes.Equal(again, data) {
		t.Fatal("a second snapshot of one version differs")
	}
	// since=N: 304 while the version is N.
	status, body := call(w.svc, "GET", "/v1/model/snapshot?since="+strconv.FormatUint(est.Version(), 10), nil, everyone)
	if status != 304 || len(body) != 0 {
		t.Fatalf("since the current version: %d %q", status, body)
	}
}

// TestSnapshotInterval: within Config.SnapshotInterval a newer model
// version does not cost a new build: the cached snapshot is sent, and a
// poll since its version is a 304; after it, the newer one is built.
func TestSnapshotInterval(t *testing.T) {
	w := newWorld(t)
	now := time.Unix(w.now, 0)
	w.svc = NewService(Config{SnapshotInterval: time.Minute}, w.rules, w.m, nil)
	w.svc.SetClock(func() time.Time { return now })
	everyone := testBidder{name: "all"}
	first, err := ParseSnapshot(snapshotOf(t, w, everyone), 0)
	if err != nil {
		t.Fatal(err)
	}
	v := first.Version()
	w.m.Refresh(w.now) // a newer version
	status, body := call(w.svc, "GET", "/v1/model/snapshot?since="+strconv.FormatUint(v, 10), nil, everyone)
	if status != 304 || len(body) != 0 {
		t.Fatalf("within the interval: %d %d bytes", status, len(body))
	}
	now = now.Add(time.Minute)
	sn, err := ParseSnapshot(snapshotOf(t, w, everyone), 0)
	if err != nil || sn.Version() != v+1 {
		t.Fatalf("after the interval: version %d, %v", sn.Version(), err)
	}
}

// TestSnapshotRestricted (issue 18): a bidder restricted to some of the
// model's campaigns gets a snapshot of those only: no estimates, rules or
// id of another tenant's campaign (it was refused with a 403 that named
// one). A Scorer on it answers as POST /v1/score does for the bidder, and
// another tenant's campaign is as unknown to it as a made-up one.
func TestSnapshotRestricted(t *testing.T) {
	all := fixtures(t)
	w := newWorld(t)
	w.feedFixtures(t, all)
	data := snapshotOf(t, w, demoBidder)
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	raw, err := dec.DecodeAll(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("other-tenant")) {
		t.Fatal("the snapshot names another tenant's campaign")
	}
	sn, err := ParseSnapshot(data, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	sn.Estimates().Campaigns(func(id string) bool { ids = append(ids, id); return true })
	if strings.Join(ids, ",") != "ctv-purchase,ctv-signup" || len(sn.Rules().Campaigns()) != 2 {
		t.Fatalf("estimates of %v, rules of %+v", ids, sn.Rules().Campaigns())
	}
	sc := NewScorerFromSnapshot(sn)
	var res Result
	for _, name := range sortedNames(all) {
		_, want := call(w.svc, "POST", "/v1/score", all[name], demoBidder)
		if err := sc.Score(all[name], ScoreOptions{}, &res); err != nil {
			t.Fatal(err)
		}
		if got := res.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("%s:\nscorer %s\n  HTTP %s", name, got, want)
		}
	}
	body := all["ctv-1imp"]
	for _, id := range []string{"other-tenant", "made-up"} {
		err := sc.Score(body, ScoreOptions{Campaigns: []string{id}}, &res)
		_, http := call(w.svc, "POST", "/v1/score?campaigns="+id, body, demoBidder)
		want := `campaigns: unknown campaign "` + id + `"`
		if e, ok := err.(*apierr.Error); !ok || e.Status != 404 || e.Message != want || string(http) != want {
			t.Fatalf("%s: scorer %v, HTTP %s", id, err, http)
		}
	}
}

// TestParseSnapshotBad: what is not a whole snapshot is an ErrSnapshot.
func TestParseSnapshotBad(t *testing.T) {
	w := newWorld(t)
	w.m.Refresh(w.now)
	data := snapshotOf(t, w, testBidder{name: "all"})
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	raw, err := dec.DecodeAll(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	f := func(what string, data []byte, want string) {
		t.Helper()
		_, err := ParseSnapshot(data, 0)
		if !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", what, err, want)
		}
	}
	f("empty", nil, "not a cpafeed snapshot")
	f("not zstd", []byte("hello"), "invalid snapshot")
	f("plain content", raw, "invalid snapshot")
	f("other magic", enc.EncodeAll(append([]byte("XXXX"), raw[4:]...), nil), "not a cpafeed snapshot")
	f("newer format", enc.EncodeAll(append([]byte("CPFS\x04"), raw[5:]...), nil), "format 4")
	f("truncated", enc.EncodeAll(raw[:len(raw)/2], nil), "invalid snapshot")
	f("trailing", enc.EncodeAll(append(raw, 0), nil), "after its end")
	if _, err := ParseSnapshot(data, int64(len(raw)-1)); !errors.Is(err, ErrSnapshot) {
		t.Errorf("over the size limit: %v", err)
	}
}

// FuzzParseSnapshot: any bytes are a snapshot or an ErrSnapshot; a
// snapshot that decodes can be scored with.
func FuzzParseSnapshot(f *testing.F) {
	all := fixtures(f)
	w := newWorld(f)
	w.feedFixtures(f, all)
	data := snapshotOf(f, w, testBidder{name: "all"})
	dec, _ := zstd.NewReader(nil)
	raw, _ := dec.DecodeAll(data, nil)
	dec.Close()
	enc, _ := zstd.NewWriter(nil)
	f.Add(data)
	f.Add(enc.EncodeAll(raw[:len(raw)-10], nil))
	enc.Close()
	body := all["ctv-1imp"]
	f.Fuzz(func(t *testing.T, data []byte) {
		sn, err := ParseSnapshot(data, 1<<24)
		if err != nil {
			if !errors.Is(err, ErrSnapshot) {
				t.Fatalf("%v is not an ErrSnapshot", err)
			}
			return
		}
		var res Result
		NewScorerFromSnapshot(sn).Score(body, ScoreOptions{Thompson: true}, &res)
	})
}

// appendOldSnapshot encodes a snapshot in a format servers wrote before
// the current one: 1 (before the closed loop of issue 16: no cpa_control,
// exploration or shading per campaign, no curves) or 2 (before the
// holdout of issue 14: the closed loop, no curves here).
func appendOldSnapshot(t *testing.T, version byte, r *Rules, tab *table) []byte {
	t.Helper()
	dst := append([]byte(snapMagic), version)
	dst = binary.AppendUvarint(dst, tab.est.Version())
	dst = binary.AppendUvarint(dst, uint64(len(r.levels)))
	for _, lv := range r.levels {
		dst = binary.AppendUvarint(dst, uint64(len(lv)))
		for _, f := range lv {
			dst = appendStr(dst, f)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.camps)))
	for i := range r.camps {
		c := &r.camps[i]
		dst = appendStr(dst, c.ID)
		dst = appendStr(dst, c.Currency)
		for _, f := range [...]float64{c.TargetCPA, c.FloorCPM, c.CapCPM, c.Pacing, tab.avg[i]} {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
		}
		if version == 1 {
			dst = append(dst, boolByte(c.onLo))
			continue
		}
		dst = append(dst, boolByte(c.onLo), boolByte(c.Shading))
		for _, f := range [...]float64{tab.ctl[i].u, tab.ctl[i].q} {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
		}
	}
	dst = binary.AppendUvarint(dst, 0)
	est, err := tab.est.MarshalCampaigns(nil)
	if err != nil {
		t.Fatal(err)
	}
	dst = binary.AppendUvarint(dst, uint64(len(est)))
	dst = append(dst, est...)
	if version == 1 {
		return dst
	}
	return binary.AppendUvarint(dst, 0) // no curves
}

// TestParseSnapshotFormat1: a snapshot of a server before the closed loop
// still loads and answers as that server did: multiplier 1, no
// exploration, no shading.
func TestParseSnapshotFormat1(t *testing.T) {
	all := fixtures(t)
	w := newWorld(t)
	w.feedFixtures(t, all)
	raw := appendOldSnapshot(t, 1, w.rules, newTable(w.rules, w.m.Estimates(), nil))
	sn, err := parseSnapshotContent(raw)
	if err != nil {
		t.Fatal(err)
	}
	sc := NewScorerFromSnapshot(sn)
	sc.SetClock(w.svc.now)
	var res Result
	if err := sc.Score(all["roku-ctv-pod-gpp"], ScoreOptions{Thompson: true}, &res); err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Imps[0].Scores {
		if s.CPAControl != 1 || s.Shading != 1 || s.Explored || s.BidCPM != s.UnshadedCPM {
			t.Fatalf("format 1: %+v", s)
		}
	}
	status, body := call(w.svc, "POST", "/v1/score", all["roku-ctv-pod-gpp"], demoBidder)
	server := decode(t, body)
	if status != 200 || server.Imps[0].Campaigns[0].BidCPM != WireFloat(res.Imps[0].Scores[0].BidCPM) {
		t.Fatalf("server %+v, format-1 scorer %+v", server.Imps[0].Campaigns[0], res.Imps[0].Scores[0])
	}
}
