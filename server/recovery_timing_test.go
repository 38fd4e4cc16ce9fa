package server

import (
	"fmt"
	"io"
	"log/slog"
	rand1 "math/rand"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cpafeed/cpafeed/configs"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

// BenchmarkRecovery1MConversions10MExposures builds a state holding
// 1 million remembered (deduplicated) conversions and 10 million exposures
// in the identity index and the model, snapshots it, and measures a start:
// the newest snapshot loaded plus the journal after it replayed. The sizes
// come from RECOVERY_CONVERSIONS and RECOVERY_EXPOSURES when set. Reports
// snapshot bytes, write and start seconds.
func BenchmarkRecovery1MConversions10MExposures(b *testing.B) {
	nConv, nExp := 1_000_000, 10_000_000
	if v, err := strconv.Atoi(os.Getenv("RECOVERY_CONVERSIONS")); err == nil {
		nConv = v
	}
	if v, err := strconv.Atoi(os.Getenv("RECOVERY_EXPOSURES")); err == nil {
		nExp = v
	}
	for b.Loop() {
		dir := b.TempDir()
		cfg, err := ParseConfig(configs.Default)
		if err != nil {
			b.Fatal(err)
		}
		cfg.DataDir = dir
		cfg.Journal.Fsync = "interval"
		cfg.Journal.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		cfg.Exposures.Index.MaxExposures = nExp
		cfg = cfg.WithDefaults()
		st := openState(b, cfg)
		now := time.Now().Unix()
		fill(b, st, now, nConv, nExp)

		b.ReportMetric(float64(st.eng.Model.Refresh(now).Len()), "segments")
		if path := os.Getenv("SNAPSHOT_CPUPROFILE"); path != "" {
			f, _ := os.Create(path)
			pprof.StartCPUProfile(f)
		}
		start := time.Now()
		info, err := st.snapshot()
		if os.Getenv("SNAPSHOT_CPUPROFILE") != "" {
			pprof.StopCPUProfile()
		}
		if err != nil {
			b.Fatal(err)
		}
		write := time.Since(start)
		b.ReportMetric(st.lastPause.Seconds(), "pause-s")
		if err := st.close(false); err != nil {
			b.Fatal(err)
		}

		if path := os.Getenv("RECOVERY_CPUPROFILE"); path != "" {
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
		start = time.Now()
		st2 := openState(b, cfg)
		ready := time.Since(start) // what Server.Recover does before /readyz turns ready
		st2.eng.Model.Refresh(now)
		published := time.Since(start)
		if got := st2.eng.Index.Stats().Exposures; got != nExp {
			b.Fatalf("restored %d exposures, want %d", got, nExp)
		}
		if got := st2.eng.Conversions.DedupEntries(); got != nConv {
			b.Fatalf("restored %d dedup entries, want %d", got, nConv)
		}
		st2.close(false)
		b.ReportMetric(float64(info.CompressedBytes)/(1<<20), "snapshot-MiB")
		b.ReportMetric(float64(info.RawBytes)/(1<<20), "raw-MiB")
		b.ReportMetric(write.Seconds(), "write-s")
		b.ReportMetric(ready.Seconds(), "ready-s")
		b.ReportMetric(published.Seconds(), "refreshed-s")
	}
}

// fill puts nExp exposures (model and index, as applied exposures would)
// and nConv conversions (through the CAPI ingest path, 1000 a batch) into
// st.
func fill(b *testing.B, st *state, now int64, nConv, nExp int) {
	// Heavy-tailed traffic, as the synthetic market's: a few publishers,
	// bundles, genres and metros take most exposures.
	r := rand.New(rand.NewPCG(1, 2))
	z := func(s float64, n uint64) func() int {
		zr := rand1.NewZipf(rand1.New(rand1.NewSource(int64(n))), s, 1, n-1)
		return func() int { return int(zr.Uint64()) }
	}
	zPub, zBundle, zGenre, zMetro := z(1.1, 300), z(1.5, 4), z(1.2, 12), z(1.1, 210)
	camps := []string{"demo-ctv-purchase", "demo-ctv-signup"}
	var path []model.Key
	labels := make([][]byte, 5)
	ids := make([]signals.ID, 2)
	for i := range nExp {
		c := i % 2
		pub, bundle, genre, metro := zPub(), zBundle(), zGenre(), zMetro()
		labels[1] = []byte("pub-" + strconv.Itoa(pub))
		labels[2] = []byte("b" + strconv.Itoa(pub*4+bundle))
		labels[3] = []byte("g" + strconv.Itoa(genre))
		labels[4] = []byte(strconv.Itoa(500 + metro))
		path = append(path[:0], model.RootKey(camps[c]))
		for j := 1; j < 5; j++ {
			path = append(path, path[j-1].Child(labels[j]))
		}
		ts := now - int64(r.IntN(6*86400))
		st.eng.Model.Expose(ts, path, labels, 0.02)
		dev := r.Uint64N(uint64(nExp / 5))
		ids[0] = signals.ID{Kind: signals.IDIFA, Key: dev*2 + 1}
		ids[1] = signals.ID{Kind: signals.IDIP, Key: dev/4*2 + 2}
		st.eng.Index.Add(signals.IndexedExposure{TS: ts, Leaf: path[4], Cost: 0.02, Campaign: uint16(c)}, ids)
	}
	var body strings.Builder
	for done := 0; done < nConv; {
		body.Reset()
		body.WriteString(`{"data":[`)
		for k := 0; k < 1000 && done < nConv; k++ {
			if k > 0 {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, `{"event_name":"Purchase","event_time":%d,"event_id":"o-%d","action_source":"app","custom_data":{"currency":"USD","value":40},"user_data":{"madid":"%08x-0000-4000-8000-%012x"}}`,
				now-int64(done%3600), done, done, done)
			done++
		}
		body.WriteString(`]}`)
		if _, _, err := st.eng.Conversions.Ingest("1234567890", []byte(body.String()), "application/json"); err != nil {
			b.Fatal(err)
		}
	}
}
