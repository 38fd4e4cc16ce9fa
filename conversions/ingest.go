package conversions

import (
	"github.com/cpafeed/cpafeed/apierr"
	"github.com/valyala/fastjson"
)

// Ingest validates, deduplicates and journals a CAPI body (JSON, or form with
// contentType application/x-www-form-urlencoded) for dataset, exactly as
// HandleConversions does once the token is checked: it returns when the
// batch is durable. For in-process producers (load generators, simulations)
// and benchmarks. err is an *apierr.Error.
func (s *Service) Ingest(dataset string, body []byte, contentType string) (received, deduplicated int, err error) {
	ds := s.datasets[dataset]
	if ds == nil {
		return 0, 0, apierr.UnknownObject("POST", dataset)
	}
	b := s.getBatch()
	defer s.putBatch(b)
	data, perr := s.parseTop(b, body, s2b(contentType))
	if perr != nil {
		s.reject(ds, SourceCAPI, b, 0)
		return 0, 0, perr
	}
	received, deduplicated, aerr := s.validateAndCommit(b, ds, SourceCAPI, data)
	if aerr != nil {
		return 0, 0, aerr
	}
	return received, deduplicated, nil
}

// validateAndCommit validates every event of data into b, then commits the batch, or,
// for a test batch (b.testCode set), keeps its events for GET
// /v1/test_events: a test batch is validated and answered exactly as a
// real one, and never stored as conversions nor journaled. It returns the
// events received and deduplicated; rejected batches are counted here.
func (s *Service) validateAndCommit(b *batch, ds *dataset, src Source, data *fastjson.Value) (received, dedup int, err *apierr.Error) {
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
