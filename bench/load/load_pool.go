package load

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cpafeed/cpafeed/bench/market"
	"github.com/cpafeed/cpafeed/signals"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Kind is a kind of request of the load generator.
type Kind int

// Request kinds; their names are the keys of Options.Mix.
const (
	KindScore       Kind = iota // POST /v1/score?campaigns=...
	KindExposures               // POST /v1/exposures
	KindConversions             // POST /v1/conversions?dataset=...
	KindWin                     // GET /v1/win?...
	KindVAST                    // GET /v1/vast?...
	KindBids                    // POST /v1/bids
	KindScoreGet                // GET /v1/score?campaign=...&<features of the first imp>
	numKinds
)

var kindNames = [numKinds]string{"score", "exposures", "conversions", "win", "vast", "bids", "score_get"}

func (k Kind) String() string { return kindNames[k] }

// KindNames lists the request kinds in a fixed order.
func KindNames() []string { return append([]string(nil), kindNames[:]...) }

func kindByName(s string) (Kind, bool) {
	for k, n := range kindNames {
		if n == s {
			return Kind(k), true
		}
	}
	return 0, false
}

// pooledRequest is one pre-built request.
type pooledRequest struct {
	uri  []byte // path and query
	body []byte // nil for GET
	// patch are offsets in body of 8 hex digits that the sender overwrites
	// with the pass number over the pool (conversion event ids stay unique).
	patch []int
}

// kindPool holds the pre-generated requests of one kind.
type kindPool struct {
	get      bool
	auth     []byte // Authorization header value, nil for none
	encoding string // Content-Encoding of the bodies, "" for none
	reqs     []pooledRequest
}

// PoolOptions sizes the request pool of a load run.
type PoolOptions struct {
	// Requests is the number of distinct bid requests (bodies of score and
	// bids). Default 1024.
	Requests int
	// Exposed is how many of them get exposures, win notices, VAST events and
	// conversions (and are posted to /v1/bids before the run when win or vast
	// is in the mix). Default 256, at most Requests.
	Exposed int
	// ExposuresPerBatch is the number of exposures per POST /v1/exposures.
	// Default 10.
	ExposuresPerBatch int
	// ExposureForm is what each exposure carries: FormRequest (its whole bid
	// request, the default) or FormFeatures (the features, identities and
	// privacy signals, as a bidder that extracts features itself sends them).
	ExposureForm string
	// Campaigns are the campaign ids of score requests
	// (?campaigns=a,b). Default: every campaign of the scenario.
	Campaigns []string
	// Encoding compresses POST bodies: "", "gzip" or "zstd". Compressed
	// conversion bodies cannot be patched: after one pass over the pool
	// their events repeat and are deduplicated by the server.
	Encoding string
	// BidderToken and AdvertiserToken are the bearer tokens. Defaults
	// "dev-bidder-token" and "dev-advertiser-token".
	BidderToken     string
	AdvertiserToken string
	// Now is the current time: the market's day 0 starts two days before it
	// and conversions never carry a later event time. Default time.Now().
	Now time.Time
}

// requestPool is every pre-built request of a load run.
type requestPool struct {
	kinds [numKinds]kindPool
	prime []pooledRequest // POST /v1/bids of the exposed requests
}

// buildPool generates the requests of a load run from the scenario and seed,
// so that no generation happens while the load runs.
func buildPool(sc market.Scenario, seed uint64, o PoolOptions) (*requestPool, error) {
	if o.Requests <= 0 {
		o.Requests = 1024
	}
	if o.Exposed <= 0 {
		o.Exposed = 256
	}
	o.Exposed = min(o.Exposed, o.Requests)
	if o.ExposuresPerBatch <= 0 {
		o.ExposuresPerBatch = 10
	}
	switch o.ExposureForm {
	case "":
		o.ExposureForm = FormRequest
	case FormRequest, FormFeatures:
	default:
		return nil, fmt.Errorf("exposure form %q: must be %s or %s", o.ExposureForm, FormRequest, FormFeatures)
	}
	if o.BidderToken == "" {
		o.BidderToken = "dev-bidder-token"
	}
	if o.AdvertiserToken == "" {
		o.AdvertiserToken = "dev-advertiser-token"
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	now := o.Now.Unix()
	sc.Start = time.Unix(now-2*86400, 0).UTC()
	m, err := market.NewMarket(sc, seed)
	if err != nil {
		return nil, err
	}
	if len(o.Campaigns) == 0 {
		o.Campaigns = m.Campaigns()
	}
	for _, c := range o.Campaigns {
		if !market.PlainID(c) {
			return nil, fmt.Errorf("campaign id %q cannot go into a query string", c)
		}
	}
	var enc func([]byte) ([]byte, error)
	switch o.Encoding {
	case "":
	case "gzip":
		enc = gzipBytes
	case "zstd":
		enc = zstdBytes
	default:
		return nil, fmt.Errorf("encoding %q: must be gzip or zstd", o.Encoding)
	}

	p := &requestPool{}
	bidder := []byte("Bearer " + o.BidderToken)
	adv := []byte("Bearer " + o.AdvertiserToken)
	p.kinds[KindScore] = kindPool{auth: bidder, encoding: o.Encoding}
	p.kinds[KindBids] = kindPool{auth: bidder, encoding: o.Encoding}
	p.kinds[KindExposures] = kindPool{auth: bidder, encoding: o.Encoding}
	p.kinds[KindConversions] = kindPool{auth: adv, encoding: o.Encoding}
	p.kinds[KindWin] = kindPool{get: true}
	p.kinds[KindVAST] = kindPool{get: true}
	p.kinds[KindScoreGet] = kindPool{get: true, auth: bidder}

	scoreURI := []byte("/v1/score?campaigns=" + strings.Join(o.Campaigns, ","))
	camps := m.Scenario().Campaigns
	nc := len(camps)
	rep := m.NewReporter()
	rep.SetPatchable(enc == nil)
	var expo []byte
	nexpo := 0
	var expoPatch []int // offsets of the request ids' first 8 hex digits
	flushExpo := func() {
		if nexpo == 0 {
			return
		}
		expo = append(expo, "]}"...)
		p.kinds[KindExposures].reqs = append(p.kinds[KindExposures].reqs, pooledRequest{uri: []byte("/v1/exposures"), body: expo, patch: expoPatch})
		expo, nexpo, expoPatch = nil, 0, nil
	}
	ex := signals.NewExtractor()
	it := m.Day(0)
	for i := 0; i < o.Requests; i++ {
		op := it.Next()
		if op == nil {
			break
		}
		body := m.AppendBidRequest(nil, op)
		p.kinds[KindScore].reqs = append(p.kinds[KindScore].reqs, pooledRequest{uri: scoreURI, body: body})
		p.kinds[KindBids].reqs = append(p.kinds[KindBids].reqs, pooledRequest{uri: []byte("/v1/bids"), body: body})
		get, err := appendScoreGetURI(nil, ex, body, o.Campaigns[i%len(o.Campaigns)], now)
		if err != nil {
			return nil, fmt.Errorf("score_get of request %d: %w", i, err)
		}
		p.kinds[KindScoreGet].reqs = append(p.kinds[KindScoreGet].reqs, pooledRequest{uri: get})
		if i >= o.Exposed {
			continue
		}
		p.prime = append(p.prime, pooledRequest{uri: []byte("/v1/bids"), body: body})
		// The first slot is won by one campaign, at the competing price.
		c, k := i%nc, (i/nc)%camps[i%nc].Creatives
		price := math.Round(max(op.Slots[0].CompetingCPM, op.Slots[0].FloorCPM)*100+1) / 100
		ts := op.Time + 1
		if nexpo == 0 {
			expo = append(expo, `{"exposures":[`...)
		} else {
			expo = append(expo, ',')
		}
		at := len(expo)
		prefix := `{"request":{"id":"`
		if o.ExposureForm == FormFeatures {
			prefix = `{"request_id":"`
			if expo, err = appendFeatureExposure(expo, ex, body, op.Slots[0].ImpID, camps[c].ID, m.Creative(c, k), price, ts); err != nil {
				return nil, fmt.Errorf("exposure of request %d: %w", i, err)
			}
		} else {
			expo = m.AppendExposure(expo, op, 0, c, k, price, ts)
		}
		// The request id (a UUID) comes first: patching its first 8 hex
		// digits with the pass number keeps every exposure new (the server
		// is idempotent by request id, imp id and campaign).
		if bytes.HasPrefix(expo[at:], []byte(prefix)) && enc == nil {
			expoPatch = append(expoPatch, at+len(prefix))
		}
		if nexpo++; nexpo == o.ExposuresPerBatch {
			flushExpo()
		}
		p.kinds[KindWin].reqs = append(p.kinds[KindWin].reqs, pooledRequest{uri: m.AppendWinURL(nil, op, 0, c, k, price)})
		out := m.Outcome(op, 0, c)
		for _, ev := range out.Events() {
			p.kinds[KindVAST].reqs = append(p.kinds[KindVAST].reqs, pooledRequest{uri: m.AppendVASTURL(nil, op, 0, c, ev)})
		}
		// Every exposed household converts, for every campaign: the load
		// needs conversion traffic, not a realistic rate.
		for cc := range nc {
			out := m.Outcome(op, 0, cc)
			out.Converted = true
			if out.Delay == 0 {
				out.Delay = time.Duration(op.Seq%3600) * time.Second
			}
			cv := m.Conversion(op, 0, cc, out)
			cv.EventTime = min(cv.EventTime, now-60)
			rep.Add(cv)
		}
	}
	flushExpo()
	for _, b := range rep.Flush(now) {
		uri := []byte("/v1/conversions?dataset=" + b.Dataset)
		p.kinds[KindConversions].reqs = append(p.kinds[KindConversions].reqs, pooledRequest{uri: uri, body: b.Body, patch: b.PatchAt})
	}
	if enc != nil {
		for k := range p.kinds {
			for i := range p.kinds[k].reqs {
				r := &p.kinds[k].reqs[i]
				if r.body == nil {
					continue
				}
				if r.body, err = enc(r.body); err != nil {
					return nil, err
				}
				r.patch = nil
			}
		}
		for i := range p.prime {
			if p.prime[i].body, err = enc(p.prime[i].body); err != nil {
				return nil, err
			}
		}
	}
	for k := range p.kinds {
		kp := &p.kinds[k]
		if len(kp.reqs) == 0 {
			return nil, fmt.Errorf("no %s requests generated", Kind(k))
		}
	}
	return p, nil
}

func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func zstdBytes(b []byte) ([]byte, error) {
	w, err := zstd.NewWriter(nil)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	return w.EncodeAll(b, nil), nil
}
