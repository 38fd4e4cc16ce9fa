package conversions

import (
	"strconv"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// Body returns the request body, decompressed within the server's limits.
// A handler calls it once it knows the caller, when the token is not inside
// the body: the body of an unknown caller is never inflated. The bytes are
// valid until the handler returns.
type Body func() ([]byte, error)

// HandleConversions serves POST /v1/conversions: the token in
// "Authorization: Bearer <token>", the dataset in ?dataset=<id> (or the
// advertiser's only dataset), a CAPI body (JSON, or form-encoded with
// data=<JSON array>), read once the token and dataset are checked; it is not
// kept.
func (s *Service) HandleConversions(ctx *fasthttp.RequestCtx, body Body) error {
	ds, aerr := s.bearerDataset(ctx)
	if aerr != nil {
		return aerr
	}
	raw, err := body()
	if err != nil {
		return err
	}
	b := s.getBatch()
	defer s.putBatch(b)
	data, perr := s.parseTop(b, raw, ctx.Request.Header.ContentType())
	if perr != nil {
		s.reject(ds, SourceCAPI, b, 0)
		return perr
	}
	return s.serveBatch(ctx, b, ds, SourceCAPI, data)
}

// HandleMetaEvents serves Meta's POST /{version}/{dataset_id}/events, so that
// an existing Meta CAPI integration works by changing the host: the token as
// access_token in the query, a form field or the JSON body (the query wins if
// both are sent, as Meta's SDKs may do); the body as for HandleConversions,
// read after a token in the query is checked.
func (s *Service) HandleMetaEvents(ctx *fasthttp.RequestCtx, body Body, dataset string) error {
	q := ctx.QueryArgs()
	token := q.Peek("access_token")
	var adv string
	if len(token) > 0 {
		var ok bool
		if adv, ok = s.tenants.Advertiser(token); !ok {
			return apierr.Unauthorized("access_token: invalid")
		}
	}
	raw, err := body()
	if err != nil {
		return err
	}
	b := s.getBatch()
	defer s.putBatch(b)
	data, perr := s.parseTop(b, raw, ctx.Request.Header.ContentType())
	if len(token) == 0 {
		if len(b.token) == 0 {
			return apierr.Unauthorized("access_token: missing; send it in the query, as a form field or in the JSON body")
		}
		var ok bool
		if adv, ok = s.tenants.Advertiser(b.token); !ok {
			return apierr.Unauthorized("access_token: invalid")
		}
	}
	ds, aerr := s.datasetFor(adv, dataset)
	if aerr != nil {
		return aerr
	}
	if perr != nil {
		s.reject(ds, SourceCAPI, b, 0)
		return perr
	}
	if len(b.testCode) == 0 {
		b.testCode = q.Peek("test_event_code")
	}
	return s.serveBatch(ctx, b, ds, SourceCAPI, data)
}

// serveBatch validates, journals and answers a parsed CAPI body.
func (s *Service) serveBatch(ctx *fasthttp.RequestCtx, b *batch, ds *dataset, src Source, data *fastjson.Value) error {
	received, dedup, err := s.ingest(b, ds, src, data)
	if err != nil {
		return err
	}
	out := append(b.out[:0], `{"events_received":`...)
	out = strconv.AppendInt(out, int64(received), 10)
	out = append(out, `,"events_deduplicated":`...)
	out = strconv.AppendInt(out, int64(dedup), 10)
	out = append(out, `,"messages":[`...)
	if b.test {
		out = apierr.AppendString(out, "test_event_code "+string(b.testCode)+": events validated, nothing stored")
	}
	out = append(out, `],"fbtrace_id":"`...)
	out = AppendRequestID(out, ctx)
	out = append(out, `"}`...)
	b.out = out
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
	return nil
}

// ingest validates every event of data into b, then (unless b.test) commits
// the batch. It returns the events received and deduplicated; rejected
// batches are counted here.
func (s *Service) ingest(b *batch, ds *dataset, src Source, data *fastjson.Value) (received, dedup int, err *apierr.Error) {
	b.dataset = ds.id
	b.test = len(b.testCode) > 0
	if err := s.parseEvents(b, data); err != nil {
		n := 0
		if data != nil && data.Type() == fastjson.TypeArray {
			arr, _ := data.Array()
			n = len(arr)
		}
		s.reject(ds, src, b, n)
		return 0, 0, err
	}
	if len(b.details) > 0 {
		s.reject(ds, src, b, len(b.events))
		return 0, 0, b.validationError()
	}
	if b.test {
		return len(b.events), 0, nil
	}
	dedup, err = s.commit(b, ds, src)
	if err != nil {
		return 0, 0, err
	}
	return len(b.events), dedup, nil
}

// parseTop parses a CAPI body into b: JSON {"data": [...], "access_token"?,
// "test_event_code"?, ...}, or the same as form fields with data holding the
// JSON array (Meta's curl examples, the Python and PHP SDKs). It returns the
// data value (nil if absent) and sets b.token and b.testCode. Unknown fields
// and explicit nulls are ignored.
func (s *Service) parseTop(b *batch, body, contentType []byte) (*fastjson.Value, *apierr.Error) {
	ct := mediaType(contentType)
	form := false
	switch {
	case equalFoldASCII(ct, "application/x-www-form-urlencoded"):
		form = true
	case equalFoldASCII(ct, "multipart/form-data"):
		return nil, apierr.New(415, apierr.CodeInvalidParameter,
			"Content-Type: multipart/form-data is not supported; send application/json or application/x-www-form-urlencoded").
			WithSubcode(apierr.SubcodeUnsupportedType)
	case equalFoldASCII(ct, "application/json"):
	default: // sniff: curl -d, text/plain from beacons, a missing type
		t := trimSpace(body)
		form = len(t) > 0 && t[0] != '{'
	}
	if form {
		var data []byte
		b.form = decodeForm(b.form[:0], body, func(k, v []byte) {
			switch string(k) {
			case "data":
				data = v
			case "access_token":
				b.token = v
			case "test_event_code":
				b.testCode = v
			}
		})
		if data == nil {
			return nil, nil
		}
		v, err := b.parse(data)
		if err != nil {
			return nil, apierr.BadRequest("data: not a valid JSON array").WithSubcode(apierr.SubcodeMalformedBody)
		}
		return v, nil
	}
	v, err := b.parse(body)
	if err != nil {
		// fastjson's message quotes the input, which may hold PII: not echoed.
		return nil, apierr.BadRequest("body: not valid JSON").WithSubcode(apierr.SubcodeMalformedBody)
	}
	o, err := v.Object()
	if err != nil {
		return nil, apierr.BadRequest("body: not a JSON object").WithSubcode(apierr.SubcodeMalformedBody)
	}
	var data *fastjson.Value
	o.Visit(func(k []byte, x *fastjson.Value) {
		switch string(k) {
		case "data":
			data = x
		case "access_token":
			b.token, _ = stringOf(x)
		case "test_event_code":
			b.testCode, _ = stringOf(x)
		}
	})
	return data, nil
}

// mediaType is the content type without parameters, trimmed.
func mediaType(ct []byte) []byte {
	if i := indexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return trimSpace(ct)
}

// Bearer returns the token of an "Authorization: Bearer <token>" value (the
// scheme in any case, spaces around the token trimmed), or nil. The one
// parser of the header for every endpoint.
func Bearer(h []byte) []byte {
	h = trimSpace(h)
	if len(h) < 7 || !equalFoldASCII(h[:7], "bearer ") {
		return nil
	}
	return trimSpace(h[7:])
}

// bearerDataset authenticates the advertiser's Bearer token and resolves
// the dataset of ?dataset=<id> (or the advertiser's only one).
func (s *Service) bearerDataset(ctx *fasthttp.RequestCtx) (*dataset, *apierr.Error) {
	token := Bearer(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	if len(token) == 0 {
		return nil, apierr.Unauthorized("Authorization: missing; send \"Authorization: Bearer <token>\"")
	}
	adv, ok := s.tenants.Advertiser(token)
	if !ok {
		return nil, apierr.Unauthorized("Authorization: invalid token")
	}
	return s.datasetFor(adv, b2s(ctx.QueryArgs().Peek("dataset")))
}
