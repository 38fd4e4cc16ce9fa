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
	received, dedup, err := s.ingest(b, ds, src, data)
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

// ingest validates every event of data into b, then commits the batch, or,
// for a test batch (b.testCode set), keeps its events for GET
// /v1/test_events: a test batch is validated and answered exactly as a
// real one, and never stored as conversions nor journaled. It returns the
// events received and deduplicated; rejected batches are counted here.
func (s *Service) ingest(b *batch, ds *dataset, src Source, data *fastjson.Value) (received, dedup int, err *apierr.Error) {
	b.dataset = ds.id
	b.source = src
	b.test = len(b.testCode) > 0
	if err := s.parseEvents(b, data); err != nil {
		n := 0
		if data != nil && data.Type() == fastjson.TypeArray {
			arr, _ := data.Array()
			n = len(arr)
		}
		s.rejectBatch(ds, src, b, n)
		return 0, 0, err
	}
	if len(b.details) > 0 {
		s.rejectBatch(ds, src, b, len(b.events))
		return 0, 0, b.validationError()
	}
	if b.test {
		s.keepTestEvents(b, ds, data)
		metricTestEvents[0].Add(len(b.events))
		return len(b.events), 0, nil
	}
	dedup, err = s.commit(b, ds, src)
	if err != nil {
		return 0, 0, err
	}
	countOutcomes(b)
	return len(b.events), dedup, nil
}

// rejectBatch counts the n events of a rejected batch: in the stats and
// the journal (reject), or, for a test batch, in a metric only.
func (s *Service) rejectBatch(ds *dataset, src Source, b *batch, n int) {
	if b.test {
		metricTestEvents[1].Add(n)
		return
	}
	s.reject(ds, src, b, n)
}

// countOutcomes counts the stored events of a durable batch that cannot be
// matched (Meta's ids only) and what Limited Data Use did to them.
func countOutcomes(b *batch) {
	var unmatchable int
	var ldu [numLDUOutcomes]int
	for i := range b.events {
		e := &b.events[i]
		if e.dup {
			continue
		}
		if e.unmatchable {
			unmatchable++
		}
		ldu[e.ldu]++
	}
	if unmatchable > 0 {
		metricUnmatchable.Add(unmatchable)
	}
	for o := lduGeolocate; o < numLDUOutcomes; o++ {
		if ldu[o] > 0 {
			metricLDU[o].Add(ldu[o])
		}
	}
}

// parseTop parses a CAPI body into b, in every shape Meta accepts and its
// SDKs send (README "Wire shapes"):
//   - JSON {"data": [...], "access_token"?, "test_event_code"?, ...}
//     (Meta's Node SDK, most integrations; also when sent with curl's
//     default type application/x-www-form-urlencoded: a body that starts
//     with '{' is JSON whatever its type says);
//   - form fields data=<JSON array>, access_token, test_event_code (Meta's
//     curl examples, the Python SDK);
//   - the same as multipart/form-data parts (curl -F, the PHP and Java
//     SDKs).
//
// data may hold the events as objects, as JSON strings each holding an
// object (the Python and Ruby SDKs), or be itself a JSON string holding
// such an array (the Ruby SDK); see eventArray. It returns the array (nil
// if data is absent) and sets b.token and b.testCode. Unknown fields and
// explicit nulls are ignored.
func (s *Service) parseTop(b *batch, body, contentType []byte) (*fastjson.Value, *apierr.Error) {
	const (
		asJSON = iota
		asForm
		asMultipart
	)
	kind := asJSON
	ct := mediaType(contentType)
	switch {
	case equalFoldASCII(ct, "multipart/form-data"):
		kind = asMultipart
	case equalFoldASCII(ct, "application/x-www-form-urlencoded"):
		kind = asForm
	case equalFoldASCII(ct, "application/json"):
	default: // sniff: curl -d, text/plain from beacons, a missing type
		kind = asForm
	}
	if kind == asForm {
		if t := trimSpace(body); len(t) == 0 || t[0] == '{' {
			kind = asJSON
		}
	}
	if kind != asJSON {
		var data []byte
		field := func(k, v []byte) {
			switch string(k) {
			case "data":
				data = v
			case "access_token":
				b.token = v
			case "test_event_code":
				b.testCode = v
			}
		}
		if kind == asForm {
			b.form = decodeForm(b.form[:0], body, field)
		} else if err := decodeMultipart(body, contentType, field); err != nil {
			return nil, apierr.BadRequest("body: %v", err).WithSubcode(apierr.SubcodeMalformedBody)
		}
		if data == nil {
			return nil, nil
		}
		v, err := b.parse(0, data)
		if err != nil {
			return nil, apierr.BadRequest("data: not a valid JSON array").WithSubcode(apierr.SubcodeMalformedBody)
		}
		return b.eventArray(v, 0)
	}
	v, err := b.parse(0, body)
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
	return b.eventArray(data, 0)
}

// eventArray undoes the encodings Meta's SDKs put around the events, data
// being a value of parser owner (0: b.p, 1: b.p2):
//   - a JSON string holding the array (the Ruby SDK sends
//     "data":"[...]") is parsed;
//   - elements that are JSON strings holding an object (the Python SDK
//     json-dumps each event, the Ruby SDK JSON.generates each) are parsed
//     in their place; a string that is not one becomes null, which
//     validation reports as data[i]: not an object.
//
// A re-parse uses the parser that does not hold the value it reads; the
// token and test code, which may alias b.p, are copied out first. Arrays
// of objects, the common case, are returned as they are, without a copy.
func (b *batch) eventArray(data *fastjson.Value, owner int) (*fastjson.Value, *apierr.Error) {
	if data == nil || data.Type() != fastjson.TypeString {
		if data == nil || data.Type() != fastjson.TypeArray {
			return data, nil
		}
	} else {
		text, _ := data.StringBytes()
		if fastjson.ValidateBytes(text) != nil {
			return nil, apierr.BadRequest("data: not a valid JSON array").WithSubcode(apierr.SubcodeMalformedBody)
		}
		owner = 1 - owner
		v, err := b.parse(owner, text)
		if err != nil { // cannot happen: validated
			return nil, apierr.BadRequest("data: not a valid JSON array").WithSubcode(apierr.SubcodeMalformedBody)
		}
		if v.Type() != fastjson.TypeArray {
			return v, nil
		}
		data = v
	}
	arr, _ := data.Array()
	strs := false
	for _, x := range arr {
		if x.Type() == fastjson.TypeString {
			strs = true
			break
		}
	}
	if !strs {
		return data, nil
	}
	js := append(b.js[:0], '[')
	for i, x := range arr {
		if i > 0 {
			js = append(js, ',')
		}
		if x.Type() != fastjson.TypeString {
			js = x.MarshalTo(js)
			continue
		}
		t, _ := x.StringBytes()
		if t = trimSpace(t); len(t) > 0 && t[0] == '{' && fastjson.ValidateBytes(t) == nil {
			js = append(js, t...)
		} else {
			js = append(js, "null"...)
		}
	}
	js = append(js, ']')
	b.js = js
	v, err := b.parse(1-owner, js)
	if err != nil { // cannot happen: built of validated values
		return nil, apierr.BadRequest("data: not a valid JSON array").WithSubcode(apierr.SubcodeMalformedBody)
	}
	return v, nil
}

// mediaType is the content type without parameters, trimmed.
func mediaType(ct []byte) []byte {
	if i := indexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return trimSpace(ct)
}

// queryDataset resolves the dataset of ?dataset=<id> (or the advertiser's
// only one) for advertiser adv.
func (s *Service) queryDataset(ctx *fasthttp.RequestCtx, adv string) (*dataset, *apierr.Error) {
	return s.datasetFor(adv, b2s(ctx.QueryArgs().Peek("dataset")), b2s(ctx.Method()))
}
