package journal

import "github.com/VictoriaMetrics/metrics"

// Histogram buckets (upper bounds, seconds; Prometheus "le" buckets): an
// fsync takes tens of microseconds on a fast SSD and can stall for seconds
// on a saturated disk; a snapshot takes milliseconds to tens of seconds.
var (
	fsyncBuckets    = []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10}
	snapshotBuckets = []float64{10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10, 25, 60, 120}
)

var (
	recordsTotal = metrics.NewCounter("cpafeed_journal_records_total")
	bytesTotal   = metrics.NewCounter("cpafeed_journal_bytes_total")
	fsyncSeconds = metrics.NewPrometheusHistogramExt("cpafeed_journal_fsync_seconds", fsyncBuckets)
	flushesTotal = metrics.NewCounter("cpafeed_journal_flushes_total")
	errorsTotal  = metrics.NewCounter("cpafeed_journal_errors_total")
	// diskBytes is the size of the segment files of every open Journal in
	// the process. Each Journal adds its deltas (writes, truncations,
	// removals) as they happen and subtracts its total on Close, so the
	// gauge needs no callback into a Journal and no registration per
	// instance.
	diskBytes = metrics.NewGauge("cpafeed_journal_disk_bytes", nil)

	snapshotsTotal         = metrics.NewCounter("cpafeed_journal_snapshots_total")
	snapshotErrorsTotal    = metrics.NewCounter("cpafeed_journal_snapshot_errors_total")
	snapshotSeconds        = metrics.NewPrometheusHistogramExt("cpafeed_journal_snapshot_seconds", snapshotBuckets)
	snapshotCompressedSize = metrics.NewGauge("cpafeed_journal_snapshot_bytes", nil)
)
