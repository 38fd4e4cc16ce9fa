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

// HandleConversions serves POST /v1/conversions for advertiser adv (the
// server resolved its Bearer token): the dataset in ?dataset=<id> (or the
// advertiser's only dataset), a CAPI body (JSON, or form-encoded with
// data=<JSON array>), read once the dataset is checked; it is not kept.
func (s *Service) HandleConversions(ctx *fasthttp.RequestCtx, body Body, adv string) error {
	ds, aerr := s.queryDataset(ctx, adv)
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
// both are sent, as Meta's SDKs may do). adv is the advertiser the server
// resolved from the query's access_token, "" when the query has none: then
// the token in the body is resolved through the same table (Tenants) once
// the body is parsed. The body as for HandleConversions.
func (s *Service) HandleMetaEvents(ctx *fasthttp.RequestCtx, body Body, dataset, adv string) error {
	q := ctx.QueryArgs()
	raw, err := body()
	if err != nil {
		return err
	}
	b := s.getBatch()
	defer s.putBatch(b)
	data, perr := s.parseTop(b, raw, ctx.Request.Header.ContentType())
	if adv == "" {
		if len(b.token) == 0 {
			return apierr.Unauthorized("access_token: missing; send it in the query, as a form field or in the JSON body")
		}
		var ok bool
		if adv, ok = s.tenants.Advertiser(b.token); !ok {
			return apierr.Unauthorized("access_token: invalid")
		}
	}
	ds, aerr := s.datasetFor(adv, dataset, b2s(ctx.Method()))
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
	received, dedup, err := s.validateAndCommit(b, ds, src, data)
	if err != nil {
		return err
	}
	out := append(b.out[:0], `{"events_received":`...)
	out = strconv.AppendInt(out, int64(received), 10)
	out = append(out, `,"events_deduplicated":`...)
	out = strconv.AppendInt(out, int64(dedup), 10)
	out = append(out, `,"messages":[],"fbtrace_id":"`...)
	out = apierr.AppendTraceID(out, ctx.ID())
	out = append(out, `"}`...)
	b.out = out
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
	return nil
}

// queryDataset resolves the dataset of ?dataset=<id> (or the advertiser's
// only one) for advertiser adv.
func (s *Service) queryDataset(ctx *fasthttp.RequestCtx, adv string) (*dataset, *apierr.Error) {
	return s.datasetFor(adv, b2s(ctx.QueryArgs().Peek("dataset")), b2s(ctx.Method()))
}
