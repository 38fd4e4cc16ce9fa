// Package binenc is the little binary encoding of cpafeed's snapshots:
// a buffered Writer and a Reader with sticky errors, varints, fixed 64-bit
// words and length-prefixed bytes. It imports nothing of cpafeed and keeps
// no state.
package binenc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// ErrCorrupt is returned by a Reader on input that cannot be what a Writer
// wrote.
var ErrCorrupt = errors.New("binenc: corrupt input")

// Writer encodes to a buffered io.Writer; the first error sticks and is
// returned by Flush.
type Writer struct {
	w   *bufio.Writer
	buf [binary.MaxVarintLen64]byte
	err error
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriterSize(w, 1<<16)} }

func (w *Writer) write(b []byte) {
	if w.err == nil {
		_, w.err = w.w.Write(b)
	}
}

// Uvarint writes v as an unsigned varint.
func (w *Writer) Uvarint(v uint64) { w.write(binary.AppendUvarint(w.buf[:0], v)) }

// Varint writes v as a signed varint.
func (w *Writer) Varint(v int64) { w.write(binary.AppendVarint(w.buf[:0], v)) }

// U64 writes v as 8 little-endian bytes.
func (w *Writer) U64(v uint64) { w.write(binary.LittleEndian.AppendUint64(w.buf[:0], v)) }

// F64 writes a float64 as its bits.
func (w *Writer) F64(v float64) { w.U64(math.Float64bits(v)) }

// Byte writes one byte.
func (w *Writer) Byte(b byte) {
	if w.err == nil {
		w.err = w.w.WriteByte(b)
	}
}

// Bytes writes b with its length.
func (w *Writer) Bytes(b []byte) {
	w.Uvarint(uint64(len(b)))
	w.write(b)
}

// String writes s with its length.
func (w *Writer) String(s string) {
	w.Uvarint(uint64(len(s)))
	if w.err == nil {
		_, w.err = w.w.WriteString(s)
	}
}

// Raw writes b as is (fixed-size fields, e.g. 16-byte keys).
func (w *Writer) Raw(b []byte) { w.write(b) }

// Tag writes a section tag (checked by Reader.Tag).
func (w *Writer) Tag(tag string) { w.String(tag) }

// Flush writes out what is buffered and returns the first error.
func (w *Writer) Flush() error {
	if w.err == nil {
		w.err = w.w.Flush()
	}
	return w.err
}

// Err is the first error.
func (w *Writer) Err() error { return w.err }

// Reader decodes what a Writer wrote; the first error sticks.
type Reader struct {
	r   *bufio.Reader
	err error
	buf [8]byte
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 1<<16)} }

func (r *Reader) fail(err error) {
	if r.err == nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.err = fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
}

// Err is the first error.
func (r *Reader) Err() error { return r.err }

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(r.r)
	if err != nil {
		r.fail(err)
	}
	return v
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	if r.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(r.r)
	if err != nil {
		r.fail(err)
	}
	return v
}

// U64 reads 8 little-endian bytes.
func (r *Reader) U64() uint64 {
	if r.err != nil {
		return 0
	}
	if _, err := io.ReadFull(r.r, r.buf[:8]); err != nil {
		r.fail(err)
		return 0
	}
	return binary.LittleEndian.Uint64(r.buf[:8])
}

// F64 reads a float64.
func (r *Reader) F64() float64 { return math.Float64frombits(r.U64()) }

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.err != nil {
		return 0
	}
	b, err := r.r.ReadByte()
	if err != nil {
		r.fail(err)
	}
	return b
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
	if _, err := io.ReadFull(r.r, b); err != nil {
		r.fail(err)
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
	if _, err := io.ReadFull(r.r, b); err != nil {
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

// Reader returns the buffered reader under r, positioned after what r has
// read: to hand the rest of the stream to a decoder of its own.
func (r *Reader) Reader() io.Reader { return r.r }
