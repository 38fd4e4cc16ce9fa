package load

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram is a log-linear (HDR-style) latency histogram in nanoseconds:
// exact below 128 ns, then 128 buckets per power of two, so any recorded
// value is reported within 0.8 % of itself, up to 2^42 ns (73 minutes; larger
// values land in the last bucket, max stays exact). It is safe for one writer
// and any number of concurrent readers; merge per-worker histograms for a
// total.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // ns
	max    atomic.Uint64 // ns
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	histMaxLen  = 42 // bit length of the largest distinguished value
	histBuckets = histSub + (histMaxLen-histSubBits)*histSub
)

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	l := bits.Len64(v)
	if l > histMaxLen {
		return histBuckets - 1
	}
	e := l - histSubBits - 1 // v>>e is within [histSub, 2·histSub)
	return histSub + e*histSub + int(v>>uint(e)) - histSub
}

// histMid is the middle of bucket i.
func histMid(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := (i - histSub) / histSub
	m := uint64((i-histSub)%histSub + histSub)
	lo := m << uint(e)
	return lo + (uint64(1)<<uint(e))/2
}

func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[histIndex(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	if v > h.max.Load() {
		h.max.Store(v) // single writer: no lost update
	}
}

// merge adds o into h (h must not be written concurrently).
func (h *histogram) merge(o *histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
}

func (h *histogram) count() uint64 { return h.n.Load() }

// quantile returns the value at quantile q (0..1): the smallest recorded
// value v such that at least q of the values are ≤ v, within the bucket
// precision, and never above the maximum.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	target := max(uint64(math.Ceil(q*float64(n)-1e-9)), 1)
	var cum uint64
	for i := range h.counts {
		cum += h.counts[i].Load()
		if cum >= target {
			return time.Duration(min(histMid(i), h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

func (h *histogram) mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}
