package conversions

import "github.com/valyala/fasthttp"

// AppendRequestID appends the id of the request in ctx, echoed as Meta's
// fbtrace_id: "A", 8 hex digits of the second the request started and 16 of
// ctx.ID() (connection id and request number). Two requests share it only if
// they share both within one second, i.e. across a restart in that second.
func AppendRequestID(dst []byte, ctx *fasthttp.RequestCtx) []byte {
	dst = append(dst, 'A')
	dst = appendHex(dst, uint64(uint32(ctx.Time().Unix())), 8)
	return appendHex(dst, ctx.ID(), 16)
}

// RequestID is AppendRequestID as a string.
func RequestID(ctx *fasthttp.RequestCtx) string {
	var buf [25]byte
	return string(AppendRequestID(buf[:0], ctx))
}

func appendHex(dst []byte, v uint64, digits int) []byte {
	for i := digits - 1; i >= 0; i-- {
		dst = append(dst, hexDigits[(v>>(4*uint(i)))&0xf])
	}
	return dst
}
