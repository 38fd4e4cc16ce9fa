package journal

import (
	"fmt"
	"log/slog"
	"time"
)

// Fsync modes (Options.Fsync).
const (
	// FsyncAlways acknowledges a record only after the write and an fsync of
	// its segment file returned: an acknowledged record survives a crash of
	// the process and of the machine (power loss).
	FsyncAlways = "always"
	// FsyncInterval acknowledges a record after write(2) handed it to the
	// operating system and fsyncs every FsyncInterval: an acknowledged record
	// survives kill -9 of the process, but up to one interval of records can
	// be lost when the machine loses power.
	FsyncInterval = "interval"
)

// Defaults of Options.
const (
	DefaultDir            = "data"
	DefaultFsyncInterval  = 100 * time.Millisecond
	DefaultSegmentBytes   = 64 << 20
	DefaultMaxRecordBytes = 64 << 20
	// maxRecordLimit bounds MaxRecordBytes: the frame stores the length in 32
	// bits, and a record is copied into memory whole.
	maxRecordLimit = 1 << 30
)

// Options configure a Journal. The zero value of every field means its
// default.
type Options struct {
	// Dir is the data directory. Segment files live in Dir/journal/,
	// snapshots (WriteSnapshot) in Dir/snapshots/. Created if missing.
	// Default "data" (relative to the working directory).
	Dir string `yaml:"dir"`
	// Fsync is when Wait reports a record durable: "always" (default; after
	// fsync) or "interval" (after write(2); fsync every FsyncInterval).
	// Empty means "always".
	Fsync string `yaml:"fsync"`
	// FsyncInterval is how often written records are fsynced in "interval"
	// mode. Default 100ms; zero means the default. Ignored in "always" mode.
	FsyncInterval time.Duration `yaml:"fsync_interval"`
	// SegmentBytes is the size in bytes after which the next flush starts a
	// new segment file. A segment can exceed it by one group-commit batch.
	// Default 64 MiB; zero means the default.
	SegmentBytes int64 `yaml:"segment_bytes"`
	// MaxRecordBytes is the largest record Append accepts, in bytes.
	// Default 64 MiB, at most 1 GiB; zero means the default. Replay reads
	// records of any size that are already on disk.
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// Repair makes Replay keep every intact record when it finds a corrupt
	// record in the middle of the log: the bad bytes are cut out of the
	// segment file (replaced by a gap marker if records were lost) and listed
	// in the ReplayReport. Default false: Replay refuses with ErrCorrupt so an
	// operator can look first. A torn tail is always truncated, whatever this
	// says.
	Repair bool `yaml:"repair"`
	// Logger receives warnings (truncated tails, repairs) and flush errors.
	// Nil means slog.Default().
	Logger *slog.Logger `yaml:"-"`
}

// WithDefaults returns o with every zero field set to its default.
func (o Options) WithDefaults() Options {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.Fsync == "" {
		o.Fsync = FsyncAlways
	}
	if o.FsyncInterval == 0 {
		o.FsyncInterval = DefaultFsyncInterval
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports every problem of o (after WithDefaults) at once.
func (o Options) Validate() []error {
	var errs []error
	if o.Fsync != FsyncAlways && o.Fsync != FsyncInterval {
		errs = append(errs, fmt.Errorf("journal.fsync: %q is not one of %q, %q", o.Fsync, FsyncAlways, FsyncInterval))
	}
	if o.FsyncInterval < 0 {
		errs = append(errs, fmt.Errorf("journal.fsync_interval: %s is negative", o.FsyncInterval))
	}
	if o.SegmentBytes < 0 {
		errs = append(errs, fmt.Errorf("journal.segment_bytes: %d is negative", o.SegmentBytes))
	}
	if o.MaxRecordBytes < 0 || o.MaxRecordBytes > maxRecordLimit {
		errs = append(errs, fmt.Errorf("journal.max_record_bytes: %d is not within 0..%d", o.MaxRecordBytes, maxRecordLimit))
	}
	return errs
}
