package signals

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"

	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/model"
)

var jsonParsers fastjson.ParserPool

// batchBuilder collects the exposures of one request and the problems found.
type batchBuilder struct {
	x       *Exposures
	bidder  Bidder
	now     time.Time
	ex      *Extractor
	buf     []byte
	ids     []ID
	es      []exposure
	details []apierr.Detail
	p       *fastjson.Parser // for the small objects (features, ids, privacy)
}

func (bb *batchBuilder) bad(i int, field, format string, args ...any) {
	path := fmt.Sprintf("exposures[%d]", i)
	if field != "" {
		path += "." + field
	}
	bb.details = append(bb.details, apierr.Detail{Index: i, Field: path, Reason: fmt.Sprintf(format, args...)})
}

// HandleExposures serves POST /v1/exposures: a batch (JSON
// {"exposures": [...]} or NDJSON, one exposure a line) of exposures, each
// with the bid request (or its extracted features), imp_id, campaign,
// creative, price_cpm and ts. A ghost exposure ("ghost": true, with
// "bid_cpm", the bid the bidder would have made, and optionally
// "win_prob", its probability of winning, default 1) is an auction held
// back because the household is in the campaign's control arm: it has no
// price, is not counted in the model, and is matched like a real one for
// the lift measurement. The batch is atomic: any invalid exposure
// rejects it with every problem listed. Accepted exposures are journaled
// before the answer; (request id, imp id, campaign) makes them idempotent.
func (x *Exposures) HandleExposures(ctx *fasthttp.RequestCtx, body []byte, b Bidder) error {
	bb := &batchBuilder{x: x, bidder: b, now: x.now()}
	bb.ex = x.extractors.Get().(*Extractor)
	defer x.extractors.Put(bb.ex)
	bb.p = jsonParsers.Get()
	defer jsonParsers.Put(bb.p)

	n := 0
	tooMany := false
	add := func(i int, f *exposureFields) {
		if i >= x.cfg.MaxBatch {
			tooMany = true
			return
		}
		bb.add(i, f)
	}
	if bytes.Contains(ctx.Request.Header.ContentType(), []byte("ndjson")) {
		for line := range bytes.Lines(body) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if at := exposureLine(line, n, bb.ex, add); at >= 0 {
				bb.bad(n, "", "invalid JSON near byte %d of the line", at)
			}
			n++
		}
	} else {
		var at int
		n, at = exposureBatch(body, bb.ex, add)
		if n < 0 {
			return apierr.BadRequest("body: invalid JSON near byte %d", at)
		}
	}
	exposuresReceived.Add(n)
	if tooMany {
		return apierr.BadRequest("exposures: %d in one request, at most %d", n, x.cfg.MaxBatch)
	}
	if n == 0 {
		return apierr.BadRequest("exposures: must be a non-empty array")
	}
	if len(bb.details) > 0 {
		exposuresRejected.Add(n)
		e := apierr.BadRequest("%s: %s", bb.details[0].Field, bb.details[0].Reason)
		e.Details = bb.details
		return e
	}
	stored, err := x.commit(bb.es)
	if err != nil {
		return apierr.Unavailable("exposures not stored, retry").WithCause(err)
	}
	out := append(ctx.Response.Body()[:0], `{"exposures_received":`...)
	out = strconv.AppendInt(out, int64(n), 10)
	out = append(out, `,"exposures_stored":`...)
	out = strconv.AppendInt(out, int64(stored), 10)
	out = append(out, `,"exposures_deduplicated":`...)
	out = strconv.AppendInt(out, int64(n-stored), 10)
	out = append(out, '}')
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
	return nil
}

// add validates one exposure and appends it to the batch.
func (bb *batchBuilder) add(i int, f *exposureFields) {
	x := bb.x
	if f == nil {
		bb.bad(i, "", "must be an object")
		return
	}
	if f.badString {
		bb.bad(i, f.badField, "must be a string")
	}
	campaign := string(f.campaign)
	num, known := x.campaigns[campaign]
	known = known && bb.bidder.MayUse(campaign) // another tenant's is as unknown as a made-up id
	switch {
	case campaign == "":
		bb.bad(i, "campaign", "missing")
	case !known:
		bb.bad(i, "campaign", "unknown campaign %q", campaign)
	}
	impID := f.impID
	if len(impID) == 0 {
		bb.bad(i, "imp_id", "missing")
	} else if why := BadText(impID); why != "" {
		bb.bad(i, "imp_id", "%s", why)
	}
	ts := bb.now.Unix()
	switch {
	case f.badTS:
		bb.bad(i, "ts", "must be Unix seconds")
	case !f.hasTS:
	case f.ts < float64(bb.now.Add(-x.cfg.MaxAge).Unix()):
		bb.bad(i, "ts", "older than %s", x.cfg.MaxAge)
	case f.ts > float64(bb.now.Add(x.cfg.MaxFuture).Unix()):
		bb.bad(i, "ts", "more than %s in the future", x.cfg.MaxFuture)
	default:
		ts = int64(f.ts)
	}
	price := f.price
	if f.badPrice || price < 0 || math.IsInf(price, 0) {
		bb.bad(i, "price_cpm", "must be a number >= 0")
	}
	winProb := 1.0
	switch {
	case f.badGhost:
		bb.bad(i, "ghost", "must be true or false")
	case f.ghost:
		if price > 0 {
			bb.bad(i, "price_cpm", "a ghost exposure was not bought: leave price_cpm out (bid_cpm is the bid it would have made)")
		}
		if f.badBid || f.bid < 0 || math.IsInf(f.bid, 0) {
			bb.bad(i, "bid_cpm", "must be a number >= 0")
		}
		if f.hasWinProb {
			winProb = f.winProb
		}
		if f.badWinProb || !(winProb > 0 && winProb <= 1) {
			bb.bad(i, "win_prob", "must be a probability in (0, 1]")
		}
	case f.hasBid || f.hasWinProb:
		bb.bad(i, "ghost", "bid_cpm and win_prob are for ghost exposures (ghost: true)")
	}
	var (
		imp     *Imp
		auction []byte
		indexed bool
	)
	bb.ids = bb.ids[:0]
	switch {
	case f.notObject:
		bb.bad(i, "request", "must be a bid request object")
		return
	case f.request:
		req, err := bb.ex.finish(ts)
		if err != nil {
			bb.bad(i, "request."+apierr.As(err).Message, "invalid bid request")
			return
		}
		for j := range req.Imps {
			if bytes.Equal(req.Imps[j].ID, impID) {
				imp = &req.Imps[j]
			}
		}
		if imp == nil {
			if len(impID) > 0 {
				bb.bad(i, "imp_id", "no imp %q in the request", impID)
			}
			return
		}
		auction = req.ID
		indexed, _ = Gate(req.Privacy(), x.cfg.TCFVendorID)
		bb.ids = x.impIDs(req, imp, bb.ids)
	case f.features != nil:
		imp = &Imp{}
		fv, err := bb.p.ParseBytes(f.features)
		o, err2 := fv.Object()
		if err != nil || err2 != nil {
			bb.bad(i, "features", "must be an object of feature name to value")
			return
		}
		o.Visit(func(k []byte, fv *fastjson.Value) {
			id, ok := FeatureByName(string(k))
			if !ok {
				bb.bad(i, "features."+string(k), "unknown feature (known: %v)", FeatureNames())
				return
			}
			switch fv.Type() {
			case fastjson.TypeString:
				v := fv.GetStringBytes()
				if why := BadText(v); why != "" { // a segment label, stored and shown in reports
					bb.bad(i, "features."+string(k), "%s", why)
					return
				}
				imp.SetFeature(id, append([]byte(nil), v...))
			case fastjson.TypeNumber:
				imp.SetFeature(id, fv.MarshalTo(nil))
			default:
				bb.bad(i, "features."+string(k), "must be a string or a number")
			}
		})
		auction = f.requestID
		if len(auction) == 0 {
			bb.bad(i, "request_id", "missing (needed with features)")
		} else if why := BadText(auction); why != "" {
			bb.bad(i, "request_id", "%s", why)
		}
		priv := Privacy{GDPR: -1}
		if f.privacy != nil {
			pv, err := bb.p.ParseBytes(f.privacy)
			if err != nil || pv.Type() != fastjson.TypeObject {
				bb.bad(i, "privacy", "must be an object")
				return
			}
			priv = parsePrivacy(pv)
			priv.Consent = append([]byte(nil), priv.Consent...)
			priv.USPrivacy = append([]byte(nil), priv.USPrivacy...)
			priv.GPP = append([]byte(nil), priv.GPP...)
		}
		indexed, _ = Gate(priv, x.cfg.TCFVendorID)
		if f.ids != nil {
			iv, err := bb.p.ParseBytes(f.ids)
			if err != nil {
				bb.bad(i, "ids", "must be an object")
				return
			}
			var perr error
			if bb.ids, perr = x.parseIDs(iv, bb.ids); perr != nil {
				bb.bad(i, "ids", "%v", perr)
			}
		}
	default:
		bb.bad(i, "", "needs request (the bid request) or features")
		return
	}
	if !known || len(bb.details) > 0 {
		return // keep validating the others; nothing of this batch is stored
	}
	e := x.newExposure(num, campaign, imp, auction, impID, ts, price/1000, indexed, bb.ids)
	if f.ghost {
		e.ghost, e.bid, e.winProb = true, f.bid, winProb
	}
	bb.es = append(bb.es, e)
}

// newExposure copies what an exposure keeps out of the request's buffers.
func (x *Exposures) newExposure(num uint16, campaign string, imp *Imp, auction, impID []byte, ts int64, cost float64, indexed bool, ids []ID) exposure {
	path := x.chain.Keys(x.roots[num], imp, make([]model.Key, 0, x.chain.Depth()+1))
	// labels align with path, as the model wants: labels[0] (the root) is nil.
	labels := x.chain.Labels(imp, append(make([][]byte, 0, x.chain.Depth()+1), nil))
	n := len(auction) + len(impID)
	for _, l := range labels {
		n += len(l)
	}
	arena := make([]byte, 0, n)
	cp := func(b []byte) []byte {
		start := len(arena)
		arena = append(arena, b...)
		return arena[start:len(arena):len(arena)]
	}
	for j := 1; j < len(labels); j++ {
		labels[j] = cp(labels[j])
	}
	e := exposure{
		ts: ts, campaign: campaign, cost: cost, indexed: indexed,
		auction: cp(auction), imp: cp(impID), path: path, labels: labels,
	}
	if x.predict != nil {
		e.pred = validPred(x.predict(campaign, imp))
	}
	if indexed {
		e.ids = append([]ID(nil), ids...)
	}
	e.key = x.idemKey('e', auction, impID, []byte(campaign))
	return e
}

func parsePrivacy(v *fastjson.Value) Privacy {
	p := Privacy{GDPR: -1}
	p.COPPA = v.GetInt("coppa") == 1
	if g := v.Get("gdpr"); g != nil {
		p.GDPR = int8(g.GetInt())
	}
	p.Consent = v.GetStringBytes("consent")
	p.USPrivacy = v.GetStringBytes("us_privacy")
	p.GPP = v.GetStringBytes("gpp")
	return p
}

var errHexSHA256 = errors.New("must be the SHA-256 hex of the normalized value")

// parseIDs reads the identities of a features-form exposure: ifa, ip,
// user_id and household_id in the clear (hashed here, never kept), em, ph
// and external_id as SHA-256 hex.
func (x *Exposures) parseIDs(v *fastjson.Value, dst []ID) ([]ID, error) {
	if v == nil {
		return dst, nil
	}
	if v.Type() != fastjson.TypeObject {
		return dst, errors.New("must be an object")
	}
	var buf []byte
	var ok bool
	if b := v.GetStringBytes("ifa"); len(b) > 0 && !v.GetBool("lmt") {
		if buf, ok = NormalizeIFA(buf[:0], b); ok {
			dst = append(dst, x.hasher.ID(IDIFA, buf))
		}
	}
	if b := v.GetStringBytes("ip"); len(b) > 0 {
		if buf, ok = NormalizeIP(buf[:0], b); !ok {
			return dst, fmt.Errorf("ip: not an IP address")
		}
		dst = append(dst, x.hasher.ID(IDIP, buf))
	}
	for _, f := range []struct {
		name string
		kind IDKind
	}{{"em", IDEmail}, {"ph", IDPhone}, {"external_id", IDExternalID}} {
		if b := v.GetStringBytes(f.name); len(b) > 0 {
			if len(b) != 64 {
				return dst, fmt.Errorf("%s: %w", f.name, errHexSHA256)
			}
			buf = bytes.ToLower(append(buf[:0], b...))
			if _, err := hex.Decode(make([]byte, 32), buf); err != nil {
				return dst, fmt.Errorf("%s: %w", f.name, errHexSHA256)
			}
			dst = append(dst, x.hasher.ID(f.kind, buf))
		}
	}
	if b := v.GetStringBytes("household_id"); len(b) > 0 {
		dst = append(dst, x.hasher.ID(IDHousehold, b))
	}
	if b := v.GetStringBytes("user_id"); len(b) > 0 {
		dst = append(dst, x.hasher.ID(IDUserID, b))
	}
	return dst, nil
}
