package load

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The load generator's per-request cost, beside its baseline: a bare
// fasthttp HostClient.Do loop with one fixed request against the same bare
// handler. The difference is what the generator adds (request choice,
// timing, histogram, counters).

func benchPool(b *testing.B) *requestPool {
	b.Helper()
	pool, err := buildPool(testScenario(), 1, PoolOptions{Requests: 64, Exposed: 64})
	if err != nil {
		b.Fatal(err)
	}
	return pool
}

func benchBare(b *testing.B) (addr string) {
	b.Helper()
	u, stop, err := StartBareServer()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stop() })
	addr, _ = loopbackAddr(u)
	return addr
}

func benchWorkers(b *testing.B, kind Kind) {
	addr := benchBare(b)
	pool := benchPool(b)
	var seq atomic.Uint64
	var id atomic.Int64
	if kind != KindWin {
		b.SetBytes(int64(len(pool.kinds[kind].reqs[0].body)))
	}
	sched := []Kind{kind}
	reqs := renderPhase(pool, addr, sched)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := newLoadWorker(int(id.Add(1)), 64, newHTTPConn(addr, 5*time.Second), reqs, sched, &seq, 1)
		defer w.conn.close()
		for pb.Next() {
			w.send(kind, time.Now())
		}
	})
}

func BenchmarkLoadWorkerWinBare(b *testing.B)   { benchWorkers(b, KindWin) }
func BenchmarkLoadWorkerScoreBare(b *testing.B) { benchWorkers(b, KindScore) }

// BenchmarkHostClientDoWinBare is the baseline of the two above.
func BenchmarkHostClientDoWinBare(b *testing.B) {
	addr := benchBare(b)
	pool := benchPool(b)
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: 64, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	uri := pool.kinds[KindWin].reqs[0].uri
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.Header.SetHost(addr)
		req.SetRequestURIBytes(uri)
		for pb.Next() {
			if err := hc.Do(req, resp); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h histogram
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.record(time.Duration(i&0xfffff) * 100)
	}
}
