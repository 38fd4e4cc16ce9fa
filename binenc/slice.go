package binenc

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// Slice decodes a record held in memory (a journal record, a remembered
// bid, a model snapshot) in place: the bytes it returns alias the input.
// Its first error sticks, after which every read returns a zero value;
// errors name the field being read and wrap the base error given to
// NewSlice. Varints must be in their canonical (shortest) form, as
// binary.AppendUvarint writes them: another form is corruption too.
type Slice struct {
	b    []byte
	err  error
	base error
}

// NewSlice returns a Slice reading b; its errors wrap base.
func NewSlice(b []byte, base error) Slice { return Slice{b: b, base: base} }

// Err is the first error, nil when every read so far fitted.
func (s *Slice) Err() error { return s.err }

// Len is the number of bytes not read yet.
func (s *Slice) Len() int { return len(s.b) }

// Fail records an error about field what (the first one sticks).
func (s *Slice) Fail(what, format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf("%w: %s: %s", s.base, what, fmt.Sprintf(format, args...))
	}
	s.b = nil
}

// Byte reads one byte.
func (s *Slice) Byte(what string) byte {
	if len(s.b) < 1 {
		s.Fail(what, "truncated")
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

// Uvarint reads a canonical unsigned varint.
func (s *Slice) Uvarint(what string) uint64 {
	v, n := binary.Uvarint(s.b)
	if n <= 0 || n != 1+(bits.Len64(v|1)-1)/7 {
		s.Fail(what, "bad varint")
		return 0
	}
	s.b = s.b[n:]
	return v
}

// Varint reads a canonical signed (zigzag) varint.
func (s *Slice) Varint(what string) int64 {
	u := s.Uvarint(what)
	return int64(u>>1) ^ -int64(u&1)
}

// LenMax reads a uvarint that must not exceed max.
func (s *Slice) LenMax(max int, what string) int {
	v := s.Uvarint(what)
	if v > uint64(max) {
		s.Fail(what, "%d exceeds %d", v, max)
		return 0
	}
	return int(v)
}

// Count reads the number of items that follow, each of at least min (> 0)
// bytes: a count the rest of the input cannot hold is an error, so a
// corrupt count never sizes an allocation.
func (s *Slice) Count(min int, what string) int {
	v := s.Uvarint(what)
	if v > uint64(len(s.b)/max(min, 1)) {
		s.Fail(what, "count %d beyond the data", v)
		return 0
	}
	return int(v)
}

// U64 reads a little-endian 64-bit word.
func (s *Slice) U64(what string) uint64 {
	if len(s.b) < 8 {
		s.Fail(what, "truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(s.b)
	s.b = s.b[8:]
	return v
}

// F64 reads a float64 written as its IEEE 754 bits.
func (s *Slice) F64(what string) float64 { return math.Float64frombits(s.U64(what)) }

// Raw reads the next n bytes.
func (s *Slice) Raw(n int, what string) []byte {
	if n < 0 || len(s.b) < n {
		s.Fail(what, "truncated")
		return nil
	}
	v := s.b[:n:n]
	s.b = s.b[n:]
	return v
}

// Bytes reads uvarint-length-prefixed bytes.
func (s *Slice) Bytes(what string) []byte {
	n := s.Uvarint(what)
	if n > uint64(len(s.b)) {
		s.Fail(what, "truncated")
		return nil
	}
	return s.Raw(int(n), what)
}
