package signals_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/bench/market"
	"github.com/cpafeed/cpafeed/journal"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

type allBidder struct{}

func (allBidder) BidderName() string   { return "b" }
func (allBidder) MayUse(c string) bool { return true }
func (allBidder) SendsWins() bool      { return true }

// BenchmarkExposuresIngest1000 posts batches of 1000 new exposures (full CTV
// bid requests from the synthetic market) through the handler, the journal
// (fsync interval), the model and the identity index; b.N batches.
func BenchmarkExposuresIngest1000(b *testing.B) {
	sc := market.DefaultScenario()
	m, err := market.NewMarket(sc, 1)
	if err != nil {
		b.Fatal(err)
	}
	var camps []model.Campaign
	for _, c := range sc.Campaigns {
		camps = append(camps, model.Campaign{ID: c.ID, Advertiser: "demo", Event: c.Event, TargetCPA: c.TargetCPA})
	}
	j, err := journal.Open(journal.Options{Dir: b.TempDir(), Fsync: "interval", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	if _, err := j.Replay(1, func(uint64, []byte) error { return nil }); err != nil {
		b.Fatal(err)
	}
	chain, _ := signals.NewChain([][]string{{"publisher"}, {"bundle"}, {"genre"}, {"metro"}})
	mod := model.New(model.Config{}, camps)
	x, err := signals.NewExposures(signals.ExposureConfig{}, signals.ExposureDeps{
		Chain: chain, Hasher: signals.NewHasher([]byte("s")), Index: signals.NewIndex(signals.IndexConfig{MaxExposures: 1 << 22}),
		Counter: mod, Log: j, Campaigns: camps,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	now := time.Now().Unix()
	// Pre-generate batches from a day of opportunities.
	var batches [][]byte
	it := m.Day(0)
	body := []byte(`{"exposures":[`)
	n := 0
	for o := it.Next(); o != nil && len(batches) < 64; o = it.Next() {
		if n > 0 {
			body = append(body, ',')
		}
		body = m.AppendExposure(body, o, 0, n%len(camps), 0, 12.5, now-60)
		if n++; n == 1000 {
			batches = append(batches, append(body, "]}"...))
			body, n = []byte(`{"exposures":[`), 0
		}
	}
	var bytes int
	for _, bb := range batches {
		bytes += len(bb)
	}
	b.SetBytes(int64(bytes / len(batches)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetContentType("application/json")
		if err := x.HandleExposures(&ctx, batches[i%len(batches)], allBidder{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "exposures/s")
}
