package load

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the result of Run, printed as a table and written as JSON.
type Report struct {
	Target string `json:"target"`
	Mode   string `json:"mode"` // "closed" or "open"
	// Spawned is set when the server ran in the load generator's process
	// (--spawn): its CPU figures then include the generator's.
	Spawned         bool           `json:"spawned,omitempty"`
	Concurrency     int            `json:"concurrency"`
	Rate            int            `json:"rate,omitempty"` // intended requests/s (open loop)
	DurationSeconds float64        `json:"duration_seconds"`
	ElapsedSeconds  float64        `json:"elapsed_seconds"`
	Scenario        string         `json:"scenario"`
	Seed            uint64         `json:"seed"`
	Mix             map[string]int `json:"mix"`
	// Kinds has one entry per request kind of the mix; Total sums them.
	Kinds map[string]*KindReport `json:"kinds"`
	Total *KindReport            `json:"total"`
	// Missed counts the intended requests of an open loop never sent
	// (the run stopped while hopelessly behind schedule).
	Missed uint64 `json:"missed,omitempty"`
	// ClientCPUSeconds is the CPU time (user + system) the load generator's
	// process used during the run (with --spawn it includes the server's);
	// 0 where not measured.
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
	// PrimeErrors counts failed POST /v1/bids sent before the run.
	PrimeErrors int `json:"prime_errors,omitempty"`
	// Server are the target's own figures from /metrics.
	Server *ServerMetrics `json:"server,omitempty"`
	// Baseline is the same load against a bare handler; Ratio is
	// Total.Throughput / Baseline.Total.Throughput.
	Baseline *Report `json:"baseline,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
}

// KindReport are the figures of one request kind.
type KindReport struct {
	Requests uint64 `json:"requests"`
	OK       uint64 `json:"ok"` // 2xx answers
	// Errors counts the failed requests by HTTP status ("503") or by
	// transport failure ("timeout", "conn_closed", "conn_refused",
	// "transport").
	Errors     map[string]uint64 `json:"errors"`
	Throughput float64           `json:"throughput_rps"`
	Latency    Latency           `json:"latency_ms"`
}

// Latency are latency quantiles in milliseconds.
type Latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

func newReport(opts Options, target string) *Report {
	r := &Report{
		Target: target, Mode: "closed", Concurrency: opts.Concurrency, Rate: opts.Rate,
		DurationSeconds: opts.Duration.Seconds(), Scenario: opts.Scenario.Name, Seed: opts.Seed,
		Mix: map[string]int{}, Kinds: map[string]*KindReport{}, Spawned: opts.Spawn != nil,
	}
	if opts.Rate > 0 {
		r.Mode = "open"
	}
	for k, v := range opts.Mix {
		if v > 0 {
			r.Mix[k] = v
		}
	}
	return r
}

func (r *Report) describe() string {
	var mix []string
	for _, k := range sortedKinds(r.Mix) {
		mix = append(mix, k+"="+strconv.Itoa(r.Mix[k]))
	}
	loop := fmt.Sprintf("closed loop, %d connections", r.Concurrency)
	if r.Mode == "open" {
		loop = fmt.Sprintf("open loop at %d req/s, %d connections", r.Rate, r.Concurrency)
	}
	return fmt.Sprintf("cpafeed bench: %s, %gs, mix %s, scenario %s seed %d", loop, r.DurationSeconds, strings.Join(mix, ","), r.Scenario, r.Seed)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// fill computes the figures from the workers' stats.
func (r *Report) fill(res *phaseResult) {
	r.ElapsedSeconds = res.elapsed.Seconds()
	r.ClientCPUSeconds = res.cpu.Seconds()
	r.Missed = res.missed
	var all histogram
	total := &KindReport{Errors: map[string]uint64{}}
	for k := range numKinds {
		var h histogram
		kr := &KindReport{Errors: map[string]uint64{}}
		used := false
		for _, ws := range res.stats {
			st := ws[k]
			if st == nil {
				continue
			}
			used = true
			h.merge(&st.hist)
			kr.Requests += st.requests.Load()
			for code, n := range st.status {
				if n == 0 {
					continue
				}
				if code/100 == 2 {
					kr.OK += n
				} else {
					kr.Errors[strconv.Itoa(code)] += n
				}
			}
			for c, n := range st.transport {
				if n > 0 {
					kr.Errors[transportNames[c]] += n
				}
			}
		}
		if !used {
			continue
		}
		all.merge(&h)
		kr.Throughput = float64(kr.Requests) / res.elapsed.Seconds()
		kr.Latency = latencyOf(&h)
		r.Kinds[Kind(k).String()] = kr
		total.Requests += kr.Requests
		total.OK += kr.OK
		for e, n := range kr.Errors {
			total.Errors[e] += n
		}
	}
	total.Throughput = float64(total.Requests) / res.elapsed.Seconds()
	total.Latency = latencyOf(&all)
	r.Total = total
}

func latencyOf(h *histogram) Latency {
	return Latency{
		Mean: ms(h.mean()), P50: ms(h.quantile(0.5)), P90: ms(h.quantile(0.9)),
		P99: ms(h.quantile(0.99)), P999: ms(h.quantile(0.999)), Max: ms(time.Duration(h.max.Load())),
	}
}

func fmtDuration(d time.Duration) string { return fmtMS(ms(d)) }

// fmtMS formats milliseconds with 3 significant digits.
func fmtMS(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + "s"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64) + "ms"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(v*1000, 'f', 0, 64) + "µs"
}

func fmtErrors(e map[string]uint64) string {
	if len(e) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, e[k]))
	}
	return strings.Join(parts, " ")
}

func (r *Report) writeTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\trequests\terrors\treq/s\tp50\tp90\tp99\tp99.9\tmax\t")
	row := func(name string, k *KindReport) {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n", name, k.Requests, fmtErrors(k.Errors), k.Throughput,
			fmtMS(k.Latency.P50), fmtMS(k.Latency.P90), fmtMS(k.Latency.P99), fmtMS(k.Latency.P999), fmtMS(k.Latency.Max))
	}
	for _, name := range sortedKinds(r.Mix) {
		if k := r.Kinds[name]; k != nil {
			row(name, k)
		}
	}
	row("total", r.Total)
	tw.Flush()
}

// write prints the final report.
func (r *Report) write(w io.Writer) {
	fmt.Fprintf(w, "\n%s\ntarget %s, %.1fs elapsed\n", r.describe(), r.Target, r.ElapsedSeconds)
	r.writeTable(w)
	if r.ClientCPUSeconds > 0 && r.Total.Requests > 0 {
		fmt.Fprintf(w, "load generator: %.2f s CPU, %.1f µs per request\n", r.ClientCPUSeconds, r.ClientCPUSeconds*1e6/float64(r.Total.Requests))
	}
	if r.Missed > 0 {
		fmt.Fprintf(w, "missed: %d intended requests never sent (the target fell too far behind)\n", r.Missed)
	}
	if r.PrimeErrors > 0 {
		fmt.Fprintf(w, "prime: %d of the POST /v1/bids sent before the run failed\n", r.PrimeErrors)
	}
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "server: rss %.1f MB (%.1f MB before)", s.RSSBytes/1e6, s.RSSBytesBefore/1e6)
		if s.CPUSeconds > 0 && r.Total.Requests > 0 && !r.Spawned {
			fmt.Fprintf(w, ", %.2f s CPU, %.1f µs per request", s.CPUSeconds, s.CPUSeconds*1e6/float64(r.Total.Requests))
		}
		if len(s.GCPauseSeconds) > 0 {
			fmt.Fprintf(w, ", gc pause p50 %s max %s, %.0f GCs during the run",
				fmtMS(s.GCPauseSeconds["0.5"]*1e3), fmtMS(s.GCPauseSeconds["1"]*1e3), s.GCs)
		}
		if j := s.JournalFsync; j != nil {
			fmt.Fprintf(w, ", journal fsync %.0f× p50 %s p99 %s max %s", j.Count, fmtMS(j.P50*1e3), fmtMS(j.P99*1e3), fmtMS(j.Max*1e3))
		}
		fmt.Fprintln(w)
		if s.Error != "" {
			fmt.Fprintf(w, "server metrics: %s\n", s.Error)
		}
	}
	if b := r.Baseline; b != nil {
		fmt.Fprintf(w, "\nbaseline: the same load against a bare fasthttp handler (fixed 200-byte body)\n")
		b.writeTable(w)
		fmt.Fprintf(w, "ratio target/baseline: %.3f (%.0f / %.0f req/s)\n", r.Ratio, r.Total.Throughput, b.Total.Throughput)
	}
}

// writeJSONFile writes the report as indented JSON.
func (r *Report) writeJSONFile(path string) error {
	b, err := json.MarshalIndent(r.sanitized(), "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode the report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot write the report: %w", err)
	}
	return nil
}

// sanitized replaces the NaN and infinite server figures, which JSON cannot
// carry, by 0.
func (r *Report) sanitized() *Report {
	c := *r
	fix := func(v *float64) {
		if math.IsNaN(*v) || math.IsInf(*v, 0) {
			*v = 0
		}
	}
	if r.Server != nil {
		s := *r.Server
		fix(&s.RSSBytes)
		fix(&s.RSSBytesBefore)
		fix(&s.GCs)
		fix(&s.CPUSeconds)
		if s.GCPauseSeconds != nil {
			m := map[string]float64{}
			for k, v := range s.GCPauseSeconds {
				fix(&v)
				m[k] = v
			}
			s.GCPauseSeconds = m
		}
		if s.JournalFsync != nil {
			j := *s.JournalFsync
			for _, p := range []*float64{&j.Count, &j.Sum, &j.P50, &j.P90, &j.P99, &j.Max} {
				fix(p)
			}
			s.JournalFsync = &j
		}
		c.Server = &s
	}
	if r.Baseline != nil {
		c.Baseline = r.Baseline.sanitized()
	}
	return &c
}

// JSON returns the report as JSON (the content of Options.JSONPath).
func (r *Report) JSON() ([]byte, error) { return json.MarshalIndent(r.sanitized(), "", "  ") }
