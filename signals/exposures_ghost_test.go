package signals

import (
	"strings"
	"testing"

	"github.com/cpafeed/cpafeed/model"
)

// TestGhostExposuresIndexedNotCounted posts a ghost exposure and a real
// one: both are indexed and found by the same identity (the matcher treats
// them alike), only the ghost carries the mark, and the model counts only
// the real one. A restart replays both the same way.
func TestGhostExposuresIndexedNotCounted(t *testing.T) {
	dir := t.TempDir()
	h := openHarnessWith(t, dir, ExposureConfig{LiftLevel: 4, LiftGroups: 16})
	roku := fixture(t, "roku-ctv-pod-gpp.json")
	body := exposuresBody(t,
		map[string]any{"request": roku, "imp_id": "1", "campaign": "demo-ctv-purchase", "ghost": true, "bid_cpm": 21.5, "win_prob": 0.4, "ts": h.now.Unix() - 60},
		map[string]any{"request": roku, "imp_id": "2", "campaign": "demo-ctv-purchase", "price_cpm": 15.0, "ts": h.now.Unix() - 60},
	)
	if status, out := h.postExposures(t, demoBidder, body); status != 200 || out["exposures_stored"] != 2.0 {
		t.Fatalf("status %d %v", status, out)
	}
	check := func(h *expHarness) {
		t.Helper()
		if h.c.exposures != 1 {
			t.Fatalf("model counted %d exposures, want the real one", h.c.exposures)
		}
		ifa := h.x.hasher.ID(IDIFA, []byte("5a6e2c1b-9d3f-5e7a-8b4c-0f1d2e3a4b5c"))
		var ghosts, real int
		var groups []uint8
		h.x.index.Visit(ifa.Key, 0, h.now.Unix(), func(_ uint64, e IndexedExposure) bool {
			if e.Ghost() {
				ghosts++
			} else {
				real++
			}
			groups = append(groups, e.Group)
			return true
		})
		if ghosts != 1 || real != 1 {
			t.Fatalf("index: %d ghosts, %d real", ghosts, real)
		}
		for _, g := range groups {
			if g == 0 || g > 16 {
				t.Errorf("lift group %d, want 1..16 (the metro)", g)
			}
		}
	}
	check(h)
	h.x.Close()
	h.j.Close()
	check(openHarnessWith(t, dir, ExposureConfig{LiftLevel: 4, LiftGroups: 16}))
}

func TestGhostExposureRefusals(t *testing.T) {
	h := openHarness(t, t.TempDir())
	roku := fixture(t, "roku-ctv-pod-gpp.json")
	status, out := h.postExposures(t, demoBidder, exposuresBody(t,
		map[string]any{"request": roku, "imp_id": "1", "campaign": "demo-ctv-purchase", "ghost": true, "price_cpm": 3.0, "bid_cpm": -1},
		map[string]any{"request": roku, "imp_id": "2", "campaign": "demo-ctv-purchase", "ghost": true, "win_prob": 1.5},
		map[string]any{"request": roku, "imp_id": "3", "campaign": "demo-ctv-purchase", "bid_cpm": 4.0},
		map[string]any{"request": roku, "imp_id": "1", "campaign": "demo-ctv-purchase", "ghost": "yes"},
	))
	got := detailsOf(out["err"])
	for _, want := range []string{"exposures[0].price_cpm", "exposures[0].bid_cpm", "exposures[1].win_prob", "exposures[2].ghost", "exposures[3].ghost"} {
		if !strings.Contains(got, want+":") {
			t.Errorf("missing %s in:\n%s", want, got)
		}
	}
	if status != 400 || h.c.exposures != 0 {
		t.Fatalf("status %d, %d counted", status, h.c.exposures)
	}
}

// TestExposureRecordVersions checks that version-1 records (written
// before the predicted CVR and ghost exposures) and version-2 records
// (the predicted CVR, no ghosts) still decode, and that a ghost
// round-trips.
func TestExposureRecordVersions(t *testing.T) {
	es := []exposure{{ts: 5, campaign: "c", indexed: true, ghost: true, bid: 12.5, winProb: 0.25, auction: []byte("a"), imp: []byte("1"),
		path: []model.Key{1, 2}, labels: [][]byte{nil, []byte("x")}, ids: []ID{{IDIFA, 9}}, pred: 0.01}}
	_, got, err := decodeExposures(appendExposures(nil, 42, es))
	if err != nil || !got[0].ghost || got[0].bid != 12.5 || got[0].winProb != 0.25 || !got[0].indexed || got[0].pred != 0.01 {
		t.Fatalf("ghost round trip: %+v %v", got, err)
	}
	// The same exposure, not a ghost, as a v2 record (flags bit 0 only,
	// the predicted CVR last) and a v1 record (without it).
	real := es
	real[0].ghost = false
	body := appendExposures(nil, 42, real)[2:]
	_, got, err = decodeExposures(append([]byte{RecordExposures, 2}, body...))
	if err != nil || got[0].ghost || !got[0].indexed || got[0].campaign != "c" || got[0].pred != 0.01 {
		t.Fatalf("v2 record: %+v %v", got, err)
	}
	_, got, err = decodeExposures(append([]byte{RecordExposures, 1}, body[:len(body)-8]...))
	if err != nil || got[0].ghost || !got[0].indexed || got[0].campaign != "c" || got[0].pred != 0 {
		t.Fatalf("v1 record: %+v %v", got, err)
	}
	if _, _, err := decodeExposures([]byte{RecordExposures, 4, 0, 0}); err == nil {
		t.Error("a v4 record decoded")
	}
}
