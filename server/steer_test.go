package server

import (
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/cpafeed/cpafeed/configs"
	"github.com/cpafeed/cpafeed/control"
	"github.com/cpafeed/cpafeed/shading"
	"github.com/cpafeed/cpafeed/signals"
)

// TestSteerSurvivesRestart: the CPA controllers and the first-price curves
// a restart rebuilds (from a snapshot and the journal after it, or from the
// journal alone) equal the live ones: a restart does not reset them.
func TestSteerSurvivesRestart(t *testing.T) {
	for _, snap := range []bool{true, false} {
		t.Run("snapshot="+strconv.FormatBool(snap), func(t *testing.T) { testSteerSurvivesRestart(t, snap) })
	}
}

func testSteerSurvivesRestart(t *testing.T, snap bool) {
	cfg, err := ParseConfig(configs.Default)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.Journal.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Shading.MinWins, cfg.Shading.MinLosses = 5, 5
	cfg = cfg.WithDefaults()
	open := func() *state { return openState(t, cfg) }
	st := open()
	now := time.Now().Unix() - 3600
	const camp = "demo-ctv-purchase"
	play := func(round int) {
		t.Helper()
		for i := range 40 {
			body := []byte(`{"id":"r-` + strconv.Itoa(round) + "-" + strconv.Itoa(i) + `","at":1,"imp":[{"id":"1","video":{"mimes":["video/mp4"]}}],` +
				`"app":{"bundle":"b","publisher":{"id":"pub-` + strconv.Itoa(i%3) + `"}},"device":{"ip":"73.92.14.` + strconv.Itoa(i%200+1) + `"}}`)
			req, err := signals.NewExtractor().Extract(body, now)
			if err != nil {
				t.Fatal(err)
			}
			bid := 10 + float64(i%20)
			won := i%3 == 0
			if won {
				if _, err := st.eng.Exposures.Expose(req, 0, camp, bid, now); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.eng.Exposures.Outcome(req, 0, camp, bid, bid, won, now); err != nil {
				t.Fatal(err)
			}
		}
		now += 600
		if err := st.eng.Steer(now); err != nil {
			t.Fatal(err)
		}
	}
	for r := range 3 {
		play(r)
	}
	if snap {
		if _, err := st.snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	for r := 3; r < 5; r++ {
		play(r)
	}
	live, _ := st.eng.Control.State(camp)
	if live.CPA == 0 {
		t.Fatalf("the controller measured nothing: %+v", live)
	}
	liveCurves := st.eng.Shading.Refit(now)
	if liveCurves.Len() == 0 {
		t.Fatal("no curve fitted")
	}
	if err := st.close(false); err != nil {
		t.Fatal(err)
	}

	st2 := open()
	defer st2.close(false)
	if got, _ := st2.eng.Control.State(camp); got != live {
		t.Fatalf("restarted controller %+v, live %+v", got, live)
	}
	same(t, st2.eng.Shading.Refit(now), liveCurves)
	if e, _ := st2.eng.Control.Table().Get(camp); e != (control.Entry{U: live.U(), Q: live.Q}) {
		t.Fatalf("restarted table %+v, live state %+v", e, live)
	}
}

func same(t *testing.T, got, want *shading.Curves) {
	t.Helper()
	n := 0
	want.Each(func(c, k uint64, cv shading.Curve) {
		n++
		g, ok := got.Lookup(c, k)
		if !ok || g != cv {
			t.Errorf("curve %d: restarted %+v, live %+v", k, g, cv)
		}
	})
	if got.Len() != n {
		t.Errorf("%d curves restarted, %d live", got.Len(), n)
	}
}

// openState builds the server's state on cfg (taken WithDefaults) and
// recovers it from cfg.DataDir, as Server.Recover does, logging nowhere.
func openState(tb testing.TB, cfg Config) *state {
	tb.Helper()
	st, err := newState(cfg, newTenants(cfg), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := st.recoverState(); err != nil {
		tb.Fatal(err)
	}
	return st
}
