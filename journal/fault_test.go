package journal

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
)

// undoLog records which records had their undo called, and checks the
// journal's state at that moment.
type undoLog struct {
	t       *testing.T
	j       *Journal
	mu      sync.Mutex
	undone  []int
	epochAt uint64 // the epoch undo must still see
	woken   *bool  // set by a waiter; must still be false during undo
	wokenMu *sync.Mutex
}

func (u *undoLog) fn(i int) func() {
	return func() {
		if _, ep := u.j.Tail(); ep != u.epochAt {
			u.t.Errorf("undo of %d ran after the epoch moved (%d)", i, ep)
		}
		u.wokenMu.Lock()
		if *u.woken {
			u.t.Errorf("undo of %d ran after a waiter woke", i)
		}
		u.wokenMu.Unlock()
		u.mu.Lock()
		u.undone = append(u.undone, i)
		u.mu.Unlock()
	}
}

func TestFlushFailureUndoAndRecovery(t *testing.T) {
	enospc := &pathErr{syscall.ENOSPC}
	f := func(name string, inject func(*faultFS), wantErr error) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			j, ffs, _ := openJ(t, Options{Dir: dir})
			defer j.Close()
			var woken bool
			var wokenMu sync.Mutex
			u := &undoLog{t: t, j: j, woken: &woken, wokenMu: &wokenMu}

			l1, e1, _ := j.Append(testRecord(1, 100), u.fn(1))
			if err := j.Wait(l1, e1); err != nil {
				t.Fatal(err)
			}
			// Hold the flusher in the write of record 2 while 3 and 4 queue
			// behind it; that write (or its fsync) fails.
			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			ffs.setOnWrite(func() { once.Do(func() { close(entered); <-release }) })
			inject(ffs)
			l2, e2, _ := j.Append(testRecord(2, 100), u.fn(2))
			<-entered
			l3, e3, _ := j.Append(testRecord(3, 100), u.fn(3))
			l4, e4, _ := j.Append(testRecord(4, 100), nil) // no undo: fine
			if e2 != 0 || e3 != 0 || e4 != 0 || l4 != 4 {
				t.Fatalf("epochs %d %d %d, lsn %d", e2, e3, e4, l4)
			}
			// A dedup-style observer saw record 3's reservation: it waits for Tail.
			tl, te := j.Tail()
			waitErr := make(chan error, 1)
			go func() {
				err := j.Wait(tl, te)
				wokenMu.Lock()
				woken = true
				wokenMu.Unlock()
				waitErr <- err
			}()
			close(release)

			for _, le := range [][2]uint64{{l2, e2}, {l3, e3}, {l4, e4}} {
				err := j.Wait(le[0], le[1])
				if !errors.Is(err, ErrFlushFailed) || !errors.Is(err, wantErr) {
					t.Fatalf("Wait(%d): %v", le[0], err)
				}
			}
			if err := <-waitErr; !errors.Is(err, ErrFlushFailed) {
				t.Fatalf("observer's Wait: %v", err)
			}
			if fmt.Sprint(u.undone) != "[2 3]" {
				t.Fatalf("undo called for %v, want [2 3]", u.undone)
			}
			// Record 1 was durable before the failure: still fine with its old epoch.
			if err := j.Wait(l1, e1); err != nil {
				t.Fatalf("Wait of a record durable before the failure: %v", err)
			}
			if tail, ep := j.Tail(); tail != 1 || ep != 1 {
				t.Fatalf("Tail after the failure: %d, %d; want 1, 1", tail, ep)
			}

			// Later appends go through normally, reusing the dropped LSNs.
			u.epochAt = 1
			l5, e5, _ := j.Append(testRecord(5, 100), u.fn(5))
			if l5 != 2 || e5 != 1 {
				t.Fatalf("after the failure: LSN %d epoch %d", l5, e5)
			}
			if err := j.Wait(l5, e5); err != nil {
				t.Fatal(err)
			}
			// The old epoch's waiter for LSN 2 still fails: a different record.
			if err := j.Wait(l2, e2); !errors.Is(err, ErrFlushFailed) {
				t.Fatalf("Wait(2, old epoch) after LSN 2 was reused: %v", err)
			}
			if fmt.Sprint(u.undone) != "[2 3]" {
				t.Fatalf("undo called for %v", u.undone)
			}
			if st := j.Stats(); st.Epoch != 1 || st.Durable != 2 || st.DiskBytes != 2*(headerSize+100) {
				t.Fatalf("stats %+v", st)
			}
			j.Close()
			// On disk: exactly records 1 and 5, the failed bytes truncated away.
			recs, rep := replayAll(t, Options{Dir: dir})
			if len(recs) != 2 || string(recs[0]) != string(testRecord(1, 100)) || string(recs[1]) != string(testRecord(5, 100)) || rep.TruncatedBytes != 0 {
				t.Fatalf("replayed %d records, %+v", len(recs), rep)
			}
		})
	}
	f("write ENOSPC", func(ffs *faultFS) { ffs.failWrites(enospc) }, syscall.ENOSPC)
	f("fsync EIO", func(ffs *faultFS) { ffs.failSyncs(&pathErr{syscall.EIO}) }, syscall.EIO)
	f("write EROFS, truncate fails once", func(ffs *faultFS) {
		ffs.failWrites(&pathErr{syscall.EROFS})
		ffs.failTruncates(&pathErr{syscall.EROFS})
	}, syscall.EROFS)
}

type pathErr struct{ errno syscall.Errno }

func (e *pathErr) Error() string { return "write segment: " + e.errno.Error() }
func (e *pathErr) Unwrap() error { return e.errno }

func TestFailureWhileTruncateKeepsFailing(t *testing.T) {
	// The disk stays broken: every flush fails until it heals, then appends work.
	dir := t.TempDir()
	j, ffs, _ := openJ(t, Options{Dir: dir})
	defer j.Close()
	appendWait(t, j, testRecord(1, 10))
	eio := &pathErr{syscall.EIO}
	ffs.failWrites(eio)
	ffs.failTruncates(eio, eio, eio)
	for i := range 3 {
		undone := false
		lsn, ep, err := j.Append(testRecord(2, 10), func() { undone = true })
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Wait(lsn, ep); !errors.Is(err, syscall.EIO) || !undone || lsn != 2 {
			t.Fatalf("try %d: lsn %d, %v, undone %v", i, lsn, err, undone)
		}
	}
	if lsn := appendWait(t, j, testRecord(2, 10)); lsn != 2 {
		t.Fatalf("LSN %d", lsn)
	}
	j.Close()
	recs, _ := replayAll(t, Options{Dir: dir})
	checkRecords(t, recs, 1, 2)
}

func TestSegmentCreationFailure(t *testing.T) {
	// The new segment's first write fails: the next try reuses its name.
	dir := t.TempDir()
	j, ffs, _ := openJ(t, Options{Dir: dir, SegmentBytes: 100})
	defer j.Close()
	appendWait(t, j, testRecord(1, 80))
	ffs.failWrites(&pathErr{syscall.ENOSPC})
	lsn, ep, _ := j.Append(testRecord(2, 80), nil)
	if err := j.Wait(lsn, ep); !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	appendWait(t, j, testRecord(2, 80))
	appendWait(t, j, testRecord(3, 80))
	j.Close()
	recs, _ := replayAll(t, Options{Dir: dir})
	checkRecords(t, recs, 1, 2, 3)
	if n := len(segmentFiles(t, dir)); n != 3 {
		t.Fatalf("%d segments", n)
	}
}

func TestEpochSemantics(t *testing.T) {
	j, ffs, _ := openJ(t, Options{Dir: t.TempDir()})
	defer j.Close()
	f := func(lsn, epoch uint64, wantOK bool) {
		t.Helper()
		if err := j.Wait(lsn, epoch); (err == nil) != wantOK {
			t.Fatalf("Wait(%d, %d) = %v, want ok=%v", lsn, epoch, err, wantOK)
		}
	}
	a := appendWait(t, j, []byte("a")) // LSN 1, epoch 0
	tl, te := j.Tail()
	if tl != 1 || te != 0 {
		t.Fatalf("Tail %d %d", tl, te)
	}
	ffs.failSyncs(errors.New("EIO"))
	b, eb, _ := j.Append([]byte("b"), nil) // LSN 2, fails
	f(b, eb, false)
	c := appendWait(t, j, []byte("c")) // LSN 2 again, epoch 1
	ffs.failWrites(errors.New("ENOSPC"))
	d, ed, _ := j.Append([]byte("d"), nil) // LSN 3, epoch 1, fails
	f(d, ed, false)

	f(a, 0, true)  // durable before both failures
	f(b, 0, false) // dropped at the first failure, though LSN 2 is durable now
	f(c, 1, true)  // durable before the second failure
	f(d, 1, false) // dropped
	f(0, 0, true)  // nothing to wait for
	f(3, 2, false) // LSN 3 is not appended in epoch 2
	f(1, 7, false) // an epoch from the future
	if tl, te := j.Tail(); tl != 2 || te != 2 {
		t.Fatalf("Tail %d %d", tl, te)
	}
}
