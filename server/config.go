package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cpafeed/cpafeed/bidder"
	"github.com/cpafeed/cpafeed/configs"
	"github.com/cpafeed/cpafeed/control"
	"github.com/cpafeed/cpafeed/conversions"
	"github.com/cpafeed/cpafeed/journal"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/shading"
	"github.com/cpafeed/cpafeed/signals"
)

// DefaultConfigPath is where `cpafeed serve` looks when --config is not given.
// When no file exists there the embedded copy (configs.Default) is used.
const DefaultConfigPath = "configs/cpafeed.yaml"

// Config is the whole configuration of a cpafeed server: one typed struct,
// loaded once, defaults in code (WithDefaults), every problem reported at once
// (Validate). Each package takes its own part by value.
type Config struct {
	// Listen is HOST:PORT of the HTTP server. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// DataDir holds the journal and snapshots. Default "./data".
	DataDir string `yaml:"data_dir"`

	Log      LogConfig      `yaml:"log"`
	HTTP     HTTPConfig     `yaml:"http"`
	Identity IdentityConfig `yaml:"identity"`

	// Journal is the durable log (its dir is always data_dir).
	Journal journal.Options `yaml:"journal"`
	// Conversions configures the Conversions API (its datasets come from
	// advertisers).
	Conversions conversions.Config `yaml:"conversions"`
	// Exposures configures remembered bids, exposures and the identity index.
	Exposures signals.ExposureConfig `yaml:"exposures"`
	// Snapshot configures the periodic and on-shutdown snapshots of the
	// whole state (the journal before them is then trimmed).
	Snapshot SnapshotConfig `yaml:"snapshot"`
	// Attribution configures the matching of conversions to exposures,
	// their credit and the lift measurement.
	Attribution conversions.AttributionConfig `yaml:"attribution"`
	// Holdout configures the household holdout of the campaigns' lift
	// measurement.
	Holdout HoldoutConfig `yaml:"holdout"`
	// Model configures the estimator (decay, priors, refresh schedule).
	Model model.Config `yaml:"model"`
	// Bidder configures scoring and model snapshots for embedded scorers.
	Bidder bidder.Config `yaml:"bidder"`
	// Control schedules the campaigns' CPA controllers (each campaign's
	// own settings are under its control:).
	Control control.Config `yaml:"control"`
	// Shading configures the first-price win-rate curves.
	Shading shading.Config `yaml:"shading"`

	// Segments is the backoff chain below the campaign, coarse to fine; each
	// level names one or more bid-request features. Default
	// [[publisher] [bundle] [genre] [metro]]. Used by model.structure
	// chain; the crossed model's cells are over the features of
	// model.effects instead (SegmentLevels).
	Segments [][]string `yaml:"segments"`

	Advertisers []Advertiser     `yaml:"advertisers"`
	Bidders     []Bidder         `yaml:"bidders"`
	Campaigns   []model.Campaign `yaml:"campaigns"`
}

// LogConfig configures log/slog.
type LogConfig struct {
	// Format is "text" (default) or "json".
	Format string `yaml:"format"`
	// Level is "debug", "info" (default), "warn" or "error".
	Level string `yaml:"level"`
}

// HTTPConfig holds the limits of the HTTP server. fasthttp reads a zero
// timeout as "unlimited"; here zero means "the default".
type HTTPConfig struct {
	// ReadTimeout bounds reading one request. Default 5s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing one answer. Default 5s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout bounds a keep-alive connection's wait for its next request.
	// Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxBodyBytes is the largest body as sent, in bytes (413 beyond).
	// Default 8 MiB.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// MaxDecompressedBytes is the largest body after gzip/zstd decompression,
	// in bytes (413 beyond). Default 32 MiB.
	MaxDecompressedBytes int `yaml:"max_decompressed_bytes"`
	// MaxConns is the most connections open at once (an idle keep-alive
	// connection counts); beyond it a new connection is answered 503 and
	// closed. Default: the process's open-file limit (RLIMIT_NOFILE) less a
	// reserve of an eighth of it (at least 64, at most 1024) for the journal,
	// snapshots and the process itself, at most 100000. A value above the
	// open-file limit is refused at start.
	MaxConns int `yaml:"max_conns"`
	// MaxInflight is the most ingest and report requests processed at once;
	// beyond it they are shed at once with 429 (Retry-After: 1) instead of
	// queueing. Default 1024.
	MaxInflight int `yaml:"max_inflight"`
	// MaxInflightScore is the same bound for bid-time requests (score, bids,
	// win and VAST beacons), which are shed last. Default 16384.
	MaxInflightScore int `yaml:"max_inflight_score"`
	// MaxConnsPerIP bounds the connections of one client address; beyond it
	// a new connection is answered 429 and closed. Default a quarter of
	// max_conns; -1 = no bound (e.g. behind a load balancer whose address
	// every connection has).
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
	// MaxInflateBytes bounds the memory that the bodies being decompressed
	// hold together (buffers and zstd windows), whoever sends them, in
	// bytes: a request whose body would cross it is shed with 429
	// (Retry-After: 1). At least twice max_decompressed_bytes (a buffer
	// growing to the limit is copied once more). Default 256 MiB.
	MaxInflateBytes int `yaml:"max_inflate_bytes"`

	// DrainDelay is how long, after SIGTERM or SIGINT, /readyz answers 503
	// "draining" while every request is still served, so that load
	// balancers stop sending new ones before the listener closes; then
	// in-flight requests finish, a snapshot is taken and the process exits.
	// A second signal cuts the wait short. Default 5s; 0 = none (nil: the
	// default, so that an explicit 0 can be told from an absent field).
	DrainDelay *time.Duration `yaml:"drain_delay"`

	// OpenFileLimit is the process's soft RLIMIT_NOFILE, read by WithDefaults
	// when zero (Go raises it to the hard limit at start); not configurable,
	// set only by tests.
	OpenFileLimit int `yaml:"-"`
	// maxConnsDefault says MaxConns was chosen by WithDefaults (for the log).
	maxConnsDefault bool
}

// IdentityConfig configures how identities are keyed.
type IdentityConfig struct {
	// Secret is the HMAC-SHA-256 key of every stored identity key. Required.
	Secret string `yaml:"secret"`
	// TCFVendorID, when > 0, must have TCF consent for an exposure under GDPR
	// to enter the identity index. Default 0 (purposes 1 and 7 only).
	TCFVendorID int `yaml:"tcf_vendor_id"`
	// HouseholdEIDSources are the user.eids sources (household graph
	// vendors) whose ids are household ids: they match a conversion's
	// household_id. Default none.
	HouseholdEIDSources []string `yaml:"household_eid_sources"`
}

// HoldoutConfig configures the household holdout: per campaign, a share of
// households is held out (the score answers "arm": "control" and bid_cpm 0;
// the bidder reports the auctions it held back as ghost exposures), and
// GET /v1/campaigns/{id}/lift compares the arms.
type HoldoutConfig struct {
	// Share is the holdout share of the campaigns that set no
	// holdout_share: the share of households held out, in [0, 0.5].
	// Default 0.05; 0 = no holdout.
	Share *float64 `yaml:"share"`
	// HouseholdCache is how many identities the server's household cache
	// keeps (about 40 bytes each; signals.Households), so that a household
	// keeps its arm across its devices, IP changes and an intermittent
	// household id; it should hold the identities of the households seen
	// within a campaign's span. Embedded scorers keep their own
	// (bidder.ScorerConfig.HouseholdCache). Default 1048576.
	HouseholdCache int `yaml:"household_cache"`
}

// DefaultHoldoutShare is the default holdout.share.
const DefaultHoldoutShare = 0.05

// holdoutKey is the holdout key derived from the identity secret: the
// HMAC of a fixed label under it. It is sent to embedded scorers in model
// snapshots; the secret is not, and the key does not give it away.
func holdoutKey(secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("cpafeed holdout key v1"))
	return m.Sum(nil)
}

// SnapshotConfig configures snapshots of the state.
type SnapshotConfig struct {
	// Interval between periodic snapshots. Default 10m.
	Interval time.Duration `yaml:"interval"`
	// Disable turns periodic and shutdown snapshots off: a start then
	// replays the whole journal, which is never trimmed. Default false.
	Disable bool `yaml:"disable"`
}

// Advertiser is a tenant that posts conversions.
type Advertiser struct {
	Name     string   `yaml:"name"`
	Token    string   `yaml:"token"`
	Datasets []string `yaml:"datasets"`
}

// Bidder is a tenant that scores and reports exposures.
type Bidder struct {
	Name  string `yaml:"name"`
	Token string `yaml:"token"`
	// Campaigns it may score and report for; empty means every campaign.
	Campaigns []string `yaml:"campaigns"`
	// WinNotices says whether the bidder points its win notices (burl/nurl)
	// at GET /v1/win: then every request it scores is remembered for its
	// win. A bidder that reports exposures with POST /v1/exposures instead
	// sets false and saves the memory and about a tenth of the CPU of each
	// score request. Default true.
	WinNotices *bool `yaml:"win_notices"`
	// WinSecret, when set, is the key with which the bidder signs its win
	// notices and VAST beacons: a win for a bid it remembered must carry
	// sig = hex HMAC-SHA-256(win_secret, auction "\n" imp "\n" campaign)
	// (signals.WinSigner), or it books nothing (counted). At least 16
	// bytes. Default none: unsigned win notices are accepted, and anyone
	// who learns an auction and imp id of the bidder's (every bidder in
	// that auction does) can book a win of it.
	WinSecret string `yaml:"win_secret"`
	// PreviousWinSecret is the bidder's win_secret before a rotation:
	// win notices and VAST beacons signed with it stay valid (nothing is
	// signed with it). To rotate, set win_secret to the new key and this to
	// the old one, restart, switch the bidder to the new key, and drop
	// this once the old URLs have stopped arriving (their ads have played:
	// a day is ample). At least 16 bytes; needs win_secret.
	PreviousWinSecret string `yaml:"previous_win_secret"`
}

// LoadConfig reads, expands, decodes, defaults and validates the file at
// path. When path is DefaultConfigPath and no such file exists, the embedded
// default is used. Every problem is reported in one error.
func LoadConfig(path string) (Config, error) {
	raw, err := readConfig(path)
	if err != nil {
		return Config{}, err
	}
	return ParseConfig(raw)
}

func readConfig(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && path == DefaultConfigPath {
		raw, err = configs.Default, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read config: %w", err)
	}
	return raw, nil
}

// ParseConfig is LoadConfig on bytes.
func ParseConfig(raw []byte) (Config, error) {
	c, errs := parseConfig(raw)
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

// parseConfig decodes, defaults and validates raw. Problems of the file
// (syntax aside: then nothing more can be read), of its environment
// variables and of its values are reported together.
func parseConfig(raw []byte) (Config, []error) {
	var c Config
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return Config{}, []error{fmt.Errorf("config: %w", err)}
	}
	// Unknown fields (typos) are found by a strict decode of the file as
	// written, so that their line numbers are right; values come from the
	// tree after ${VAR} expansion.
	var errs []error
	var strict Config
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var te *yaml.TypeError
	if err := dec.Decode(&strict); errors.As(err, &te) {
		for _, e := range te.Errors {
			if strings.Contains(e, "not found in type") {
				errs = append(errs, fmt.Errorf("config: %s", e))
			}
		}
	}
	errs = append(errs, expandEnv(&doc)...)
	if err := doc.Decode(&c); err != nil && len(doc.Content) > 0 {
		errs = append(errs, fmt.Errorf("config: %w", err))
	}
	c = c.WithDefaults()
	return c, append(errs, c.Validate()...)
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${NAME} and ${NAME:-default} in every scalar value (not
// in comments); an unset NAME without a default is a problem.
func expandEnv(n *yaml.Node) []error {
	var errs []error
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			sub := envRef.FindStringSubmatch(m)
			if v, ok := os.LookupEnv(sub[1]); ok && v != "" {
				return v
			}
			if sub[2] != "" {
				return sub[3]
			}
			errs = append(errs, fmt.Errorf("config: line %d: environment variable %s is not set", n.Line, sub[1]))
			return ""
		})
	}
	for _, c := range n.Content {
		errs = append(errs, expandEnv(c)...)
	}
	return errs
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	h := &c.HTTP
	if h.ReadTimeout == 0 {
		h.ReadTimeout = 5 * time.Second
	}
	if h.WriteTimeout == 0 {
		h.WriteTimeout = 5 * time.Second
	}
	if h.IdleTimeout == 0 {
		h.IdleTimeout = 60 * time.Second
	}
	if h.MaxBodyBytes == 0 {
		h.MaxBodyBytes = 8 << 20
	}
	if h.MaxDecompressedBytes == 0 {
		h.MaxDecompressedBytes = 32 << 20
	}
	if h.OpenFileLimit == 0 {
		h.OpenFileLimit = openFileLimit()
	}
	if h.MaxConns == 0 {
		h.MaxConns, h.maxConnsDefault = defaultMaxConns(h.OpenFileLimit), true
	}
	if h.MaxConnsPerIP == 0 {
		h.MaxConnsPerIP = max(h.MaxConns/4, 1)
	}
	if h.MaxInflateBytes == 0 {
		h.MaxInflateBytes = max(256<<20, 2*h.MaxDecompressedBytes)
	}
	if h.MaxInflight == 0 {
		h.MaxInflight = 1024
	}
	if h.MaxInflightScore == 0 {
		h.MaxInflightScore = 16384
	}
	if h.DrainDelay == nil {
		d := defaultDrainDelay
		h.DrainDelay = &d
	}
	c.Journal.Dir = c.DataDir
	c.Journal = c.Journal.WithDefaults()
	c.Conversions.Datasets = map[string]string{}
	for _, a := range c.Advertisers {
		for _, d := range a.Datasets {
			c.Conversions.Datasets[d] = a.Name
		}
	}
	c.Conversions = c.Conversions.WithDefaults()
	c.Exposures.TCFVendorID = c.Identity.TCFVendorID
	if c.Exposures.Index.Window == 0 {
		for _, cp := range c.Campaigns {
			c.Exposures.Index.Window = max(c.Exposures.Index.Window, cp.WithDefaults().Window)
		}
	}
	c.Exposures = c.Exposures.WithDefaults()
	c.Model = c.Model.WithDefaults()
	c.Bidder.MaxImps = c.Exposures.MaxImps // one limit for every reader of bid requests
	c.Bidder = c.Bidder.WithDefaults()
	c.Attribution = c.Attribution.WithDefaults()
	if c.Holdout.Share == nil {
		share := DefaultHoldoutShare
		c.Holdout.Share = &share
	}
	if c.Holdout.HouseholdCache == 0 {
		c.Holdout.HouseholdCache = signals.DefaultHouseholdCache
	}
	c.Control = c.Control.WithDefaults()
	c.Shading = c.Shading.WithDefaults()
	if c.Snapshot.Interval == 0 {
		c.Snapshot.Interval = 10 * time.Minute
	}
	if len(c.Segments) == 0 {
		c.Segments = [][]string{{"publisher"}, {"bundle"}, {"genre"}, {"metro"}}
	}
	bs := make([]Bidder, len(c.Bidders))
	for i, b := range c.Bidders {
		if b.WinNotices == nil {
			yes := true
			b.WinNotices = &yes
		}
		bs[i] = b
	}
	c.Bidders = bs
	cs := make([]model.Campaign, len(c.Campaigns))
	for i, cp := range c.Campaigns {
		if cp.Credit == "" {
			cp.Credit = c.Attribution.Credit
		}
		if cp.HoldoutShare == nil {
			share := *c.Holdout.Share
			cp.HoldoutShare = &share
		}
		cs[i] = cp.WithDefaults()
	}
	c.Campaigns = cs
	return c
}

// defaultDrainDelay is http.drain_delay's default: a few load balancer
// health checks (typically every 1-2 s, out after 2-3 failures).
const defaultDrainDelay = 5 * time.Second

// Drain returns http.drain_delay (the default when not set).
func (h HTTPConfig) Drain() time.Duration {
	if h.DrainDelay == nil {
		return defaultDrainDelay
	}
	return *h.DrainDelay
}

// SegmentLevels are the levels of the segment path exposures are counted
// under and bids are scored on: Segments for the chain, one level per
// dimension of the crossed model (model.Config.Dims, the features of
// model.effects).
func (c Config) SegmentLevels() [][]string {
	if c.Model.Structure != model.StructureCrossed {
		return c.Segments
	}
	var levels [][]string
	for _, d := range c.Model.Dims() {
		levels = append(levels, []string{d})
	}
	return levels
}

// Validate reports every problem of c, each naming its YAML path.
func (c Config) Validate() []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", path, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "not HOST:PORT: %v", err)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "must be text or json, not %q", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	for name, d := range map[string]time.Duration{"http.read_timeout": c.HTTP.ReadTimeout, "http.write_timeout": c.HTTP.WriteTimeout, "http.idle_timeout": c.HTTP.IdleTimeout} {
		if d < 0 {
			bad(name, "must be > 0")
		}
	}
	if c.HTTP.MaxBodyBytes < 0 || c.HTTP.MaxDecompressedBytes < 0 || c.HTTP.MaxConns < 0 ||
		c.HTTP.MaxInflight < 0 || c.HTTP.MaxInflightScore < 0 || c.HTTP.MaxConnsPerIP < -1 || c.HTTP.MaxInflateBytes < 0 {
		bad("http", "limits must be > 0 (max_conns_per_ip: -1 for no bound)")
	}
	if c.Exposures.MaxImps < 0 {
		bad("exposures.max_imps", "must be > 0")
	}
	if !(c.Exposures.MaxWinPriceCPM > 0) || math.IsInf(c.Exposures.MaxWinPriceCPM, 0) {
		bad("exposures.max_win_price_cpm", "must be a number > 0")
	}
	if c.HTTP.DrainDelay != nil && *c.HTTP.DrainDelay < 0 {
		bad("http.drain_delay", "must be >= 0 (0: no delay)")
	}
	if c.HTTP.MaxDecompressedBytes < c.HTTP.MaxBodyBytes {
		bad("http.max_decompressed_bytes", "must be >= max_body_bytes (%d)", c.HTTP.MaxBodyBytes)
	}
	if c.HTTP.MaxInflateBytes < 2*c.HTTP.MaxDecompressedBytes {
		bad("http.max_inflate_bytes", "must be >= twice max_decompressed_bytes (%d)", 2*c.HTTP.MaxDecompressedBytes)
	}
	if c.HTTP.OpenFileLimit > 0 && c.HTTP.MaxConns > c.HTTP.OpenFileLimit {
		bad("http.max_conns", "%d is above the process's open-file limit (RLIMIT_NOFILE) %d: lower it, or raise the limit (ulimit -n, systemd LimitNOFILE=); the default leaves a reserve below the limit", c.HTTP.MaxConns, c.HTTP.OpenFileLimit)
	}
	if c.Snapshot.Interval < 0 {
		bad("snapshot.interval", "must be > 0 (use snapshot.disable to turn snapshots off)")
	}
	if c.Identity.Secret == "" {
		bad("identity.secret", "required")
	}
	if c.Identity.TCFVendorID < 0 {
		bad("identity.tcf_vendor_id", "must be >= 0")
	}

	tokens := map[string]string{}
	token := func(path, t string) {
		if t == "" {
			bad(path, "required")
			return
		}
		if other, ok := tokens[t]; ok {
			bad(path, "same token as %s", other)
			return
		}
		tokens[t] = path
	}
	advertisers := map[string]bool{}
	datasets := map[string]string{}
	for i, a := range c.Advertisers {
		p := fmt.Sprintf("advertisers[%d]", i)
		if a.Name == "" {
			bad(p+".name", "required")
		} else if advertisers[a.Name] {
			bad(p+".name", "duplicate advertiser %q", a.Name)
		}
		advertisers[a.Name] = true
		token(p+".token", a.Token)
		if len(a.Datasets) == 0 {
			bad(p+".datasets", "at least one dataset id required")
		}
		for j, d := range a.Datasets {
			if d == "" || strings.ContainsAny(d, "/?&# ") {
				bad(fmt.Sprintf("%s.datasets[%d]", p, j), "invalid dataset id %q", d)
			}
			if other, ok := datasets[d]; ok {
				bad(fmt.Sprintf("%s.datasets[%d]", p, j), "dataset %q already belongs to advertiser %q", d, other)
			}
			datasets[d] = a.Name
		}
	}
	campaigns := map[string]bool{}
	for i, cp := range c.Campaigns {
		p := fmt.Sprintf("campaigns[%d]", i)
		switch {
		case cp.ID == "":
			bad(p+".id", "required")
		case strings.ContainsAny(cp.ID, "/,?&# "):
			bad(p+".id", "must not contain / , ? & # or spaces: %q", cp.ID)
		case campaigns[cp.ID]:
			bad(p+".id", "duplicate campaign %q", cp.ID)
		}
		campaigns[cp.ID] = true
		if !advertisers[cp.Advertiser] {
			bad(p+".advertiser", "unknown advertiser %q", cp.Advertiser)
		}
		if cp.Event == "" {
			bad(p+".event", "required")
		}
		if !(cp.TargetCPA > 0) {
			bad(p+".target_cpa", "must be > 0")
		}
		if len(cp.Currency) != 3 {
			bad(p+".currency", "must be an ISO 4217 code, not %q", cp.Currency)
		}
		if cp.Window <= 0 {
			bad(p+".window", "must be > 0")
		}
		if cp.Credit != model.CreditLastTouch && cp.Credit != model.CreditLinear && cp.Credit != model.CreditProbabilistic {
			bad(p+".credit", "must be last_touch, linear or probabilistic, not %q", cp.Credit)
		}
		if sh := cp.HoldoutShare; sh != nil && !(*sh >= 0 && *sh <= 0.5) {
			bad(p+".holdout_share", "must be in [0, 0.5], not %g", *sh)
		}
		if cp.FloorCPM < 0 || cp.CapCPM < 0 || (cp.CapCPM > 0 && cp.CapCPM < cp.FloorCPM) {
			bad(p+".cap_cpm", "floor_cpm and cap_cpm must be >= 0 with cap >= floor (0 = none)")
		}
		if !(cp.Pacing > 0) {
			bad(p+".pacing", "must be > 0")
		}
		if cp.BidOn != "cvr" && cp.BidOn != "cvr_lo" {
			bad(p+".bid_on", "must be cvr or cvr_lo, not %q", cp.BidOn)
		}
		if !(cp.PriorCVR > 0 && cp.PriorCVR < 1) {
			bad(p+".prior_cvr", "must be in (0, 1)")
		}
		for _, err := range cp.Control.Validate(p + ".control") {
			errs = append(errs, fmt.Errorf("config: %v", err))
		}
	}
	bidders := map[string]bool{}
	for i, b := range c.Bidders {
		p := fmt.Sprintf("bidders[%d]", i)
		if b.Name == "" {
			bad(p+".name", "required")
		} else if bidders[b.Name] {
			bad(p+".name", "duplicate bidder %q", b.Name)
		}
		bidders[b.Name] = true
		token(p+".token", b.Token)
		if b.WinSecret != "" && len(b.WinSecret) < 16 {
			bad(p+".win_secret", "at least 16 bytes, not %d", len(b.WinSecret))
		}
		if b.WinSecret != "" && b.WinSecret == b.Token {
			bad(p+".win_secret", "must differ from the token (it is written into ad markup code)")
		}
		switch {
		case b.PreviousWinSecret == "":
		case b.WinSecret == "":
			bad(p+".previous_win_secret", "set without win_secret (the new key a rotation moves to)")
		case len(b.PreviousWinSecret) < 16:
			bad(p+".previous_win_secret", "at least 16 bytes, not %d", len(b.PreviousWinSecret))
		case b.PreviousWinSecret == b.Token:
			bad(p+".previous_win_secret", "must differ from the token (it is written into ad markup code)")
		case b.PreviousWinSecret == b.WinSecret:
			bad(p+".previous_win_secret", "equals win_secret: a rotation needs a new key")
		}
		for j, id := range b.Campaigns {
			if !campaigns[id] {
				bad(fmt.Sprintf("%s.campaigns[%d]", p, j), "unknown campaign %q", id)
			}
		}
	}
	if _, err := signals.NewChain(c.Segments); err != nil {
		bad("segments", "%v", err)
	}
	if c.Model.Structure == model.StructureCrossed {
		for i, key := range c.Model.Effects {
			for j, f := range key {
				if _, ok := signals.FeatureByName(f); !ok {
					bad(fmt.Sprintf("model.effects[%d][%d]", i, j), "unknown feature %q (known: %s)", f, strings.Join(signals.FeatureNames(), ", "))
				}
			}
		}
	}
	if sh := c.Holdout.Share; sh != nil && !(*sh >= 0 && *sh <= 0.5) {
		bad("holdout.share", "must be in [0, 0.5], not %g", *sh)
	}
	if c.Holdout.HouseholdCache < 0 {
		bad("holdout.household_cache", "must be > 0")
	}
	for _, err := range c.Attribution.Validate() {
		bad("attribution", "%v", err)
	}
	if c.Attribution.LiftFeature != "" {
		if _, ok := signals.FeatureByName(c.Attribution.LiftFeature); !ok {
			bad("attribution.lift_feature", "unknown feature %q (known: %s)", c.Attribution.LiftFeature, strings.Join(signals.FeatureNames(), ", "))
		}
	}
	for _, err := range c.Journal.Validate() {
		bad("journal", "%v", err)
	}
	for _, err := range c.Conversions.Validate() {
		bad("conversions", "%v", err)
	}
	for _, err := range c.Bidder.Validate() {
		errs = append(errs, fmt.Errorf("config: %v", err))
	}
	for _, err := range c.Model.Validate() {
		bad("model", "%v", err)
	}
	for _, err := range append(c.Control.Validate(), c.Shading.Validate()...) {
		errs = append(errs, fmt.Errorf("config: %v", err))
	}
	return errs
}

// devCredentialsRefused is the refusal of New to listen on an address
// other than loopback with development credentials.
func (c Config) devCredentialsRefused() error {
	if dev := c.DevCredentials(); len(dev) > 0 && !IsLoopback(c.Listen) {
		return fmt.Errorf("refusing to listen on %s with development credentials (%s): set real ones, e.g. through environment variables", c.Listen, strings.Join(dev, ", "))
	}
	return nil
}

// DevCredentials lists the paths of configured values that are development
// defaults (tokens starting with "dev-" or those of the example configs,
// the default identity secret).
func (c Config) DevCredentials() []string {
	var out []string
	isDev := func(s string) bool {
		return strings.HasPrefix(s, "dev-") || s == "other-advertiser-token" || s == "other-bidder-token" || s == "other-bidder-win-secret"
	}
	if isDev(c.Identity.Secret) {
		out = append(out, "identity.secret")
	}
	for i, a := range c.Advertisers {
		if isDev(a.Token) {
			out = append(out, fmt.Sprintf("advertisers[%d].token", i))
		}
	}
	for i, b := range c.Bidders {
		if isDev(b.Token) {
			out = append(out, fmt.Sprintf("bidders[%d].token", i))
		}
		if isDev(b.WinSecret) {
			out = append(out, fmt.Sprintf("bidders[%d].win_secret", i))
		}
		if isDev(b.PreviousWinSecret) {
			out = append(out, fmt.Sprintf("bidders[%d].previous_win_secret", i))
		}
	}
	return out
}

// IsLoopback reports whether the listen address only accepts local
// connections (127.0.0.0/8, ::1 or "localhost").
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
