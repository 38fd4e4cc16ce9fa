package load

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// MetricSample is one sample line of the Prometheus text exposition format.
type MetricSample struct {
	Name   string
	Labels []MetricLabel
	Value  float64
}

// MetricLabel is one name="value" pair of a sample.
type MetricLabel struct{ Name, Value string }

// Label returns the value of label name, or "".
func (s *MetricSample) Label(name string) string {
	for _, l := range s.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// ParseMetrics parses the Prometheus text format (as VictoriaMetrics/metrics
// and the Prometheus client write it): comment lines are skipped, every other
// line is `name{label="value",...} value [timestamp]`. Errors name the line.
func ParseMetrics(text []byte) ([]MetricSample, error) {
	var out []MetricSample
	lineNo := 0
	for len(text) > 0 {
		lineNo++
		var line []byte
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			line, text = text, nil
		}
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' {
			continue
		}
		smp, err := parseSampleLine(s)
		if err != nil {
			return out, fmt.Errorf("metrics line %d: %w", lineNo, err)
		}
		out = append(out, smp)
	}
	return out, nil
}

func isNameChar(c byte, first bool) bool {
	return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
}

func parseSampleLine(s string) (MetricSample, error) {
	var smp MetricSample
	i := 0
	for i < len(s) && isNameChar(s[i], i == 0) {
		i++
	}
	if i == 0 {
		return smp, fmt.Errorf("missing metric name in %q", s)
	}
	smp.Name = s[:i]
	if i < len(s) && s[i] == '{' {
		i++
		for {
			for i < len(s) && s[i] == ' ' {
				i++
			}
			if i < len(s) && s[i] == '}' {
				i++
				break
			}
			j := i
			for j < len(s) && isNameChar(s[j], j == i) {
				j++
			}
			if j == i || j+1 >= len(s) || s[j] != '=' || s[j+1] != '"' {
				return smp, fmt.Errorf("bad label in %q", s)
			}
			name := s[i:j]
			i = j + 2
			var v strings.Builder
			closed := false
			for i < len(s) {
				c := s[i]
				i++
				if c == '"' {
					closed = true
					break
				}
				if c == '\\' && i < len(s) {
					c = s[i]
					i++
					if c == 'n' {
						c = '\n'
					}
				}
				v.WriteByte(c)
			}
			if !closed {
				return smp, fmt.Errorf("unterminated label value in %q", s)
			}
			smp.Labels = append(smp.Labels, MetricLabel{Name: name, Value: v.String()})
			for i < len(s) && s[i] == ' ' {
				i++
			}
			if i < len(s) && s[i] == ',' {
				i++
				continue
			}
			if i < len(s) && s[i] == '}' {
				i++
				break
			}
			return smp, fmt.Errorf("expected , or } after label %s in %q", name, s)
		}
	}
	fields := strings.Fields(s[i:])
	if len(fields) < 1 || len(fields) > 2 {
		return smp, fmt.Errorf("expected a value and an optional timestamp in %q", s)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return smp, fmt.Errorf("bad value %q of %s", fields[0], smp.Name)
	}
	smp.Value = v
	return smp, nil
}

// ServerMetrics are the server's own figures, scraped from its /metrics before
// and after a run.
type ServerMetrics struct {
	// RSSBytes is process_resident_memory_bytes after the run; RSSBytesBefore
	// before it.
	RSSBytes       float64 `json:"rss_bytes"`
	RSSBytesBefore float64 `json:"rss_bytes_before"`
	// GCPauseSeconds are the quantiles of go_gc_duration_seconds after the
	// run, keyed by quantile ("0", "0.5", "1", ...).
	GCPauseSeconds map[string]float64 `json:"gc_pause_seconds,omitempty"`
	// GCs is the number of garbage collections during the run.
	GCs float64 `json:"gcs"`
	// CPUSeconds is process_cpu_seconds_total during the run: the server's
	// CPU time (user and system, at the resolution of the kernel's clock
	// ticks). With --spawn it includes the load generator's.
	CPUSeconds float64 `json:"cpu_seconds"`
	// JournalFsync is cpafeed_journal_fsync_seconds during the run.
	JournalFsync *HistogramSummary `json:"journal_fsync_seconds,omitempty"`
	// Error says why some figure is missing.
	Error string `json:"error,omitempty"`
}

// HistogramSummary summarizes a histogram metric (seconds).
type HistogramSummary struct {
	Count float64 `json:"count"`
	Sum   float64 `json:"sum"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	// Max is the upper bound of the highest non-empty bucket.
	Max float64 `json:"max"`
}

// metricBucket is one non-cumulative bucket (lo, hi] of a histogram.
type metricBucket struct{ lo, hi, n float64 }

// histogramBuckets collects the buckets of histogram `name` in either format:
// VictoriaMetrics' name_bucket{vmrange="lo...hi"} (per-range counts) or
// Prometheus' name_bucket{le="hi"} (cumulative counts). Series that differ in
// other labels are added together. It also returns _sum and _count.
func histogramBuckets(samples []MetricSample, name string) (bs []metricBucket, sum, count float64, found bool) {
	type key struct{ lo, hi float64 }
	vm := map[key]float64{}
	le := map[float64]float64{}
	for i := range samples {
		s := &samples[i]
		switch s.Name {
		case name + "_sum":
			sum += s.Value
			found = true
		case name + "_count":
			count += s.Value
			found = true
		case name + "_bucket":
			found = true
			if r := s.Label("vmrange"); r != "" {
				a, b, ok := strings.Cut(r, "...")
				lo, err1 := strconv.ParseFloat(a, 64)
				hi, err2 := strconv.ParseFloat(b, 64)
				if ok && err1 == nil && err2 == nil {
					vm[key{lo, hi}] += s.Value
				}
			} else if l := s.Label("le"); l != "" {
				if hi, err := strconv.ParseFloat(l, 64); err == nil {
					le[hi] += s.Value
				}
			}
		}
	}
	for k, n := range vm {
		bs = append(bs, metricBucket{k.lo, k.hi, n})
	}
	if len(le) > 0 {
		his := make([]float64, 0, len(le))
		for hi := range le {
			his = append(his, hi)
		}
		slices.Sort(his)
		lo, prev := 0.0, 0.0
		for _, hi := range his {
			bs = append(bs, metricBucket{lo, hi, le[hi] - prev})
			lo, prev = hi, le[hi]
		}
	}
	slices.SortFunc(bs, func(a, b metricBucket) int {
		if a.lo != b.lo {
			return cmpFloat(a.lo, b.lo)
		}
		return cmpFloat(a.hi, b.hi)
	})
	return bs, sum, count, found
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// subtractBuckets returns after − before, bucket by bucket.
func subtractBuckets(after, before []metricBucket) []metricBucket {
	out := slices.Clone(after)
	for _, b := range before {
		for i := range out {
			if out[i].lo == b.lo && out[i].hi == b.hi {
				out[i].n -= b.n
			}
		}
	}
	return out
}

// bucketQuantile interpolates quantile q linearly within its bucket; a value
// in an unbounded bucket is reported as its lower bound.
func bucketQuantile(bs []metricBucket, q float64) float64 {
	total := 0.0
	for _, b := range bs {
		total += max(b.n, 0)
	}
	if total == 0 {
		return 0
	}
	target, cum := q*total, 0.0
	for _, b := range bs {
		n := max(b.n, 0)
		if n == 0 {
			continue
		}
		if cum+n >= target {
			if math.IsInf(b.hi, 1) {
				return b.lo
			}
			return b.lo + (b.hi-b.lo)*(target-cum)/n
		}
		cum += n
	}
	return bs[len(bs)-1].lo
}

// summarizeServer turns two scrapes into ServerMetrics.
func summarizeServer(before, after []MetricSample) *ServerMetrics {
	sm := &ServerMetrics{}
	get := func(samples []MetricSample, name string) (float64, bool) {
		for i := range samples {
			if samples[i].Name == name && len(samples[i].Labels) == 0 {
				return samples[i].Value, true
			}
		}
		return 0, false
	}
	var missing []string
	if v, ok := get(after, "process_resident_memory_bytes"); ok {
		sm.RSSBytes = v
	} else {
		missing = append(missing, "process_resident_memory_bytes")
	}
	sm.RSSBytesBefore, _ = get(before, "process_resident_memory_bytes")
	for i := range after {
		s := &after[i]
		if s.Name == "go_gc_duration_seconds" {
			if q := s.Label("quantile"); q != "" {
				if sm.GCPauseSeconds == nil {
					sm.GCPauseSeconds = map[string]float64{}
				}
				sm.GCPauseSeconds[q] = s.Value
			}
		}
	}
	if sm.GCPauseSeconds == nil {
		missing = append(missing, "go_gc_duration_seconds")
	}
	a, _ := get(after, "go_gc_duration_seconds_count")
	b, _ := get(before, "go_gc_duration_seconds_count")
	sm.GCs = a - b
	if a, ok := get(after, "process_cpu_seconds_total"); ok {
		b, _ := get(before, "process_cpu_seconds_total")
		sm.CPUSeconds = a - b
	} else {
		missing = append(missing, "process_cpu_seconds_total")
	}
	ab, asum, acount, found := histogramBuckets(after, "cpafeed_journal_fsync_seconds")
	if found {
		bb, bsum, bcount, _ := histogramBuckets(before, "cpafeed_journal_fsync_seconds")
		d := subtractBuckets(ab, bb)
		h := &HistogramSummary{Count: acount - bcount, Sum: asum - bsum,
			P50: bucketQuantile(d, 0.5), P90: bucketQuantile(d, 0.9), P99: bucketQuantile(d, 0.99)}
		for _, x := range d {
			if x.n > 0 {
				h.Max = x.hi
				if math.IsInf(x.hi, 1) {
					h.Max = x.lo
				}
			}
		}
		sm.JournalFsync = h
	} else {
		missing = append(missing, "cpafeed_journal_fsync_seconds")
	}
	if len(missing) > 0 {
		sm.Error = "not exported: " + strings.Join(missing, ", ")
	}
	return sm
}
