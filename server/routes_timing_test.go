package server

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// The front door's share of a request: routing, authentication, body
// decompression and error writing around the handlers (which have their
// own benchmarks in their packages).

func benchServer(b *testing.B) *Server {
	return testServer(b, func(c *Config) { c.Journal.Fsync = "interval" })
}

// benchCall runs s.handle on one request built once; body is sent as is.
func benchCall(b *testing.B, s *Server, method, uri, token string, body []byte, headers ...string) {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.SetContentType("application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	req.SetBody(body)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}, nil)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		s.handle(&ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

func BenchmarkServeScoreCTVRequest(b *testing.B) {
	s := benchServer(b)
	body, err := os.ReadFile("../signals/testdata/openrtb/roku-ctv-pod-gpp.json")
	if err != nil {
		b.Fatal(err)
	}
	benchCall(b, s, "POST", "/v1/score", bidderToken, body)
}

// conversionsBatch is a CAPI body of n website purchases with email and IP.
func conversionsBatch(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"data":[`)
	now := time.Now().Unix() - 60
	for i := range n {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"event_name":"Purchase","event_time":%d,"event_id":"bench-%d","action_source":"website",`+
			`"event_source_url":"https://shop.example.com/thanks","user_data":{"em":["buyer.%d@example.com"],`+
			`"client_ip_address":"203.0.113.%d","client_user_agent":"Mozilla/5.0"},"custom_data":{"value":12.5,"currency":"USD"}}`,
			now, i, i, i%250+1)
	}
	buf.WriteString(`]}`)
	return buf.Bytes()
}

// BenchmarkServeConversionsBatch100: the same batch again and again (so
// all deduplicated after the first: parsing, validation, hashing and the
// dedup check, no journal write).
func BenchmarkServeConversionsBatch100(b *testing.B) {
	s := benchServer(b)
	benchCall(b, s, "POST", "/v1/conversions?dataset=1234567890", advToken, conversionsBatch(100))
}

func BenchmarkServeConversionsBatch100Gzip(b *testing.B) {
	s := benchServer(b)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(conversionsBatch(100))
	zw.Close()
	benchCall(b, s, "POST", "/v1/conversions?dataset=1234567890", advToken, buf.Bytes(), "Content-Encoding", "gzip")
}

// BenchmarkServeScoreInmemory: POST /v1/score through fasthttp's connection
// handling (an in-memory listener), keep-alive, parallel clients.
func BenchmarkServeScoreInmemory(b *testing.B) {
	s := benchServer(b)
	body, err := os.ReadFile("../signals/testdata/openrtb/roku-ctv-pod-gpp.json")
	if err != nil {
		b.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	go s.Serve(ln)
	b.Cleanup(func() { ln.Close() })
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }, MaxConnsPerHost: 64}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var req fasthttp.Request
		var resp fasthttp.Response
		req.SetRequestURI("http://cpafeed/v1/score")
		req.Header.SetMethod("POST")
		req.Header.Set("Authorization", "Bearer "+bidderToken)
		req.Header.SetContentType("application/json")
		req.SetBody(body)
		for pb.Next() {
			if err := c.Do(&req, &resp); err != nil || resp.StatusCode() != 200 {
				b.Fatalf("%v %d %s", err, resp.StatusCode(), strconv.Quote(string(resp.Body())))
			}
		}
	})
}
