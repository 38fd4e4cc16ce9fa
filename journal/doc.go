// Package journal is cpafeed's durable log: length-prefixed, CRC32-C checked
// records in segment files, appended with group commit (concurrent appends
// share one fsync), replayed at start, and snapshots that let the log be
// trimmed. A record is opaque bytes to it; it imports nothing of cpafeed.
//
// # Use
//
//	j, err := journal.Open(opts)              // finds segments, reads nothing
//	rep, err := j.Replay(snapshotLSN, apply)  // verifies, truncates a torn tail
//	lsn, epoch, err := j.Append(rec, undo)    // queues rec, no disk wait
//	err = j.Wait(lsn, epoch)                  // durable, or an error: answer 503
//
// Restart = load the newest snapshot that reads back intact (OpenSnapshots,
// ReadSnapshot; on ErrCorruptSnapshot discard and try the next older one),
// then Replay from its LSN. Trimming = Rotate (returns L), WriteSnapshot(L)
// of the state holding exactly the records < L, RemoveBefore(L).
//
// # Records and LSNs
//
// Every record gets an LSN, a uint64 sequence number starting at 1 (0 means
// none) and increasing by one per record. A failed flush drops every record
// not yet acknowledged (the failed batch and those queued behind it), calls
// their undo functions, and rolls the LSN counter back, so the LSNs on disk
// stay contiguous; the failure epoch (Tail, Wait) tells a waiter holding a
// dropped LSN apart from a later record that reuses it.
//
// # On-disk format
//
// Segments are Dir/journal/<first LSN, 20 digits>.wal. A segment is a run of
// frames with no file header, the first carrying the LSN in the file name,
// each following one the next LSN. A frame (little endian) is a 28-byte
// header, then the payload:
//
//	0  magic        C5 4A 52 01 ("\xC5JR" and format version 1)
//	4  kind         1 data record, 2 gap marker (payload: 8-byte count of
//	                LSNs lost in a repair, starting at this frame's LSN)
//	5  reserved     3 zero bytes
//	8  length       uint32 payload bytes
//	12 payload CRC  CRC32-C (Castagnoli) of the payload
//	16 LSN          uint64
//	24 header CRC   CRC32-C of bytes 0..24
//
// The separate header checksum lets a reader trust the length before it
// reads the payload and lets Repair resynchronise after bad bytes by
// scanning for the magic and checking candidate headers. A torn write
// (short header or payload), a zeroed tail (preallocated or sparse blocks
// after a crash: the magic is not zero) and random corruption all fail a
// check. A frame is accepted only if both checksums verify and its LSN is
// the one expected; bad bytes at the end of the last segment, with nothing
// valid after them, are a torn tail and truncated; anywhere else they are
// ErrCorrupt, or with Options.Repair are cut out (rewriting the segment via
// a .tmp file, with a gap marker for lost LSNs so that the next Replay runs
// clean). Dir/journal/LOCK is flock'ed by the process that has the journal
// open.
//
// Snapshots are Dir/snapshots/snapshot-<LSN, 20 digits>.zst, covering the
// records with LSN < LSN: a 40-byte header (magic "CPAFSNAP", version 1,
// LSN, creation time, CRC32-C), a zstd stream of the content, and a 40-byte
// trailer (magic "CPAFSEND", content length, compressed length, xxhash64 of
// the content, CRC32-C). They are written as .tmp, fsynced, renamed, and the
// directory fsynced; the newest two are kept.
//
// # Guarantees per fsync mode
//
// "always" (default): Wait returns nil only after the records were written
// and fdatasync'ed (segment creations are followed by a directory fsync).
// An acknowledged record survives a process crash and a power loss (given a
// disk that honours flushes). Concurrent callers share one write and one
// fsync per flush; there is no added delay, a flush starts as soon as the
// previous one ends.
//
// "interval": Wait returns after write(2) handed the records to the kernel;
// the flusher fdatasyncs every FsyncInterval (and before leaving a segment).
// An acknowledged record survives kill -9 of the process, but a power loss
// can lose the last interval of acknowledged records (Replay then truncates
// the torn tail). A failed periodic fsync is logged, counted and retried;
// one that fails when leaving a full segment fails that flush instead, so
// that only the last segment can ever have a torn tail.
//
// In both modes a failed write or fsync fails the unacknowledged records
// (undo called, Wait errors), the segment is truncated back to its last good
// size, and later appends are tried normally, so ingest recovers by itself
// when disk space returns.
//
// # Lifetimes and locking
//
// The rec passed to Replay's fn is valid only during the call. Append
// copies rec. undo runs on the flusher goroutine without journal locks held,
// before the epoch moves; it must not call Wait, Rotate or Close. Lock order
// for callers: their own lock, then the journal's (Append and Tail under
// the caller's lock are fine; Wait must be called without it).
//
// Metrics: cpafeed_journal_records_total, _bytes_total (frame bytes
// written), _flushes_total, _errors_total, _fsync_seconds, _disk_bytes (a
// gauge every open Journal adds its size deltas to), and the snapshot
// counters cpafeed_journal_snapshots_total, _snapshot_errors_total,
// _snapshot_seconds, _snapshot_bytes.
package journal
