package server

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cpafeed/cpafeed/bidder"
	"github.com/cpafeed/cpafeed/configs"
	"github.com/cpafeed/cpafeed/conversions"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

func TestConfigHoldoutAndCreditDefaults(t *testing.T) {
	cfg, err := ParseConfig(configs.Default)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Campaigns {
		if c.HoldoutShare == nil || *c.HoldoutShare != DefaultHoldoutShare || c.Credit != model.CreditLastTouch {
			t.Fatalf("%s: holdout %v, credit %q", c.ID, c.HoldoutShare, c.Credit)
		}
	}
	raw := strings.Replace(string(configs.Default), "  share: 0.05\n", "  share: 0\n", 1)
	raw = strings.Replace(raw, "  credit: last_touch\n  # confidence", "  credit: probabilistic\n  # confidence", 1)
	raw = strings.Replace(raw, "    credit: last_touch\n", "    credit: last_touch\n    holdout_share: 0.1\n", 1)
	raw = strings.Replace(raw, "    credit: last_touch\n    floor_cpm: 1.00\n    cap_cpm: 40.00", "    floor_cpm: 1.00\n    cap_cpm: 40.00", 1)
	cfg, err = ParseConfig([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Campaigns[0], cfg.Campaigns[1]
	if *a.HoldoutShare != 0.1 || a.Credit != model.CreditLastTouch || *b.HoldoutShare != 0 || b.Credit != model.CreditProbabilistic {
		t.Fatalf("campaigns: %s %v %q; %s %v %q", a.ID, *a.HoldoutShare, a.Credit, b.ID, *b.HoldoutShare, b.Credit)
	}
	bad := strings.Replace(string(configs.Default), "  share: 0.05\n", "  share: 0.9\n", 1)
	bad = strings.Replace(bad, "  credit: last_touch\n  # confidence", "  credit: first\n  lift_feature: nope\n  temper: 2\n  # confidence", 1)
	_, err = ParseConfig([]byte(bad))
	for _, want := range []string{"holdout.share", "attribution: credit", "attribution.lift_feature", "attribution: temper"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}

// holdoutRequest is a bid request of household i (its IP and TV).
func holdoutRequest(i int) string {
	return fmt.Sprintf(`{"id":"req-%d","imp":[{"id":"1","video":{"mimes":["video/mp4"]}}],
"app":{"bundle":"com.example.tv","publisher":{"id":"pub-9"},"content":{"genre":"Sports"}},
"device":{"ip":"73.%d.%d.9","ifa":"5a6e2c1b-9d3f-4e7a-8b4c-%012d","devicetype":3,"geo":{"metro":"50%d"}}}`, i, i>>8, i&255, i, i%3)
}

// TestHoldoutLiftAndCreditSurviveRestart plays a campaign with a holdout
// and probabilistic credit through a server's state over a real journal:
// households scored, held out or shown (ghost or real exposures), every
// household converting, the treated ones twice as often; credits flushed.
// The lift report sees both arms, and a restart from the journal alone,
// then from a snapshot, gives the same attribution and lift.
func TestHoldoutLiftAndCreditSurviveRestart(t *testing.T) {
	cfg, err := ParseConfig(configs.Default)
	if err != nil {
		t.Fatal(err)
	}
	half := 0.5
	cfg.DataDir = t.TempDir()
	cfg.Journal.Fsync = "interval"
	cfg.Journal.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := range cfg.Campaigns {
		cfg.Campaigns[i].HoldoutShare = &half
		cfg.Campaigns[i].Credit = model.CreditProbabilistic
	}
	cfg = cfg.WithDefaults()
	open := func() *state { return openState(t, cfg) }
	st := open()
	const camp = "demo-ctv-purchase"
	now := time.Now().Add(-3 * time.Hour)
	st.eng.Exposures.SetClock(func() time.Time { return now })
	arms := map[bidder.Arm]int{}
	var res bidder.Result
	const n = 400
	for i := range n {
		req, err := signals.NewExtractor().Extract([]byte(holdoutRequest(i)), now.Unix())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.eng.Bidder.ScoreRequest(req, bidder.ScoreOptions{Campaigns: []string{camp}}, &res); err != nil {
			t.Fatal(err)
		}
		s := res.Imps[0].Scores[0]
		arms[s.Arm]++
		if s.Arm == bidder.ArmControl {
			_, err = st.eng.Exposures.ExposeGhost(req, 0, camp, s.WouldBidCPM, 1, now.Unix())
		} else {
			_, err = st.eng.Exposures.Expose(req, 0, camp, 20, now.Unix())
		}
		if err != nil {
			t.Fatal(err)
		}
		convs := 1
		if s.Arm == bidder.ArmTreatment {
			convs = 2
		}
		for k := range convs {
			body := fmt.Sprintf(`{"data":[{"event_name":"Purchase","event_time":%d,"event_id":"ev-%d-%d","action_source":"website",`+
				`"event_source_url":"https://shop.example.com/thanks","user_data":{"client_ip_address":"73.%d.%d.9","client_user_agent":"Mozilla/5.0"},`+
				`"custom_data":{"value":10,"currency":"USD"}}]}`, now.Unix()+600, i, k, i>>8, i&255)
			if _, _, err := st.eng.Conversions.Ingest("1234567890", []byte(body), "application/json"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if arms[bidder.ArmControl] < n/4 || arms[bidder.ArmTreatment] < n/4 {
		t.Fatalf("arms %v", arms)
	}
	st.eng.Model.Refresh(now.Unix())
	if got, err := st.eng.Attributor.FlushCredits(now.Add(time.Hour)); err != nil || got != 2*arms[bidder.ArmTreatment] {
		t.Fatalf("flushed %d credits (%v), want %d", got, err, 2*arms[bidder.ArmTreatment])
	}
	at := now.Add(2 * time.Hour)
	want, _ := st.eng.Attributor.Lift(camp, at, nil)
	stats, _ := st.eng.Attributor.Stats(camp)
	if want.Total.Treatment.Conversions != float64(2*arms[bidder.ArmTreatment]) || want.Total.Control.Conversions != float64(arms[bidder.ArmControl]) ||
		stats.Control != uint64(arms[bidder.ArmControl]) || stats.AwaitingCredit != 0 || !(stats.Organic > 0) {
		t.Fatalf("lift %+v, stats %+v, arms %v", want.Total, stats, arms)
	}
	if l := want.Total.Lift; l == nil || *want.Total.LiftLo > 1 || *want.Total.LiftHi < 1 {
		t.Fatalf("lift %v [%v, %v], truth 1", l, want.Total.LiftLo, want.Total.LiftHi)
	}
	check := func(what string, st *state) {
		t.Helper()
		got, _ := st.eng.Attributor.Lift(camp, at, nil)
		gs, _ := st.eng.Attributor.Stats(camp)
		if *got.Total.Lift != *want.Total.Lift || got.Total.Control.Households != want.Total.Control.Households ||
			gs.Credited != stats.Credited || gs.Organic != stats.Organic || gs.Control != stats.Control {
			t.Fatalf("%s: lift %+v stats %+v, want %+v %+v", what, got.Total, gs, want.Total, stats)
		}
		var sum float64
		for _, g := range got.Groups {
			sum += g.Treatment.Conversions
		}
		if sum != want.Total.Treatment.Conversions || len(got.Groups) < 2 {
			t.Fatalf("%s: groups %+v", what, got.Groups)
		}
	}
	check("live", st)
	if err := st.close(false); err != nil {
		t.Fatal(err)
	}
	st = open()
	check("replayed", st)
	if _, err := st.snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := st.close(false); err != nil {
		t.Fatal(err)
	}
	st = open()
	check("from the snapshot", st)
	st.close(false)
	_ = conversions.LiftReport{}
}
