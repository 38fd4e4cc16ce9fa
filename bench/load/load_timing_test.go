package load

import (
	"bytes"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The load generator's per-request cost against the bare handler (server in
// the same process, so ns/op counts both sides), beside two baselines with
// one fixed request: a plain net.Conn write/read loop (the floor of a
// goroutine per connection) and fasthttp's HostClient.Do (the generator's
// engine before its own connection). The difference to the floor is what
// the generator adds (request choice, framing, timing, histogram, counters).

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

// BenchmarkNetConnWinBare is the floor: write a fixed win notice, read until
// the bare handler's body has ended, on a plain net.Conn.
func BenchmarkNetConnWinBare(b *testing.B) {
	addr := benchBare(b)
	pool := benchPool(b)
	req := appendHead(nil, &pool.kinds[KindWin], addr, pool.kinds[KindWin].reqs[0].uri, 0)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			n := 0
			for !bytes.HasSuffix(buf[:n], []byte(bareBody[len(bareBody)-5:])) {
				m, err := c.Read(buf[n:])
				if err != nil {
					b.Error(err)
					return
				}
				n += m
			}
		}
	})
}

// BenchmarkRespParserBareAnswer frames the bare handler's answer as
// fasthttp sends it.
func BenchmarkRespParserBareAnswer(b *testing.B) {
	answer := []byte("HTTP/1.1 200 OK\r\nServer: cpafeed-bench-bare\r\nDate: Thu, 03 Dec 2026 09:00:00 GMT\r\n" +
		"Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(bareBody)) + "\r\n\r\n" + bareBody)
	b.SetBytes(int64(len(answer)))
	b.ReportAllocs()
	var p respParser
	for b.Loop() {
		p.reset()
		if done, err := p.advance(answer); !done || err != nil || p.status != 200 {
			b.Fatal(done, err, p.status)
		}
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h histogram
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.record(time.Duration(i&0xfffff) * 100)
	}
}
