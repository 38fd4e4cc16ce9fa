package binenc

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

var errTest = errors.New("test record")

// sliceRecord writes one of each field with a Writer.
func sliceRecord(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Uvarint(300)
	w.Varint(-5)
	w.Varint(math.MinInt64)
	w.U64(1 << 60)
	w.F64(0.25)
	w.Byte(7)
	w.Bytes([]byte("abc"))
	w.Uvarint(2) // a count of 2 items of 8 bytes
	w.U64(1)
	w.U64(2)
	w.Raw([]byte{9, 9})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readSliceRecord reads what sliceRecord wrote and reports whether every
// field came back.
func readSliceRecord(s *Slice) bool {
	ok := s.Uvarint("a") == 300
	ok = s.Varint("b") == -5 && ok
	ok = s.Varint("c") == math.MinInt64 && ok
	ok = s.U64("d") == 1<<60 && ok
	ok = s.F64("e") == 0.25 && ok
	ok = s.Byte("f") == 7 && ok
	ok = string(s.Bytes("g")) == "abc" && ok
	n := s.Count(8, "h")
	ok = n == 2 && ok
	for i := range n {
		ok = s.U64("h item") == uint64(i+1) && ok
	}
	ok = bytes.Equal(s.Raw(2, "i"), []byte{9, 9}) && ok
	return ok
}

func TestSliceRoundTrip(t *testing.T) {
	rec := sliceRecord(t)
	s := NewSlice(rec, errTest)
	if !readSliceRecord(&s) || s.Err() != nil || s.Len() != 0 {
		t.Fatalf("round trip: err %v, %d bytes left", s.Err(), s.Len())
	}
	// Bytes alias the input.
	s = NewSlice(rec, errTest)
	s.Uvarint("a")
	s.Varint("b")
	s.Varint("c")
	s.U64("d")
	s.F64("e")
	s.Byte("f")
	if b := s.Bytes("g"); len(b) != 3 || &b[0] != &rec[len(rec)-len(b)-s.Len()] || cap(b) != 3 {
		t.Error("Bytes copied or left capacity into the rest")
	}
}

func TestSliceErrors(t *testing.T) {
	rec := sliceRecord(t)
	// Every truncation is an error that wraps the base and names a field;
	// reads after it return zero values.
	for i := range rec {
		s := NewSlice(rec[:i], errTest)
		readSliceRecord(&s)
		if err := s.Err(); !errors.Is(err, errTest) || !strings.Contains(err.Error(), "test record: ") {
			t.Fatalf("truncated to %d: %v", i, err)
		}
		if s.U64("after") != 0 || s.Bytes("after") != nil || s.Len() != 0 {
			t.Fatalf("truncated to %d: reads after the error", i)
		}
	}
	f := func(what string, b []byte, read func(*Slice), want string) {
		t.Helper()
		s := NewSlice(b, errTest)
		read(&s)
		if err := s.Err(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", what, err, want)
		}
	}
	f("overlong varint", []byte{0x80, 0x00}, func(s *Slice) { s.Uvarint("n") }, "n: bad varint")
	f("overlong zigzag", []byte{0x81, 0x00}, func(s *Slice) { s.Varint("ts") }, "ts: bad varint")
	f("over max", []byte{0x0b}, func(s *Slice) { s.LenMax(10, "names") }, "names: 11 exceeds 10")
	f("count beyond the data", []byte{0x03, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, func(s *Slice) { s.Count(8, "keys") }, "keys: count 3 beyond the data")
	f("huge count", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20}, func(s *Slice) { s.Count(8, "keys") }, "beyond the data")
	f("bytes beyond the data", []byte{0x05, 'a'}, func(s *Slice) { s.Bytes("id") }, "id: truncated")
	f("negative raw", []byte{1}, func(s *Slice) { s.Raw(-1, "x") }, "x: truncated")
	f("first error sticks", []byte{}, func(s *Slice) { s.Byte("first"); s.Fail("second", "no") }, "first: truncated")
}
