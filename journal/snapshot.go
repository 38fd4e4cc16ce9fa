package journal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
)

// Snapshot file (little endian), see doc.go:
//
//	header  (40 bytes): magic "CPAFSNAP", version uint32, reserved uint32,
//	        lsn uint64, created unix nanoseconds int64, reserved uint32,
//	        CRC32-C of bytes 0..36 uint32
//	zstd stream of the content
//	trailer (40 bytes): magic "CPAFSEND", content bytes uint64, compressed
//	        bytes uint64, xxhash64 of the content uint64, CRC32-C of the
//	        compressed bytes uint32, CRC32-C of bytes 0..36 uint32
//
// The content checksum proves the content; the compressed-bytes checksum
// also catches flips in the zstd stream that decode to the same content
// (padding bits), so that every damaged file is reported.
const (
	snapshotHeaderSize  = 40
	snapshotTrailerSize = 40
	snapshotVersion     = 1
	// snapshotMaxWindow bounds the decoder's memory (zstd window): the
	// encoder's fastest level uses 4 MiB windows; anything claiming more than
	// this is not ours.
	snapshotMaxWindow = 64 << 20
)

var (
	snapshotMagic    = [8]byte{'C', 'P', 'A', 'F', 'S', 'N', 'A', 'P'}
	snapshotEndMagic = [8]byte{'C', 'P', 'A', 'F', 'S', 'E', 'N', 'D'}
)

// ErrCorruptSnapshot is returned by ReadSnapshot for a snapshot that is
// truncated or fails a check; the caller discards what it loaded and tries
// the next older snapshot.
var ErrCorruptSnapshot = errors.New("journal: corrupt snapshot")

// SnapshotInfo describes a written snapshot.
type SnapshotInfo struct {
	Path            string
	LSN             uint64 // it covers the records with LSN < LSN
	CompressedBytes int64  // file size
	RawBytes        int64  // content bytes (what write wrote)
	Duration        time.Duration
}

// SnapshotFile is a snapshot found on disk.
type SnapshotFile struct {
	Path    string
	LSN     uint64    // from the file name: it covers the records with LSN < LSN
	Bytes   int64     // file size
	Created time.Time // from the header; zero if the header is unreadable
}

func snapshotName(lsn uint64) string { return fmt.Sprintf("snapshot-%020d.zst", lsn) }

// WriteSnapshot writes a snapshot covering every record with LSN < lsn to
// dir/snapshots/: the content is what write writes to w, compressed with
// zstd. The file is written as a .tmp, fsynced, renamed and the directory
// fsynced; then only it and the newest older snapshot whose header and
// trailer check out are kept. Calls for one dir must not run concurrently.
//
// The encoder runs with concurrency 1: a snapshot is taken while serving on
// a 2-core machine, and must leave the other core to the requests.
func WriteSnapshot(dir string, lsn uint64, write func(w io.Writer) error) (info SnapshotInfo, err error) {
	start := time.Now()
	sdir := filepath.Join(dir, "snapshots")
	final := filepath.Join(sdir, snapshotName(lsn))
	tmp := final + ".tmp"
	defer func() {
		if err != nil {
			snapshotErrorsTotal.Inc()
			os.Remove(tmp)
		}
	}()
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		return info, fmt.Errorf("cannot create snapshot directory: %w", err)
	}
	removeStaleTmps(sdir)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return info, fmt.Errorf("cannot create snapshot: %w", err)
	}
	raw, compressed, err := writeSnapshotFile(f, lsn, start, write)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("cannot close snapshot: %w", cerr)
	}
	if err != nil {
		return info, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return info, fmt.Errorf("cannot rename snapshot: %w", err)
	}
	if err := syncDir(sdir); err != nil {
		return info, fmt.Errorf("cannot sync snapshot directory: %w", err)
	}
	pruneSnapshots(dir, final)
	info = SnapshotInfo{
		Path:            final,
		LSN:             lsn,
		CompressedBytes: snapshotHeaderSize + compressed + snapshotTrailerSize,
		RawBytes:        raw,
		Duration:        time.Since(start),
	}
	snapshotsTotal.Inc()
	snapshotSeconds.Update(info.Duration.Seconds())
	snapshotCompressedSize.Set(float64(info.CompressedBytes))
	return info, nil
}

func writeSnapshotFile(f *os.File, lsn uint64, created time.Time, write func(w io.Writer) error) (raw, compressed int64, err error) {
	bw := bufio.NewWriterSize(f, 256<<10)
	var h [snapshotHeaderSize]byte
	copy(h[0:8], snapshotMagic[:])
	binary.LittleEndian.PutUint32(h[8:], snapshotVersion)
	binary.LittleEndian.PutUint64(h[16:], lsn)
	binary.LittleEndian.PutUint64(h[24:], uint64(created.UnixNano()))
	binary.LittleEndian.PutUint32(h[36:], crc32.Checksum(h[:36], castagnoli))
	if _, err := bw.Write(h[:]); err != nil {
		return 0, 0, fmt.Errorf("cannot write snapshot: %w", err)
	}
	cw := &countWriter{w: bw}
	enc, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return 0, 0, err
	}
	hw := &hashWriter{w: enc, h: xxhash.New()}
	if err := write(hw); err != nil {
		enc.Close()
		return 0, 0, fmt.Errorf("cannot write snapshot content: %w", err)
	}
	if err := enc.Close(); err != nil {
		return 0, 0, fmt.Errorf("cannot write snapshot: %w", err)
	}
	var t [snapshotTrailerSize]byte
	copy(t[0:8], snapshotEndMagic[:])
	binary.LittleEndian.PutUint64(t[8:], uint64(hw.n))
	binary.LittleEndian.PutUint64(t[16:], uint64(cw.n))
	binary.LittleEndian.PutUint64(t[24:], hw.h.Sum64())
	binary.LittleEndian.PutUint32(t[32:], cw.crc)
	binary.LittleEndian.PutUint32(t[36:], crc32.Checksum(t[:36], castagnoli))
	if _, err := bw.Write(t[:]); err != nil {
		return 0, 0, fmt.Errorf("cannot write snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return 0, 0, fmt.Errorf("cannot write snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, 0, fmt.Errorf("cannot fsync snapshot: %w", err)
	}
	return hw.n, cw.n, nil
}

// countWriter counts and CRCs the compressed stream.
type countWriter struct {
	w   io.Writer
	n   int64
	crc uint32
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	return n, err
}

type hashWriter struct {
	w io.Writer
	h *xxhash.Digest
	n int64
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

func removeStaleTmps(sdir string) {
	entries, _ := os.ReadDir(sdir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			os.Remove(filepath.Join(sdir, e.Name()))
		}
	}
}

// pruneSnapshots keeps keep and the newest other snapshot whose frame
// checks out, and removes the rest.
func pruneSnapshots(dir, keep string) {
	files, _ := OpenSnapshots(dir)
	kept := false
	for _, sf := range files {
		if sf.Path == keep {
			continue
		}
		if !kept && checkSnapshotFrame(sf) == nil {
			kept = true
			continue
		}
		os.Remove(sf.Path)
	}
}

// OpenSnapshots lists the snapshots in dir/snapshots, newest (highest LSN)
// first. A missing directory is no error.
func OpenSnapshots(dir string) ([]SnapshotFile, error) {
	sdir := filepath.Join(dir, "snapshots")
	entries, err := os.ReadDir(sdir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot list snapshots: %w", err)
	}
	var files []SnapshotFile
	for _, e := range entries {
		digits, ok := strings.CutPrefix(e.Name(), "snapshot-")
		if !ok || e.IsDir() {
			continue
		}
		if digits, ok = strings.CutSuffix(digits, ".zst"); !ok {
			continue
		}
		lsn, err := strconv.ParseUint(digits, 10, 64)
		if err != nil {
			continue
		}
		sf := SnapshotFile{Path: filepath.Join(sdir, e.Name()), LSN: lsn}
		if fi, err := e.Info(); err == nil {
			sf.Bytes = fi.Size()
		}
		if f, err := os.Open(sf.Path); err == nil {
			var h [snapshotHeaderSize]byte
			if _, err := io.ReadFull(f, h[:]); err == nil {
				if hd, err := parseSnapshotHeader(h[:]); err == nil {
					sf.Created = time.Unix(0, hd.created)
				}
			}
			f.Close()
		}
		files = append(files, sf)
	}
	slices.SortFunc(files, func(a, b SnapshotFile) int {
		switch {
		case a.LSN > b.LSN:
			return -1
		case a.LSN < b.LSN:
			return 1
		}
		return 0
	})
	return files, nil
}

type snapshotHeader struct {
	lsn     uint64
	created int64
}

type snapshotTrailer struct {
	raw, compressed int64
	sum             uint64 // xxhash64 of the content
	crc             uint32 // CRC32-C of the compressed stream
}

func parseSnapshotHeader(h []byte) (snapshotHeader, error) {
	if [8]byte(h[0:8]) != snapshotMagic {
		return snapshotHeader{}, errors.New("not a snapshot (bad magic)")
	}
	if crc32.Checksum(h[:36], castagnoli) != binary.LittleEndian.Uint32(h[36:]) {
		return snapshotHeader{}, errors.New("header checksum mismatch")
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v != snapshotVersion {
		return snapshotHeader{}, fmt.Errorf("unknown format version %d", v)
	}
	return snapshotHeader{lsn: binary.LittleEndian.Uint64(h[16:]), created: int64(binary.LittleEndian.Uint64(h[24:]))}, nil
}

func parseSnapshotTrailer(t []byte) (snapshotTrailer, error) {
	if [8]byte(t[0:8]) != snapshotEndMagic {
		return snapshotTrailer{}, errors.New("no trailer (truncated?)")
	}
	if crc32.Checksum(t[:36], castagnoli) != binary.LittleEndian.Uint32(t[36:]) {
		return snapshotTrailer{}, errors.New("trailer checksum mismatch")
	}
	tr := snapshotTrailer{
		raw:        int64(binary.LittleEndian.Uint64(t[8:])),
		compressed: int64(binary.LittleEndian.Uint64(t[16:])),
		sum:        binary.LittleEndian.Uint64(t[24:]),
		crc:        binary.LittleEndian.Uint32(t[32:]),
	}
	if tr.raw < 0 || tr.compressed < 0 {
		return snapshotTrailer{}, errors.New("trailer lengths out of range")
	}
	return tr, nil
}

// readSnapshotFrame reads and checks the header and trailer of a snapshot
// of size bytes. Errors wrap ErrCorruptSnapshot unless they are I/O errors.
func readSnapshotFrame(r io.ReaderAt, size int64, wantLSN uint64) (snapshotHeader, snapshotTrailer, error) {
	var hd snapshotHeader
	var tr snapshotTrailer
	if size < snapshotHeaderSize+snapshotTrailerSize {
		return hd, tr, fmt.Errorf("%w: %d bytes, too short (truncated?)", ErrCorruptSnapshot, size)
	}
	var h [snapshotHeaderSize]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return hd, tr, fmt.Errorf("cannot read snapshot header: %w", err)
	}
	hd, err := parseSnapshotHeader(h[:])
	if err != nil {
		return hd, tr, fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	if hd.lsn != wantLSN {
		return hd, tr, fmt.Errorf("%w: header says LSN %d, the file name %d", ErrCorruptSnapshot, hd.lsn, wantLSN)
	}
	var t [snapshotTrailerSize]byte
	if _, err := r.ReadAt(t[:], size-snapshotTrailerSize); err != nil {
		return hd, tr, fmt.Errorf("cannot read snapshot trailer: %w", err)
	}
	if tr, err = parseSnapshotTrailer(t[:]); err != nil {
		return hd, tr, fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	if tr.compressed != size-snapshotHeaderSize-snapshotTrailerSize {
		return hd, tr, fmt.Errorf("%w: trailer says %d compressed bytes, the file holds %d", ErrCorruptSnapshot, tr.compressed, size-snapshotHeaderSize-snapshotTrailerSize)
	}
	return hd, tr, nil
}

// checkSnapshotFrame checks a snapshot's header and trailer only (cheap).
func checkSnapshotFrame(sf SnapshotFile) error {
	f, err := os.Open(sf.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	_, _, err = readSnapshotFrame(f, fi.Size(), sf.LSN)
	return err
}

// ReadSnapshot streams the decompressed content of sf to read. The header
// and trailer are checked first; after read returns, the rest of the stream
// is drained and the content length and checksum verified, so corruption is
// reported even if read stopped early. Any mismatch, truncation or
// decoding error returns an error matching ErrCorruptSnapshot, even if read
// itself returned an error (which it may, on garbage); otherwise read's
// error is returned as is. Memory is bounded: the zstd window may not exceed
// 64 MiB.
func ReadSnapshot(sf SnapshotFile, read func(r io.Reader) error) error {
	f, err := os.Open(sf.Path)
	if err != nil {
		return fmt.Errorf("cannot open snapshot: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cannot stat snapshot: %w", err)
	}
	return readSnapshot(f, fi.Size(), sf.LSN, sf.Path, read)
}

func readSnapshot(r io.ReaderAt, size int64, lsn uint64, name string, read func(r io.Reader) error) error {
	_, tr, err := readSnapshotFrame(r, size, lsn)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	cr := &crcReader{r: io.NewSectionReader(r, snapshotHeaderSize, tr.compressed)}
	br := bufio.NewReaderSize(cr, 256<<10)
	// Concurrency 2: a snapshot is read at start, when nothing else runs, so
	// decoding overlaps with read applying the content.
	dec, err := zstd.NewReader(br, zstd.WithDecoderMaxMemory(snapshotMaxWindow), zstd.WithDecoderConcurrency(2))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorruptSnapshot, name, err)
	}
	defer dec.Close()
	vr := &verifyReader{r: io.LimitReader(dec, tr.raw+1), h: xxhash.New()}
	readErr := read(vr)
	if vr.err == nil {
		_, _ = io.Copy(io.Discard, vr)
	}
	switch {
	case vr.err != nil:
		return fmt.Errorf("%w: %s: %w", ErrCorruptSnapshot, name, vr.err)
	case vr.n != tr.raw:
		return fmt.Errorf("%w: %s: %d content bytes, the trailer says %d", ErrCorruptSnapshot, name, vr.n, tr.raw)
	case vr.h.Sum64() != tr.sum:
		return fmt.Errorf("%w: %s: content checksum mismatch", ErrCorruptSnapshot, name)
	case cr.n != tr.compressed || cr.crc != tr.crc:
		return fmt.Errorf("%w: %s: compressed stream checksum mismatch", ErrCorruptSnapshot, name)
	}
	return readErr
}

// crcReader counts and CRCs the compressed stream as it is read.
type crcReader struct {
	r   io.Reader
	n   int64
	crc uint32
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	return n, err
}

// verifyReader counts and hashes what passes through and keeps the first
// error other than io.EOF.
type verifyReader struct {
	r   io.Reader
	h   *xxhash.Digest
	n   int64
	err error
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err != nil && err != io.EOF {
		v.err = err
	}
	return n, err
}
