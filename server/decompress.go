package server

import (
	"bytes"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/bytebufferpool"

	"github.com/cpafeed/cpafeed/apierr"
)

// decoders decompresses request bodies within a limit: a body that would
// grow past limit after decompression is refused (413) as soon as the limit
// is crossed, so a 1 KB bomb never becomes 1 GB in memory.
type decoders struct {
	limit int
	gzip  sync.Pool // *gzip.Reader
	zstd  sync.Pool // *zstd.Decoder
	bufs  bytebufferpool.Pool
}

func newDecoders(limit int) *decoders {
	d := &decoders{limit: limit}
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
// released with release after the body is no longer used.
func (d *decoders) decode(enc, body []byte) (out []byte, buf *bytebufferpool.ByteBuffer, err error) {
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
		return d.copyLimited(zr, "gzip")
	case "zstd":
		zr := d.zstd.Get().(*zstd.Decoder)
		if err := zr.Reset(bytes.NewReader(body)); err != nil {
			d.zstd.Put(zr)
			return nil, nil, apierr.BadRequest("body: invalid zstd: %v", err)
		}
		defer func() { zr.Reset(nil); d.zstd.Put(zr) }()
		return d.copyLimited(zr, "zstd")
	default:
		return nil, nil, apierr.New(415, apierr.CodeInvalidParameter, "Content-Encoding: %q is not supported (gzip, zstd or none)", enc)
	}
}

func (d *decoders) copyLimited(r io.Reader, name string) ([]byte, *bytebufferpool.ByteBuffer, error) {
	buf := d.bufs.Get()
	n, err := io.Copy(buf, io.LimitReader(r, int64(d.limit)+1))
	if n > int64(d.limit) {
		d.bufs.Put(buf)
		return nil, nil, apierr.New(413, apierr.CodeInvalidParameter, "body: larger than %d bytes after %s decompression", d.limit, name)
	}
	if err != nil {
		d.bufs.Put(buf)
		if err == zstd.ErrDecoderSizeExceeded || err == zstd.ErrWindowSizeExceeded {
			return nil, nil, apierr.New(413, apierr.CodeInvalidParameter, "body: larger than %d bytes after %s decompression", d.limit, name)
		}
		return nil, nil, apierr.BadRequest("body: invalid %s: %v", name, err)
	}
	return buf.B, buf, nil
}

func (d *decoders) release(buf *bytebufferpool.ByteBuffer) {
	if buf != nil {
		d.bufs.Put(buf)
	}
}
