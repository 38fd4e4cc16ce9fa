package load

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

func TestParseMetricsLines(t *testing.T) {
	f := func(line string, want MetricSample) {
		t.Helper()
		got, err := ParseMetrics([]byte(line))
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], want) {
			t.Errorf("%q: got %+v, %v; want %+v", line, got, err, want)
		}
	}
	f("process_resident_memory_bytes 1.2345e+07", MetricSample{Name: "process_resident_memory_bytes", Value: 1.2345e7})
	f(`go_gc_duration_seconds{quantile="0.5"} 3.1e-05`, MetricSample{Name: "go_gc_duration_seconds", Labels: []MetricLabel{{"quantile", "0.5"}}, Value: 3.1e-5})
	f(`x_bucket{vmrange="1.000e-03...1.136e-03", path="/v1/score",} 4 1700000000000`,
		MetricSample{Name: "x_bucket", Labels: []MetricLabel{{"vmrange", "1.000e-03...1.136e-03"}, {"path", "/v1/score"}}, Value: 4})
	f(`esc{a="q\"uo\\te\nnl"} 1`, MetricSample{Name: "esc", Labels: []MetricLabel{{"a", "q\"uo\\te\nnl"}}, Value: 1})
	f(`inf_bucket{le="+Inf"} +Inf`, MetricSample{Name: "inf_bucket", Labels: []MetricLabel{{"le", "+Inf"}}, Value: math.Inf(1)})
	f("  spaced:name   7  ", MetricSample{Name: "spaced:name", Value: 7})

	bad := func(text, want string) {
		t.Helper()
		_, err := ParseMetrics([]byte(text))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", text, err, want)
		}
	}
	bad("ok 1\n# comment\n{a=\"b\"} 1", "metrics line 3: missing metric name")
	bad(`m{a="b} 1`, "unterminated label value")
	bad(`m{a=b} 1`, "bad label")
	bad(`m{a="b" c="d"} 1`, "expected , or } after label a")
	bad("m", "expected a value")
	bad("m one", `bad value "one"`)
	bad("m 1 2 3", "expected a value and an optional timestamp")
}

// vmScrape renders a metrics set the way the server will: VictoriaMetrics'
// histogram (vmrange buckets) plus its process and Go metrics.
func vmScrape(set *metrics.Set) []byte {
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	metrics.WriteProcessMetrics(&buf)
	return buf.Bytes()
}

func TestSummarizeServerVictoriaMetrics(t *testing.T) {
	set := metrics.NewSet()
	h := set.NewHistogram("cpafeed_journal_fsync_seconds")
	for i := 0; i < 50; i++ {
		h.Update(0.5) // before the run: must not count
	}
	before, err := ParseMetrics(vmScrape(set))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 1000; i++ {
		h.Update(float64(i) / 1e5) // 10 µs .. 10 ms, uniform
	}
	after, err := ParseMetrics(vmScrape(set))
	if err != nil {
		t.Fatal(err)
	}
	sm := summarizeServer(before, after)
	if sm.Error != "" || sm.RSSBytes <= 0 || sm.GCPauseSeconds == nil {
		t.Fatalf("%+v", sm)
	}
	if _, ok := sm.GCPauseSeconds["1"]; !ok {
		t.Errorf("gc quantiles %v", sm.GCPauseSeconds)
	}
	j := sm.JournalFsync
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > want*0.1 {
			t.Errorf("%s: got %g, want %g", what, got, want)
		}
	}
	if j.Count != 1000 {
		t.Errorf("count %v, want 1000 (the run only)", j.Count)
	}
	near("sum", j.Sum, 5.005)
	near("p50", j.P50, 0.005)
	near("p90", j.P90, 0.009)
	near("p99", j.P99, 0.0099)
	near("max", j.Max, 0.01)
}

func TestSummarizeServerPrometheusBuckets(t *testing.T) {
	before, _ := ParseMetrics([]byte(`
cpafeed_journal_fsync_seconds_bucket{le="0.001"} 10
cpafeed_journal_fsync_seconds_bucket{le="0.01"} 10
cpafeed_journal_fsync_seconds_bucket{le="0.1"} 10
cpafeed_journal_fsync_seconds_bucket{le="+Inf"} 10
cpafeed_journal_fsync_seconds_sum 0.005
cpafeed_journal_fsync_seconds_count 10
process_cpu_seconds_total 1.5
`))
	after, _ := ParseMetrics([]byte(`
# TYPE cpafeed_journal_fsync_seconds histogram
cpafeed_journal_fsync_seconds_bucket{le="0.001"} 10
cpafeed_journal_fsync_seconds_bucket{le="0.01"} 60
cpafeed_journal_fsync_seconds_bucket{le="0.1"} 109
cpafeed_journal_fsync_seconds_bucket{le="+Inf"} 110
cpafeed_journal_fsync_seconds_sum 2.5
cpafeed_journal_fsync_seconds_count 110
process_resident_memory_bytes 5e+07
process_cpu_seconds_total 4
`))
	sm := summarizeServer(before, after)
	if sm.CPUSeconds != 2.5 {
		t.Errorf("CPU seconds %v, want 2.5 (the run only)", sm.CPUSeconds)
	}
	j := sm.JournalFsync
	if j.Count != 100 || math.Abs(j.Sum-2.495) > 1e-9 {
		t.Fatalf("%+v", j)
	}
	// 50 in (1ms, 10ms], 49 in (10ms, 100ms], 1 above.
	if math.Abs(j.P50-0.01) > 1e-9 || math.Abs(j.P90-(0.01+0.09*40/49)) > 1e-9 || j.Max != 0.1 {
		t.Fatalf("quantiles %+v", j)
	}
	if sm.RSSBytes != 5e7 || !strings.Contains(sm.Error, "go_gc_duration_seconds") {
		t.Fatalf("%+v", sm)
	}
}

func FuzzParseMetrics(f *testing.F) {
	set := metrics.NewSet()
	set.NewHistogram("cpafeed_journal_fsync_seconds").Update(0.002)
	set.NewCounter(`cpafeed_requests_total{path="/v1/score"}`).Inc()
	f.Add(vmScrape(set))
	f.Add([]byte("m{le=\"+Inf\"} 1\nm_sum 2\n# x\n"))
	f.Add([]byte(`a{b="c\"d",e="f"} NaN 123`))
	if seeds, _ := filepath.Glob("testdata/metrics/*.txt"); len(seeds) > 0 {
		for _, s := range seeds {
			b, err := os.ReadFile(s)
			if err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		samples, err := ParseMetrics(text)
		if err != nil {
			return
		}
		for _, s := range samples {
			if s.Name == "" {
				t.Fatalf("sample without a name from %q", text)
			}
		}
		sm := summarizeServer(samples, samples)
		if _, err := (&Report{Server: sm, Total: &KindReport{}}).JSON(); err != nil {
			t.Fatalf("report of %q does not encode: %v", text, err)
		}
	})
}

func TestMetricsFixtures(t *testing.T) {
	f := func(file string, count, rss float64) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("testdata/metrics", file))
		if err != nil {
			t.Fatal(err)
		}
		samples, err := ParseMetrics(b)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		sm := summarizeServer(nil, samples)
		if sm.JournalFsync == nil || sm.JournalFsync.Count != count || sm.JournalFsync.P99 <= 0 || sm.JournalFsync.P50 > sm.JournalFsync.P99 {
			t.Errorf("%s: fsync %+v", file, sm.JournalFsync)
		}
		if rss >= 0 && sm.RSSBytes != rss {
			t.Errorf("%s: rss %v", file, sm.RSSBytes)
		}
	}
	f("prometheus.txt", 45, 8.4312064e+07)
	f("victoriametrics.txt", 7, -1)
}
