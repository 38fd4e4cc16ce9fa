package journal

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// faultFS is the real file system with a hand on every segment write,
// fsync and truncate: it counts them and fails them on demand.
type faultFS struct {
	syncs  atomic.Int64
	writes atomic.Int64

	mu          sync.Mutex
	writeFaults []error // consumed one per WriteAt, front first
	syncFaults  []error
	truncFaults []error
	onWrite     func() // called before each WriteAt, outside mu
}

func (f *faultFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	inner, err := osFS{}.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{file: inner, fs: f}, nil
}

func (f *faultFS) SyncDir(dir string) error { return syncDir(dir) }

func (f *faultFS) pop(q *[]error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(*q) == 0 {
		return nil
	}
	err := (*q)[0]
	*q = (*q)[1:]
	return err
}

func (f *faultFS) failWrites(errs ...error) {
	f.mu.Lock()
	f.writeFaults = append(f.writeFaults, errs...)
	f.mu.Unlock()
}

func (f *faultFS) failSyncs(errs ...error) {
	f.mu.Lock()
	f.syncFaults = append(f.syncFaults, errs...)
	f.mu.Unlock()
}

func (f *faultFS) failTruncates(errs ...error) {
	f.mu.Lock()
	f.truncFaults = append(f.truncFaults, errs...)
	f.mu.Unlock()
}

func (f *faultFS) setOnWrite(fn func()) {
	f.mu.Lock()
	f.onWrite = fn
	f.mu.Unlock()
}

type faultFile struct {
	file
	fs *faultFS
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.writes.Add(1)
	f.fs.mu.Lock()
	hook := f.fs.onWrite
	f.fs.mu.Unlock()
	if hook != nil {
		hook()
	}
	if err := f.fs.pop(&f.fs.writeFaults); err != nil {
		// Like a real ENOSPC: part of the data lands before the error.
		n, _ := f.file.WriteAt(p[:len(p)/2], off)
		return n, err
	}
	return f.file.WriteAt(p, off)
}

func (f *faultFile) Sync() error {
	f.fs.syncs.Add(1)
	if err := f.fs.pop(&f.fs.syncFaults); err != nil {
		return err
	}
	return f.file.Sync()
}

func (f *faultFile) Truncate(size int64) error {
	if err := f.fs.pop(&f.fs.truncFaults); err != nil {
		return err
	}
	return f.file.Truncate(size)
}

// quietLogger discards the journal's warnings in tests (t.Log would make
// the output of every run of torn-tail loops huge).
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openJ opens a journal in dir with a faultFS and replays it (from 0).
func openJ(t testing.TB, opts Options) (*Journal, *faultFS, ReplayReport) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	ffs := &faultFS{}
	j, err := open(opts, ffs)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := j.Replay(0, nil)
	if err != nil {
		j.Close()
		t.Fatal(err)
	}
	return j, ffs, rep
}

// replayAll opens dir, replays every record from 1 and closes.
func replayAll(t testing.TB, opts Options) ([][]byte, ReplayReport) {
	t.Helper()
	recs, rep, err := tryReplayAll(opts)
	if err != nil {
		t.Fatal(err)
	}
	return recs, rep
}

// tryReplayAll returns the records indexed by LSN-1 (nil for gaps).
func tryReplayAll(opts Options) ([][]byte, ReplayReport, error) {
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	j, err := Open(opts)
	if err != nil {
		return nil, ReplayReport{}, err
	}
	defer j.Close()
	var recs [][]byte
	rep, err := j.Replay(0, func(lsn uint64, rec []byte) error {
		for uint64(len(recs)) < lsn-1 {
			recs = append(recs, nil)
		}
		recs = append(recs, bytes.Clone(rec))
		return nil
	})
	return recs, rep, err
}

// testRecord is the content of record i in tests.
func testRecord(i, size int) []byte {
	b := make([]byte, size)
	for k := range b {
		b[k] = byte(i*31 + k*7)
	}
	copy(b, fmt.Sprintf("rec-%d-", i))
	return b[:size]
}

// appendWait appends and waits, failing the test on error.
func appendWait(t testing.TB, j *Journal, rec []byte) uint64 {
	t.Helper()
	lsn, ep, err := j.Append(rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Wait(lsn, ep); err != nil {
		t.Fatal(err)
	}
	return lsn
}

func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "journal", "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
