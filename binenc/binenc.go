// Package binenc is the little binary encoding of cpafeed's snapshots and
// records: a buffered Writer and a Reader for streams, and a Slice that
// decodes a record held in memory in place; all with sticky errors,
// varints, fixed 64-bit words and length-prefixed bytes. It imports nothing
// of cpafeed and keeps no state.
package binenc

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// ErrCorrupt is returned by a Reader on input that cannot be what a Writer
// wrote.
var ErrCorrupt = errors.New("binenc: corrupt input")

// Writer encodes into a buffer of its own, written out to an io.Writer
// when full; the first error sticks and is returned by Flush. Each field is
// an append to that buffer (no call through bufio per field: snapshots
// write tens of millions of them while ingest waits).
type Writer struct {
	w   io.Writer
	b   []byte // pending bytes, cap bufSize
	err error
}

const bufSize = 64 << 10

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, b: make([]byte, 0, bufSize)} }

// flushBuf writes out the pending bytes (dropped after an error).
func (w *Writer) flushBuf() {
	if w.err == nil && len(w.b) > 0 {
		_, w.err = w.w.Write(w.b)
	}
	w.b = w.b[:0]
}

func (w *Writer) write(p []byte) {
	if len(p) > cap(w.b)-len(w.b) {
		w.flushBuf()
		if len(p) >= cap(w.b) {
			if w.err == nil {
				_, w.err = w.w.Write(p)
			}
			return
		}
	}
	w.b = append(w.b, p...)
}

// Uvarint writes v as an unsigned varint.
func (w *Writer) Uvarint(v uint64) {
	if len(w.b)+binary.MaxVarintLen64 > cap(w.b) {
		w.flushBuf()
	}
	w.b = binary.AppendUvarint(w.b, v)
}

// Varint writes v as a signed varint.
func (w *Writer) Varint(v int64) {
	if len(w.b)+binary.MaxVarintLen64 > cap(w.b) {
		w.flushBuf()
	}
	w.b = binary.AppendVarint(w.b, v)
}

// U64 writes v as 8 little-endian bytes.
func (w *Writer) U64(v uint64) {
	if len(w.b)+8 > cap(w.b) {
		w.flushBuf()
	}
	w.b = binary.LittleEndian.AppendUint64(w.b, v)
}

// F64 writes a float64 as its bits.
func (w *Writer) F64(v float64) { w.U64(math.Float64bits(v)) }

// Byte writes one byte.
func (w *Writer) Byte(b byte) {
	if len(w.b)+1 > cap(w.b) {
		w.flushBuf()
	}
	w.b = append(w.b, b)
}

// Bytes writes b with its length.
func (w *Writer) Bytes(b []byte) {
	w.Uvarint(uint64(len(b)))
	w.write(b)
}

// String writes s with its length.
func (w *Writer) String(s string) {
	w.Uvarint(uint64(len(s)))
	if len(s) <= cap(w.b)-len(w.b) {
		w.b = append(w.b, s...)
		return
	}
	w.write([]byte(s))
}

// Raw writes b as is (fixed-size fields, e.g. 16-byte keys).
func (w *Writer) Raw(b []byte) { w.write(b) }

// Tag writes a section tag (checked by Reader.Tag).
func (w *Writer) Tag(tag string) { w.String(tag) }

// Flush writes out what is buffered and returns the first error.
func (w *Writer) Flush() error {
	w.flushBuf()
	return w.err
}

// Err is the first error.
func (w *Writer) Err() error { return w.err }

// Reader decodes what a Writer wrote, from a buffer of its own refilled
// from an io.Reader; the first error sticks.
type Reader struct {
	r   io.Reader
	b   []byte // b[off:] is read but not yet decoded
	off int
	eof error // the io.Reader's error once it returned one
	err error
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r, b: make([]byte, 0, bufSize)} }

func (r *Reader) fail(err error) {
	if r.err == nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.err = fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
}

// fill tries to make n ≤ bufSize bytes available; it reports whether it did.
func (r *Reader) fill(n int) bool {
	if len(r.b)-r.off >= n {
		return true
	}
	r.b = r.b[:copy(r.b[:cap(r.b)], r.b[r.off:])]
	r.off = 0
	for len(r.b) < n && r.eof == nil {
		k, err := r.r.Read(r.b[len(r.b):cap(r.b)])
		r.b = r.b[:len(r.b)+k]
		if err != nil {
			r.eof = err
		} else if k == 0 {
			r.eof = io.ErrNoProgress
		}
	}
	return len(r.b) >= n
}

// need makes n bytes available or fails.
func (r *Reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if !r.fill(n) {
		r.fail(r.eof)
		return false
	}
	return true
}

// Err is the first error.
func (r *Reader) Err() error { return r.err }

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b)-r.off < binary.MaxVarintLen64 {
		r.fill(binary.MaxVarintLen64) // the stream may end sooner: decode what there is
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		if n == 0 {
			r.fail(cmp.Or(r.eof, io.ErrUnexpectedEOF))
		} else {
			r.fail(errors.New("varint overflows 64 bits"))
		}
		return 0
	}
	r.off += n
	return v
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	u := r.Uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

// U64 reads 8 little-endian bytes.
func (r *Reader) U64() uint64 {
	if len(r.b)-r.off < 8 && !r.need(8) || r.err != nil {
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

// F64 reads a float64.
func (r *Reader) F64() float64 { return math.Float64frombits(r.U64()) }

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if len(r.b)-r.off < 1 && !r.need(1) || r.err != nil {
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// Len reads a length or count, refusing one above max (so corrupt input
// cannot make the caller allocate without bound).
func (r *Reader) Len(max int) int {
	n := r.Uvarint()
	if r.err == nil && n > uint64(max) {
		r.fail(fmt.Errorf("length %d above %d", n, max))
		return 0
	}
	return int(n)
}

// Bytes reads length-prefixed bytes of at most max bytes.
func (r *Reader) Bytes(max int) []byte {
	n := r.Len(max)
	if r.err != nil {
		return nil
	}
	b := make([]byte, n)
	r.Raw(b)
	if r.err != nil {
		return nil
	}
	return b
}

// String reads a length-prefixed string of at most max bytes.
func (r *Reader) String(max int) string { return string(r.Bytes(max)) }

// Raw fills b.
func (r *Reader) Raw(b []byte) {
	if r.err != nil {
		return
	}
	k := copy(b, r.b[r.off:])
	r.off += k
	if k == len(b) {
		return
	}
	if r.eof != nil {
		r.fail(r.eof)
		return
	}
	if _, err := io.ReadFull(r.r, b[k:]); err != nil {
		r.eof = err
		r.fail(err)
	}
}

// Tag reads a section tag and checks it is want.
func (r *Reader) Tag(want string) {
	got := r.String(64)
	if r.err == nil && got != want {
		r.fail(fmt.Errorf("section %q where %q was expected", got, want))
	}
}

// Reader returns the rest of the stream after what r has decoded: to hand
// it to a decoder of its own. r must not be used after.
func (r *Reader) Reader() io.Reader {
	rest := bytes.NewReader(r.b[r.off:])
	r.off = len(r.b)
	return io.MultiReader(rest, r.r)
}
