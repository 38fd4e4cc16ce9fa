package bidder

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// BenchmarkAppendFloat formats the kind of numbers a score answer carries
// (CVRs around 1e-4..1e-2, bids of tens, counts, VTRs), beside strconv's
// six-digit 'g' formatting of the same numbers.
func BenchmarkAppendFloat(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	fs := make([]float64, 1024)
	for i := range fs {
		fs[i] = math.Pow(10, r.Float64()*7-5) // 1e-5 .. 1e2
	}
	buf := make([]byte, 0, 64)
	b.Run("appendFloat", func(b *testing.B) {
		i := 0
		for b.Loop() {
			buf = appendFloat(buf[:0], fs[i&1023])
			i++
		}
	})
	b.Run("strconv", func(b *testing.B) {
		i := 0
		for b.Loop() {
			buf = strconv.AppendFloat(buf[:0], fs[i&1023], 'g', 6, 64)
			i++
		}
	})
}
