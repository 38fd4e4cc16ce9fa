package signals

import (
	"encoding/json"
	"testing"

	"github.com/cpafeed/cpafeed/model"
	"github.com/prebid/openrtb/v20/openrtb2"
)

// BenchmarkBidRequest runs, for every request fixture, Extract<Fixture>
// beside its baseline JSONDecode<Fixture> (encoding/json into
// openrtb2.BidRequest) on the same bytes, one right after the other so
// that both see the same machine load. Compare them within one run.
func BenchmarkBidRequest(b *testing.B) {
	all := fixtures(b)
	for _, name := range sortedNames(all) {
		body := all[name]
		b.Run("Extract"+camel(name), func(b *testing.B) {
			x := NewExtractor()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := x.Extract(body, testNow); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("JSONDecode"+camel(name), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				var br openrtb2.BidRequest
				if err := json.Unmarshal(body, &br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// camel turns "roku-ctv-pod-gpp" into "RokuCtvPodGpp".
func camel(s string) string {
	var out []byte
	up := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == '.' || c == '_':
			up = true
			continue
		case up && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		up = false
		out = append(out, c)
	}
	return string(out)
}

// BenchmarkExtractParallel is Extract with one Extractor per goroutine, as
// a server pools them.
func BenchmarkExtractParallel(b *testing.B) {
	body := fixtures(b)["roku-ctv-pod-gpp"]
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		x := NewExtractor()
		for pb.Next() {
			if _, err := x.Extract(body, testNow); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkChainKeys is the key path of one imp for one campaign through a
// four-level chain (one level of two features).
func BenchmarkChainKeys(b *testing.B) {
	c, err := NewChain([][]string{{"publisher"}, {"bundle"}, {"genre", "language"}, {"metro"}})
	if err != nil {
		b.Fatal(err)
	}
	r, err := NewExtractor().Extract(fixtures(b)["roku-ctv-pod-gpp"], testNow)
	if err != nil {
		b.Fatal(err)
	}
	root := model.RootKey("demo-ctv-purchase")
	dst := make([]model.Key, 0, c.Depth()+1)
	b.ReportAllocs()
	for b.Loop() {
		dst = c.Keys(root, &r.Imps[0], dst[:0])
	}
}

// BenchmarkRequestIDs hashes the identities of a request with an IFA, an IP,
// two eids and a user id.
func BenchmarkRequestIDs(b *testing.B) {
	r, err := NewExtractor().Extract(fixtures(b)["roku-ctv-pod-gpp"], testNow)
	if err != nil {
		b.Fatal(err)
	}
	h := NewHasher([]byte("bench-secret"))
	dst := r.IDs(h, nil)
	b.ReportAllocs()
	for b.Loop() {
		dst = r.IDs(h, dst[:0])
	}
}

// BenchmarkGate runs every gate on a GDPR request with TCF, US privacy and
// GPP strings.
func BenchmarkGate(b *testing.B) {
	p := Privacy{GDPR: 1, Consent: []byte(tcfAllGranted), USPrivacy: []byte("1YNN"), GPP: []byte("DBABzw~1YNN~CUQiAAAAAACA.QA")}
	b.ReportAllocs()
	for b.Loop() {
		Gate(p, 1234)
	}
}
