package server

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/cpafeed/cpafeed/apierr"
)

// poolMaxBytes is the largest decompression buffer kept for reuse; a larger one goes back to the garbage collector when its
// request ends, so that a burst of large bodies does not stay in memory.
const poolMaxBytes = 1 << 20

// zstdPoolMaxWindow is the largest window of a zstd decoder kept for reuse:
// 8 MiB, the most an HTTP client may use (RFC 9659) and the window of
// klauspost/compress's streaming encoder, so that streaming clients do not
// cost a new decoder per request.
const zstdPoolMaxWindow = 8 << 20

// inflateMinGrow is the first capacity of a decompression buffer.
const inflateMinGrow = 64 << 10

// inflateBytes is what all decoders of the process hold (the gauge).
var inflateBytes atomic.Int64

var _ = metrics.NewGauge(`cpafeed_http_inflate_bytes`, func() float64 { return float64(inflateBytes.Load()) })

// decoders decompresses request bodies within two limits. A body that would
// grow past limit after decompression is refused (413) as soon as the limit
// is crossed, so a 1 KB bomb never becomes 1 GB in memory. The memory the
// bodies being decompressed hold together (their buffers and zstd windows),
// whoever sends them, stays within budget: a body that would cross it is
// shed (429, retry) at the step that would, and counted
// (cpafeed_http_inflate_refused_total).
type decoders struct {
	limit  int
	budget int64
	inUse  atomic.Int64
	gzip   sync.Pool // *gzip.Reader
	zstd   sync.Pool // *zstd.Decoder whose window was at most zstdPoolMaxWindow
	bufs   sync.Pool // *inflated of capacity at most poolMaxBytes
}

// inflated is the buffer of one decompressed body; held is the part of the
// budget it holds.
type inflated struct {
	b    []byte
	held int64
}

func newDecoders(limit, budget int) *decoders {
	d := &decoders{limit: limit, budget: int64(budget)}
	d.zstd.New = func() any {
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(uint64(limit)+1),
			zstd.WithDecoderMaxWindow(uint64(min(limit, 64<<20))+1))
		if err != nil {
			panic(err) // only invalid options fail, and these are constant
		}
		return dec
	}
	return d
}

// decode returns body decompressed per Content-Encoding enc. buf must be
// released with release after the body is no longer used (also after an
// error; nil is fine).
func (d *decoders) decode(enc, body []byte) (out []byte, buf *inflated, err error) {
	switch string(enc) {
	case "", "identity":
		return body, nil, nil
	case "gzip", "x-gzip":
		var zr *gzip.Reader
		if v := d.gzip.Get(); v != nil {
			zr = v.(*gzip.Reader)
			err = zr.Reset(bytes.NewReader(body))
		} else {
			zr, err = gzip.NewReader(bytes.NewReader(body))
		}
		if err != nil {
			return nil, nil, apierr.BadRequest("body: invalid gzip: %v", err)
		}
		defer d.gzip.Put(zr)
		return d.inflate(zr, "gzip")
	case "zstd":
		// The decoder keeps a window of history besides the output: it
		// counts against the budget as well.
		window, err := zstdWindow(body)
		if err != nil {
			return nil, nil, apierr.BadRequest("body: invalid zstd: %v", err)
		}
		if window > uint64(d.limit) {
			return nil, nil, d.tooLarge("zstd")
		}
		held := int64(window) + 2*min(int64(window), 128<<10)
		if !d.reserve(held) {
			return nil, nil, d.overloaded()
		}
		defer d.unreserve(held)
		zr := d.zstd.Get().(*zstd.Decoder)
		if err := zr.Reset(bytes.NewReader(body)); err != nil {
			d.zstd.Put(zr)
			return nil, nil, apierr.BadRequest("body: invalid zstd: %v", err)
		}
		defer func() {
			zr.Reset(nil)
			if window <= zstdPoolMaxWindow {
				d.zstd.Put(zr)
			} else {
				zr.Close() // its window goes with it
			}
		}()
		return d.inflate(zr, "zstd")
	default:
		return nil, nil, apierr.New(415, apierr.CodeInvalidParameter, "Content-Encoding: %q is not supported (gzip, zstd or none)", enc)
	}
}

// inflate reads r to its end into a buffer that grows by doubling up to
// the limit, each step reserved from the budget first (old and new buffer
// both, while one is copied into the other: a body may hold up to twice the
// limit for that moment).
func (d *decoders) inflate(r io.Reader, name string) ([]byte, *inflated, error) {
	buf, _ := d.bufs.Get().(*inflated)
	if buf == nil {
		buf = &inflated{}
	}
	if !d.reserve(int64(cap(buf.b))) {
		d.bufs.Put(buf)
		return nil, nil, d.overloaded()
	}
	buf.held = int64(cap(buf.b))
	b := buf.b[:0]
	fail := func(err error) ([]byte, *inflated, error) {
		buf.b = b
		d.release(buf)
		switch {
		case err == nil, errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrWindowSizeExceeded):
			return nil, nil, d.tooLarge(name)
		case errors.Is(err, errOverloaded):
			return nil, nil, d.overloaded()
		}
		return nil, nil, apierr.BadRequest("body: invalid %s: %v", name, err)
	}
	for {
		if len(b) == cap(b) {
			if len(b) >= d.limit {
				// Full at the limit: one byte more is too large.
				var probe [1]byte
				if _, err := io.ReadAtLeast(r, probe[:], 1); err != io.EOF {
					return fail(err) // nil: a byte came
				}
				break
			}
			n := min(max(2*cap(b), inflateMinGrow), d.limit)
			if !d.reserve(int64(n)) {
				return fail(errOverloaded)
			}
			nb := make([]byte, len(b), n)
			copy(nb, b)
			d.unreserve(buf.held)
			b, buf.held = nb, int64(n)
		}
		m, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
	}
	buf.b = b
	return b, buf, nil
}

// errOverloaded is inflate's own signal that the budget is used up.
var errOverloaded = errors.New("inflate budget used up")

// release gives back the budget buf holds and pools it unless it is large.
func (d *decoders) release(buf *inflated) {
	if buf == nil {
		return
	}
	d.unreserve(buf.held)
	buf.held = 0
	if cap(buf.b) <= poolMaxBytes {
		buf.b = buf.b[:0]
		d.bufs.Put(buf)
	}
}

// reserve takes n bytes of the budget, or reports that they are not left.
func (d *decoders) reserve(n int64) bool {
	for {
		cur := d.inUse.Load()
		if cur+n > d.budget {
			return false
		}
		if d.inUse.CompareAndSwap(cur, cur+n) {
			inflateBytes.Add(n)
			return true
		}
	}
}

func (d *decoders) unreserve(n int64) {
	d.inUse.Add(-n)
	inflateBytes.Add(-n)
}

func (d *decoders) tooLarge(name string) *apierr.Error {
	return apierr.New(413, apierr.CodeInvalidParameter, "body: larger than %d bytes after %s decompression", d.limit, name)
}

func (d *decoders) overloaded() *apierr.Error {
	httpInflateRefused.Inc()
	return apierr.New(429, apierr.CodeTooMany, "overloaded: the request bodies being decompressed hold %d bytes (http.max_inflate_bytes), retry later", d.budget)
}

// zstdWindow returns the largest window a frame of the zstd stream b needs
// (a single-segment frame's is its content size), reading the frame and
// block headers only. The stream decoder keeps one history buffer of that
// size, whichever frame needs it.
func zstdWindow(b []byte) (uint64, error) {
	var window uint64
	for len(b) > 0 {
		var h zstd.Header
		rest, err := h.DecodeAndStrip(b)
		if err != nil {
			return 0, err
		}
		if h.Skippable {
			if uint64(h.SkippableSize) > uint64(len(rest)) {
				return 0, io.ErrUnexpectedEOF
			}
			b = rest[h.SkippableSize:]
			continue
		}
		w := h.WindowSize
		if h.SingleSegment {
			w = h.FrameContentSize
		}
		window = max(window, w)
		b = rest
		for last := false; !last; {
			if len(b) < 3 {
				return 0, io.ErrUnexpectedEOF
			}
			bh := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
			last = bh&1 != 0
			size := int(bh >> 3)
			switch (bh >> 1) & 3 {
			case 1: // RLE: one byte repeated size times
				size = 1
			case 3:
				return 0, errors.New("reserved block type")
			}
			if size > len(b)-3 {
				return 0, io.ErrUnexpectedEOF
			}
			b = b[3+size:]
		}
		if h.HasCheckSum {
			if len(b) < 4 {
				return 0, io.ErrUnexpectedEOF
			}
			b = b[4:]
		}
	}
	return window, nil
}
