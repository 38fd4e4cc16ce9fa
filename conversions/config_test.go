package conversions

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDefaultsAndValidate(t *testing.T) {
	c := Config{Datasets: map[string]string{"1": "a"}}.WithDefaults()
	if c.DedupWindow != 48*time.Hour || c.DedupGenerations != 8 || c.MaxEvents != 1000 || c.MaxAge != 168*time.Hour ||
		c.MaxAgePhysicalStore != 1488*time.Hour || c.MaxFuture != 10*time.Minute || c.MaxEventNames != 100 || c.Now == nil {
		t.Fatalf("defaults %+v", c)
	}
	if errs := c.Validate(); len(errs) != 0 {
		t.Fatalf("valid config: %v", errs)
	}
	bad := Config{Datasets: map[string]string{"": "a"}, DedupWindow: time.Second, DedupGenerations: 100, MaxEvents: 20000,
		TrustedProxies: []string{"10.0.0.0/8", "nope"}, MaxEventNames: -1}.WithDefaults()
	errs := bad.Validate()
	var all []string
	for _, e := range errs {
		all = append(all, e.Error())
	}
	got := strings.Join(all, "\n")
	for _, want := range []string{"datasets:", "dedup_window:", "dedup_generations:", "max_events:", "trusted_proxies: \"nope\"", "max_event_names:"} {
		if !strings.Contains(got, want) {
			t.Fatalf("problems do not mention %q:\n%s", want, got)
		}
	}
	if _, err := NewService(bad, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "Log") {
		t.Fatalf("NewService accepted a bad config: %v", err)
	}
}

func TestHumanDuration(t *testing.T) {
	f := func(d time.Duration, want string) {
		t.Helper()
		if got := humanDuration(d); got != want {
			t.Fatalf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
	f(7*24*time.Hour, "7 days")
	f(24*time.Hour, "1 day")
	f(36*time.Hour, "36 hours")
	f(10*time.Minute, "10 minutes")
	f(90*time.Second, "90 seconds")
	f(1500*time.Millisecond, "1.5s")
}
