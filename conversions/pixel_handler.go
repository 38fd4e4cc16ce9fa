package conversions

import (
	"net/netip"
	"strconv"
	"unicode/utf8"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/signals"
	"github.com/valyala/fasthttp"
)

// The user_data keys a pixel hit may carry, bare ("em=") or in Meta's pixel
// spelling ("ud[em]=").
var pixelUserKeys = [...]string{"em", "ph", "external_id", "fn", "ln", "ge", "db", "ct", "st", "zp", "country",
	"ifa", "ifa_type", "madid", "household_id", "fbp", "fbc"}

type pixelHit struct {
	dataset, ev, eid, dl, value, currency, orderID, dpo []byte
	user                                                [len(pixelUserKeys)][]byte
}

func (h *pixelHit) set(k, v []byte) {
	if len(k) > 4 && k[len(k)-1] == ']' && (string(k[:3]) == "ud[" || string(k[:3]) == "cd[") {
		k = k[3 : len(k)-1] // ud[em] -> em, cd[value] -> value
	}
	switch string(k) {
	case "id":
		h.dataset = v
	case "ev":
		h.ev = v
	case "eid":
		h.eid = v
	case "dl":
		h.dl = v
	case "value":
		h.value = v
	case "currency":
		h.currency = v
	case "order_id":
		h.orderID = v
	case "dpo":
		h.dpo = v
	default:
		for i, name := range pixelUserKeys {
			if string(k) == name {
				h.user[i] = v
				return
			}
		}
	}
}

// validUTF8 reports whether every value of the hit is UTF-8. The event
// below is built as JSON, whose encoder would replace bytes that are not
// with U+FFFD and so store (and key the dedup on) another name or id than
// the one sent; such a hit is rejected instead, as the CAPI rejects them.
// Control bytes need no check here: they reach the CAPI validation
// escaped, and it rejects them.
func (h *pixelHit) validUTF8() bool {
	for _, v := range [...][]byte{h.dataset, h.ev, h.eid, h.dl, h.value, h.currency, h.orderID, h.dpo} {
		if !utf8.Valid(v) {
			return false
		}
	}
	for _, v := range h.user {
		if !utf8.Valid(v) {
			return false
		}
	}
	return true
}

// HandlePixel serves GET /v1/pixel?id=<dataset>&ev=<event_name>&eid=<event_id>
// (plus em, ph, external_id, ... hashed or clear, value, currency, order_id,
// dl, dpo=LDU; Meta's spellings ud[em], cd[value], cd[currency] too) and the
// same as a form POST (navigator.sendBeacon; query and body are merged, the
// body wins). The event is a website event at the current time, with the IP
// of the connection (or of X-Forwarded-For when the connection comes from a
// trusted proxy), the User-Agent header, and dl or the Referer as its URL;
// it is deduplicated with the CAPI by (dataset, ev, eid). It always answers a
// 1x1 GIF, also for a bad hit (counted as rejected; a beacon must not break
// a page), except when the journal cannot persist (503) and when the server
// is too busy decompressing bodies to read this one (429). A pixel carries
// no token: the body of a POST is read for everyone, within the server's
// bound on the memory of bodies being decompressed.
func (s *Service) HandlePixel(ctx *fasthttp.RequestCtx, body Body) error {
	var raw []byte
	if ctx.IsPost() {
		var err error
		if raw, err = body(); err != nil {
			return err
		}
	}
	b := s.getBatch()
	defer s.putBatch(b)
	var h pixelHit
	q := ctx.URI().QueryString()
	if need := len(q) + len(raw); cap(b.form) < need {
		b.form = make([]byte, 0, need)
	}
	b.form = decodeForm(b.form, q, h.set)
	b.form = decodeForm(b.form, raw, h.set)
	ds := s.datasets[b2s(h.dataset)]
	if ds == nil {
		metricRejected[SourcePixel].Inc()
		signals.WriteGIF(ctx)
		return nil
	}
	if !h.validUTF8() {
		b.events = b.events[:0]
		s.reject(ds, SourcePixel, b, 1)
		signals.WriteGIF(ctx)
		return nil
	}

	js := append(b.js[:0], `{"data":[{"action_source":"website","event_time":`...)
	js = strconv.AppendInt(js, b.nowSec, 10)
	js = appendField(js, "event_name", h.ev)
	js = appendField(js, "event_id", h.eid)
	url := h.dl
	if len(url) == 0 {
		url = ctx.Request.Header.Referer()
	}
	js = appendField(js, "event_source_url", url)
	js = append(js, `,"user_data":{"client_ip_address":"`...)
	js = s.clientIP(js, ctx)
	js = append(js, '"')
	js = appendField(js, "client_user_agent", ctx.Request.Header.UserAgent())
	for i, v := range h.user {
		js = appendField(js, pixelUserKeys[i], v)
	}
	js = append(js, '}')
	if h.value != nil || h.currency != nil || h.orderID != nil {
		js = append(js, `,"custom_data":{`...)
		mark := len(js)
		js = appendField(js, "value", h.value)
		js = appendField(js, "currency", h.currency)
		js = appendField(js, "order_id", h.orderID)
		js = append(js[:mark], js[mark+1:]...) // the first field's comma
		js = append(js, '}')
	}
	if len(h.dpo) > 0 {
		js = append(js, `,"data_processing_options":[`...)
		js = apierr.AppendString(js, b2s(h.dpo))
		js = append(js, ']')
	}
	js = append(js, "}]}"...)
	b.js = js
	v, err := b.parse(0, js)
	if err != nil { // cannot happen: js is built with escaped strings
		metricRejected[SourcePixel].Inc()
		signals.WriteGIF(ctx)
		return nil
	}
	if _, _, aerr := s.validateAndCommit(b, ds, SourcePixel, v.Get("data")); aerr != nil && aerr.Status == fasthttp.StatusServiceUnavailable {
		return aerr
	}
	signals.WriteGIF(ctx)
	return nil
}

// appendField appends ,"key":"value" if v is not nil.
func appendField(js []byte, key string, v []byte) []byte {
	if v == nil {
		return js
	}
	js = append(js, ',', '"')
	js = append(js, key...)
	js = append(js, '"', ':')
	return apierr.AppendString(js, b2s(v))
}

// clientIP appends the text of the client's IP: the connection's address or,
// when that is a trusted proxy, the right-most address of X-Forwarded-For
// that is not a trusted proxy. Nothing is appended if there is none.
func (s *Service) clientIP(dst []byte, ctx *fasthttp.RequestCtx) []byte {
	a, _ := netip.AddrFromSlice(ctx.RemoteIP())
	a = a.Unmap()
	if s.trusted(a) {
		xff := ctx.Request.Header.Peek(fasthttp.HeaderXForwardedFor)
		for len(xff) > 0 {
			part := xff
			xff = nil
			for i := len(part) - 1; i >= 0; i-- {
				if part[i] == ',' {
					part, xff = part[i+1:], part[:i]
					break
				}
			}
			p, err := netip.ParseAddr(b2s(trimSpace(part)))
			if err != nil {
				break
			}
			a = p.Unmap()
			if !s.trusted(a) {
				break
			}
		}
	}
	if !a.IsValid() || a.IsUnspecified() {
		return dst
	}
	return a.AppendTo(dst)
}

func (s *Service) trusted(a netip.Addr) bool {
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
