package bidder

import (
	"errors"
	"time"
)

// Config tunes the server side of scoring. It is passed by value to
// NewService; zero fields take the defaults below.
type Config struct {
	// SnapshotInterval is the least time between two builds of the snapshot
	// for one set of allowed campaigns: a poll within it gets the cached
	// snapshot (or a 304) even when the model has a newer version. A build
	// of 100 000 nodes costs about 0.2 s of a core (BenchmarkSnapshotBuild100k)
	// and the model publishes a version every model.refresh_interval.
	// Default 10s.
	SnapshotInterval time.Duration `yaml:"snapshot_interval"`
	// MaxImps is the most imps of a bid request POST /v1/score accepts (a
	// 400 naming imp beyond). The server sets it from exposures.max_imps.
	// Default (0) signals.DefaultMaxImps, 32.
	MaxImps int `yaml:"-"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = 10 * time.Second
	}
	return c
}

// Validate reports every problem of c (after WithDefaults).
func (c Config) Validate() []error {
	var errs []error
	if c.SnapshotInterval < 0 {
		errs = append(errs, errors.New("bidder.snapshot_interval: negative"))
	}
	return errs
}
