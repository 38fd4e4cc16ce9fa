package conversions

import (
	"fmt"
	"net/netip"
	"time"
)

// Config configures the Service. It is passed by value; zero fields take the
// defaults of WithDefaults.
type Config struct {
	// Datasets maps each dataset id (Meta's pixel id) to its owning advertiser.
	// Filled by the server from the tenants config; a dataset absent here is
	// refused (403) on every path. Required, non-empty.
	Datasets map[string]string `yaml:"datasets"`

	// DedupWindow is how long an event is remembered for deduplication by
	// (dataset, event_name, event_id) or fingerprint, measured on the server
	// clock from its arrival. Default 48h (Meta's window). Entries live at
	// least this long and at most DedupWindow*(1+1/DedupGenerations).
	DedupWindow time.Duration `yaml:"dedup_window"`
	// DedupGenerations is how many time generations the window is cut into;
	// expiry drops one whole generation at a time. More generations keep
	// entries closer to the window but cost one more map probe per new
	// event. Default 8 (6h generations for 48h); range 1..64.
	DedupGenerations int `yaml:"dedup_generations"`

	// MaxEvents is the most events one request may carry. Default 1000
	// (Meta's limit).
	MaxEvents int `yaml:"max_events"`
	// MaxAge is how far in the past event_time may be. Default 168h (7 days,
	// Meta's limit).
	MaxAge time.Duration `yaml:"max_age"`
	// MaxAgePhysicalStore replaces MaxAge for action_source physical_store.
	// Default 1488h (62 days, Meta's limit).
	MaxAgePhysicalStore time.Duration `yaml:"max_age_physical_store"`
	// MaxFuture is how far in the future event_time may be (client clocks
	// drift). Default 10m.
	MaxFuture time.Duration `yaml:"max_future"`

	// TrustedProxies are the CIDRs (e.g. "10.0.0.0/8") of the load balancers
	// whose X-Forwarded-For the pixel believes. Default none: the pixel uses
	// the connection's address.
	TrustedProxies []string `yaml:"trusted_proxies"`

	// MaxEventNames bounds the distinct event names tracked in the stats of
	// one dataset; further names are counted under "(other)". Default 100.
	MaxEventNames int `yaml:"max_event_names"`

	// LDUStates are the data_processing_options_state codes that Limited
	// Data Use covers, with data_processing_options_country 1 (the US): an
	// LDU event of such a state has its identifiers discarded, an LDU event
	// of another US state keeps them. Country or state 0 (or absent) means
	// "Meta geolocates", which cpafeed cannot do: restricted whatever this
	// list says. Default (nil or empty): [1000], California, the one state
	// code Meta publishes; list the codes of the other states LDU covers if
	// your integration sends them.
	LDUStates []int `yaml:"ldu_states"`

	// TestEventsKept is how many test events (batches sent with a
	// test_event_code) GET /v1/test_events shows per dataset, the newest.
	// Default 1000; -1 keeps none.
	TestEventsKept int `yaml:"test_events_kept"`
	// TestEventsTTL is how long a test event is shown. Default 1h.
	TestEventsTTL time.Duration `yaml:"test_events_ttl"`

	// Now is the clock. Default time.Now. Not configurable from YAML.
	Now func() time.Time `yaml:"-"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.DedupWindow == 0 {
		c.DedupWindow = 48 * time.Hour
	}
	if c.DedupGenerations == 0 {
		c.DedupGenerations = 8
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = 1000
	}
	if c.MaxAge == 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.MaxAgePhysicalStore == 0 {
		c.MaxAgePhysicalStore = 62 * 24 * time.Hour
	}
	if c.MaxFuture == 0 {
		c.MaxFuture = 10 * time.Minute
	}
	if c.MaxEventNames == 0 {
		c.MaxEventNames = 100
	}
	if len(c.LDUStates) == 0 {
		c.LDUStates = []int{1000}
	}
	if c.TestEventsKept == 0 {
		c.TestEventsKept = 1000
	}
	if c.TestEventsTTL == 0 {
		c.TestEventsTTL = time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every problem of c (after WithDefaults) at once.
func (c Config) Validate() []error {
	var errs []error
	if len(c.Datasets) == 0 {
		errs = append(errs, fmt.Errorf("datasets: at least one dataset is required"))
	}
	for id, adv := range c.Datasets {
		if id == "" || adv == "" {
			errs = append(errs, fmt.Errorf("datasets: dataset %q has an empty id or advertiser", id))
		}
	}
	if c.DedupWindow < time.Minute {
		errs = append(errs, fmt.Errorf("dedup_window: %v is shorter than 1m", c.DedupWindow))
	}
	if c.DedupGenerations < 1 || c.DedupGenerations > 64 {
		errs = append(errs, fmt.Errorf("dedup_generations: %d is not in 1..64", c.DedupGenerations))
	}
	if c.MaxEvents < 1 || c.MaxEvents > maxEventsLimit {
		errs = append(errs, fmt.Errorf("max_events: %d is not in 1..%d", c.MaxEvents, maxEventsLimit))
	}
	if c.MaxAge <= 0 || c.MaxAgePhysicalStore <= 0 || c.MaxFuture < 0 {
		errs = append(errs, fmt.Errorf("max_age, max_age_physical_store, max_future: must be positive"))
	}
	if c.MaxEventNames < 1 {
		errs = append(errs, fmt.Errorf("max_event_names: %d is below 1", c.MaxEventNames))
	}
	for _, st := range c.LDUStates {
		if st <= 0 {
			errs = append(errs, fmt.Errorf("ldu_states: %d is not a state code (1000 is California)", st))
		}
	}
	if c.TestEventsKept < -1 || c.TestEventsKept > 100000 {
		errs = append(errs, fmt.Errorf("test_events_kept: %d is not in -1..100000", c.TestEventsKept))
	}
	if c.TestEventsTTL < 0 {
		errs = append(errs, fmt.Errorf("test_events_ttl: %v is negative", c.TestEventsTTL))
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			errs = append(errs, fmt.Errorf("trusted_proxies: %q is not a CIDR: %w", p, err))
		}
	}
	return errs
}

// maxEventsLimit caps MaxEvents: the journal record counts fit easily, and a
// batch's detail list stays readable.
const maxEventsLimit = 10000
