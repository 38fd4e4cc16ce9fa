package market

import "testing"

func BenchmarkMarketBidRequest(b *testing.B) {
	m, err := NewMarket(testScenario(), 1)
	if err != nil {
		b.Fatal(err)
	}
	it := m.Day(0)
	var buf []byte
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		o := it.Next()
		if o == nil {
			it = m.Day(1)
			o = it.Next()
		}
		buf = m.AppendBidRequest(buf[:0], o)
		n += len(buf)
	}
	b.SetBytes(int64(n / max(b.N, 1)))
}

func BenchmarkMarketOpportunity(b *testing.B) {
	m, err := NewMarket(testScenario(), 1)
	if err != nil {
		b.Fatal(err)
	}
	it := m.Day(0)
	b.ReportAllocs()
	for b.Loop() {
		if it.Next() == nil {
			it = m.Day(1)
		}
	}
}
