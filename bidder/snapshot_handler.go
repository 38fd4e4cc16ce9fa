package bidder

import (
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/signals"
)

var (
	snapshotsBuilt       = metrics.NewCounter(`cpafeed_bidder_snapshots_built_total`)
	snapshotsSent        = metrics.NewCounter(`cpafeed_bidder_snapshots_sent_total`)
	snapshotsNotModified = metrics.NewCounter(`cpafeed_bidder_snapshots_not_modified_total`)
	snapshotSentBytes    = metrics.NewCounter(`cpafeed_bidder_snapshot_sent_bytes_total`)
	// snapshotBuild's buckets (seconds): ~120 k segments build in ~0.2 s.
	snapshotBuild = metrics.NewPrometheusHistogramExt(`cpafeed_bidder_snapshot_build_seconds`,
		[]float64{1e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10, 30})
)

// snapCache keeps the latest compressed snapshot per set of allowed
// campaigns (bidders allowed the same campaigns share one), so that many
// bidders polling one model version cost one build.
type snapCache struct {
	codec snapCodec
	mu    sync.Mutex
	m     map[string]*snapEntry // by allowed set
}

type snapEntry struct {
	mu      sync.Mutex // held while building
	version uint64
	built   time.Time
	data    []byte // immutable once published
}

// get returns the snapshot of t for bidder b, building it if the cached
// one for b's set of allowed campaigns is older than t and was built at
// least minAge before now.
func (c *snapCache) get(r *Rules, t *table, b signals.Bidder, now time.Time, minAge time.Duration) ([]byte, uint64, error) {
	// The key: what b may score among the configured campaigns, then among
	// every campaign of the model (which keeps campaigns no longer
	// configured).
	allow := make([]bool, len(r.camps))
	key := make([]byte, 0, len(r.camps)+8)
	for i := range r.camps {
		allow[i] = b.MayUse(r.camps[i].ID)
		key = append(key, boolByte(allow[i]))
	}
	t.est.Campaigns(func(id string) bool {
		key = append(key, boolByte(b.MayUse(id)))
		return true
	})
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*snapEntry{}
	}
	e := c.m[string(key)]
	if e == nil {
		e = &snapEntry{}
		c.m[string(key)] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.data != nil && (e.version >= t.est.Version() || now.Sub(e.built) < minAge) {
		return e.data, e.version, nil
	}
	start := time.Now()
	content, err := appendSnapshotContent(nil, r, t, allow, b.MayUse)
	if err != nil {
		return nil, 0, err
	}
	enc, err := c.codec.encoder()
	if err != nil {
		return nil, 0, err
	}
	e.data = enc.EncodeAll(content, make([]byte, 0, len(content)/4))
	e.version, e.built = t.est.Version(), now
	snapshotsBuilt.Inc()
	snapshotBuild.UpdateDuration(start)
	return e.data, e.version, nil
}

func notModified(ctx *fasthttp.RequestCtx, v uint64) error {
	snapshotsNotModified.Inc()
	ctx.Response.Header.Set(VersionHeader, strconv.FormatUint(v, 10))
	ctx.SetStatusCode(fasthttp.StatusNotModified)
	return nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// HandleSnapshot serves GET /v1/model/snapshot[?since=N] for bidder b: the
// zstd-compressed snapshot (see Snapshot) of the latest estimates of the
// campaigns b may score, with the chain and their bid rules; 304 Not
// Modified (no body) when the model version is still N, or when the
// snapshot of a newer version is not due yet (one build per set of allowed
// campaigns per Config.SnapshotInterval at most). The version is in the
// X-Cpafeed-Model-Version header. Snapshots are always whole (no deltas). A
// bidder that may score only some of the model's campaigns gets a snapshot
// of those only: nothing of another tenant, not even its campaign ids.
func (s *Service) HandleSnapshot(ctx *fasthttp.RequestCtx, b signals.Bidder) error {
	t := s.table()
	var since uint64
	if a := ctx.QueryArgs().Peek("since"); len(a) > 0 {
		var err error
		if since, err = strconv.ParseUint(string(a), 10, 64); err != nil {
			return apierr.BadRequest("since: %q is not a model version", a)
		}
		if since == t.est.Version() {
			return notModified(ctx, since)
		}
	}
	data, v, err := s.snaps.get(s.rules, t, b, s.now(), s.cfg.SnapshotInterval)
	if err != nil {
		return apierr.New(500, apierr.CodeInternal, "cannot build the snapshot").WithCause(err)
	}
	if since != 0 && since == v {
		return notModified(ctx, v) // nothing newer yet (SnapshotInterval)
	}
	ctx.Response.Header.Set(VersionHeader, strconv.FormatUint(v, 10))
	ctx.SetContentType(SnapshotContentType)
	ctx.Response.SetBodyRaw(data) // immutable: never changed once cached
	snapshotsSent.Inc()
	snapshotSentBytes.Add(len(data))
	return nil
}
