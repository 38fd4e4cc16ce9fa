package model

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
)

// Little-endian binary encoding helpers shared by the model snapshot and the
// Estimates encoding. Every section ends in a CRC-32C of all bytes before
// it, so a torn or corrupted file is refused rather than half-loaded.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encoder appends to a buffer and flushes it to w in chunks.
type encoder struct {
	w   io.Writer
	buf []byte
	crc hash.Hash32
	err error
}

func newEncoder(w io.Writer) *encoder {
	return &encoder{w: w, buf: make([]byte, 0, 64<<10), crc: crc32.New(castagnoli)}
}

func (e *encoder) flushIf() {
	if len(e.buf) >= 60<<10 {
		e.flush()
	}
}

func (e *encoder) flush() {
	if e.err == nil && len(e.buf) > 0 {
		e.crc.Write(e.buf)
		_, e.err = e.w.Write(e.buf)
	}
	e.buf = e.buf[:0]
}

func (e *encoder) u8(v uint8)   { e.buf = append(e.buf, v); e.flushIf() }
func (e *encoder) u16(v uint16) { e.buf = binary.LittleEndian.AppendUint16(e.buf, v); e.flushIf() }
func (e *encoder) u32(v uint32) { e.buf = binary.LittleEndian.AppendUint32(e.buf, v); e.flushIf() }
func (e *encoder) u64(v uint64) { e.buf = binary.LittleEndian.AppendUint64(e.buf, v); e.flushIf() }
func (e *encoder) i64(v int64)  { e.u64(uint64(v)) }
func (e *encoder) f64(v float64) {
	e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(v))
	e.flushIf()
}
func (e *encoder) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}
func (e *encoder) bytes(v []byte) {
	e.u32(uint32(len(v)))
	e.buf = append(e.buf, v...)
	e.flushIf()
}
func (e *encoder) str(v string) {
	e.u32(uint32(len(v)))
	e.buf = append(e.buf, v...)
	e.flushIf()
}

// finish writes the checksum of everything written so far.
func (e *encoder) finish() error {
	e.flush()
	if e.err != nil {
		return e.err
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], e.crc.Sum32())
	_, e.err = e.w.Write(sum[:])
	return e.err
}

// decoder reads what encoder wrote. Errors are sticky: after the first,
// every read returns zero and err() reports it.
type decoder struct {
	r   *bufio.Reader
	crc hash.Hash32
	b   [8]byte
	e   error
}

func newDecoder(r io.Reader) *decoder {
	return &decoder{r: bufio.NewReaderSize(r, 64<<10), crc: crc32.New(castagnoli)}
}

var errCorrupt = errors.New("corrupt")

func (d *decoder) fail(format string, a ...any) {
	if d.e == nil {
		d.e = fmt.Errorf("%w: "+format, append([]any{errCorrupt}, a...)...)
	}
}

func (d *decoder) read(p []byte) {
	if d.e != nil {
		clear(p)
		return
	}
	if _, err := io.ReadFull(d.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		d.e = err
		clear(p)
		return
	}
	d.crc.Write(p)
}

func (d *decoder) u8() uint8   { d.read(d.b[:1]); return d.b[0] }
func (d *decoder) u16() uint16 { d.read(d.b[:2]); return binary.LittleEndian.Uint16(d.b[:2]) }
func (d *decoder) u32() uint32 { d.read(d.b[:4]); return binary.LittleEndian.Uint32(d.b[:4]) }
func (d *decoder) u64() uint64 { d.read(d.b[:8]); return binary.LittleEndian.Uint64(d.b[:8]) }
func (d *decoder) i64() int64  { return int64(d.u64()) }
func (d *decoder) f64() float64 {
	return math.Float64frombits(d.u64())
}

// fin reads a float that must be finite.
func (d *decoder) fin(what string) float64 {
	v := d.f64()
	if math.IsNaN(v) || math.IsInf(v, 0) {
		d.fail("%s: not finite", what)
		return 0
	}
	return v
}

func (d *decoder) bool() bool {
	switch d.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad boolean")
	return false
}

// bytes reads a length-prefixed byte string of at most max bytes into a new
// slice (grown as data arrives, so a lying length cannot allocate much).
func (d *decoder) bytesMax(max int, what string) []byte {
	n := d.u32()
	if d.e != nil {
		return nil
	}
	if int64(n) > int64(max) {
		d.fail("%s: length %d over %d", what, n, max)
		return nil
	}
	var out []byte
	for n > 0 && d.e == nil {
		c := min(n, 64<<10)
		start := len(out)
		out = append(out, make([]byte, c)...)
		d.read(out[start:])
		n -= c
	}
	return out
}

func (d *decoder) str(max int, what string) string { return string(d.bytesMax(max, what)) }

// count reads a record count, refusing absurd ones (records are read one
// by one, so it only bounds the work).
func (d *decoder) count(max int, what string) int {
	n := d.u32()
	if int64(n) > int64(max) {
		d.fail("%s: count %d over %d", what, n, max)
		return 0
	}
	return int(n)
}

// finish checks the trailing checksum.
func (d *decoder) finish() error {
	if d.e != nil {
		return d.e
	}
	want := d.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(d.r, sum[:]); err != nil {
		return fmt.Errorf("%w: missing checksum", errCorrupt)
	}
	if got := binary.LittleEndian.Uint32(sum[:]); got != want {
		return fmt.Errorf("%w: checksum %08x, computed %08x", errCorrupt, got, want)
	}
	return nil
}
