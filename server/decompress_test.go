package server

import (
	"bytes"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/cpafeed/cpafeed/apierr"
)

func gzipOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// zstdOf is b as one zstd frame with its content size (single segment).
func zstdOf(t testing.TB, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeAll(b, nil)
}

// zstdStreamOf is b through a streaming encoder with window w: no content
// size, the window in the header (when b is longer than one block: the
// encoder sizes the frame to a shorter b).
func zstdStreamOf(t testing.TB, b []byte, w int) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithWindowSize(w))
	if err != nil {
		t.Fatal(err)
	}
	enc.Write(b)
	enc.Close()
	return buf.Bytes()
}

func status(err error) int {
	if err == nil {
		return 200
	}
	return apierr.As(err).Status
}

// TestInflateMemoryBounded: the bodies being decompressed hold at most the
// budget together: a body that would cross it is shed with 429 (and
// counted), the budget comes back when a body is released, and a large
// buffer is not pooled.
func TestInflateMemoryBounded(t *testing.T) {
	const limit = 1 << 20
	d := newDecoders(limit, 2*limit)
	spaces := gzipOf(t, bytes.Repeat([]byte(" "), limit-10))

	out1, buf1, err := d.decode([]byte("gzip"), spaces)
	if err != nil || len(out1) != limit-10 {
		t.Fatalf("first body: %d bytes, %v", len(out1), err)
	}
	if held := d.inUse.Load(); held < limit || held > limit+1 {
		t.Fatalf("one body of 1 MiB holds %d bytes of the budget", held)
	}
	refused := httpInflateRefused.Get()
	_, buf2, err := d.decode([]byte("gzip"), spaces)
	if status(err) != 429 || !strings.Contains(err.Error(), "overloaded") || buf2 != nil {
		t.Fatalf("second body over the budget: %v", err)
	}
	if httpInflateRefused.Get() != refused+1 {
		t.Fatal("the refusal is not counted")
	}
	if held := d.inUse.Load(); held != int64(cap(buf1.b)) {
		t.Fatalf("the refused body still holds budget: %d", held-int64(cap(buf1.b)))
	}
	d.release(buf1)
	if held := d.inUse.Load(); held != 0 {
		t.Fatalf("after release %d bytes are still held", held)
	}
	for range 100 {
		if b, _ := d.bufs.Get().(*inflated); b != nil && cap(b.b) > poolMaxBytes {
			t.Fatalf("a buffer of %d bytes was pooled", cap(b.b))
		}
	}
	// Within the budget again.
	out3, buf3, err := d.decode([]byte("gzip"), spaces)
	if err != nil || len(out3) != limit-10 {
		t.Fatalf("third body: %v", err)
	}
	d.release(buf3)

	// Over the per-body limit: 413, nothing held.
	_, _, err = d.decode([]byte("gzip"), gzipOf(t, bytes.Repeat([]byte(" "), limit+1)))
	if status(err) != 413 || d.inUse.Load() != 0 {
		t.Fatalf("over the limit: %v, %d held", err, d.inUse.Load())
	}
}

// TestZstdWindowCountsAgainstBudget: a zstd stream's window is memory the
// decoder holds besides the output: a small body with an 8 MiB window does
// not fit a budget with less than that left.
func TestZstdWindowCountsAgainstBudget(t *testing.T) {
	const limit = 32 << 20
	d := newDecoders(limit, limit)
	want := bytes.Repeat([]byte(" "), 200<<10)
	body := zstdStreamOf(t, want, 8<<20)
	if w, _ := zstdWindow(body); w != 8<<20 {
		t.Fatalf("window %d", w)
	}
	out, buf, err := d.decode([]byte("zstd"), body)
	if err != nil || !bytes.Equal(out, want) {
		t.Fatalf("%d bytes, %v", len(out), err)
	}
	d.release(buf)
	if !d.reserve(limit - 4<<20) {
		t.Fatal("cannot reserve")
	}
	if _, _, err := d.decode([]byte("zstd"), body); status(err) != 429 {
		t.Fatalf("8 MiB window with 4 MiB of budget left: %v", err)
	}
	d.unreserve(limit - 4<<20)
	if d.inUse.Load() != 0 {
		t.Fatalf("%d bytes held", d.inUse.Load())
	}
}

func TestZstdWindow(t *testing.T) {
	f := func(name string, b []byte, want uint64) {
		t.Helper()
		got, err := zstdWindow(b)
		if err != nil || got != want {
			t.Fatalf("%s: window %d, %v; want %d", name, got, err, want)
		}
	}
	small := zstdOf(t, bytes.Repeat([]byte("a"), 5000))
	big := zstdOf(t, bytes.Repeat([]byte("b"), 3<<20))
	stream := zstdStreamOf(t, bytes.Repeat([]byte("c"), 200<<10), 4<<20)
	f("single segment", small, 5000)
	f("stream", stream, 4<<20)
	// The largest window of any frame, not the first one's.
	f("two frames", append(append([]byte{}, small...), big...), 3<<20)
	skippable := []byte{0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'x', 'y', 'z'}
	f("skippable, then a frame", append(append([]byte{}, skippable...), stream...), 4<<20)
	f("empty", nil, 0)
	for _, bad := range [][]byte{big[:len(big)-10], []byte("not zstd at all"), skippable[:9]} {
		if _, err := zstdWindow(bad); err == nil {
			t.Fatalf("no error for %q", bad[:min(len(bad), 16)])
		}
	}
}

// FuzzDecode: any body, any encoding: no panic, nothing over the limit,
// and the budget is all given back.
func FuzzDecode(f *testing.F) {
	f.Add("gzip", gzipOf(f, []byte(`{"data":[{"event_name":"Purchase"}]}`)))
	f.Add("zstd", zstdOf(f, bytes.Repeat([]byte(" "), 3000)))
	f.Add("zstd", zstdStreamOf(f, bytes.Repeat([]byte("d"), 200<<10), 1<<20))
	f.Add("zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x05, 0x29, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'})
	f.Add("identity", []byte("plain"))
	const limit = 64 << 10
	d := newDecoders(limit, 4*limit)
	f.Fuzz(func(t *testing.T, enc string, body []byte) {
		out, buf, err := d.decode([]byte(enc), body)
		if err == nil && len(out) > limit && enc != "" && enc != "identity" {
			t.Fatalf("%d bytes out, limit %d", len(out), limit)
		}
		d.release(buf)
		if d.inUse.Load() != 0 {
			t.Fatalf("%d bytes of the budget held after release", d.inUse.Load())
		}
	})
}
