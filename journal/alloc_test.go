package journal

import (
	"bytes"
	"testing"
)

func TestAppendWaitDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	j, _, _ := openJ(t, Options{Dir: t.TempDir(), Fsync: FsyncInterval})
	defer j.Close()
	rec := testRecord(1, 200)
	for range 100 { // warm the batch buffers and the metrics' histogram buckets
		appendWait(t, j, rec)
	}
	avg := testing.AllocsPerRun(500, func() {
		lsn, ep, err := j.Append(rec, nil)
		if err == nil {
			err = j.Wait(lsn, ep)
		}
		if err != nil {
			t.Fatal(err)
		}
	})
	if avg > 0.05 {
		t.Fatalf("Append+Wait: %.2f allocations per record", avg)
	}
}

func TestScanDoesNotAllocatePerRecord(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	var seg []byte
	for i := range 1000 {
		rec := testRecord(i, 100)
		seg = appendFrame(seg, kindData, uint64(i+1), rec, crc32c(rec))
	}
	r := bytes.NewReader(seg)
	sr := newSegReader(r, int64(len(seg)))
	n := 0
	avg := testing.AllocsPerRun(20, func() {
		_, _, err := scanSegment(sr, 1, noLimit, true, func(*record) error { n++; return nil }, func(anomaly) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
	})
	if avg > 3 {
		t.Fatalf("scanning 1000 records: %.1f allocations", avg)
	}
}
