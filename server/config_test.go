package server

import (
	"fmt"
	"github.com/cpafeed/cpafeed/signals"
	"strings"
	"testing"

	"github.com/cpafeed/cpafeed/configs"
)

func TestEmbeddedDefaultIsValid(t *testing.T) {
	c, err := ParseConfig(configs.Default)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8080" || c.DataDir != "./data" {
		t.Fatalf("listen %q data %q", c.Listen, c.DataDir)
	}
	if len(c.Campaigns) != 2 || c.Campaigns[0].ID != "demo-ctv-purchase" || c.Campaigns[0].TargetCPA != 40 || c.Campaigns[1].Event != "CompleteRegistration" || c.Campaigns[1].TargetCPA != 8 {
		t.Fatalf("demo campaigns: %+v", c.Campaigns)
	}
	if c.Advertisers[0].Token != "dev-advertiser-token" || c.Advertisers[0].Datasets[0] != "1234567890" || c.Bidders[0].Token != "dev-bidder-token" {
		t.Fatalf("demo tenants: %+v %+v", c.Advertisers, c.Bidders)
	}
	if got := c.DevCredentials(); len(got) != 3 {
		t.Fatalf("dev credentials %v", got)
	}
}

func TestConfigEnvExpansion(t *testing.T) {
	t.Setenv("CPAFEED_DEMO_BIDDER_TOKEN", "prod-bidder-secret")
	c, err := ParseConfig(configs.Default)
	if err != nil {
		t.Fatal(err)
	}
	if c.Bidders[0].Token != "prod-bidder-secret" {
		t.Fatalf("token %q", c.Bidders[0].Token)
	}
	if _, err := ParseConfig([]byte("identity: {secret: \"${CPAFEED_SURELY_UNSET_VAR}\"}\n")); err == nil || !strings.Contains(err.Error(), "CPAFEED_SURELY_UNSET_VAR is not set") {
		t.Fatalf("unset variable: %v", err)
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	raw := `
listen: nonsense
log: {format: xml}
identity: {secret: s}
advertisers:
  - {name: a, token: t1, datasets: ["1"]}
  - {name: a, token: t1, datasets: ["1"]}
bidders:
  - {name: b, token: t2, campaigns: [nope]}
campaigns:
  - {id: c1, advertiser: zz, event: "", target_cpa: 0, credit: first_touch}
`
	_, err := ParseConfig([]byte(raw))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"listen: not HOST:PORT", "log.format: must be text or json",
		"advertisers[1].name: duplicate advertiser", "advertisers[1].token: same token as advertisers[0].token",
		"advertisers[1].datasets[0]: dataset \"1\" already belongs",
		"campaigns[0].advertiser: unknown advertiser", "campaigns[0].event: required",
		"campaigns[0].target_cpa: must be > 0", "campaigns[0].credit: must be last_touch, linear or probabilistic",
		"bidders[0].campaigns[0]: unknown campaign \"nope\"",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestConfigUnknownField(t *testing.T) {
	_, err := ParseConfig([]byte("identity: {secret: s}\nlisten_addr: 1\n"))
	if err == nil || !strings.Contains(err.Error(), "listen_addr") {
		t.Fatalf("unknown field not reported: %v", err)
	}
}

func TestIsLoopback(t *testing.T) {
	f := func(in string, want bool) {
		t.Helper()
		if got := IsLoopback(in); got != want {
			t.Fatalf("IsLoopback(%q) = %v", in, got)
		}
	}
	f("127.0.0.1:8080", true)
	f("localhost:1", true)
	f("[::1]:80", true)
	f("0.0.0.0:8080", false)
	f(":8080", false)
	f("10.0.0.1:80", false)
}

func TestNoWinNoticesExampleIsValid(t *testing.T) {
	c, err := LoadConfig("../configs/examples/no-win-notices.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Bidders) != 1 || c.Bidders[0].WinNotices == nil || *c.Bidders[0].WinNotices {
		t.Fatalf("%+v", c.Bidders)
	}
}

func TestTwoTenantsExampleIsValid(t *testing.T) {
	c, err := LoadConfig("../configs/examples/two-tenants.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Bidders[1].WinSecret != "other-bidder-win-secret" || !strings.Contains(strings.Join(c.DevCredentials(), " "), "bidders[1].win_secret") {
		t.Fatalf("other-bidder's win_secret %q, dev credentials %v", c.Bidders[1].WinSecret, c.DevCredentials())
	}
	if len(c.Advertisers) != 2 || c.Advertisers[1].Datasets[0] != "2222222222" || c.Bidders[1].Campaigns[0] != "other-ctv-purchase" || len(c.Campaigns) != 3 {
		t.Fatalf("%+v %+v %+v", c.Advertisers, c.Bidders, c.Campaigns)
	}
}

// TestMaxImpsReachesEveryReader: exposures.max_imps bounds the bid
// requests of /v1/score too (the bidder package reads them with its own
// extractors).
func TestMaxImpsReachesEveryReader(t *testing.T) {
	c, err := ParseConfig([]byte(strings.Replace(string(configs.Default), "max_imps: 32", "max_imps: 4", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Exposures.MaxImps != 4 || c.Bidder.MaxImps != 4 {
		t.Fatalf("exposures %d, bidder %d", c.Exposures.MaxImps, c.Bidder.MaxImps)
	}
	noLimits := strings.NewReplacer("  max_imps: 32\n", "", "  max_win_price_cpm: 1000\n", "").Replace(string(configs.Default))
	if c, _ = ParseConfig([]byte(noLimits)); c.Exposures.MaxImps != 32 || c.Bidder.MaxImps != 32 || c.Exposures.MaxWinPriceCPM != 1000 {
		t.Fatalf("default: exposures %d, bidder %d", c.Exposures.MaxImps, c.Bidder.MaxImps)
	}
}

func TestConfigWinSecretAndPriceCap(t *testing.T) {
	raw := strings.NewReplacer("max_win_price_cpm: 1000", "max_win_price_cpm: -1", "max_imps: 32", "max_imps: -2").Replace(string(configs.Default))
	raw = strings.Replace(raw, "    campaigns: [demo-ctv-purchase, demo-ctv-signup]\n",
		"    campaigns: [demo-ctv-purchase, demo-ctv-signup]\n    win_secret: short\n", 1)
	_, err := ParseConfig([]byte(raw))
	for _, want := range []string{"bidders[0].win_secret: at least 16 bytes", "exposures.max_win_price_cpm: must be a number > 0", "exposures.max_imps: must be > 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	raw = strings.Replace(string(configs.Default), "    campaigns: [demo-ctv-purchase, demo-ctv-signup]\n",
		"    campaigns: [demo-ctv-purchase, demo-ctv-signup]\n    win_secret: dev-bidder-token\n", 1)
	if _, err := ParseConfig([]byte(raw)); err == nil || !strings.Contains(err.Error(), "bidders[0].win_secret: must differ from the token") {
		t.Errorf("win_secret equal to the token: %v", err)
	}
	rotation := func(lines string) (Config, error) {
		return ParseConfig([]byte(strings.Replace(string(configs.Default), "    campaigns: [demo-ctv-purchase, demo-ctv-signup]\n",
			"    campaigns: [demo-ctv-purchase, demo-ctv-signup]\n"+lines, 1)))
	}
	for lines, want := range map[string]string{
		"    previous_win_secret: the-old-win-secret-0123\n":                                          "bidders[0].previous_win_secret: set without win_secret",
		"    win_secret: the-new-win-secret-0123\n    previous_win_secret: short\n":                   "bidders[0].previous_win_secret: at least 16 bytes",
		"    win_secret: the-new-win-secret-0123\n    previous_win_secret: the-new-win-secret-0123\n": "bidders[0].previous_win_secret: equals win_secret",
		"    win_secret: the-new-win-secret-0123\n    previous_win_secret: dev-bidder-token\n":        "bidders[0].previous_win_secret: must differ from the token",
	} {
		if _, err := rotation(lines); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", lines, err, want)
		}
	}
	c, err := rotation("    win_secret: the-new-win-secret-0123\n    previous_win_secret: the-old-win-secret-0123\n")
	if err != nil || c.Bidders[0].PreviousWinSecret != "the-old-win-secret-0123" {
		t.Fatalf("a rotation: %v", err)
	}
	if y, _ := c.YAML(true); strings.Contains(string(y), "the-old-win-secret") {
		t.Fatal("config check shows the previous win_secret")
	}
	// The bidder's signer accepts both keys' sigs and signs with the new.
	tn := newTenants(c).bidders[c.Bidders[0].Name]
	for _, key := range []string{"the-old-win-secret-0123", "the-new-win-secret-0123"} {
		sig := signals.NewWinSigner([]byte(key)).AppendSig(nil, "a-1", "1", "demo-ctv-purchase")
		if !tn.winSigner.Valid(sig, []byte("a-1"), []byte("1"), "demo-ctv-purchase") {
			t.Fatalf("during the rotation a sig of %s is refused", key)
		}
	}
}

// TestConfigCrossed: with model.structure crossed the segment path is the
// effects' features, one a level; an unknown feature in model.effects is
// reported with its path.
func TestConfigCrossed(t *testing.T) {
	with := func(model string) []byte { // the embedded default with its model section replaced
		def := string(configs.Default)
		i := strings.Index(def, "\nmodel:\n")
		j := i + 1 + strings.Index(def[i+1:], "\n\n")
		if i < 0 || j <= i {
			t.Fatal("no model section in the default config")
		}
		return []byte(def[:i] + "\nmodel: " + model + def[j:])
	}
	c, err := ParseConfig(with("{structure: crossed, effects: [[genre], [publisher, bundle], [genre, daypart]]}"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.SegmentLevels()); got != "[[genre] [publisher] [bundle] [daypart]]" {
		t.Fatalf("SegmentLevels() = %s", got)
	}
	if got := fmt.Sprint(c.WithDefaults().Segments); got != "[[publisher] [bundle] [genre] [metro]]" {
		t.Fatalf("segments = %s", got)
	}
	_, err = ParseConfig(with("{structure: crossed, effects: [[genre], [gnre, daypart]]}"))
	if err == nil || !strings.Contains(err.Error(), `model.effects[1][0]: unknown feature "gnre"`) {
		t.Fatalf("unknown feature: %v", err)
	}
	if _, err := ParseConfig(with("{structure: crossed}")); err != nil {
		t.Fatalf("the default effects: %v", err)
	}
}
