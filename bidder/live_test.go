package bidder_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/bidder"
	"github.com/cpafeed/cpafeed/configs"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/server"
	"github.com/cpafeed/cpafeed/signals"
)

const (
	bidderToken = "dev-bidder-token"       // demo-bidder: demo-ctv-purchase, demo-ctv-signup
	allToken    = "dev-all-bidder-token"   // may score every campaign
	noWinToken  = "dev-nowin-bidder-token" // every campaign, sends no win notices (win_notices: false)
)

// startServer runs a cpafeed server in process on a free loopback port
// with the embedded default config (plus another advertiser's campaign and
// a bidder allowed everything), a temporary data dir and a fast model
// refresh, and returns its base URL.
func startServer(tb testing.TB, refresh time.Duration) string {
	tb.Helper()
	cfg, err := server.ParseConfig(configs.Default)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = tb.TempDir()
	cfg.Model.RefreshInterval = refresh
	cfg.Bidder.SnapshotInterval = time.Millisecond // a snapshot of every version
	cfg.Advertisers = append(cfg.Advertisers, server.Advertiser{Name: "other", Token: "dev-other-advertiser-token", Datasets: []string{"999"}})
	cfg.Campaigns = append(cfg.Campaigns, model.Campaign{ID: "other-ctv", Advertiser: "other", Event: "Purchase", TargetCPA: 25, BidOn: "cvr_lo"})
	noWins := false
	cfg.Bidders = append(cfg.Bidders, server.Bidder{Name: "all-bidder", Token: allToken},
		server.Bidder{Name: "nowin-bidder", Token: noWinToken, WinNotices: &noWins})
	cfg = cfg.WithDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		tb.Fatal(errors.Join(errs...))
	}
	s, err := server.New(cfg, server.NewLogger(cfg.Log, io.Discard))
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go s.Serve(ln)
	if err := s.Recover(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

func newClient(tb testing.TB, base, token string) *bidder.Client {
	tb.Helper()
	c, err := bidder.NewClient(bidder.ClientConfig{URL: base, Token: token, Timeout: 5 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

func readFixtures(tb testing.TB) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	for _, dir := range []string{"../signals/testdata/openrtb/shared", "../signals/testdata/openrtb", "testdata"} {
		names, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				tb.Fatal(err)
			}
			out[strings.TrimSuffix(filepath.Base(n), ".json")] = b
		}
	}
	if len(out) < 15 {
		tb.Fatalf("%d fixtures", len(out))
	}
	return out
}

func names(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// post sends a raw request (for endpoints the Client does not cover).
func post(tb testing.TB, base, path, token string, body []byte) (int, []byte) {
	tb.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(base + path)
	req.Header.SetMethod("POST")
	if body == nil {
		req.Header.SetMethod("GET")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.SetContentType("application/json")
	req.SetBody(body)
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...)
}

// feedExposures posts exposures given by features so that the model has
// segments below the campaigns' roots.
func feedExposures(tb testing.TB, base string) {
	tb.Helper()
	var b bytes.Buffer
	b.WriteString(`{"exposures":[`)
	now := time.Now().Unix()
	n := 0
	for i, pub := range []string{"pub-1203", "pub-88231", "pub-7"} {
		for j, genre := range []string{"Sports", "News", "unknown"} {
			for k := range 3 + 4*i + j {
				for _, c := range []string{"demo-ctv-purchase", "demo-ctv-signup"} {
					if n > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, `{"campaign":%q,"request_id":"feed-%d","imp_id":"1","ts":%d,"price_cpm":18,`+
						`"features":{"publisher":%q,"bundle":"151908","genre":%q,"metro":"807"}}`, c, n, now-int64(k), pub, genre)
					n++
				}
			}
		}
	}
	b.WriteString(`]}`)
	status, out := post(tb, base, "/v1/exposures", bidderToken, b.Bytes())
	if status != 200 {
		tb.Fatalf("exposures: %d %s", status, out)
	}
}

// TestClientAgainstServer: the Go client scores fixtures over HTTP and
// gets the API's errors as *apierr.Error with their status.
func TestClientAgainstServer(t *testing.T) {
	base := startServer(t, time.Hour)
	c := newClient(t, base, bidderToken)
	ctx := context.Background()
	all := readFixtures(t)
	for _, name := range names(all) {
		a, err := c.Score(ctx, all[name], "demo-ctv-purchase", "demo-ctv-signup")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if a.ID == "" || len(a.Imps) == 0 || a.ModelVersion == 0 {
			t.Fatalf("%s: %+v", name, a)
		}
		for _, imp := range a.Imps {
			if len(imp.Campaigns) != 2 || imp.Campaigns[0].Campaign != "demo-ctv-purchase" || imp.Campaigns[1].Campaign != "demo-ctv-signup" {
				t.Fatalf("%s: %+v", name, imp)
			}
			// Nothing learned yet: the campaigns' priors (no effect table
			// knows a value), bid = 1000 × 0.001 × CPA clamped; the
			// segment is the imp's cell (the crossed model of the default
			// config).
			// A household the default 5 % holdout holds out answers bid 0
			// and the bid it would have made (a fixture that fails the
			// privacy gates is assigned too).
			p := imp.Campaigns[0]
			bid := p.BidCPM
			if p.Arm == "control" {
				if p.BidCPM != 0 {
					t.Fatalf("%s: control arm bids: %+v", name, p)
				}
				bid = p.WouldBidCPM
			} else if p.Arm != "treatment" && p.Arm != "" { // "": a request without identities has no household
				t.Fatalf("%s: arm %q", name, p.Arm)
			}
			if p.Level != 0 || !strings.HasPrefix(p.Segment, "demo-ctv-purchase/") || p.Multiplier != 1 || p.CVR != 0.001 || bid != 40 {
				t.Fatalf("%s: %+v", name, p)
			}
		}
	}
	// Without campaigns: every campaign the bidder may score.
	a, err := c.Score(ctx, all["ctv-1imp"])
	if err != nil || len(a.Imps[0].Campaigns) != 2 {
		t.Fatalf("%+v %v", a, err)
	}
	a, err = newClient(t, base, allToken).ScoreWith(ctx, all["ctv-1imp"], bidder.ScoreOptions{Thompson: true})
	if err != nil || len(a.Imps[0].Campaigns) != 3 || !a.Imps[0].Campaigns[2].Sampled {
		t.Fatalf("%+v %v", a, err)
	}
	fa, err := c.ScoreFeatures(ctx, map[string]string{"publisher": "pub-1203", "genre": "Sports", "devicetype": "3"}, bidder.ScoreOptions{Campaigns: []string{"demo-ctv-signup"}})
	if err != nil || len(fa.Campaigns) != 1 || fa.Campaigns[0].Campaign != "demo-ctv-signup" || fa.ModelVersion == 0 {
		t.Fatalf("%+v %v", fa, err)
	}

	f := func(err error, status int, msg string) {
		t.Helper()
		var e *apierr.Error
		if !errors.As(err, &e) || e.Status != status || !strings.HasPrefix(e.Message, msg) {
			t.Errorf("error %v (%T), want %d %q", err, err, status, msg)
		}
	}
	_, err = c.Score(ctx, []byte(`{"id":"r","imp":[{"video":{}}]}`), "demo-ctv-purchase")
	f(err, 400, "imp[0].id: missing")
	_, err = c.Score(ctx, []byte(`{"id":"r","imp":[`), "demo-ctv-purchase")
	f(err, 400, "body: invalid JSON")
	_, err = c.Score(ctx, all["ctv-1imp"], "demo-ctv-purchase", "nope")
	f(err, 404, `campaigns: unknown campaign "nope"`)
	_, err = c.Score(ctx, all["ctv-1imp"], "other-ctv") // another tenant's: as unknown
	f(err, 404, `campaigns: unknown campaign "other-ctv"`)
	_, err = c.ScoreFeatures(ctx, map[string]string{"gnre": "Sports"}, bidder.ScoreOptions{})
	f(err, 400, "gnre: unknown feature")
	_, err = newClient(t, base, "wrong-token").Score(ctx, all["ctv-1imp"])
	f(err, 401, "Authorization: unknown token")
	_, err = newClient(t, base, "dev-advertiser-token").Score(ctx, all["ctv-1imp"])
	f(err, 403, "Authorization: an advertiser's token")
	// The model holds other-ctv, which demo-bidder may not score: its
	// snapshot holds only its own campaigns, and its embedded scorer
	// knows other-ctv no more than a made-up id.
	sc, err := bidder.NewScorer(ctx, c, bidder.ScorerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	sc.Snapshot().Estimates().Campaigns(func(id string) bool { ids = append(ids, id); return true })
	if strings.Join(ids, ",") != "demo-ctv-purchase,demo-ctv-signup" {
		t.Fatalf("demo-bidder's snapshot holds the estimates of %v", ids)
	}
	var res bidder.Result
	f(sc.Score(all["ctv-1imp"], bidder.ScoreOptions{Campaigns: []string{"other-ctv"}}, &res), 404, `campaigns: unknown campaign "other-ctv"`)
	if err := sc.Score(all["ctv-1imp"], bidder.ScoreOptions{}, &res); err != nil || len(res.Imps[0].Scores) != 2 {
		t.Fatalf("demo-bidder's embedded scorer: %v %+v", err, res.Imps)
	}
}

// TestScoreWithoutWinNotices: a bidder configured without win notices is
// scored like any other, and its requests are not remembered.
func TestScoreWithoutWinNotices(t *testing.T) {
	base := startServer(t, time.Hour)
	body := readFixtures(t)["roku-ctv-pod-gpp"]
	remembered := metrics.GetOrCreateCounter(`cpafeed_bids_remembered_total`)
	before := remembered.Get()
	a, err := newClient(t, base, noWinToken).Score(context.Background(), body, "demo-ctv-purchase")
	if err != nil || len(a.Imps) != 3 || len(a.Imps[0].Campaigns) != 1 {
		t.Fatalf("score: %v %+v", err, a)
	}
	if n := remembered.Get() - before; n != 0 {
		t.Fatalf("%d imps remembered for a bidder without win notices", n)
	}
	if _, err := newClient(t, base, bidderToken).Score(context.Background(), body, "demo-ctv-purchase"); err != nil {
		t.Fatal(err)
	}
	if n := remembered.Get() - before; n != 3 {
		t.Fatalf("%d imps remembered for a bidder with win notices, want 3", n)
	}
}

// TestScoreRemembersForWin: a scored request is remembered, so that its
// win notice (GET /v1/win, which carries no features) becomes an exposure
// of the imp's full segment path, which the next scores then use.
func TestScoreRemembersForWin(t *testing.T) {
	base := startServer(t, 50*time.Millisecond)
	c := newClient(t, base, bidderToken)
	ctx := context.Background()
	body := readFixtures(t)["roku-ctv-pod-gpp"]
	a, err := c.Score(ctx, body, "demo-ctv-purchase")
	if err != nil {
		t.Fatal(err)
	}
	if a.Imps[1].Campaigns[0].Level != 0 {
		t.Fatalf("before the win: %+v", a.Imps[1].Campaigns[0])
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if status, out := post(t, base, "/v1/win?auction="+a.ID+"&imp=2&campaign=demo-ctv-purchase&price=21.5", "", nil); status != 200 {
			t.Fatalf("win: %d %s", status, out)
		}
		time.Sleep(100 * time.Millisecond)
		fa, err := c.ScoreFeatures(ctx, map[string]string{"publisher": "pub-1203", "bundle": "151908", "genre": "Sports", "metro": "807"}, bidder.ScoreOptions{Campaigns: []string{"demo-ctv-purchase"}})
		if err != nil {
			t.Fatal(err)
		}
		if s := fa.Campaigns[0]; s.Level >= 4 {
			// Only the win's exposure can have made the levels of these
			// values (publisher, app, genre, metro and their crosses);
			// the other features of the features call are unknown, which
			// no exposure had.
			if want := "demo-ctv-purchase/pub-1203/151908/Sports/807/"; !strings.HasPrefix(s.Segment, want) {
				t.Fatalf("after the win: segment %q, want %q...", s.Segment, want)
			}
			return
		}
	}
	t.Fatal("the win notice of a scored request never became an exposure")
}

// TestScorerEqualsHTTP: the embedded scorer, following the server's
// snapshots, answers exactly what POST and GET /v1/score answer for the
// same model version.
func TestScorerEqualsHTTP(t *testing.T) {
	base := startServer(t, 200*time.Millisecond)
	feedExposures(t, base)
	c := newClient(t, base, allToken)
	ctx := context.Background()
	sc, err := bidder.NewScorer(ctx, c, bidder.ScorerConfig{Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for a version that holds the exposures.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := sc.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if e, ok := sc.Snapshot().Estimates().Campaign("demo-ctv-purchase"); ok && e.Exposures > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the exposures never reached a snapshot")
		}
		time.Sleep(50 * time.Millisecond)
	}
	all := readFixtures(t)
	var res bidder.Result
	deep := 0
	for _, name := range names(all) {
		for _, opts := range []bidder.ScoreOptions{{}, {Campaigns: []string{"demo-ctv-signup", "demo-ctv-purchase"}}} {
			// The server refreshes every 200ms: retry until the scorer and
			// the server answer from the same version.
			for try := 0; ; try++ {
				if _, err := sc.Refresh(ctx); err != nil {
					t.Fatal(err)
				}
				if err := sc.Score(all[name], opts, &res); err != nil {
					t.Fatal(err)
				}
				got, err := bidder.DecodeAnswer(res.AppendJSON(nil))
				if err != nil {
					t.Fatal(err)
				}
				want, err := c.ScoreWith(ctx, all[name], opts)
				if err != nil {
					t.Fatal(err)
				}
				if got.ModelVersion != want.ModelVersion {
					if try > 50 {
						t.Fatalf("%s: versions never met", name)
					}
					continue
				}
				if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
					t.Fatalf("%s:\nscorer %+v\n  HTTP %+v", name, got, want)
				}
				for _, imp := range got.Imps {
					for _, s := range imp.Campaigns {
						if s.Level > 0 {
							deep++
						}
					}
				}
				break
			}
		}
	}
	if deep == 0 {
		t.Error("no fixture was answered below the campaign level: the comparison proves little")
	}
	// Features: GET /v1/score against ScoreImp.
	feats := map[string]string{"publisher": "pub-88231", "bundle": "151908", "genre": "News", "metro": "807"}
	for try := 0; ; try++ {
		sc.Refresh(ctx)
		imp := newImp(t, feats)
		if err := sc.ScoreImp(imp, bidder.ScoreOptions{}, &res); err != nil {
			t.Fatal(err)
		}
		want, err := c.ScoreFeatures(ctx, feats, bidder.ScoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.ModelVersion != want.ModelVersion && try < 50 {
			continue
		}
		got := res.AppendJSON(nil)
		if res.Imps[0].Scores[0].Level != len(model.DefaultEffects) || !strings.Contains(string(got), `"segment":"demo-ctv-purchase/pub-88231/151908/News/807/`) {
			t.Fatalf("features answer %s", got)
		}
		for i, s := range res.Imps[0].Scores {
			w := want.Campaigns[i]
			f := bidder.WireFloat // the HTTP answer carries six significant digits
			if s.Campaign != w.Campaign || f(s.CVR) != w.CVR || f(s.CVRLo) != w.CVRLo || f(s.CVRHi) != w.CVRHi || f(s.NEff) != w.NEff ||
				f(s.BidCPM) != w.BidCPM || f(s.Multiplier) != w.Multiplier || string(s.Segment) != w.Segment || s.Level != w.Level {
				t.Fatalf("features: scorer %+v, HTTP %+v", s, w)
			}
		}
		break
	}
	// The scorer's campaign errors are the server's.
	err = sc.Score(all["ctv-1imp"], bidder.ScoreOptions{Campaigns: []string{"nope"}}, &res)
	var e *apierr.Error
	if !errors.As(err, &e) || e.Status != 404 || e.Message != `campaigns: unknown campaign "nope"` {
		t.Errorf("unknown campaign: %v", err)
	}
}

// TestSnapshotSince: ?since=N is 304 while the version is N, and the
// client reports it as no snapshot.
func TestSnapshotSince(t *testing.T) {
	base := startServer(t, time.Hour)
	c := newClient(t, base, allToken)
	ctx := context.Background()
	sn, err := c.Snapshot(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if sn.Version() == 0 || sn.Size() == 0 || len(sn.Rules().Campaigns()) != 3 {
		t.Fatalf("snapshot version %d, %d bytes, %d campaigns", sn.Version(), sn.Size(), len(sn.Rules().Campaigns()))
	}
	again, err := c.Snapshot(ctx, sn.Version())
	if err != nil || again != nil {
		t.Fatalf("since the current version: %v %v", again, err)
	}
	older, err := c.Snapshot(ctx, sn.Version()-1)
	if err != nil || older == nil || older.Version() != sn.Version() {
		t.Fatalf("since an older version: %v %v", older, err)
	}
	status, out := post(t, base, "/v1/model/snapshot?since="+fmt.Sprint(sn.Version()), allToken, nil)
	if status != 304 || len(out) != 0 {
		t.Fatalf("raw since: %d %q", status, out)
	}
}

func newImp(tb testing.TB, features map[string]string) *signals.Imp {
	tb.Helper()
	imp := &signals.Imp{}
	if err := imp.SetFeatures(features); err != nil {
		tb.Fatal(err)
	}
	return imp
}
