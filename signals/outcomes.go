package signals

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/dedup"
	"github.com/cpafeed/cpafeed/model"
)

// RecordOutcome is the journal record of one bid's outcome: the bid the
// bidder placed and whether it won (and at what price) or lost. First-price
// shading (package shading) learns its win-rate curves from them.
const RecordOutcome byte = 0x12

var (
	lossesReceived   = metrics.NewCounter(`cpafeed_losses_total`)
	lossesUnknown    = metrics.NewCounter(`cpafeed_losses_unknown_total`)
	lossesNotPrice   = metrics.NewCounter(`cpafeed_losses_not_price_total`)
	lossesRefusedSig = metrics.NewCounter(`cpafeed_losses_refused_total{reason="signature"}`)
	lossesBadBid     = metrics.NewCounter(`cpafeed_losses_refused_total{reason="bid"}`)
	outcomesStored   = metrics.NewCounter(`cpafeed_bid_outcomes_stored_total`)
	winsBadBid       = metrics.NewCounter(`cpafeed_wins_bad_bid_total`)
)

// outcome is one bid's outcome as journaled and applied.
type outcome struct {
	ts       int64
	campaign string
	cut      model.Key // the imp's first segment level below the campaign (Chain.Cut)
	bid      float64   // CPM placed
	price    float64   // CPM paid; 0 for a loss
	won      bool
	key      dedup.Key // idempotency: 'o', auction, imp, campaign
}

// OnOutcome sets the function called with every bid outcome where it is
// applied (the journal's applier, or replay), in log order: campaign, its
// root key, the imp's cut (Chain.Cut), the bid and price in CPM, and
// whether it won.
func (x *Exposures) OnOutcome(fn func(campaign string, root, cut model.Key, bidCPM, priceCPM float64, won bool, ts int64)) {
	x.onOutcome = fn
}

// OnExposed sets the function called with every exposure where it is
// applied (the journal's applier, or replay), in log order: its campaign,
// time, cost (currency units), predicted conversion rate (0: none; see
// SetPredictor) and auction and imp ids (empty for an exposure posted
// without them). The slices are valid during the call only.
func (x *Exposures) OnExposed(fn func(campaign string, ts int64, cost, pred float64, auction, imp []byte)) {
	x.onExposed = fn
}

// SetPredictor sets how an exposure's conversion rate is predicted when it
// is reported (a win notice, a posted exposure, Expose): the bidder's
// estimate for the campaign and imp now (0 when it has none). The
// prediction is journaled with the exposure, so that the CPA controller's
// expected conversions follow the log. Call it before serving.
func (x *Exposures) SetPredictor(fn func(campaign string, imp *Imp) float64) { x.predict = fn }

// validPred is p when it is a conversion rate, else 0 (none).
func validPred(p float64) float64 {
	if !(p > 0 && p <= 1) {
		return 0
	}
	return p
}

// outcomeOf is the outcome of campaign's bid in imp impID of auction.
func (x *Exposures) outcomeOf(num uint16, campaign string, imp *Imp, auction, impID []byte, ts int64, bid, price float64, won bool) *outcome {
	return &outcome{ts: ts, campaign: campaign, cut: x.chain.Cut(x.roots[num], imp), bid: bid, price: price, won: won,
		key: x.idemKey('o', auction, impID, []byte(campaign))}
}

// applyOutcome hands an outcome to the OnOutcome function.
func (x *Exposures) applyOutcome(o *outcome) {
	if x.onOutcome == nil {
		return
	}
	num, ok := x.campaigns[o.campaign]
	if !ok {
		return
	}
	x.onOutcome(o.campaign, x.roots[num], o.cut, o.bid, o.price, o.won, o.ts)
}

// commitOutcome journals an outcome once per (auction, imp, campaign) and
// waits for it to be applied (as commitVideo does a VAST event).
func (x *Exposures) commitOutcome(o *outcome) error {
	return x.commitOnce(o.key, appendOutcome(nil, o), func() { x.applyOutcome(o) }, outcomesStored.Inc)
}

// parseBid reads a bid CPM argument: a number > 0 and at most the win
// price cap; false for anything else (absent, a macro left unsubstituted).
func (x *Exposures) parseBid(v []byte) (float64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	bid, err := strconv.ParseFloat(string(v), 64)
	if err != nil || !(bid > 0) || bid > x.cfg.MaxWinPriceCPM {
		return 0, false
	}
	return bid, true
}

// Loss reasons of OpenRTB's ${AUCTION_LOSS} that say the price lost: below
// the auction floor (100) or the deal floor (101), lost to a higher bid
// (102) or to a deal's bid (103). Every other reason (invalid creative,
// blocked advertiser, ...) says nothing of the price and is not learned
// from.
func priceLoss(reason []byte) (price, known bool) {
	if len(reason) == 0 {
		return true, true // no reason given: taken as lost to a higher bid
	}
	n, err := strconv.Atoi(string(reason))
	if err != nil {
		return false, false
	}
	return n >= 100 && n <= 103, true
}

// HandleLoss serves GET /v1/loss?auction=&imp=&campaign=&bid=[&reason=]
// [&sig=], an OpenRTB loss notice (lurl) target: the bid the bidder placed
// (bid, CPM, written by the bidder) lost. Like a win notice it carries no
// token and books only a loss of a remembered bid of a bidder that may use
// the campaign, signed when that bidder has a win_secret (the same sig as
// its win notice). reason is ${AUCTION_LOSS}: absent or 100-103 (floor,
// deal floor, higher bid, deal) count as lost on price; any other reason
// is counted and not booked. The answer is always the GIF. Losses are
// journaled once per (auction, imp, campaign) and teach first-price
// shading its win-rate curves.
func (x *Exposures) HandleLoss(ctx *fasthttp.RequestCtx) error {
	lossesReceived.Inc()
	args := ctx.QueryArgs()
	auction, impID, campaign := args.Peek("auction"), args.Peek("imp"), string(args.Peek("campaign"))
	num, known := x.campaigns[campaign]
	isPrice, ok := priceLoss(args.Peek("reason"))
	switch {
	case !known:
		lossesUnknown.Inc()
	case !ok || !isPrice:
		lossesNotPrice.Inc()
	default:
		bid, okBid := x.parseBid(args.Peek("bid"))
		if !okBid {
			lossesBadBid.Inc()
			break
		}
		sig := args.Peek("sig")
		r, signer, held := x.winBid(auction, impID, campaign, sig)
		var imp Imp
		if held {
			_, held = r.find(impID, &imp)
		}
		if !held {
			lossesUnknown.Inc()
			break
		}
		if signer != nil && !signer.Valid(sig, auction, impID, campaign) {
			lossesRefusedSig.Inc()
			break
		}
		o := x.outcomeOf(num, campaign, &imp, auction, impID, x.now().Unix(), bid, 0, false)
		if err := x.commitOutcome(o); err != nil {
			return apierr.Unavailable("loss not stored, retry").WithCause(err)
		}
	}
	WriteGIF(ctx)
	return nil
}

// bookWinBid journals the outcome of a win notice that says what was bid
// (bid=, CPM): won at price.
func (x *Exposures) bookWinBid(num uint16, campaign string, imp *Imp, auction, impID []byte, bidArg []byte, price float64) error {
	if len(bidArg) == 0 {
		return nil
	}
	bid, ok := x.parseBid(bidArg)
	if !ok {
		winsBadBid.Inc()
		return nil
	}
	return x.commitOutcome(x.outcomeOf(num, campaign, imp, auction, impID, x.now().Unix(), bid, price, true))
}

// Outcome records the outcome of campaign's bid of bidCPM in imp i of
// req at ts (Unix seconds), as a win notice carrying bid= (won, at
// priceCPM) or a loss notice (lost) would: journaled once per (request
// id, imp id, campaign) and applied before it returns. For in-process
// bidders (the market simulation); req is read during the call only.
func (x *Exposures) Outcome(req *Request, i int, campaign string, bidCPM, priceCPM float64, won bool, ts int64) error {
	num, ok := x.campaigns[campaign]
	if !ok {
		return fmt.Errorf("signals: unknown campaign %q", campaign)
	}
	if i < 0 || i >= len(req.Imps) {
		return fmt.Errorf("signals: imp %d of a request with %d", i, len(req.Imps))
	}
	if !(bidCPM > 0) || math.IsInf(bidCPM, 0) || !(priceCPM >= 0) || math.IsInf(priceCPM, 0) {
		return fmt.Errorf("signals: bid %g, price %g: want a bid > 0 and a price ≥ 0", bidCPM, priceCPM)
	}
	if !won {
		priceCPM = 0
	}
	imp := &req.Imps[i]
	return x.commitOutcome(x.outcomeOf(num, campaign, imp, req.ID, imp.ID, ts, bidCPM, priceCPM, won))
}

const outcomeVersion = 1

// appendOutcome encodes an outcome: type, version, varint ts, bytes
// campaign, u64 cut, f64 bid, f64 price, u8 flags (bit 0 won), 16-byte
// idempotency key.
func appendOutcome(b []byte, o *outcome) []byte {
	b = append(b, RecordOutcome, outcomeVersion)
	b = binary.AppendVarint(b, o.ts)
	b = appendBytes(b, []byte(o.campaign))
	b = binary.LittleEndian.AppendUint64(b, uint64(o.cut))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(o.bid))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(o.price))
	flags := byte(0)
	if o.won {
		flags = 1
	}
	b = append(b, flags)
	return append(b, o.key[:]...)
}

func decodeOutcome(rec []byte) (outcome, error) {
	r := binenc.NewSlice(rec, errRecord)
	if r.Byte("type") != RecordOutcome || r.Byte("version") != outcomeVersion {
		return outcome{}, fmt.Errorf("%w: not a bid outcome v%d", errRecord, outcomeVersion)
	}
	var o outcome
	o.ts = r.Varint("ts")
	o.campaign = string(r.Bytes("campaign"))
	o.cut = model.Key(r.U64("cut"))
	o.bid = r.F64("bid")
	o.price = r.F64("price")
	o.won = r.Byte("flags")&1 == 1
	o.key = readKey(&r)
	if r.Err() == nil && r.Len() != 0 {
		r.Fail("bid outcome", "%d bytes after it", r.Len())
	}
	if r.Err() == nil && (!(o.bid > 0) || math.IsInf(o.bid, 0) || !(o.price >= 0) || math.IsInf(o.price, 0)) {
		r.Fail("bid outcome", "bid %g, price %g", o.bid, o.price)
	}
	return o, r.Err()
}

// replayOutcome applies a RecordOutcome record at start.
func (x *Exposures) replayOutcome(rec []byte) error {
	o, err := decodeOutcome(rec)
	if err != nil {
		return err
	}
	x.mu.Lock()
	x.seen.Insert(o.key, x.seen.Gen(o.ts*1000))
	x.mu.Unlock()
	x.applyOutcome(&o)
	return nil
}
