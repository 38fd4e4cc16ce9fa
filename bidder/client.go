package bidder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// ClientConfig configures a Client. Zero fields take the defaults below.
type ClientConfig struct {
	// URL is the server's base URL, e.g. "http://127.0.0.1:8080" or
	// "https://cpafeed.example.com". Required.
	URL string `yaml:"url"`
	// Token is the bidder's bearer token. Required.
	Token string `yaml:"token"`
	// Timeout bounds one scoring call: waiting for a connection, sending,
	// and reading the answer (a context deadline, when earlier, wins).
	// Default 100ms.
	Timeout time.Duration `yaml:"timeout"`
	// SnapshotTimeout bounds one snapshot download. Default 60s.
	SnapshotTimeout time.Duration `yaml:"snapshot_timeout"`
	// MaxConns is the most connections kept to the server. Default 512.
	MaxConns int `yaml:"max_conns"`
	// MaxIdle closes a keep-alive connection idle this long. Default 30s.
	MaxIdle time.Duration `yaml:"max_idle"`
	// MaxSnapshotBytes bounds a snapshot, compressed and after
	// decompression, in bytes. Default 1 GiB.
	MaxSnapshotBytes int64 `yaml:"max_snapshot_bytes"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c ClientConfig) WithDefaults() ClientConfig {
	if c.Timeout == 0 {
		c.Timeout = 100 * time.Millisecond
	}
	if c.SnapshotTimeout == 0 {
		c.SnapshotTimeout = 60 * time.Second
	}
	if c.MaxConns == 0 {
		c.MaxConns = 512
	}
	if c.MaxIdle == 0 {
		c.MaxIdle = 30 * time.Second
	}
	if c.MaxSnapshotBytes == 0 {
		c.MaxSnapshotBytes = 1 << 30
	}
	return c
}

// Client calls a cpafeed server's bidder API over HTTP (fasthttp, pooled
// keep-alive connections). It is safe for concurrent use.
type Client struct {
	cfg     ClientConfig
	hc      *fasthttp.HostClient
	host    string
	auth    string
	parsers fastjson.ParserPool
}

// NewClient returns a client of the server at cfg.URL (taken WithDefaults).
func NewClient(cfg ClientConfig) (*Client, error) {
	cfg = cfg.WithDefaults()
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("bidder: url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("bidder: url %q: want http://HOST[:PORT] or https://HOST[:PORT]", cfg.URL)
	}
	if cfg.Token == "" {
		return nil, errors.New("bidder: token: required")
	}
	if cfg.Timeout < 0 || cfg.SnapshotTimeout < 0 || cfg.MaxConns < 0 || cfg.MaxIdle < 0 || cfg.MaxSnapshotBytes < 0 {
		return nil, errors.New("bidder: timeouts and limits must be > 0 (0 = default)")
	}
	addr := u.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		if u.Scheme == "https" {
			addr += ":443"
		} else {
			addr += ":80"
		}
	}
	c := &Client{
		cfg:  cfg,
		host: u.Host,
		auth: "Bearer " + cfg.Token,
		hc: &fasthttp.HostClient{
			Addr:                     addr,
			IsTLS:                    u.Scheme == "https",
			Name:                     "cpafeed-bidder-client",
			MaxConns:                 cfg.MaxConns,
			MaxIdleConnDuration:      cfg.MaxIdle,
			MaxConnWaitTimeout:       cfg.Timeout,
			MaxResponseBodySize:      int(min(cfg.MaxSnapshotBytes, 1<<31-1)),
			NoDefaultUserAgentHeader: false,
		},
	}
	return c, nil
}

// ScoreOptions selects what a scoring call scores.
type ScoreOptions struct {
	// Campaigns to score; none: every campaign the bidder may score.
	Campaigns []string
	// Thompson adds to each score a draw from the segment's posterior
	// (explore=thompson), and bids on it for the campaign's explore share
	// of the imps (Score.Explored).
	Thompson bool
	// Pace is the bidder's budget pacer multiplier for every campaign of
	// the call (pace=), applied before shading: in (0, 1]; 0 = none. A
	// budget pacer may only lower bids below what CPA control allows.
	Pace float64
	// FirstPrice says the imp of a features call (ScoreFeatures,
	// Scorer.ScoreImp) is sold in a first-price auction (at=1): bids are
	// shaded. A bid request says it itself (at).
	FirstPrice bool
}

// Score posts an OpenRTB 2.5/2.6 BidRequest (JSON) to POST /v1/score for
// the given campaigns (none: all the bidder may score). An error answer is
// an *apierr.Error carrying the status (400 malformed request, 403 a token
// that is not a bidder's, 404 a campaign unknown or not the bidder's).
func (c *Client) Score(ctx context.Context, bidRequest []byte, campaigns ...string) (*Answer, error) {
	return c.ScoreWith(ctx, bidRequest, ScoreOptions{Campaigns: campaigns})
}

// ScoreWith is Score with options.
func (c *Client) ScoreWith(ctx context.Context, bidRequest []byte, opts ScoreOptions) (*Answer, error) {
	var q []byte
	if len(opts.Campaigns) > 0 {
		q = append(q, "campaigns="...)
		for i, id := range opts.Campaigns {
			if i > 0 {
				q = append(q, ',')
			}
			q = append(q, url.QueryEscape(id)...)
		}
	}
	if opts.Thompson {
		q = appendParam(q, "explore", "thompson")
	}
	if opts.Pace > 0 {
		q = appendParam(q, "pace", strconv.FormatFloat(opts.Pace, 'g', -1, 64))
	}
	var a *Answer
	err := c.do(ctx, fasthttp.MethodPost, "/v1/score", q, bidRequest, c.cfg.Timeout, func(resp *fasthttp.Response) error {
		p := c.parsers.Get()
		defer c.parsers.Put(p)
		var err error
		a, err = decodeAnswer(p, resp.Body())
		return err
	})
	return a, err
}

// ScoreFeatures asks GET /v1/score for one imp given by its features
// (names of signals.FeatureNames, e.g. "publisher", "bundle", "genre",
// "metro", "devicetype"). An unknown feature name is a 400.
func (c *Client) ScoreFeatures(ctx context.Context, features map[string]string, opts ScoreOptions) (*FeatureAnswer, error) {
	var q []byte
	if len(opts.Campaigns) > 0 {
		q = appendParam(q, "campaigns", strings.Join(opts.Campaigns, ","))
	}
	if opts.Thompson {
		q = appendParam(q, "explore", "thompson")
	}
	if opts.Pace > 0 {
		q = appendParam(q, "pace", strconv.FormatFloat(opts.Pace, 'g', -1, 64))
	}
	if opts.FirstPrice {
		q = appendParam(q, "at", "1")
	}
	for k, v := range features {
		q = appendParam(q, k, v)
	}
	var a *FeatureAnswer
	err := c.do(ctx, fasthttp.MethodGet, "/v1/score", q, nil, c.cfg.Timeout, func(resp *fasthttp.Response) error {
		p := c.parsers.Get()
		defer c.parsers.Put(p)
		var err error
		a, err = decodeFeatureAnswer(p, resp.Body())
		return err
	})
	return a, err
}

// Snapshot downloads GET /v1/model/snapshot and decodes it. With since > 0
// it is nil (and no error) when the server's model version is still since.
func (c *Client) Snapshot(ctx context.Context, since uint64) (*Snapshot, error) {
	var q []byte
	if since > 0 {
		q = appendParam(q, "since", strconv.FormatUint(since, 10))
	}
	var sn *Snapshot
	err := c.do(ctx, fasthttp.MethodGet, "/v1/model/snapshot", q, nil, c.cfg.SnapshotTimeout, func(resp *fasthttp.Response) error {
		if resp.StatusCode() == fasthttp.StatusNotModified {
			return nil
		}
		var err error
		sn, err = ParseSnapshot(resp.Body(), c.cfg.MaxSnapshotBytes)
		return err
	})
	return sn, err
}

func appendParam(q []byte, k, v string) []byte {
	if len(q) > 0 {
		q = append(q, '&')
	}
	q = append(q, url.QueryEscape(k)...)
	q = append(q, '=')
	return append(q, url.QueryEscape(v)...)
}

// do runs one request; read is called with a 2xx or 304 answer.
func (c *Client) do(ctx context.Context, method, path string, query, body []byte, timeout time.Duration, read func(*fasthttp.Response) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	uri := req.URI()
	uri.SetScheme("http")
	if c.hc.IsTLS {
		uri.SetScheme("https")
	}
	uri.SetHost(c.host)
	uri.SetPath(path)
	uri.SetQueryStringBytes(query)
	req.Header.SetMethod(method)
	req.Header.Set("Authorization", c.auth)
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	if err := c.hc.DoDeadline(req, resp, deadline); err != nil {
		return fmt.Errorf("bidder: %s %s: %w", method, path, err)
	}
	st := resp.StatusCode()
	if st/100 != 2 && st != fasthttp.StatusNotModified {
		p := c.parsers.Get()
		defer c.parsers.Put(p)
		return decodeError(p, st, resp.Body())
	}
	return read(resp)
}

// Close closes the client's idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }
