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
