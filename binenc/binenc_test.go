package binenc

import (
	"bytes"
	"errors"
	"testing"
)

func TestRoundTripAndCorruption(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Tag("sec1")
	w.Uvarint(300)
	w.Varint(-5)
	w.U64(1 << 60)
	w.F64(0.25)
	w.Byte(7)
	w.Bytes([]byte("abc"))
	w.String("xyz")
	w.Raw([]byte{1, 2})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewReader(bytes.NewReader(buf.Bytes()))
	r.Tag("sec1")
	raw := make([]byte, 2)
	if r.Uvarint() != 300 || r.Varint() != -5 || r.U64() != 1<<60 || r.F64() != 0.25 || r.Byte() != 7 ||
		string(r.Bytes(10)) != "abc" || r.String(10) != "xyz" || func() bool { r.Raw(raw); return raw[1] != 2 }() || r.Err() != nil {
		t.Fatalf("round trip failed: %v", r.Err())
	}
	for i := range buf.Len() {
		r := NewReader(bytes.NewReader(buf.Bytes()[:i]))
		r.Tag("sec1")
		r.Uvarint()
		r.Varint()
		r.U64()
		r.F64()
		r.Byte()
		r.Bytes(10)
		r.String(10)
		r.Raw(raw)
		if !errors.Is(r.Err(), ErrCorrupt) {
			t.Fatalf("truncation at %d not detected", i)
		}
	}
	r = NewReader(bytes.NewReader(buf.Bytes()))
	r.Tag("other")
	if r.Err() == nil {
		t.Fatal("wrong tag accepted")
	}
	r = NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0x7f}))
	if r.Bytes(100); r.Err() == nil {
		t.Fatal("huge length accepted")
	}
}
