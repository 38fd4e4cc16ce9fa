package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// ReplayReport describes what Replay read and repaired.
type ReplayReport struct {
	Records  int   // records passed to fn (LSN >= from)
	Bytes    int64 // their payload bytes
	Skipped  int   // valid records read before from (not passed to fn)
	Segments int   // segment files read
	// NextLSN is the LSN the next Append gets.
	NextLSN uint64
	// TruncatedBytes were cut from the end of the last segment: a torn,
	// zeroed or garbage tail with nothing valid after it (a crash during a
	// write). Such records were never acknowledged in "always" mode.
	TruncatedBytes int64
	// Dropped lists what Repair cut out of the middle of the log.
	Dropped []DroppedRange
	// GapLSNs counts LSNs that an earlier repair marked as lost.
	GapLSNs uint64
	// Passed lists corrupt parts that hold only records before the replay
	// start (a snapshot covers them): read past with a warning, neither an
	// error nor repaired. A replay from an earlier LSN would stop there.
	Passed   []DroppedRange
	Duration time.Duration
}

// DroppedRange is one repaired place of the log.
type DroppedRange struct {
	Segment string // segment file
	Offset  int64  // where the bad bytes started in it
	Bytes   int64  // how many bytes were dropped (0: only LSNs were missing)
	LSN     uint64 // the first missing LSN
	Records uint64 // how many LSNs (records) are missing there
}

// CorruptError is a corrupt or missing part in the middle of the log: valid
// records follow it, so it is not a torn tail. It matches ErrCorrupt.
type CorruptError struct {
	Segment string // segment file
	Offset  int64  // offset of the bad bytes
	LSN     uint64 // LSN expected there
	Bytes   int64  // bad bytes
	Records uint64 // LSNs missing
}

func (e *CorruptError) Error() string {
	what := fmt.Sprintf("%d bad bytes", e.Bytes)
	if e.Bytes == 0 {
		what = "missing records"
	}
	return fmt.Sprintf("journal: corrupt record in segment %s at offset %d, LSN %d: %s, %d records lost, and valid records follow; "+
		"start with journal.repair: true to keep every intact record and drop the bad ones", e.Segment, e.Offset, e.LSN, what, e.Records)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// callbackError carries an error returned by Replay's fn through the scan.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }

// Replay verifies the log and calls fn (may be nil) for every record with
// LSN >= from, in LSN order; rec is valid only during the call. Segments
// whose records are all < from are not read. An error from fn stops Replay
// and is returned.
//
// A torn, zeroed or garbage tail of the last segment is truncated away with
// a warning. A corrupt part with valid records after it returns a
// *CorruptError (ErrCorrupt) unless Options.Repair: then the intact records
// are all kept, the bad bytes are cut out of the file and listed in the
// report. LSNs from..first-1 missing before the first segment count as such
// a part too. A corrupt part whose records all lie before from is only
// reported (ReplayReport.Passed) and logged: the snapshot the replay starts
// from covers them.
//
// After a successful Replay, Append continues after the last good record,
// or at from if the log ends before it (a snapshot covers the records the
// log lacks). Replay can be retried after an error, but not called once
// Append was.
func (j *Journal) Replay(from uint64, fn func(lsn uint64, rec []byte) error) (ReplayReport, error) {
	start := time.Now()
	j.mu.Lock()
	switch {
	case j.closing:
		j.mu.Unlock()
		return ReplayReport{}, ErrClosed
	case j.ready:
		j.mu.Unlock()
		return ReplayReport{}, errors.New("journal: Replay already succeeded")
	}
	j.mu.Unlock()
	if from == 0 {
		from = 1
	}
	if j.curF != nil { // a failed earlier Replay left it open
		j.curF.Close()
		j.cur, j.curF = nil, nil
	}
	var rep ReplayReport
	j.segMu.Lock()
	segs := slices.Clone(j.segs)
	j.segMu.Unlock()

	first := 0
	for i, s := range segs {
		if s.first <= from {
			first = i
		}
	}
	expected := from
	if len(segs) > 0 && segs[0].first > from {
		// The log starts after from: records from..segs[0].first-1 are gone.
		a := anomaly{lsn: from, lost: segs[0].first - from}
		if !j.opts.Repair {
			return rep, &CorruptError{Segment: segs[0].path, LSN: from, Records: a.lost}
		}
		if err := j.writeGapSegment(from, a.lost); err != nil {
			return rep, err
		}
		rep.Dropped = append(rep.Dropped, DroppedRange{Segment: segs[0].path, LSN: from, Records: a.lost})
		j.log.Warn("journal: repair: records missing before the first segment, marked as lost", "segment", segs[0].path, "first_lsn", from, "records", a.lost)
	}
	var buf []byte // the read window, shared by the segments
	for i := first; i < len(segs); i++ {
		s := segs[i]
		last := i == len(segs)-1
		limit := uint64(noLimit)
		if !last {
			limit = segs[i+1].first
		}
		next, f, err := j.replaySegment(s, limit, last, from, fn, &rep, &buf)
		if err != nil {
			return rep, err
		}
		expected = next
		if last {
			j.cur, j.curF = s, f
		}
	}
	rep.NextLSN = max(expected, from)
	if expected < from && len(segs) > 0 {
		j.log.Info("journal: the log ends before the replay start; appending continues there in a new segment", "log_next_lsn", expected, "from", from)
	}

	j.curNext = expected
	j.rotate = false
	j.broken = false
	j.written, j.synced = rep.NextLSN-1, rep.NextLSN-1
	j.mu.Lock()
	j.nextLSN = rep.NextLSN
	j.acked, j.durable, j.applied = rep.NextLSN-1, rep.NextLSN-1, rep.NextLSN-1
	j.ready = true
	j.mu.Unlock()
	go j.run()

	rep.Duration = time.Since(start)
	j.log.Info("journal: replayed", "records", rep.Records, "skipped", rep.Skipped, "segments", rep.Segments,
		"next_lsn", rep.NextLSN, "truncated_bytes", rep.TruncatedBytes, "dropped", len(rep.Dropped), "duration", rep.Duration)
	return rep, nil
}

// replaySegment scans one segment, repairs or truncates it as needed and
// returns the LSN expected after it. The last segment's file is returned
// open for appending.
func (j *Journal) replaySegment(s *segment, limit uint64, last bool, from uint64, fn func(uint64, []byte) error, rep *ReplayReport, buf *[]byte) (uint64, file, error) {
	flag := os.O_RDONLY
	if last {
		flag = os.O_RDWR
	}
	f, err := j.fs.OpenFile(s.path, flag, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot open segment: %w", err)
	}
	rep.Segments++
	var anomalies []anomaly
	onRecord := func(r *record) error {
		if r.kind == kindGap {
			n := binary.LittleEndian.Uint64(r.payload)
			rep.GapLSNs += n
			j.log.Warn("journal: records marked lost by an earlier repair", "segment", s.path, "first_lsn", r.lsn, "records", n)
			return nil
		}
		if r.lsn < from {
			rep.Skipped++
			return nil
		}
		rep.Records++
		rep.Bytes += int64(len(r.payload))
		if fn != nil {
			if err := fn(r.lsn, r.payload); err != nil {
				return &callbackError{err}
			}
		}
		return nil
	}
	onAnomaly := func(a anomaly) error {
		if a.lsn+a.lost <= from && !j.opts.Repair {
			rep.Passed = append(rep.Passed, DroppedRange{Segment: s.path, Offset: a.off, Bytes: a.bytes, LSN: a.lsn, Records: a.lost})
			j.log.Warn("journal: a corrupt part of the log before the replay start, covered by the snapshot: read past it (the older snapshot could not be used with it; --repair cuts it out)",
				"segment", s.path, "offset", a.off, "bytes", a.bytes, "first_lsn", a.lsn, "records", a.lost, "from", from)
			return nil
		}
		if !j.opts.Repair {
			return &CorruptError{Segment: s.path, Offset: a.off, LSN: a.lsn, Bytes: a.bytes, Records: a.lost}
		}
		anomalies = append(anomalies, a)
		rep.Dropped = append(rep.Dropped, DroppedRange{Segment: s.path, Offset: a.off, Bytes: a.bytes, LSN: a.lsn, Records: a.lost})
		j.log.Warn("journal: repair: dropping a corrupt part of the log", "segment", s.path, "offset", a.off, "bytes", a.bytes, "first_lsn", a.lsn, "records", a.lost)
		return nil
	}
	r := newSegReader(f, s.size)
	r.buf = (*buf)[:0]
	next, goodEnd, err := scanSegment(r, s.first, limit, last, onRecord, onAnomaly)
	*buf = r.buf
	if err != nil {
		f.Close()
		var ce *callbackError
		if errors.As(err, &ce) {
			return 0, nil, ce.err
		}
		if _, ok := err.(*CorruptError); ok {
			return 0, nil, err
		}
		return 0, nil, fmt.Errorf("cannot read segment %s: %w", s.path, err)
	}
	if goodEnd < s.size && last {
		rep.TruncatedBytes += s.size - goodEnd
		j.log.Warn("journal: truncating a torn tail of the last segment (a write interrupted by a crash)",
			"segment", s.path, "offset", goodEnd, "bytes", s.size-goodEnd, "next_lsn", next)
	}
	if len(anomalies) > 0 {
		f, err = j.rewriteSegment(s, r, f, anomalies, goodEnd, last)
		if err != nil {
			return 0, nil, err
		}
	} else if goodEnd < s.size {
		if err := f.Truncate(goodEnd); err != nil {
			f.Close()
			return 0, nil, fmt.Errorf("cannot truncate segment %s: %w", s.path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return 0, nil, fmt.Errorf("cannot fsync segment %s: %w", s.path, err)
		}
		j.setSize(s, goodEnd)
	}
	if !last && f != nil {
		f.Close()
		f = nil
	}
	return next, f, nil
}

func (j *Journal) setSize(s *segment, size int64) {
	j.segMu.Lock()
	delta := size - s.size
	s.size = size
	j.segMu.Unlock()
	j.addDisk(delta)
}

// rewriteSegment writes a copy of segment s without the anomalies' bad
// bytes (a gap marker where LSNs are lost), up to goodEnd, and renames it
// over s. It closes f and returns the new file (open for appending if last).
func (j *Journal) rewriteSegment(s *segment, r *segReader, f file, anomalies []anomaly, goodEnd int64, last bool) (file, error) {
	defer f.Close()
	tmp := s.path + ".repair.tmp"
	out, err := j.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot create repaired segment: %w", err)
	}
	var woff int64
	write := func(b []byte) error {
		_, err := out.WriteAt(b, woff)
		woff += int64(len(b))
		return err
	}
	copyRange := func(from, to int64) error {
		for from < to {
			n := int(min(readWindow, to-from))
			b, err := r.at(from, n)
			if err != nil {
				return err
			}
			if err := write(b); err != nil {
				return err
			}
			from += int64(n)
		}
		return nil
	}
	err = func() error {
		var pos int64
		for _, a := range anomalies {
			if err := copyRange(pos, a.off); err != nil {
				return err
			}
			if a.lost > 0 {
				if err := write(appendGap(nil, a.lsn, a.lost)); err != nil {
					return err
				}
			}
			pos = a.off + a.bytes
		}
		if err := copyRange(pos, goodEnd); err != nil {
			return err
		}
		return out.Sync()
	}()
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err == nil {
		err = j.fs.SyncDir(j.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("cannot write repaired segment %s: %w", s.path, err)
	}
	j.setSize(s, woff)
	if !last {
		return nil, nil
	}
	nf, err := j.fs.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot reopen repaired segment: %w", err)
	}
	return nf, nil
}

// writeGapSegment creates a segment holding only a gap marker for
// first..first+count-1 (records missing before the first segment).
func (j *Journal) writeGapSegment(first, count uint64) error {
	path := filepath.Join(j.dir, segmentName(first))
	b := appendGap(nil, first, count)
	f, err := j.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err == nil {
		_, err = f.WriteAt(b, 0)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = j.fs.SyncDir(j.dir)
	}
	if err != nil {
		return fmt.Errorf("cannot write gap segment %s: %w", path, err)
	}
	j.segMu.Lock()
	j.segs = append([]*segment{{first: first, path: path, size: int64(len(b))}}, j.segs...)
	j.segMu.Unlock()
	j.addDisk(int64(len(b)))
	return nil
}
