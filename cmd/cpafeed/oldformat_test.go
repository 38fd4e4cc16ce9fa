package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOldDataDirStillReads: a data directory written by the cpafeed before
// the holdout (snapshot format 4: sections index2 and attribution1;
// exposure records version 1 in the journal after it; one conversion
// pending) starts: the snapshot is loaded, the journal after it replayed,
// and the stats and campaign report answer what that cpafeed answered
// (testdata/datadir-format4/want.json, its answers before it was killed),
// fields added since aside. A graceful stop then writes the current format,
// which starts again to the same report.
func TestOldDataDirStillReads(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join("testdata", "datadir-format4", "data")
	for _, sub := range []string{"journal", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(src, sub, "*"))
		if len(files) == 0 {
			t.Fatalf("no %s in %s", sub, src)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, sub, filepath.Base(f)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "datadir-format4", "want.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Stats    map[string]any `json:"stats"`
		Campaign map[string]any `json:"campaign"`
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	check := func(p *proc, when string) {
		t.Helper()
		s, c := report(t, p)
		if !equalJSON(s, want.Stats) {
			t.Errorf("%s: stats %v, want %v", when, s, want.Stats)
		}
		// The pending conversion may have been given up since (its grace
		// is long past): pending + unattributed stays.
		wc, gc := want.Campaign["conversions"].(map[string]any), c["conversions"].(map[string]any)
		if wc["pending"].(float64)+wc["unattributed"].(float64) != gc["pending"].(float64)+gc["unattributed"].(float64) {
			t.Errorf("%s: pending %v + unattributed %v, want %v + %v", when, gc["pending"], gc["unattributed"], wc["pending"], wc["unattributed"])
		}
		for k, v := range wc {
			if k != "pending" && k != "unattributed" && !equalAny(gc[k], v) {
				t.Errorf("%s: conversions.%s %v, want %v", when, k, gc[k], v)
			}
		}
		for k, v := range want.Campaign {
			if k != "conversions" && !equalAny(c[k], v) {
				t.Errorf("%s: %s %v, want %v", when, k, c[k], v)
			}
		}
		if status, _, body := p.do("GET", "/v1/campaigns/demo-ctv-purchase/lift", "", advToken, nil); status != 200 {
			t.Errorf("%s: lift %d %s", when, status, body)
		}
	}
	p := start(t, dir)
	if !strings.Contains(p.Logs(), `msg="snapshot loaded"`) {
		t.Fatalf("the format-4 snapshot was not loaded:\n%s", p.Logs())
	}
	check(p, "format 4")
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	p = start(t, dir)
	if !strings.Contains(p.Logs(), `msg="snapshot loaded"`) {
		t.Fatalf("the new snapshot was not loaded:\n%s", p.Logs())
	}
	check(p, "after a restart")
	p.kill9()
}

func equalAny(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
