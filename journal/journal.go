package journal

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrCorrupt is matched (errors.Is) by the *CorruptError Replay returns
	// for a corrupt record in the middle of the log.
	ErrCorrupt = errors.New("journal: corrupt record")
	// ErrFlushFailed is matched by the errors of Wait (and Append, Rotate)
	// when a write or fsync failed: the records involved are not persisted
	// and their undo functions have been called.
	ErrFlushFailed = errors.New("journal: flush failed, records not persisted")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("journal: closed")
	// ErrNotReplayed is returned by Append and Rotate before Replay succeeded.
	ErrNotReplayed = errors.New("journal: Replay has not succeeded yet")
	// ErrTooLarge is returned by Append for a record over MaxRecordBytes.
	ErrTooLarge = errors.New("journal: record too large")
)

// failHistory is how many past flush failures Wait remembers exactly; a
// waiter whose epoch is older than that is failed (conservatively).
const failHistory = 64

// segment is one segment file.
type segment struct {
	first uint64 // LSN of its first record: its name
	path  string
	size  int64 // bytes; guarded by Journal.segMu
}

func segmentName(first uint64) string { return fmt.Sprintf("%020d.wal", first) }

// batch is a run of framed records waiting to be written together.
type batch struct {
	buf         []byte
	undos       []func()
	applies     []func() // in LSN order; only records that have one
	first, last uint64   // LSNs; n == 0 means empty
	n           int
}

func (b *batch) reset() {
	if cap(b.buf) > 16<<20 {
		b.buf = nil // do not keep a huge buffer after a burst
	}
	b.buf = b.buf[:0]
	clear(b.undos)
	b.undos = b.undos[:0]
	clear(b.applies)
	b.applies = b.applies[:0]
	b.first, b.last, b.n = 0, 0, 0
}

// failure is what Wait remembers of one failed flush.
type failure struct {
	epoch uint64 // the epoch it started
	acked uint64 // every LSN <= acked was acknowledged before it
	err   error
}

type rotateResult struct {
	next uint64
	err  error
}

// rotateReq asks the flusher to rotate; with a barrier, the applier runs it
// at the boundary (see Checkpoint).
type rotateReq struct {
	res     chan rotateResult
	barrier func(next uint64) error
	done    chan error
}

// Journal is an append-only log of opaque records with group commit. All
// methods are safe for concurrent use, except that Replay must not run
// concurrently with other methods.
type Journal struct {
	opts   Options
	log    *slog.Logger
	fs     fileSystem
	dir    string // Dir/journal
	lock   *os.File
	always bool

	segMu sync.Mutex
	segs  []*segment // sorted by first; the last one is the one appended to

	disk atomic.Int64 // bytes of this journal's segment files

	// Owned by the flusher goroutine once Replay succeeded.
	cur      *segment
	curF     file
	curNext  uint64 // LSN the current segment expects next
	rotate   bool   // the next flush starts a new segment
	broken   bool   // cur may hold bytes beyond cur.size: truncate before writing
	written  uint64 // last LSN written to a segment file
	synced   uint64 // last LSN fsynced
	spare    batch
	closeErr error

	kick        chan struct{}
	applyCh     chan applyBatch // flusher -> applier, in LSN order
	applierExit chan struct{}   // closed when the applier exits
	rotateCh    chan rotateReq
	closeCh     chan struct{}
	done        chan struct{}

	mu      sync.Mutex
	cond    sync.Cond
	pending batch
	nextLSN uint64
	acked   uint64 // durable for the ack: fsynced, or written in interval mode
	applied uint64 // Wait succeeds for LSN <= applied: acked, and its apply ran
	durable uint64 // fsynced
	epoch   uint64
	fails   [failHistory]failure
	failing bool
	ready   bool // Replay succeeded, the flusher runs
	closing bool
	closed  bool // the flusher has exited

	applierDone bool // the applier has exited
}

// Open opens (creating it if needed) the journal in opts.Dir/journal and
// finds its segment files. It reads no record: call Replay before Append.
// It takes an exclusive lock on the directory; Close releases it.
func Open(opts Options) (*Journal, error) {
	return open(opts, osFS{})
}

func open(opts Options, fsys fileSystem) (*Journal, error) {
	opts = opts.WithDefaults()
	if errs := opts.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	dir := filepath.Join(opts.Dir, "journal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create journal directory: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, err
	}
	j := &Journal{
		opts:        opts,
		log:         opts.Logger,
		fs:          fsys,
		dir:         dir,
		lock:        lock,
		always:      opts.Fsync == FsyncAlways,
		kick:        make(chan struct{}, 1),
		applyCh:     make(chan applyBatch, 64),
		applierExit: make(chan struct{}),
		rotateCh:    make(chan rotateReq),
		closeCh:     make(chan struct{}),
		done:        make(chan struct{}),
		nextLSN:     1,
	}
	j.cond.L = &j.mu
	if err := j.findSegments(); err != nil {
		lock.Close()
		return nil, err
	}
	return j, nil
}

// findSegments lists the segment files and removes leftovers of an
// interrupted repair.
func (j *Journal) findSegments() error {
	entries, err := os.ReadDir(j.dir)
	if err != nil {
		return fmt.Errorf("cannot list journal directory: %w", err)
	}
	var total int64
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			if err := os.Remove(filepath.Join(j.dir, name)); err != nil {
				return fmt.Errorf("cannot remove leftover %s: %w", name, err)
			}
			continue
		}
		base, ok := strings.CutSuffix(name, ".wal")
		if !ok || e.IsDir() {
			continue
		}
		first, err := strconv.ParseUint(base, 10, 64)
		if err != nil || first == 0 {
			return fmt.Errorf("journal directory %s: %s is not a segment name (<first LSN>.wal)", j.dir, name)
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("cannot stat segment %s: %w", name, err)
		}
		j.segs = append(j.segs, &segment{first: first, path: filepath.Join(j.dir, name), size: info.Size()})
		total += info.Size()
	}
	slices.SortFunc(j.segs, func(a, b *segment) int {
		if a.first < b.first {
			return -1
		}
		if a.first > b.first {
			return 1
		}
		return 0
	})
	j.addDisk(total)
	return nil
}

func (j *Journal) addDisk(delta int64) {
	if delta != 0 {
		j.disk.Add(delta)
		diskBytes.Add(float64(delta))
	}
}

// Append assigns rec the next LSN and queues a copy of it for the flusher;
// it does not wait for the disk. epoch is the failure epoch at that moment;
// pass both to Wait before acknowledging anything that depends on rec.
//
// undo (may be nil) is called by the journal if and only if rec is not
// persisted because a flush failed: it runs on the flusher goroutine, after
// the failed write or fsync and before the failure epoch is incremented and
// any waiter is woken. undo must not call Wait, Rotate or Close.
//
// Append fails fast with an ErrFlushFailed error while a failed flush is
// being rolled back.
func (j *Journal) Append(rec []byte, undo func()) (lsn, epoch uint64, err error) {
	return j.AppendApply(rec, undo, nil)
}

// AppendApply is Append with an apply function: once rec is durable, apply
// runs on the journal's applier goroutine, in LSN order with the applies of
// every other record, and Wait for rec returns only after it ran. This is how
// the in-memory state follows the log in exactly the order a replay will
// see: live and replayed state cannot diverge. apply must not call Append,
// Wait, Rotate or Close; it may take the caller's locks. It never runs for a
// record whose undo ran.
func (j *Journal) AppendApply(rec []byte, undo, apply func()) (lsn, epoch uint64, err error) {
	if len(rec) > j.opts.MaxRecordBytes {
		return 0, 0, fmt.Errorf("%w: %d bytes, the limit (journal.max_record_bytes) is %d", ErrTooLarge, len(rec), j.opts.MaxRecordBytes)
	}
	crc := crc32.Checksum(rec, castagnoli)
	j.mu.Lock()
	switch {
	case j.closing:
		j.mu.Unlock()
		return 0, 0, ErrClosed
	case !j.ready:
		j.mu.Unlock()
		return 0, 0, ErrNotReplayed
	case j.failing:
		j.mu.Unlock()
		return 0, 0, fmt.Errorf("%w: a failed flush is being rolled back", ErrFlushFailed)
	}
	lsn, epoch = j.nextLSN, j.epoch
	j.nextLSN++
	p := &j.pending
	wasEmpty := p.n == 0
	if wasEmpty {
		p.first = lsn
	}
	p.last = lsn
	p.n++
	p.buf = appendFrame(p.buf, kindData, lsn, rec, crc)
	if undo != nil {
		p.undos = append(p.undos, undo)
	}
	if apply != nil {
		p.applies = append(p.applies, apply)
	}
	j.mu.Unlock()
	if wasEmpty {
		select {
		case j.kick <- struct{}{}:
		default:
		}
	}
	return lsn, epoch, nil
}

// Tail returns the LSN of the last appended record (0 if none) and the
// current failure epoch. A caller that finds in-memory state which may stem
// from a record not yet durable (another request's dedup reservation) takes
// Tail under the lock of that state and waits for it with Wait.
func (j *Journal) Tail() (lsn, epoch uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.nextLSN - 1, j.epoch
}

// Wait blocks until every record <= lsn is durable (fsynced in "always"
// mode, written to the OS in "interval" mode) and its apply (AppendApply)
// ran, and returns nil. It returns an
// ErrFlushFailed error if a flush failed after epoch while a record <= lsn
// was not yet durable: such records are gone and their undo was called. It
// returns ErrClosed if the journal closed first.
func (j *Journal) Wait(lsn, epoch uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for {
		if epoch != j.epoch {
			if err := j.epochErrLocked(lsn, epoch); err != nil {
				return err
			}
			// Acknowledged before the failure: wait for its apply only.
			for lsn > j.applied && !j.applierDone {
				j.cond.Wait()
			}
			if lsn > j.applied {
				return ErrClosed
			}
			return nil
		}
		if lsn <= j.applied {
			return nil
		}
		if lsn >= j.nextLSN {
			return fmt.Errorf("journal: Wait(%d): no such record, the tail is %d", lsn, j.nextLSN-1)
		}
		if j.applierDone {
			return ErrClosed
		}
		j.cond.Wait()
	}
}

// epochErrLocked decides a Wait whose epoch is not the current one.
func (j *Journal) epochErrLocked(lsn, epoch uint64) error {
	if epoch > j.epoch {
		return fmt.Errorf("journal: Wait: epoch %d is newer than the current %d", epoch, j.epoch)
	}
	f := j.fails[(epoch+1)%failHistory]
	if f.epoch != epoch+1 {
		return fmt.Errorf("%w: more than %d flush failures since epoch %d", ErrFlushFailed, failHistory, epoch)
	}
	if lsn <= f.acked {
		return nil // acknowledged before the failure
	}
	return fmt.Errorf("%w: %w", ErrFlushFailed, f.err)
}

// Rotate flushes what is pending and closes the current segment, so that
// the next record starts a new segment file. It returns the LSN next at
// which the new segment starts: every record < next is durable in the
// closed segments (if no Append runs concurrently, next is the LSN the next
// Append gets). Use it before a snapshot covering the records < next, then
// RemoveBefore(next).
func (j *Journal) Rotate() (next uint64, err error) {
	req := rotateReq{res: make(chan rotateResult, 1)}
	if err := j.sendRotate(req); err != nil {
		return 0, err
	}
	r := <-req.res
	return r.next, r.err
}

// sendRotate hands a rotation request to the flusher.
func (j *Journal) sendRotate(req rotateReq) error {
	j.mu.Lock()
	switch {
	case j.closing:
		j.mu.Unlock()
		return ErrClosed
	case !j.ready:
		j.mu.Unlock()
		return ErrNotReplayed
	}
	j.mu.Unlock()
	select {
	case j.rotateCh <- req:
		return nil
	case <-j.done:
		return ErrClosed
	}
}

// Checkpoint rotates like Rotate and then runs fn(next) on the applier
// goroutine once every record < next is applied and before any later
// record's apply runs: fn sees the in-memory state exactly as of the
// records < next (a snapshot covering them). Appends and flushes go on
// while fn runs; only applies (and so Waits) of later records wait. fn must
// not call Append, Wait, Rotate, Checkpoint or Close.
func (j *Journal) Checkpoint(fn func(next uint64) error) (next uint64, err error) {
	req := rotateReq{res: make(chan rotateResult, 1), barrier: fn, done: make(chan error, 1)}
	if err := j.sendRotate(req); err != nil {
		return 0, err
	}
	r := <-req.res
	if r.err != nil {
		return 0, r.err
	}
	return r.next, <-req.done
}

// RemoveBefore deletes the segment files whose records all have LSN < lsn
// (a snapshot covers them). The last segment is never deleted, so the next
// LSN survives a restart.
func (j *Journal) RemoveBefore(lsn uint64) error {
	j.segMu.Lock()
	defer j.segMu.Unlock()
	n := 0
	var err error
	for n < len(j.segs)-1 && j.segs[n+1].first <= lsn {
		s := j.segs[n]
		if e := os.Remove(s.path); e != nil && !errors.Is(e, fs.ErrNotExist) {
			err = fmt.Errorf("cannot remove segment: %w", e)
			break
		}
		j.addDisk(-s.size)
		n++
	}
	if n == 0 {
		return err
	}
	j.segs = slices.Delete(j.segs, 0, n)
	if e := syncDir(j.dir); err == nil && e != nil {
		err = fmt.Errorf("cannot sync journal directory: %w", e)
	}
	return err
}

// Stats describes a journal.
type Stats struct {
	Segments  int    // segment files
	DiskBytes int64  // their total size
	Tail      uint64 // LSN of the last appended record
	Acked     uint64 // Wait succeeds up to this LSN
	Durable   uint64 // fsynced up to this LSN (Acked in "always" mode)
	Epoch     uint64 // failure epoch: how many flushes failed
}

// Stats returns the current figures.
func (j *Journal) Stats() Stats {
	j.segMu.Lock()
	n := len(j.segs)
	j.segMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	return Stats{Segments: n, DiskBytes: j.disk.Load(), Tail: j.nextLSN - 1, Acked: j.acked, Durable: j.durable, Epoch: j.epoch}
}

// Close flushes and fsyncs what is pending, closes the files and releases
// the directory lock. Waiters of records it could not persist get an error.
// Calling it again returns nil.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closing {
		j.mu.Unlock()
		return nil
	}
	j.closing = true
	running := j.ready
	j.mu.Unlock()
	if running {
		close(j.closeCh)
		<-j.done
	} else if j.curF != nil {
		j.closeErr = j.curF.Close()
	}
	j.addDisk(-j.disk.Load())
	if err := j.lock.Close(); j.closeErr == nil && err != nil {
		j.closeErr = err
	}
	return j.closeErr
}

// run is the flusher: the only goroutine that writes segment files.
func (j *Journal) run() {
	go j.applier()
	defer func() {
		close(j.applyCh)
		<-j.applierExit
		close(j.done)
	}()
	var tick <-chan time.Time
	if !j.always {
		t := time.NewTicker(j.opts.FsyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		var rot rotateReq
		select {
		case <-j.kick:
		case <-tick:
			j.syncInterval()
			continue
		case rot = <-j.rotateCh:
		case <-j.closeCh:
		}
		j.mu.Lock()
		b := j.pending
		j.pending = j.spare
		boundary := j.nextLSN
		closing := j.closing
		j.mu.Unlock()
		var err error
		if b.n > 0 {
			err = j.flush(&b)
		}
		b.reset()
		j.spare = b
		if rot.res != nil {
			if err == nil {
				err = j.closeSegment(true)
			}
			if err == nil && rot.barrier != nil {
				j.applyCh <- applyBatch{barrier: rot.barrier, next: boundary, done: rot.done}
			}
			rot.res <- rotateResult{next: boundary, err: err}
		}
		if closing {
			if cerr := j.closeSegment(false); err == nil {
				err = cerr
			}
			if j.curF != nil { // closeSegment failed before closing it
				j.curF.Close()
				j.curF = nil
			}
			j.closeErr = err
			j.mu.Lock()
			j.closed = true
			j.cond.Broadcast()
			j.mu.Unlock()
			return
		}
	}
}

// flush writes one batch (and fsyncs it in "always" mode). On failure it
// rolls the batch (and everything queued behind it) back and returns the
// error.
func (j *Journal) flush(b *batch) error {
	if j.broken {
		if err := j.curF.Truncate(j.cur.size); err != nil {
			return j.fail(b, fmt.Errorf("cannot truncate %s back to %d bytes: %w", j.cur.path, j.cur.size, err))
		}
		j.broken = false
	}
	if j.curF == nil || j.rotate || j.curNext != b.first || (j.cur.size > 0 && j.cur.size >= j.opts.SegmentBytes) {
		if err := j.startSegment(b.first); err != nil {
			return j.fail(b, err)
		}
	}
	n, err := j.curF.WriteAt(b.buf, j.cur.size)
	if err != nil {
		j.truncateBack()
		return j.fail(b, fmt.Errorf("cannot write %d bytes to %s (%d written): %w", len(b.buf), j.cur.path, n, err))
	}
	if j.always {
		start := time.Now()
		err := j.curF.Sync()
		fsyncSeconds.UpdateDuration(start)
		if err != nil {
			j.truncateBack()
			return j.fail(b, fmt.Errorf("cannot fsync %s: %w", j.cur.path, err))
		}
	}
	j.segMu.Lock()
	j.cur.size += int64(len(b.buf))
	j.segMu.Unlock()
	j.addDisk(int64(len(b.buf)))
	j.curNext = b.last + 1
	j.written = b.last
	if j.always {
		j.synced = b.last
	}
	j.mu.Lock()
	j.acked = b.last
	j.durable = j.synced
	j.mu.Unlock()
	j.applyCh <- applyBatch{fns: append([]func(){}, b.applies...), last: b.last}
	recordsTotal.Add(b.n)
	bytesTotal.Add(len(b.buf))
	flushesTotal.Inc()
	return nil
}

// applyBatch is what the flusher hands the applier after a durable flush.
type applyBatch struct {
	fns  []func()
	last uint64

	barrier func(next uint64) error // a Checkpoint's function, instead of fns
	next    uint64
	done    chan error
}

// applier runs the applies of durable records in LSN order and then lets
// their waiters go.
func (j *Journal) applier() {
	defer close(j.applierExit)
	for ab := range j.applyCh {
		if ab.barrier != nil {
			ab.done <- ab.barrier(ab.next)
			continue
		}
		for _, fn := range ab.fns {
			fn()
		}
		j.mu.Lock()
		j.applied = ab.last
		j.cond.Broadcast()
		j.mu.Unlock()
	}
	j.mu.Lock()
	j.applierDone = true
	j.cond.Broadcast()
	j.mu.Unlock()
}

// truncateBack cuts the current segment back to its last good size after a
// failed write or fsync; if that fails too, the next flush retries first.
func (j *Journal) truncateBack() {
	if err := j.curF.Truncate(j.cur.size); err != nil {
		j.broken = true
		j.log.Error("journal: cannot truncate segment after a failed flush; retrying before the next write", "segment", j.cur.path, "size", j.cur.size, "err", err)
	}
}

// startSegment creates the segment whose first record is LSN first and
// makes it the current one. The old one is fsynced first, so that only the last segment can ever
// have a torn tail.
func (j *Journal) startSegment(first uint64) error {
	if err := j.syncCurrent(); err != nil {
		return err
	}
	path := filepath.Join(j.dir, segmentName(first))
	f, err := j.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("cannot create segment: %w", err)
	}
	if err := j.fs.SyncDir(j.dir); err != nil {
		f.Close()
		// A leftover empty file is harmless: the next try truncates and
		// reuses it, as the LSNs roll back to first.
		os.Remove(path)
		return fmt.Errorf("cannot sync journal directory: %w", err)
	}
	if j.curF != nil {
		if err := j.curF.Close(); err != nil {
			j.log.Warn("journal: cannot close segment", "segment", j.cur.path, "err", err)
		}
	}
	s := &segment{first: first, path: path}
	j.segMu.Lock()
	if n := len(j.segs); n > 0 && j.segs[n-1].first == first {
		// The last segment is a file of the same name, truncated by O_TRUNC.
		j.addDisk(-j.segs[n-1].size)
		j.segs[n-1] = s
	} else {
		j.segs = append(j.segs, s)
	}
	j.segMu.Unlock()
	j.cur, j.curF, j.curNext, j.rotate = s, f, first, false
	return nil
}

// syncCurrent fsyncs what was written to the current segment but not yet
// fsynced ("interval" mode).
func (j *Journal) syncCurrent() error {
	if j.curF == nil || j.synced >= j.written {
		return nil
	}
	start := time.Now()
	err := j.curF.Sync()
	fsyncSeconds.UpdateDuration(start)
	if err != nil {
		return fmt.Errorf("cannot fsync %s: %w", j.cur.path, err)
	}
	j.synced = j.written
	j.mu.Lock()
	j.durable = j.synced
	j.mu.Unlock()
	return nil
}

// syncInterval is the "interval" mode's periodic fsync. The records it
// covers are already acknowledged: a failure is logged, counted and retried
// at the next tick.
func (j *Journal) syncInterval() {
	if err := j.syncCurrent(); err != nil {
		errorsTotal.Inc()
		j.log.Error("journal: periodic fsync failed; acknowledged records may be lost on power failure", "err", err)
	}
}

// closeSegment fsyncs and closes the current segment; the next flush starts
// a new one. For Rotate (keepEmpty) an empty segment stays open: the next
// record is its first one anyway.
func (j *Journal) closeSegment(keepEmpty bool) error {
	if j.curF == nil {
		return nil
	}
	if j.broken {
		if err := j.curF.Truncate(j.cur.size); err != nil {
			errorsTotal.Inc()
			return fmt.Errorf("cannot truncate %s back to %d bytes: %w", j.cur.path, j.cur.size, err)
		}
		j.broken = false
	}
	if err := j.syncCurrent(); err != nil {
		errorsTotal.Inc()
		return err
	}
	if keepEmpty && j.cur.size == 0 {
		return nil
	}
	err := j.curF.Close()
	j.curF, j.cur = nil, nil
	j.rotate = true
	if err != nil {
		return fmt.Errorf("cannot close segment: %w", err)
	}
	return nil
}

// fail rolls back a failed flush: b and every record queued behind it are
// dropped, their undo functions called, the LSNs roll back to the last
// acknowledged one, then the epoch moves and the waiters wake.
func (j *Journal) fail(b *batch, cause error) error {
	errorsTotal.Inc()
	j.mu.Lock()
	j.failing = true
	rest := j.pending
	j.pending = batch{}
	j.mu.Unlock()
	j.log.Error("journal: flush failed; records dropped", "records", b.n+rest.n, "first_lsn", b.first, "err", cause)
	for _, u := range b.undos {
		u()
	}
	for _, u := range rest.undos {
		u()
	}
	j.mu.Lock()
	j.failing = false
	j.nextLSN = j.acked + 1
	j.epoch++
	j.fails[j.epoch%failHistory] = failure{epoch: j.epoch, acked: j.acked, err: cause}
	j.cond.Broadcast()
	j.mu.Unlock()
	return fmt.Errorf("%w: %w", ErrFlushFailed, cause)
}
