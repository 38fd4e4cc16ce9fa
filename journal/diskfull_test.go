//go:build linux

package journal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDiskFullTmpfs fills a real 1 MiB tmpfs: appends fail with ENOSPC,
// undo runs for exactly the failed records, and once space is freed ingest
// recovers without a restart. Skipped where mounting is not permitted.
func TestDiskFullTmpfs(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 600<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, "data")
	j, _, _ := openJ(t, Options{Dir: dir, SegmentBytes: 64 << 10})
	defer j.Close()

	var acked [][]byte
	undone := map[string]bool{}
	var failErr error
	for i := 0; i < 1000 && failErr == nil; i++ {
		rec := testRecord(i, 3000)
		lsn, ep, err := j.Append(rec, func() { undone[string(rec)] = true })
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Wait(lsn, ep); err != nil {
			failErr = err
			if !undone[string(rec)] {
				t.Fatal("failed record not undone")
			}
			continue
		}
		if undone[string(rec)] {
			t.Fatal("undo called for an acknowledged record")
		}
		acked = append(acked, rec)
	}
	if !errors.Is(failErr, syscall.ENOSPC) || !errors.Is(failErr, ErrFlushFailed) {
		t.Fatalf("the disk never filled, or a wrong error: %v (%d acked)", failErr, len(acked))
	}
	// Still full: still failing, still undone.
	for i := range 3 {
		rec := testRecord(5000+i, 3000)
		lsn, ep, _ := j.Append(rec, func() { undone[string(rec)] = true })
		if err := j.Wait(lsn, ep); !errors.Is(err, syscall.ENOSPC) || !undone[string(rec)] {
			t.Fatalf("while full: %v, undone %v", err, undone[string(rec)])
		}
	}
	// Space returns: ingest recovers by itself.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		rec := testRecord(9000+i, 3000)
		appendWait(t, j, rec)
		acked = append(acked, rec)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	recs, rep := replayAll(t, Options{Dir: dir})
	if len(recs) != len(acked) || rep.TruncatedBytes != 0 {
		t.Fatalf("replayed %d records, acked %d; %+v", len(recs), len(acked), rep)
	}
	for i := range recs {
		if !bytes.Equal(recs[i], acked[i]) {
			t.Fatalf("LSN %d differs", i+1)
		}
	}
	t.Logf("%d acked before the disk filled; %d undone", len(acked)-20, len(undone))
}
