package journal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// snapshotContent is compressible but not trivially so.
func snapshotContent(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		if i%64 < 48 {
			b[i] = byte('a' + i%7)
		} else {
			b[i] = byte(r.Uint32())
		}
	}
	return b
}

func writeTestSnapshot(t testing.TB, dir string, lsn uint64, content []byte) SnapshotInfo {
	t.Helper()
	info, err := WriteSnapshot(dir, lsn, func(w io.Writer) error {
		// Several writes, as a real serializer does.
		for b := content; len(b) > 0; {
			n := min(len(b), 1000)
			if _, err := w.Write(b[:n]); err != nil {
				return err
			}
			b = b[n:]
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func readAll(sf SnapshotFile) ([]byte, error) {
	var got []byte
	err := ReadSnapshot(sf, func(r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	})
	return got, err
}

func TestSnapshotRoundTripAndRetention(t *testing.T) {
	dir := t.TempDir()
	content := snapshotContent(300_000)
	info := writeTestSnapshot(t, dir, 100, content)
	if info.LSN != 100 || info.RawBytes != int64(len(content)) || info.CompressedBytes >= info.RawBytes || info.Path != filepath.Join(dir, "snapshots", snapshotName(100)) {
		t.Fatalf("%+v", info)
	}
	if fi, _ := os.Stat(info.Path); fi.Size() != info.CompressedBytes {
		t.Fatalf("file %d bytes, info %d", fi.Size(), info.CompressedBytes)
	}
	files, err := OpenSnapshots(dir)
	if err != nil || len(files) != 1 || files[0].LSN != 100 || files[0].Created.IsZero() || files[0].Bytes != info.CompressedBytes {
		t.Fatalf("%+v %v", files, err)
	}
	got, err := readAll(files[0])
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read back %d bytes, err %v", len(got), err)
	}

	// Empty content is a valid snapshot too.
	writeTestSnapshot(t, dir, 200, nil)
	writeTestSnapshot(t, dir, 300, content[:1000])
	// A stale .tmp of an interrupted write is cleaned up by the next write.
	os.WriteFile(filepath.Join(dir, "snapshots", snapshotName(350)+".tmp"), []byte("partial"), 0o644)
	writeTestSnapshot(t, dir, 400, content[:2000])
	files, _ = OpenSnapshots(dir)
	if len(files) != 2 || files[0].LSN != 400 || files[1].LSN != 300 {
		t.Fatalf("retention kept %+v", files)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*.tmp")); len(m) != 0 {
		t.Fatalf("tmp files left: %v", m)
	}
	// An invalid older snapshot does not count as one of the two kept.
	os.Truncate(files[0].Path, 50)
	writeTestSnapshot(t, dir, 500, content[:10])
	files, _ = OpenSnapshots(dir)
	if len(files) != 2 || files[0].LSN != 500 || files[1].LSN != 300 {
		t.Fatalf("retention with a broken snapshot kept %+v", files)
	}
	if got, err := readAll(files[1]); err != nil || !bytes.Equal(got, content[:1000]) {
		t.Fatalf("%v", err)
	}
	if files, err := OpenSnapshots(t.TempDir()); err != nil || files != nil {
		t.Fatalf("no snapshot dir: %v %v", files, err)
	}
}

func TestSnapshotWriteErrors(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("boom")
	_, err := WriteSnapshot(dir, 7, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("%v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*")); len(m) != 0 {
		t.Fatalf("files left after a failed write: %v", m)
	}
}

// TestCorruptSnapshots corrupts every byte of a small snapshot and truncates
// it at every length: every case must be reported as ErrCorruptSnapshot,
// whether read consumes everything or stops early.
func TestCorruptSnapshots(t *testing.T) {
	dir := t.TempDir()
	content := snapshotContent(3000)
	info := writeTestSnapshot(t, dir, 9, content)
	good, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, data []byte) {
		t.Helper()
		for _, partial := range []bool{false, true} {
			err := readSnapshot(bytes.NewReader(data), int64(len(data)), 9, name, func(r io.Reader) error {
				if partial {
					_, err := io.ReadFull(r, make([]byte, 10))
					return err
				}
				_, err := io.ReadAll(r)
				return err
			})
			if !errors.Is(err, ErrCorruptSnapshot) {
				t.Fatalf("%s (partial read %v): err %v, want ErrCorruptSnapshot", name, partial, err)
			}
		}
	}
	for i := range good {
		for _, x := range []byte{0x01, 0x80} {
			bad := bytes.Clone(good)
			bad[i] ^= x
			check(fmt.Sprintf("flip %#x at %d", x, i), bad)
		}
	}
	for n := range len(good) {
		check(fmt.Sprintf("truncated to %d", n), good[:n])
	}
	check("appended byte", append(bytes.Clone(good), 0))
	// A wrong LSN in the name.
	if err := readSnapshot(bytes.NewReader(good), int64(len(good)), 10, "renamed", func(io.Reader) error { return nil }); !errors.Is(err, ErrCorruptSnapshot) {
		t.Fatalf("renamed: %v", err)
	}
	// The good one reads, and a partial reader of it is no corruption.
	if err := readSnapshot(bytes.NewReader(good), int64(len(good)), 9, "good", func(r io.Reader) error {
		_, err := io.ReadFull(r, make([]byte, 10))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// read's own error comes back as is when the file is fine.
	mine := errors.New("apply failed")
	if err := readSnapshot(bytes.NewReader(good), int64(len(good)), 9, "good", func(io.Reader) error { return mine }); err != mine {
		t.Fatalf("%v", err)
	}
}

// FuzzReadSnapshot: arbitrary bytes must never panic or hang the reader, and
// whatever it accepts has the content length and checksum its trailer says.
func FuzzReadSnapshot(f *testing.F) {
	dir := f.TempDir()
	info := writeTestSnapshot(f, dir, 3, snapshotContent(500))
	good, _ := os.ReadFile(info.Path)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte("CPAFSNAP"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []byte
		err := readSnapshot(bytes.NewReader(data), int64(len(data)), 3, "fuzz", func(r io.Reader) error {
			var err error
			got, err = io.ReadAll(io.LimitReader(r, 1<<20))
			return err
		})
		if err != nil {
			return
		}
		_, tr, ferr := readSnapshotFrame(bytes.NewReader(data), int64(len(data)), 3)
		if ferr != nil || int64(len(got)) != tr.raw {
			t.Fatalf("accepted a snapshot whose frame is bad (%v) or content short (%d of %d)", ferr, len(got), tr.raw)
		}
	})
}
