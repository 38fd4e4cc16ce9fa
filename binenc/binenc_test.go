package binenc

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
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

// TestLargeStreams: values across many buffer refills, fields larger than
// the buffer, a source that returns one byte at a time or fails midway, and
// the hand-off of the rest of the stream to another decoder.
func TestLargeStreams(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	const n = 100_000
	big := bytes.Repeat([]byte("0123456789"), 3*bufSize/10)
	for i := range n {
		w.U64(uint64(i) * 0x9e3779b97f4a7c15)
		w.Varint(int64(i) - n/2)
		w.Uvarint(uint64(i) << (i % 57))
		if i%20_000 == 0 {
			w.Bytes(big)
			w.String(string(big[:bufSize-3]))
		}
	}
	w.Tag("end")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("rest of the stream")

	for _, src := range []struct {
		name string
		r    func() io.Reader
	}{
		{"whole", func() io.Reader { return bytes.NewReader(buf.Bytes()) }},
		{"one byte at a time", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(buf.Bytes())) }},
		{"half at a time", func() io.Reader { return iotest.HalfReader(bytes.NewReader(buf.Bytes())) }},
	} {
		r := NewReader(src.r())
		for i := range n {
			if u, v, x := r.U64(), r.Varint(), r.Uvarint(); u != uint64(i)*0x9e3779b97f4a7c15 || v != int64(i)-n/2 || x != uint64(i)<<(i%57) {
				t.Fatalf("%s: value %d: %d %d %d (%v)", src.name, i, u, v, x, r.Err())
			}
			if i%20_000 == 0 {
				if b, s := r.Bytes(len(big)), r.String(bufSize); !bytes.Equal(b, big) || s != string(big[:bufSize-3]) {
					t.Fatalf("%s: big field %d: %d and %d bytes (%v)", src.name, i, len(b), len(s), r.Err())
				}
			}
		}
		r.Tag("end")
		if r.Err() != nil {
			t.Fatalf("%s: %v", src.name, r.Err())
		}
		if rest, err := io.ReadAll(r.Reader()); err != nil || string(rest) != "rest of the stream" {
			t.Fatalf("%s: rest %q, %v", src.name, rest, err)
		}
	}

	// A source failing midway: the error sticks, nothing panics.
	boom := errors.New("disk gone")
	r := NewReader(io.MultiReader(bytes.NewReader(buf.Bytes()[:buf.Len()/2]), iotest.ErrReader(boom)))
	for i := 0; r.Err() == nil && i < buf.Len(); i++ {
		r.U64()
	}
	if !errors.Is(r.Err(), ErrCorrupt) || !errors.Is(r.Err(), boom) {
		t.Fatalf("error %v, want ErrCorrupt wrapping %v", r.Err(), boom)
	}

	// A failing destination: the first error sticks.
	fw := NewWriter(failWriter{boom})
	for i := range 3 * bufSize {
		fw.U64(uint64(i))
	}
	if err := fw.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush: %v, want %v", err, boom)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }
