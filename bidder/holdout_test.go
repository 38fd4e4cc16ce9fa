package bidder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/cpafeed/cpafeed/model"
)

// holdoutWorld is the test world with ctv-purchase holding out half of
// its households (the largest share allowed, so that both arms show up).
func holdoutWorld(t *testing.T) *world {
	t.Helper()
	half := 0.5
	camps := testCampaigns()
	camps[0].HoldoutShare = &half
	rules, err := NewRules(testLevels, camps)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t)
	w.rules = rules
	w.svc = NewService(Config{}, rules, w.m, nil)
	w.svc.SetHoldout(HoldoutConfig{Key: []byte("test-holdout-key")})
	w.feedFixtures(t, fixtures(t))
	return w
}

// withHousehold returns the ctv-1imp fixture with its IP and IFA replaced
// (another household).
func withHousehold(t *testing.T, i int) []byte {
	t.Helper()
	b := fixtures(t)["ctv-1imp"]
	b = bytes.Replace(b, []byte("98.207.34.117"), fmt.Appendf(nil, "10.%d.%d.%d", i>>16&255, i>>8&255, i&255), 1)
	return bytes.Replace(b, []byte("8f2b6c1e-3d4a-4b5c-9e6f-7a8b9c0d1e2f"), fmt.Appendf(nil, "8f2b6c1e-3d4a-4b5c-9e6f-%012d", i), 1)
}

// TestHoldoutArms scores many households: about the campaign's share is
// held out (arm control, bid 0, the would-be bid kept), the others are
// in treatment with the bid a campaign without holdout gets, the campaign
// without a holdout has no arm, and a household keeps its arm.
func TestHoldoutArms(t *testing.T) {
	w := holdoutWorld(t)
	plain := newWorld(t)
	plain.feedFixtures(t, fixtures(t))
	const n = 2000
	control := 0
	for i := range n {
		body := withHousehold(t, i)
		_, got := call(w.svc, "POST", "/v1/score", body, demoBidder)
		_, want := call(plain.svc, "POST", "/v1/score", body, demoBidder)
		var a, b struct {
			Imp []struct{ Campaigns []map[string]any }
		}
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		json.Unmarshal(want, &b)
		hold, other := a.Imp[0].Campaigns[0], a.Imp[0].Campaigns[1]
		ref := b.Imp[0].Campaigns[0]
		if _, ok := other["arm"]; ok {
			t.Fatalf("a campaign without holdout has an arm: %s", got)
		}
		switch hold["arm"] {
		case "control":
			control++
			if hold["bid_cpm"] != 0.0 || hold["would_bid_cpm"] != ref["bid_cpm"] {
				t.Fatalf("control: %v, want bid 0 and would_bid_cpm %v", hold, ref["bid_cpm"])
			}
		case "treatment":
			if hold["bid_cpm"] != ref["bid_cpm"] || hold["would_bid_cpm"] != nil {
				t.Fatalf("treatment: %v, want bid %v", hold, ref["bid_cpm"])
			}
		default:
			t.Fatalf("no arm: %s", got)
		}
		if i%100 == 0 { // the same household again: the same answer
			if _, again := call(w.svc, "POST", "/v1/score", body, demoBidder); !bytes.Equal(again, got) {
				t.Fatalf("arm changed:\n%s\n%s", got, again)
			}
		}
	}
	if share := float64(control) / n; math.Abs(share-0.5) > 0.05 {
		t.Errorf("held-out share %.3f, want 0.5", share)
	}
	// A features call has no household: no arm.
	_, got := call(w.svc, "GET", "/v1/score?publisher=x", nil, demoBidder)
	if strings.Contains(string(got), `"arm"`) {
		t.Errorf("features call with an arm: %s", got)
	}
}

// TestHoldoutScorerMatchesServer: the embedded Scorer, from a snapshot
// (format 2 carries the holdout key and shares), answers every fixture
// and household exactly as the server does, arms included.
func TestHoldoutScorerMatchesServer(t *testing.T) {
	w := holdoutWorld(t)
	sn, err := ParseSnapshot(snapshotOf(t, w, demoBidder), 0)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := sn.Rules().Campaign("ctv-purchase"); r.HoldoutShare != 0.5 {
		t.Fatalf("snapshot holdout share %v", r.HoldoutShare)
	}
	sc := NewScorerFromSnapshot(sn)
	var res Result
	arms := map[Arm]int{}
	for i := range 300 {
		body := withHousehold(t, i)
		_, want := call(w.svc, "POST", "/v1/score", body, demoBidder)
		if err := sc.Score(body, ScoreOptions{}, &res); err != nil {
			t.Fatal(err)
		}
		if got := res.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("household %d:\nscorer %s\n  HTTP %s", i, got, want)
		}
		arms[res.Imps[0].Scores[0].Arm]++
	}
	if arms[ArmControl] == 0 || arms[ArmTreatment] == 0 {
		t.Fatalf("arms %v", arms)
	}
	// A new snapshot of the same server keeps the Scorer's households.
	sn2, err := ParseSnapshot(snapshotOf(t, w, demoBidder), 0)
	if err != nil {
		t.Fatal(err)
	}
	h := sc.hold
	sc.Use(sn2)
	if sc.hold != h || sn2.Rules().holdout != h {
		t.Error("a new snapshot dropped the household cache")
	}
	// The client decodes the arms.
	var p fastjson.Parser
	seen := map[string]bool{}
	for i := range 20 {
		_, raw := call(w.svc, "POST", "/v1/score", withHousehold(t, i), demoBidder)
		a, err := decodeAnswer(&p, raw)
		if err != nil {
			t.Fatal(err)
		}
		s := a.Imps[0].Campaigns[0]
		seen[s.Arm] = true
		if s.Arm == "control" && !(s.WouldBidCPM > 0 && s.BidCPM == 0) {
			t.Fatalf("decoded %+v", s)
		}
	}
	if !seen["control"] || !seen["treatment"] {
		t.Fatalf("decoded arms %v", seen)
	}
}

func TestHoldoutShareValidated(t *testing.T) {
	bad := 0.7
	camps := testCampaigns()
	camps[0].HoldoutShare = &bad
	if _, err := NewRules(testLevels, camps); err == nil || !strings.Contains(err.Error(), "holdout_share") {
		t.Fatalf("holdout_share 0.7: %v", err)
	}
	_ = model.Campaign{}
}

// TestSnapshotFormatsBeforeHoldoutStillRead: snapshots of servers before
// the holdout (formats 1 and 2) are read (no holdout) and score as before.
func TestSnapshotFormatsBeforeHoldoutStillRead(t *testing.T) {
	w := newWorld(t)
	w.feedFixtures(t, fixtures(t))
	for format, raw := range map[int][]byte{
		1: appendOldSnapshot(t, 1, w.rules, w.svc.table()),
		2: appendOldSnapshot(t, 2, w.rules, w.svc.table()),
	} {
		sn, err := parseSnapshotContent(raw)
		if err != nil {
			t.Fatalf("format %d: %v", format, err)
		}
		if len(sn.hold.Key) != 0 {
			t.Fatalf("a format-%d snapshot has a holdout", format)
		}
		sc := NewScorerFromSnapshot(sn)
		sc.SetClock(w.svc.now)
		var res Result
		body := fixtures(t)["ctv-1imp"]
		if err := sc.Score(body, ScoreOptions{Campaigns: []string{"ctv-purchase"}}, &res); err != nil {
			t.Fatal(err)
		}
		_, want := call(w.svc, "POST", "/v1/score?campaigns=ctv-purchase", body, demoBidder)
		if got := res.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("format %d:\n%s\n%s", format, got, want)
		}
	}
}
