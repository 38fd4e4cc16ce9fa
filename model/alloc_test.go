package model

import (
	"math/rand/v2"
	"testing"
)

func TestBidPathNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	m := New(Config{}, testCampaigns())
	path, labels := testPath("demo-ctv-purchase", "pub-1203", "com.example.tv", "Sports", "501")
	m.Expose(t0, path, labels, 0.02)
	e := m.Refresh(t0)
	miss, _ := testPath("demo-ctv-purchase", "pub-1203", "com.example.tv", "News", "501")
	r := rand.New(rand.NewPCG(1, 2))
	dst := make([]byte, 0, 256)
	f := func(name string, fn func()) {
		t.Helper()
		if n := testing.AllocsPerRun(200, fn); n != 0 {
			t.Errorf("%s allocates %v times", name, n)
		}
	}
	f("Lookup", func() { e.Lookup(path) })
	f("Lookup fallback", func() { e.Lookup(miss) })
	f("Name", func() { dst = e.Name(path[4], dst[:0]) })
	f("CampaignCVR", func() { e.CampaignCVR("demo-ctv-purchase") })
	f("SampleBeta", func() { SampleBeta(1.5, 4000, r) })
	f("Estimates", func() { m.Estimates() })
	ts := t0
	f("Expose (existing nodes)", func() { ts++; m.Expose(ts, path, labels, 0.02) })
	f("Credit", func() { m.Credit(ts, ts+60, path[4], 1) })
	f("Video", func() { m.Video(ts, path[4], 1, 1) })
}
