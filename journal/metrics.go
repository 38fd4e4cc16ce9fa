package journal

import "github.com/VictoriaMetrics/metrics"

var (
	recordsTotal = metrics.NewCounter("cpafeed_journal_records_total")
	bytesTotal   = metrics.NewCounter("cpafeed_journal_bytes_total")
	fsyncSeconds = metrics.NewHistogram("cpafeed_journal_fsync_seconds")
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
	snapshotSeconds        = metrics.NewHistogram("cpafeed_journal_snapshot_seconds")
	snapshotCompressedSize = metrics.NewGauge("cpafeed_journal_snapshot_bytes", nil)
)
