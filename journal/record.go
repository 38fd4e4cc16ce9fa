package journal

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"math"
	"slices"
)

// Record frame (little endian), see doc.go:
//
//	0  magic       [4]byte  C5 'J' 'R' 01 (the last byte is the format version)
//	4  kind        uint8    1 = data record, 2 = gap marker
//	5  reserved    [3]byte  zero
//	8  length      uint32   payload bytes
//	12 payload CRC uint32   CRC32-C of the payload
//	16 lsn         uint64
//	24 header CRC  uint32   CRC32-C of bytes 0..24
//	28 payload
const headerSize = 28

const (
	kindData byte = 1
	// kindGap marks LSNs lost in a repair: its LSN is the first lost one and
	// its 8-byte payload the number of lost LSNs. Replay skips them, so a
	// repaired log replays cleanly without Repair the next time.
	kindGap byte = 2
)

var recordMagic = [4]byte{0xC5, 'J', 'R', 0x01}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// readWindow is how much of a segment file the reader fetches at once.
const readWindow = 1 << 20

// appendFrame appends the frame of one record to dst. payloadCRC must be the
// CRC32-C of payload (computed by the caller, outside any lock).
func appendFrame(dst []byte, kind byte, lsn uint64, payload []byte, payloadCRC uint32) []byte {
	// The header is built in place: a local array would escape (crc32 calls
	// through a function value) and cost an allocation per record.
	n := len(dst)
	dst = slices.Grow(dst, headerSize+len(payload))[:n+headerSize]
	h := dst[n:]
	copy(h[0:4], recordMagic[:])
	h[4], h[5], h[6], h[7] = kind, 0, 0, 0
	binary.LittleEndian.PutUint32(h[8:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[12:], payloadCRC)
	binary.LittleEndian.PutUint64(h[16:], lsn)
	binary.LittleEndian.PutUint32(h[24:], crc32.Checksum(h[:24], castagnoli))
	return append(dst, payload...)
}

// appendGap appends a gap marker for LSNs lsn..lsn+count-1.
func appendGap(dst []byte, lsn, count uint64) []byte {
	var p [8]byte
	binary.LittleEndian.PutUint64(p[:], count)
	return appendFrame(dst, kindGap, lsn, p[:], crc32.Checksum(p[:], castagnoli))
}

// frameHeader is a decoded, checksum-verified header.
type frameHeader struct {
	kind   byte
	length uint32
	crc    uint32
	lsn    uint64
}

// parseHeader decodes b[:headerSize]; ok is false unless the magic, the
// reserved bytes, the kind and the header checksum are all right.
func parseHeader(b []byte) (frameHeader, bool) {
	if len(b) < headerSize || [4]byte(b[0:4]) != recordMagic || b[5]|b[6]|b[7] != 0 {
		return frameHeader{}, false
	}
	if crc32.Checksum(b[:24], castagnoli) != binary.LittleEndian.Uint32(b[24:]) {
		return frameHeader{}, false
	}
	h := frameHeader{
		kind:   b[4],
		length: binary.LittleEndian.Uint32(b[8:]),
		crc:    binary.LittleEndian.Uint32(b[12:]),
		lsn:    binary.LittleEndian.Uint64(b[16:]),
	}
	switch {
	case h.kind == kindData:
	case h.kind == kindGap && h.length == 8:
	default:
		return frameHeader{}, false
	}
	return h, true
}

// record is one verified frame read from a segment.
type record struct {
	off     int64 // offset of the frame in the segment
	next    int64 // offset after the frame
	kind    byte
	lsn     uint64
	payload []byte // valid until the next read from the same segReader
}

// lsnEnd is the LSN after the ones this record accounts for.
func (r *record) lsnEnd() uint64 {
	if r.kind == kindGap {
		return r.lsn + binary.LittleEndian.Uint64(r.payload)
	}
	return r.lsn + 1
}

// fits reports whether r's LSNs lie within [from, limit).
func (r *record) fits(from, limit uint64) bool {
	if r.lsn < from || r.lsn >= limit {
		return false
	}
	if r.kind == kindGap {
		n := binary.LittleEndian.Uint64(r.payload)
		return n > 0 && n <= limit-r.lsn
	}
	return true
}

// segReader reads frames from a segment through a window buffer.
type segReader struct {
	r    io.ReaderAt
	size int64
	buf  []byte
	boff int64 // segment offset of buf[0]
}

func newSegReader(r io.ReaderAt, size int64) *segReader {
	return &segReader{r: r, size: size}
}

// at returns the n bytes at off; the caller guarantees off+n <= size. The
// slice is valid until the next call.
func (s *segReader) at(off int64, n int) ([]byte, error) {
	if off >= s.boff && off+int64(n) <= s.boff+int64(len(s.buf)) {
		return s.buf[off-s.boff : off-s.boff+int64(n)], nil
	}
	want := int64(max(n, readWindow))
	want = min(want, s.size-off)
	if int64(cap(s.buf)) < want {
		s.buf = make([]byte, want)
	}
	s.buf = s.buf[:want]
	m, err := s.r.ReadAt(s.buf, off)
	if m < n {
		s.buf = s.buf[:0]
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	s.buf, s.boff = s.buf[:m], off
	return s.buf[:n], nil
}

// read reads the frame at off. ok is false when there is no valid frame
// there: end of segment, a torn frame, or bytes that fail a check. err is
// only for read errors of the underlying file.
func (s *segReader) read(off int64) (rec record, ok bool, err error) {
	rem := s.size - off
	if rem < headerSize {
		return rec, false, nil
	}
	b, err := s.at(off, headerSize)
	if err != nil {
		return rec, false, err
	}
	h, ok := parseHeader(b)
	if !ok || int64(h.length) > rem-headerSize {
		return rec, false, nil
	}
	p, err := s.at(off+headerSize, int(h.length))
	if err != nil {
		return rec, false, err
	}
	if crc32.Checksum(p, castagnoli) != h.crc {
		return rec, false, nil
	}
	return record{off: off, next: off + headerSize + int64(h.length), kind: h.kind, lsn: h.lsn, payload: p}, true, nil
}

// resync finds the first valid frame at or after off that accept takes.
func (s *segReader) resync(off int64, accept func(*record) bool) (record, bool, error) {
	var r record
	for s.size-off >= headerSize {
		var w []byte
		if off >= s.boff && off+headerSize <= s.boff+int64(len(s.buf)) {
			w = s.buf[off-s.boff:]
		} else {
			var err error
			if w, err = s.at(off, int(min(readWindow, s.size-off))); err != nil {
				return record{}, false, err
			}
		}
		i := bytes.Index(w, recordMagic[:])
		if i < 0 {
			// A magic may straddle the window's end: keep its last 3 bytes.
			off += int64(len(w)) - int64(len(recordMagic)-1)
			continue
		}
		cand := off + int64(i)
		var ok bool
		var err error
		r, ok, err = s.read(cand)
		if err != nil {
			return record{}, false, err
		}
		if ok && accept(&r) {
			return r, true, nil
		}
		off = cand + 1
	}
	return record{}, false, nil
}

// anomaly is a place where a segment does not hold what it should: bad bytes
// (a torn, zeroed or corrupt frame) or missing LSNs.
type anomaly struct {
	off   int64  // where the bad bytes start
	bytes int64  // how many bytes are bad (0: only LSNs are missing)
	lsn   uint64 // the LSN expected at off
	lost  uint64 // LSNs missing at this point (lsn..lsn+lost-1)
}

// scanSegment verifies one segment from its start. expected is the LSN its
// first frame must carry (its file name), limit the first LSN of the next
// segment (math.MaxUint64 for the last one). It calls onRecord for every
// valid frame in order and onAnomaly for every bad range or LSN gap in
// the middle; an error from either stops the scan. onRecord also sees gap
// markers (kind). Bad bytes at the end of
// the last segment (nothing valid after them) are not an anomaly: the scan
// returns goodEnd < size and the caller truncates. next is the LSN expected
// after the segment.
func scanSegment(s *segReader, expected, limit uint64, last bool, onRecord func(*record) error, onAnomaly func(anomaly) error) (next uint64, goodEnd int64, err error) {
	var off int64
	var r record // one variable for all: &r escapes through the callbacks
	for off < s.size {
		var ok bool
		var err error
		r, ok, err = s.read(off)
		if err != nil {
			return expected, off, err
		}
		if ok && r.fits(expected, limit) {
			if r.lsn > expected {
				// A clean gap: every byte checks, but LSNs are missing.
				if err := onAnomaly(anomaly{off: off, lsn: expected, lost: r.lsn - expected}); err != nil {
					return expected, off, err
				}
				expected = r.lsn
			}
			if err := onRecord(&r); err != nil {
				return expected, off, err
			}
			expected, off = r.lsnEnd(), r.next
			continue
		}
		// Bad bytes start at off. Is anything valid behind them?
		exp := expected
		nr, found, err := s.resync(off+1, func(r *record) bool { return r.fits(exp, limit) })
		if err != nil {
			return expected, off, err
		}
		if !found {
			if last {
				return expected, off, nil
			}
			a := anomaly{off: off, bytes: s.size - off, lsn: expected, lost: limit - expected}
			if err := onAnomaly(a); err != nil {
				return expected, off, err
			}
			return limit, off, nil
		}
		a := anomaly{off: off, bytes: nr.off - off, lsn: expected, lost: nr.lsn - expected}
		if err := onAnomaly(a); err != nil {
			return expected, off, err
		}
		expected, off = nr.lsn, nr.off
	}
	if !last && expected < limit {
		if err := onAnomaly(anomaly{off: off, lsn: expected, lost: limit - expected}); err != nil {
			return expected, off, err
		}
		expected = limit
	}
	return expected, off, nil
}

// noLimit is the limit of the last segment.
const noLimit = math.MaxUint64

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
