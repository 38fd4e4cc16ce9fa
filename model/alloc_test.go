package model

import (
	"math/rand/v2"
	"testing"
)

func TestBidPathNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	m := New(Config{Structure: StructureChain}, testCampaigns())
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

	// The crossed model.
	mc := New(crossedSmall(Config{}), testCampaigns())
	cpath, clabels := testPath("demo-ctv-purchase", "pub-1", "Sports", "501")
	mc.Expose(t0, cpath, clabels, 0.02)
	ec := mc.Refresh(t0)
	root := RootKey("demo-ctv-purchase")
	var c Cell
	values := [][]byte{[]byte("pub-1"), []byte("Sports"), []byte("501")}
	f("Cell", func() {
		c.Reset(3)
		for d, v := range values {
			c.SetValue(d, v)
		}
	})
	var est Estimate
	f("LookupCell", func() { est, _ = ec.LookupCell(root, &c) })
	f("Estimate.Sample", func() { est.Sample(r) })
	f("Effects", func() { ec.Effects("demo-ctv-purchase", "genre", func(Effect) bool { return true }) })
	f("Expose crossed (existing cell)", func() { ts++; mc.Expose(ts, cpath, clabels, 0.02) })
	f("Credit crossed", func() { mc.Credit(ts, ts+60, cpath[3], 1) })
}
