package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

var logSuppressed = metrics.NewCounter(`cpafeed_log_lines_suppressed_total`)

// rateLimited is a slog.Handler that lets at most burst WARN and ERROR
// lines with the same message through per period, and drops the rest,
// counting them: when a message's next line passes, it carries
// "suppressed": how many of its lines were dropped since the last one
// logged. A failing disk answers every ingest request with 503 and the
// journal logs every failed flush; without a bound that is two lines per
// request (6.4 MB in 20 s seen under load), which buries the log and may
// fill the disk that already failed. Messages are constant strings of
// cpafeed's code, so the table stays small; it is reset if it ever holds
// more than maxRateKeys. INFO and DEBUG lines pass untouched.
type rateLimited struct {
	next  slog.Handler
	state *rateState // shared by the handlers WithAttrs and WithGroup derive
}

type rateState struct {
	period time.Duration
	burst  int
	now    func() time.Time

	mu   sync.Mutex
	msgs map[string]*msgRate
}

type msgRate struct {
	start      time.Time // of the current period
	n          int       // lines of the period so far
	suppressed int       // dropped since the last line logged
}

const maxRateKeys = 4096

func newRateLimited(next slog.Handler, period time.Duration, burst int) *rateLimited {
	return &rateLimited{next: next, state: &rateState{period: period, burst: burst, now: time.Now, msgs: map[string]*msgRate{}}}
}

func (h *rateLimited) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *rateLimited) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	dropped, ok := h.state.allow(r.Level.String() + " " + r.Message)
	if !ok {
		logSuppressed.Inc()
		return nil
	}
	if dropped > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", dropped))
	}
	return h.next.Handle(ctx, r)
}

// allow reports whether a line of key may be logged now and, if so, how
// many of its lines were dropped before it.
func (s *rateState) allow(key string) (dropped int, ok bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.msgs[key]
	if m == nil {
		if len(s.msgs) >= maxRateKeys {
			clear(s.msgs)
		}
		m = &msgRate{start: now}
		s.msgs[key] = m
	}
	if now.Sub(m.start) >= s.period {
		m.start, m.n = now, 0
	}
	if m.n >= s.burst {
		m.suppressed++
		return 0, false
	}
	m.n++
	dropped, m.suppressed = m.suppressed, 0
	return dropped, true
}

func (h *rateLimited) WithAttrs(as []slog.Attr) slog.Handler {
	return &rateLimited{next: h.next.WithAttrs(as), state: h.state}
}

func (h *rateLimited) WithGroup(name string) slog.Handler {
	return &rateLimited{next: h.next.WithGroup(name), state: h.state}
}
