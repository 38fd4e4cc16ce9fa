package journal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestOptionsValidate(t *testing.T) {
	f := func(o Options, wantErrs int) {
		t.Helper()
		if got := len(o.WithDefaults().Validate()); got != wantErrs {
			t.Errorf("%+v: %d errors, want %d", o, got, wantErrs)
		}
	}
	f(Options{}, 0)
	f(Options{Fsync: "interval", FsyncInterval: time.Second}, 0)
	f(Options{Fsync: "never"}, 1)
	f(Options{SegmentBytes: -1, MaxRecordBytes: -1}, 2)
	f(Options{MaxRecordBytes: maxRecordLimit + 1}, 1)
	f(Options{Fsync: "sometimes", FsyncInterval: -time.Second, SegmentBytes: -5}, 3)

	d := Options{}.WithDefaults()
	if d.Dir != "data" || d.Fsync != FsyncAlways || d.FsyncInterval != 100*time.Millisecond ||
		d.SegmentBytes != 64<<20 || d.MaxRecordBytes != 64<<20 || d.Logger == nil {
		t.Fatalf("defaults: %+v", d)
	}
}

func TestAppendReplayRoundTripAcrossSegments(t *testing.T) {
	for _, mode := range []string{FsyncAlways, FsyncInterval} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Dir: dir, Fsync: mode, SegmentBytes: 4 << 10, FsyncInterval: time.Millisecond}
			j, _, rep := openJ(t, opts)
			if rep.NextLSN != 1 || rep.Records != 0 {
				t.Fatalf("fresh journal: %+v", rep)
			}
			// Concurrent appenders; the content of each LSN is checked below.
			const workers, per = 4, 150
			want := make(map[uint64][]byte)
			var mu sync.Mutex
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range per {
						rec := testRecord(w*1000+i, (w*per+i)%300)
						lsn, ep, err := j.Append(rec, nil)
						if err != nil {
							t.Error(err)
							return
						}
						if err := j.Wait(lsn, ep); err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						want[lsn] = rec
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			if n := len(segmentFiles(t, dir)); n < 5 {
				t.Fatalf("%d segments, want several (rotation)", n)
			}
			recs, rep := replayAll(t, Options{Dir: dir})
			if len(recs) != workers*per || rep.Records != workers*per || rep.NextLSN != workers*per+1 || rep.TruncatedBytes != 0 {
				t.Fatalf("replayed %d records, report %+v", len(recs), rep)
			}
			for lsn, rec := range want {
				if !bytes.Equal(recs[lsn-1], rec) {
					t.Fatalf("LSN %d: got %q, want %q", lsn, recs[lsn-1], rec)
				}
			}

			// Replay from the middle, then keep appending after the tail.
			j2, err := open(Options{Dir: dir, Fsync: mode, SegmentBytes: 4 << 10, Logger: quietLogger()}, osFS{})
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			rep, err = j2.Replay(400, func(lsn uint64, rec []byte) error {
				got = append(got, lsn)
				if !bytes.Equal(rec, want[lsn]) {
					t.Errorf("LSN %d: wrong content", lsn)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 201 || got[0] != 400 || got[200] != 600 || rep.Segments >= len(segmentFiles(t, dir)) {
				t.Fatalf("replay from 400: %d records from %v, report %+v", len(got), got[:1], rep)
			}
			if lsn := appendWait(t, j2, []byte("after")); lsn != 601 {
				t.Fatalf("next LSN %d, want 601", lsn)
			}
			j2.Close()
			recs, _ = replayAll(t, Options{Dir: dir})
			if len(recs) != 601 || string(recs[600]) != "after" {
				t.Fatalf("after reopen: %d records, last %q", len(recs), recs[len(recs)-1])
			}
		})
	}
}

func TestReplayFnErrorStops(t *testing.T) {
	dir := t.TempDir()
	j, _, _ := openJ(t, Options{Dir: dir})
	for i := range 5 {
		appendWait(t, j, testRecord(i, 10))
	}
	j.Close()
	j, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	boom := errors.New("boom")
	n := 0
	_, err = j.Replay(0, func(uint64, []byte) error {
		n++
		if n == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 3 {
		t.Fatalf("err %v after %d records", err, n)
	}
	if _, _, err := j.Append([]byte("x"), nil); !errors.Is(err, ErrNotReplayed) {
		t.Fatalf("Append after a failed Replay: %v", err)
	}
	// Retry works.
	rep, err := j.Replay(0, nil)
	if err != nil || rep.Records != 5 {
		t.Fatalf("retry: %v %+v", err, rep)
	}
	if _, err := j.Replay(0, nil); err == nil {
		t.Fatal("a second Replay after success must fail")
	}
}

func TestAPIMisuse(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(Options{Dir: dir, MaxRecordBytes: 100, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := j.Append([]byte("x"), nil); !errors.Is(err, ErrNotReplayed) {
		t.Fatalf("Append before Replay: %v", err)
	}
	if _, err := j.Rotate(); !errors.Is(err, ErrNotReplayed) {
		t.Fatalf("Rotate before Replay: %v", err)
	}
	if _, err := Open(Options{Dir: dir}); err == nil {
		t.Fatal("a second Open of the same directory must fail (lock)")
	}
	if _, err := j.Replay(0, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := j.Append(make([]byte, 101), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	lsn := appendWait(t, j, make([]byte, 100))
	if err := j.Wait(lsn+1, 0); err == nil {
		t.Fatal("Wait for a never appended LSN must fail")
	}
	if err := j.Wait(0, 0); err != nil {
		t.Fatalf("Wait(0): %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := j.Append([]byte("x"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if err := j.Wait(lsn, 0); err != nil {
		t.Fatalf("Wait of a durable record after Close: %v", err)
	}
	if _, err := j.Rotate(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Rotate after Close: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "journal", "junk.wal"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Dir: dir}); err == nil {
		t.Fatal("a .wal file with a bad name must be refused")
	}
}

func TestGroupCommitSharesFsyncs(t *testing.T) {
	j, ffs, _ := openJ(t, Options{Dir: t.TempDir()})
	defer j.Close()
	// Hold the flusher inside the first write while 100 appenders queue up.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ffs.setOnWrite(func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	})
	first, ep, err := j.Append([]byte("first"), nil)
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	syncsBefore := ffs.syncs.Load()
	const n = 100
	var wg sync.WaitGroup
	lsns := make(chan [2]uint64, n)
	for i := range n {
		lsn, ep, err := j.Append(testRecord(i, 200), nil)
		if err != nil {
			t.Fatal(err)
		}
		lsns <- [2]uint64{lsn, ep}
	}
	close(lsns)
	for le := range lsns {
		wg.Go(func() {
			if err := j.Wait(le[0], le[1]); err != nil {
				t.Error(err)
			}
		})
	}
	close(release)
	if err := j.Wait(first, ep); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	// One fsync for the first record, one shared by the 100 queued behind it.
	if got := ffs.syncs.Load() - syncsBefore; got != 2 {
		t.Fatalf("%d fsyncs for 101 records queued in 2 batches, want 2", got)
	}
	if got := ffs.writes.Load(); got != 2 {
		t.Fatalf("%d writes, want 2", got)
	}
}

func TestRotateAndRemoveBefore(t *testing.T) {
	dir := t.TempDir()
	j, _, _ := openJ(t, Options{Dir: dir})
	for i := range 10 {
		appendWait(t, j, testRecord(i, 50))
	}
	next, err := j.Rotate()
	if err != nil || next != 11 {
		t.Fatalf("Rotate: %d, %v", next, err)
	}
	// Nothing appended since: rotating again changes nothing.
	if next, err := j.Rotate(); err != nil || next != 11 {
		t.Fatalf("second Rotate: %d, %v", next, err)
	}
	// The closed segment is the last file: kept, so the next LSN survives.
	if err := j.RemoveBefore(next); err != nil {
		t.Fatal(err)
	}
	if n := len(segmentFiles(t, dir)); n != 1 {
		t.Fatalf("%d segments after RemoveBefore with nothing newer, want 1", n)
	}
	for i := 10; i < 15; i++ {
		appendWait(t, j, testRecord(i, 50))
	}
	if n := len(segmentFiles(t, dir)); n != 2 {
		t.Fatalf("%d segments, want 2", n)
	}
	st := j.Stats()
	if st.Segments != 2 || st.Tail != 15 || st.Durable != 15 || st.Acked != 15 || st.DiskBytes != 15*(headerSize+50) {
		t.Fatalf("stats %+v", st)
	}
	if err := j.RemoveBefore(next); err != nil {
		t.Fatal(err)
	}
	files := segmentFiles(t, dir)
	if len(files) != 1 || filepath.Base(files[0]) != segmentName(11) {
		t.Fatalf("after RemoveBefore(11): %v", files)
	}
	if st := j.Stats(); st.Segments != 1 || st.DiskBytes != 5*(headerSize+50) {
		t.Fatalf("stats after remove %+v", st)
	}
	j.Close()

	// Replay from the snapshot point works; from before it records are missing.
	jj, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer jj.Close()
	if _, err := jj.Replay(5, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Replay(5) with records 5..10 removed: %v", err)
	}
	rep, err := jj.Replay(11, nil)
	if err != nil || rep.Records != 5 || rep.NextLSN != 16 {
		t.Fatalf("Replay(11): %+v %v", rep, err)
	}
}

func TestReplayFromBeyondTheLog(t *testing.T) {
	// A snapshot covers more than the log (e.g. an interval-mode log lost its
	// tail to a power loss): appends continue at the snapshot's LSN.
	dir := t.TempDir()
	j, _, _ := openJ(t, Options{Dir: dir})
	for i := range 3 {
		appendWait(t, j, testRecord(i, 20))
	}
	j.Close()
	j, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := j.Replay(10, nil)
	if err != nil || rep.NextLSN != 10 || rep.Records != 0 || rep.Skipped != 3 {
		t.Fatalf("%+v %v", rep, err)
	}
	if lsn := appendWait(t, j, []byte("ten")); lsn != 10 {
		t.Fatalf("LSN %d, want 10", lsn)
	}
	j.Close()
	// From the snapshot's LSN the log is consistent...
	j, err = Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = j.Replay(10, nil)
	if err != nil || rep.Records != 1 || rep.NextLSN != 11 {
		t.Fatalf("%+v %v", rep, err)
	}
	j.Close()
	// ...but from before it, LSNs 4..9 are missing.
	if _, _, err := tryReplayAll(Options{Dir: dir}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("replay from 1: %v", err)
	}
}

func TestEmptyJournalReplayFrom(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := j.Replay(42, nil)
	if err != nil || rep.NextLSN != 42 {
		t.Fatalf("%+v %v", rep, err)
	}
	if lsn := appendWait(t, j, []byte("x")); lsn != 42 {
		t.Fatalf("LSN %d", lsn)
	}
	j.Close()
	if files := segmentFiles(t, dir); len(files) != 1 || filepath.Base(files[0]) != segmentName(42) {
		t.Fatalf("%v", files)
	}
}

func TestIntervalMode(t *testing.T) {
	dir := t.TempDir()
	j, ffs, _ := openJ(t, Options{Dir: dir, Fsync: FsyncInterval, FsyncInterval: 5 * time.Millisecond})
	for i := range 20 {
		appendWait(t, j, testRecord(i, 100))
	}
	// Wait returned after write(2); the ticker fsyncs shortly after.
	deadline := time.Now().Add(5 * time.Second)
	for j.Stats().Durable != 20 {
		if time.Now().After(deadline) {
			t.Fatalf("never fsynced: %+v", j.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if ffs.syncs.Load() == 0 {
		t.Fatal("no fsync counted")
	}
	// A failing periodic fsync does not fail acknowledged records; it is retried.
	ffs.failSyncs(errors.New("EIO"))
	lsn := appendWait(t, j, []byte("last"))
	for j.Stats().Durable != lsn {
		if time.Now().After(deadline) {
			t.Fatalf("fsync not retried: %+v", j.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	recs, _ := replayAll(t, Options{Dir: dir})
	if len(recs) != 21 {
		t.Fatalf("%d records", len(recs))
	}
}
