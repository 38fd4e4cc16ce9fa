package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `cpafeed simulate` prints the table and writes the JSON and the page.
func TestSimulateCommand(t *testing.T) {
	dir := t.TempDir()
	jsonPath, htmlPath := filepath.Join(dir, "sim.json"), filepath.Join(dir, "sim.html")
	var stdout, stderr bytes.Buffer
	code := run([]string{"simulate", "--scenario", "../../bench/simulate/testdata/sim-small.yaml", "--seed", "3", "--days", "1",
		"--json", jsonPath, "--out", htmlPath, "--strategies", "flat,cpafeed"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"strategy", "cpafeed", "oracle", "CPA÷oracle", "estimator"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "day 1/1") {
		t.Errorf("no progress line: %s", stderr.String())
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Seed       uint64                    `json:"seed"`
		Days       int                       `json:"days"`
		Strategies map[string]map[string]any `json:"strategies"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Seed != 3 || doc.Days != 1 || len(doc.Strategies) != 3 || doc.Strategies["vtr"] != nil {
		t.Fatalf("json: seed %d, days %d, strategies %v", doc.Seed, doc.Days, doc.Strategies)
	}
	if page, err := os.ReadFile(htmlPath); err != nil || !bytes.HasPrefix(page, []byte("<!DOCTYPE html>")) {
		t.Fatalf("page: %v %.40q", err, page)
	}
	if code := run([]string{"simulate", "--strategies", "magic", "--scenario", "../../bench/simulate/testdata/sim-small.yaml"}, &stdout, &stderr); code != 1 {
		t.Fatalf("unknown strategy: exit %d", code)
	}
}

// A matrix: every (scenario, seed) pair in one table and one JSON, the same
// whatever --jobs is; bad matrix flags are refused.
func TestSimulateMatrixCommand(t *testing.T) {
	dir := t.TempDir()
	small := "../../bench/simulate/testdata/sim-small.yaml"
	other := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(other, []byte("name: other\ninventory: {opportunities_per_day: 3000}\nreporting: {households: 2000}\n"+
		"campaigns: [{id: c, event: Purchase, base_cvr: 0.01, target_cpa: 2, daily_budget: 40}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var tables [2]string
	var docs [2][]byte
	for i, jobs := range []string{"1", "2"} {
		jsonPath := filepath.Join(dir, "m"+jobs+".json")
		var stdout, stderr bytes.Buffer
		code := run([]string{"simulate", "--scenario", small + "," + other, "--seeds", "3-4", "--days", "1", "--jobs", jobs,
			"--json", jsonPath, "--strategies", "vtr,cpafeed"}, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		tables[i] = stdout.String()
		var err error
		if docs[i], err = os.ReadFile(jsonPath); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(stderr.String(), "CPA÷oracle"); n != 4 {
			t.Errorf("%d progress lines, want 4: %s", n, stderr.String())
		}
	}
	for _, want := range []string{"scenario", "CPA÷oracle", "VTR gain", "sim-small", "other", "mean"} {
		if !strings.Contains(tables[0], want) {
			t.Errorf("table lacks %q:\n%s", want, tables[0])
		}
	}
	if !bytes.Equal(docs[0], docs[1]) {
		t.Fatal("--jobs 1 and --jobs 2 wrote different JSON")
	}
	var doc struct {
		Runs []struct {
			Scenario      string          `json:"scenario"`
			Seed          uint64          `json:"seed"`
			UpliftCapture *float64        `json:"uplift_capture"`
			Result        json.RawMessage `json:"result"`
		} `json:"runs"`
		Means []map[string]any `json:"means"`
	}
	if err := json.Unmarshal(docs[0], &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Runs) != 4 || doc.Runs[0].Scenario != "sim-small" || doc.Runs[1].Seed != 4 || doc.Runs[2].Scenario != "other" ||
		doc.Runs[0].UpliftCapture == nil || len(doc.Runs[3].Result) == 0 || len(doc.Means) != 2 {
		t.Fatalf("matrix json: %s", docs[0])
	}
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{
		{"--seeds", "1-4", "--seed", "2"},
		{"--seeds", "4-1"},
		{"--seeds", "1-2", "--out", filepath.Join(dir, "x.html")},
		{"--jobs", "0"},
	} {
		if code := run(append([]string{"simulate", "--scenario", small}, args...), &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
