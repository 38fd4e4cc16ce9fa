package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// writeLog makes a journal in a new dir with records of the given sizes and
// returns the dir and each record's frame offset in its segment file.
func writeLog(t *testing.T, opts Options, sizes ...int) (string, []int64) {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	j, _, _ := openJ(t, opts)
	var offs []int64
	var off int64
	for i, size := range sizes {
		before := j.Stats().Segments
		appendWait(t, j, testRecord(i+1, size))
		if j.Stats().Segments != before && i > 0 {
			off = 0
		}
		offs = append(offs, off)
		off += int64(headerSize + size)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return opts.Dir, offs
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func lastSegment(t *testing.T, dir string) string {
	files := segmentFiles(t, dir)
	return files[len(files)-1]
}

func checkRecords(t *testing.T, recs [][]byte, lsns ...int) {
	t.Helper()
	var got []int
	for i, r := range recs {
		if r != nil {
			got = append(got, i+1)
			if !bytes.Equal(r, testRecord(i+1, len(r))) {
				t.Fatalf("LSN %d: wrong content %q", i+1, r)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(lsns) {
		t.Fatalf("replayed LSNs %v, want %v", got, lsns)
	}
}

func TestTornTailAtEveryOffset(t *testing.T) {
	src, offs := writeLog(t, Options{}, 30, 0, 45, 60)
	seg := filepath.Base(lastSegment(t, src))
	full, err := os.ReadFile(filepath.Join(src, "journal", seg))
	if err != nil {
		t.Fatal(err)
	}
	lastOff := offs[3]
	for cut := lastOff; cut < int64(len(full)); cut++ {
		dir := copyDir(t, src)
		path := filepath.Join(dir, "journal", seg)
		if err := os.Truncate(path, cut); err != nil {
			t.Fatal(err)
		}
		j, _, rep := openJ(t, Options{Dir: dir})
		if rep.Records != 3 || rep.TruncatedBytes != cut-lastOff || rep.NextLSN != 4 || len(rep.Dropped) != 0 {
			t.Fatalf("cut at %d: %+v", cut, rep)
		}
		// Appending continues right after the last good record.
		if lsn := appendWait(t, j, testRecord(4, 7)); lsn != 4 {
			t.Fatalf("cut at %d: next LSN %d", cut, lsn)
		}
		j.Close()
		recs, rep := replayAll(t, Options{Dir: dir})
		checkRecords(t, recs, 1, 2, 3, 4)
		if rep.TruncatedBytes != 0 {
			t.Fatalf("cut at %d: second replay truncated %d bytes", cut, rep.TruncatedBytes)
		}
	}
}

func TestGarbageTailAtEveryByte(t *testing.T) {
	// A last record whose sectors were half written: any one byte wrong.
	src, offs := writeLog(t, Options{}, 30, 20)
	seg := filepath.Base(lastSegment(t, src))
	full, _ := os.ReadFile(filepath.Join(src, "journal", seg))
	for pos := offs[1]; pos < int64(len(full)); pos++ {
		dir := copyDir(t, src)
		bad := bytes.Clone(full)
		bad[pos] ^= 0x40
		os.WriteFile(filepath.Join(dir, "journal", seg), bad, 0o644)
		recs, rep := replayAll(t, Options{Dir: dir})
		checkRecords(t, recs, 1)
		if rep.TruncatedBytes != int64(len(full))-offs[1] {
			t.Fatalf("flip at %d: %+v", pos, rep)
		}
	}
}

func TestZeroedTail(t *testing.T) {
	f := func(name string, mutate func(b []byte, lastOff int64) []byte, wantRecords int) {
		t.Run(name, func(t *testing.T) {
			dir, offs := writeLog(t, Options{}, 100, 100, 100)
			path := lastSegment(t, dir)
			b, _ := os.ReadFile(path)
			b = mutate(b, offs[2])
			os.WriteFile(path, b, 0o644)
			j, _, rep := openJ(t, Options{Dir: dir})
			if wantTrunc := int64(len(b) - wantRecords*(headerSize+100)); rep.Records != wantRecords || rep.TruncatedBytes != wantTrunc {
				t.Fatalf("%+v", rep)
			}
			appendWait(t, j, testRecord(wantRecords+1, 5))
			j.Close()
			recs, _ := replayAll(t, Options{Dir: dir})
			want := []int{}
			for i := 1; i <= wantRecords+1; i++ {
				want = append(want, i)
			}
			checkRecords(t, recs, want...)
		})
	}
	// Preallocated/sparse blocks after the last record.
	f("zeros after", func(b []byte, _ int64) []byte { return append(b, make([]byte, 8192)...) }, 3)
	// The last record's blocks never made it: zeros in its place.
	f("zeroed last record", func(b []byte, off int64) []byte { clear(b[off:]); return b }, 2)
	// Its header made it, its payload not.
	f("zeroed payload", func(b []byte, off int64) []byte { clear(b[off+headerSize:]); return b }, 2)
	// Only zeros: an empty record area after a crash right after creation.
	f("all zeros", func(b []byte, off int64) []byte { clear(b); return b }, 0)
}

func TestCorruptMiddleRecord(t *testing.T) {
	sizes := []int{40, 40, 40, 40, 40, 40, 40, 40}
	f := func(name string, mutate func(b []byte, offs []int64) []byte, wantOff int64, wantLSN uint64, wantBytes int64, wantLost uint64, kept []int) {
		t.Run(name, func(t *testing.T) {
			dir, offs := writeLog(t, Options{}, sizes...)
			path := lastSegment(t, dir)
			b, _ := os.ReadFile(path)
			b = mutate(b, offs)
			os.WriteFile(path, b, 0o644)

			// Without Repair: a clear error, naming segment, offset and LSN.
			var seen []uint64
			j, err := Open(Options{Dir: dir, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			_, err = j.Replay(0, func(lsn uint64, _ []byte) error { seen = append(seen, lsn); return nil })
			j.Close()
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err %v, want a CorruptError", err)
			}
			if ce.Segment != path || ce.Offset != wantOff || ce.LSN != wantLSN || ce.Bytes != wantBytes || ce.Records != wantLost {
				t.Fatalf("got %+v", ce)
			}
			if uint64(len(seen)) != wantLSN-1 {
				t.Fatalf("records before the corruption: %v", seen)
			}
			t.Log(err)

			// With Repair: every intact record, and the dropped range reported.
			opts := Options{Dir: dir, Repair: true}
			j, _, rep := openJ(t, opts)
			want := DroppedRange{Segment: path, Offset: wantOff, Bytes: wantBytes, LSN: wantLSN, Records: wantLost}
			if len(rep.Dropped) != 1 || rep.Dropped[0] != want || rep.Records != len(kept) {
				t.Fatalf("report %+v, want dropped %+v", rep, want)
			}
			next := appendWait(t, j, testRecord(9, 40))
			j.Close()
			if next != 9 {
				t.Fatalf("next LSN %d", next)
			}
			// The segment was rewritten: a replay without Repair now runs clean.
			recs, rep := replayAll(t, Options{Dir: dir})
			checkRecords(t, recs, append(kept, 9)...)
			if len(rep.Dropped) != 0 || rep.GapLSNs != wantLost {
				t.Fatalf("second replay %+v", rep)
			}
		})
	}
	f("payload byte", func(b []byte, offs []int64) []byte { b[offs[4]+headerSize+3] ^= 1; return b }, 4*68, 5, 68, 1, []int{1, 2, 3, 4, 6, 7, 8})
	f("length field", func(b []byte, offs []int64) []byte { b[offs[2]+9] ^= 0x10; return b }, 2*68, 3, 68, 1, []int{1, 2, 4, 5, 6, 7, 8})
	f("magic", func(b []byte, offs []int64) []byte { b[offs[0]] = 0; return b }, 0, 1, 68, 1, []int{2, 3, 4, 5, 6, 7, 8})
	f("two records", func(b []byte, offs []int64) []byte { clear(b[offs[3]+10 : offs[5]-3]); return b }, 3*68, 4, 136, 2, []int{1, 2, 3, 6, 7, 8})
	f("lsn rewritten", func(b []byte, offs []int64) []byte {
		// A frame that checks but carries a wrong LSN (here: a duplicate of 2).
		fr := appendFrame(nil, kindData, 2, testRecord(2, 40), crc32c(testRecord(2, 40)))
		copy(b[offs[5]:], fr)
		return b
	}, 5*68, 6, 68, 1, []int{1, 2, 3, 4, 5, 7, 8})
	f("garbage inserted", func(b []byte, offs []int64) []byte {
		// Bytes that belong to no record (no LSN lost).
		return append(b[:offs[6]:offs[6]], append([]byte("xxxxxxxxxxxx"), b[offs[6]:]...)...)
	}, 6*68, 7, 12, 0, []int{1, 2, 3, 4, 5, 6, 7, 8})
}

func TestCorruptSegments(t *testing.T) {
	mk := func(t *testing.T) string {
		dir, _ := writeLog(t, Options{SegmentBytes: 150}, 50, 50, 50, 50, 50, 50, 50, 50)
		if n := len(segmentFiles(t, dir)); n != 4 {
			t.Fatalf("%d segments, want 4 of 2 records", n)
		}
		return dir
	}
	t.Run("missing segment", func(t *testing.T) {
		dir := mk(t)
		os.Remove(segmentFiles(t, dir)[1]) // LSNs 3, 4
		_, _, err := tryReplayAll(Options{Dir: dir})
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.LSN != 3 || ce.Records != 2 || ce.Bytes != 0 {
			t.Fatalf("%v", err)
		}
		recs, rep, err := tryReplayAll(Options{Dir: dir, Repair: true})
		if err != nil || len(rep.Dropped) != 1 || rep.Dropped[0].Records != 2 {
			t.Fatalf("%v %+v", err, rep)
		}
		checkRecords(t, recs, 1, 2, 5, 6, 7, 8)
		recs, rep = replayAll(t, Options{Dir: dir})
		checkRecords(t, recs, 1, 2, 5, 6, 7, 8)
		if rep.GapLSNs != 2 {
			t.Fatalf("%+v", rep)
		}
	})
	t.Run("torn tail of an older segment", func(t *testing.T) {
		dir := mk(t)
		seg := segmentFiles(t, dir)[1]
		os.Truncate(seg, 100) // LSN 4 torn, 5.. in the next segment
		_, _, err := tryReplayAll(Options{Dir: dir})
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Segment != seg || ce.Offset != 78 || ce.LSN != 4 || ce.Records != 1 || ce.Bytes != 22 {
			t.Fatalf("%v", err)
		}
		recs, _, err := tryReplayAll(Options{Dir: dir, Repair: true})
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, recs, 1, 2, 3, 5, 6, 7, 8)
		recs, _ = replayAll(t, Options{Dir: dir})
		checkRecords(t, recs, 1, 2, 3, 5, 6, 7, 8)
	})
	t.Run("first segment gone", func(t *testing.T) {
		dir := mk(t)
		os.Remove(segmentFiles(t, dir)[0])
		if _, _, err := tryReplayAll(Options{Dir: dir}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%v", err)
		}
		recs, rep, err := tryReplayAll(Options{Dir: dir, Repair: true})
		if err != nil || rep.Dropped[0].LSN != 1 || rep.Dropped[0].Records != 2 {
			t.Fatalf("%v %+v", err, rep)
		}
		checkRecords(t, recs, 3, 4, 5, 6, 7, 8)
		recs, _ = replayAll(t, Options{Dir: dir})
		checkRecords(t, recs, 3, 4, 5, 6, 7, 8)
	})
	t.Run("leftover empty segment", func(t *testing.T) {
		// A crash right after creating the next segment file: harmless.
		dir := mk(t)
		os.WriteFile(filepath.Join(dir, "journal", segmentName(9)), nil, 0o644)
		j, _, rep := openJ(t, Options{Dir: dir})
		if rep.Records != 8 || rep.NextLSN != 9 {
			t.Fatalf("%+v", rep)
		}
		appendWait(t, j, testRecord(9, 5))
		j.Close()
		recs, _ := replayAll(t, Options{Dir: dir})
		checkRecords(t, recs, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	})
	t.Run("leftover repair tmp", func(t *testing.T) {
		dir := mk(t)
		tmp := filepath.Join(dir, "journal", segmentName(3)+".repair.tmp")
		os.WriteFile(tmp, []byte("half a repair"), 0o644)
		recs, _ := replayAll(t, Options{Dir: dir})
		checkRecords(t, recs, 1, 2, 3, 4, 5, 6, 7, 8)
		if _, err := os.Stat(tmp); !os.IsNotExist(err) {
			t.Fatal("leftover .tmp not removed")
		}
	})
}

// TestCorruptPartBeforeReplayStart: a corrupt record that a snapshot covers
// (its LSN is before the replay start) does not stop the start: it is read
// past, reported and logged; a replay from before it still refuses.
func TestCorruptPartBeforeReplayStart(t *testing.T) {
	dir, offs := writeLog(t, Options{}, 40, 40, 40, 40, 40, 40, 40, 40)
	path := lastSegment(t, dir)
	b, _ := os.ReadFile(path)
	b[offs[1]+headerSize+3] ^= 1 // LSN 2
	os.WriteFile(path, b, 0o644)

	j, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var seen []uint64
	rep, err := j.Replay(4, func(lsn uint64, _ []byte) error { seen = append(seen, lsn); return nil })
	if err != nil {
		t.Fatalf("replay from 4: %v", err)
	}
	want := DroppedRange{Segment: path, Offset: offs[1], Bytes: 68, LSN: 2, Records: 1}
	if fmt.Sprint(seen) != "[4 5 6 7 8]" || len(rep.Passed) != 1 || rep.Passed[0] != want || len(rep.Dropped) != 0 {
		t.Fatalf("replayed %v, report %+v, want passed %+v", seen, rep, want)
	}
	if next := appendWait(t, j, testRecord(9, 40)); next != 9 {
		t.Fatalf("next LSN %d", next)
	}
	j.Close()

	// The corrupt record is still there for a replay that needs it.
	j, err = Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = j.Replay(2, nil)
	j.Close()
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.LSN != 2 {
		t.Fatalf("replay from 2: %v, want a CorruptError at LSN 2", err)
	}
}
