package signals

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/dedup"
	"github.com/cpafeed/cpafeed/model"
)

// TransparentGIF is a 1x1 transparent GIF (43 bytes), the answer to every
// beacon and pixel hit.
const TransparentGIF = "GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00" +
	",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"

// WriteGIF answers a beacon or a pixel hit: the 1x1 GIF, never cached. The
// one GIF writer (win, VAST, the pixel).
func WriteGIF(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("image/gif")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "no-store, no-cache, must-revalidate, max-age=0")
	ctx.Response.Header.Set(fasthttp.HeaderPragma, "no-cache")
	ctx.Response.Header.Set(fasthttp.HeaderExpires, "0")
	ctx.SetBodyString(TransparentGIF)
}

// HandleBids serves POST /v1/bids: the bid request alone, remembered (every
// imp) for its win notice. Answer: {"id": ..., "remembered": <imps>}, the
// imps actually remembered (0 for a request too large to keep, counted in
// cpafeed_bids_not_remembered_total).
func (x *Exposures) HandleBids(ctx *fasthttp.RequestCtx, body []byte, b Bidder) error {
	ex := x.extractors.Get().(*Extractor)
	defer x.extractors.Put(ex)
	now := x.now().Unix()
	req, err := ex.Extract(body, now)
	if err != nil {
		return err
	}
	kept := x.Remember(req, b.BidderName(), now)
	out := append(ctx.Response.Body()[:0], `{"id":`...)
	out = apierr.AppendString(out, string(req.ID))
	out = append(out, `,"remembered":`...)
	out = strconv.AppendInt(out, int64(kept), 10)
	out = append(out, '}')
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
	return nil
}

// HandleWin serves GET /v1/win?auction=&imp=&campaign=&creative=&price=
// [&bid=][&sig=], an OpenRTB burl/nurl target: the features and identities
// come from the bid request remembered at bid time. bid, when the bidder
// writes it, is the CPM it bid: the win is then also a bid outcome for
// first-price shading (RecordOutcome; an unreadable bid is counted in
// cpafeed_wins_bad_bid_total and books no outcome). It carries no token, so it
// books only what the bidder that remembered the bid may book: a campaign
// that bidder may use and, when the bidder has a win_secret, with a valid
// sig (WinSigner). A price above MaxWinPriceCPM, or unreadable, is booked
// as 0.
//
// A win that cannot be used (request no longer remembered, unknown
// campaign, a campaign the bidder may not use, a missing or wrong sig)
// answers the GIF all the same, books nothing and is counted
// (cpafeed_wins_unknown_total, cpafeed_wins_refused_total{reason}). The
// answer goes to an exchange or a player, who can do nothing about an
// error; an error status would only tell a prober which auctions,
// campaigns and signatures are good. The bidder sees refusals in metrics.
func (x *Exposures) HandleWin(ctx *fasthttp.RequestCtx) error {
	args := ctx.QueryArgs()
	auction, impID, campaign := args.Peek("auction"), args.Peek("imp"), string(args.Peek("campaign"))
	num, known := x.campaigns[campaign]
	if !known {
		winsUnknown.Inc()
		WriteGIF(ctx)
		return nil
	}
	sig := args.Peek("sig")
	r, signer, ok := x.winBid(auction, impID, campaign, sig)
	var imp Imp
	var ids []ID
	if ok {
		ids, ok = r.find(impID, &imp)
	}
	if !ok {
		// No bid of a bidder that may use the campaign: unknown, or held
		// only for bidders that may not.
		if x.heldByAnyBidder(auction) {
			winsRefusedCampaign.Inc()
		} else {
			winsUnknown.Inc()
		}
		WriteGIF(ctx)
		return nil
	}
	if signer != nil && !signer.Valid(sig, auction, impID, campaign) {
		winsRefusedSig.Inc()
		WriteGIF(ctx)
		return nil
	}
	price, err := strconv.ParseFloat(string(args.Peek("price")), 64)
	switch {
	case err != nil || !(price >= 0):
		winsBadPrice.Inc() // an unsubstituted or encrypted price macro: count the exposure at 0
		price = 0
	case price > x.cfg.MaxWinPriceCPM:
		winsPriceOverCap.Inc()
		price = 0
	}
	e := x.newExposure(num, campaign, &imp, auction, impID, x.now().Unix(), price/1000, r.indexed(), ids)
	if _, err := x.commit([]exposure{e}); err != nil {
		return apierr.Unavailable("win not stored, retry").WithCause(err)
	}
	if err := x.bookWinBid(num, campaign, &imp, auction, impID, args.Peek("bid"), price); err != nil {
		return apierr.Unavailable("win not stored, retry").WithCause(err)
	}
	WriteGIF(ctx)
	return nil
}

// VAST events counted per segment: starts and completes make the VTR.
const (
	vastStart    = "start"
	vastComplete = "complete"
)

// heldByAnyBidder reports whether some bidder's bid for auction is held
// (for the metrics of a refused win: a campaign its bidder may not use, or
// an unknown auction).
func (x *Exposures) heldByAnyBidder(auction []byte) bool {
	if x.bidders == nil {
		return false
	}
	for _, name := range x.bidders.BidderNames() {
		if _, held := x.lookupBid(auction, name); held {
			return true
		}
	}
	return false
}

// HandleVAST serves GET /v1/vast?auction=&imp=&campaign=&ev=...[&sig=], a
// VAST tracking beacon. start and complete are journaled and counted on
// the won exposure's segment; impression and the quartiles are only
// counted in metrics. It counts only for a won exposure (a win notice or a
// posted exposure that passed their checks, so a campaign its bidder may
// use); while the won bid is still remembered and its bidder has a
// win_secret, it must also carry the win notice's sig. Unknown exposures
// and refused beacons still get the GIF and are counted.
func (x *Exposures) HandleVAST(ctx *fasthttp.RequestCtx) error {
	args := ctx.QueryArgs()
	ev := string(args.Peek("ev"))
	vastEvents.Inc()
	starts, completes, known := vastCounts(ev)
	if starts+completes == 0 {
		if !known {
			vastUnknown.Inc()
		}
		WriteGIF(ctx)
		return nil
	}
	auction, impID, campaign := args.Peek("auction"), args.Peek("imp"), string(args.Peek("campaign"))
	now := x.now()
	won, ok := x.won.get(wonHash(auction, impID, campaign), now.Unix())
	if !ok {
		vastUnknown.Inc()
		WriteGIF(ctx)
		return nil
	}
	// While the won bid is held, a bidder of the campaign that signs its
	// win notices demands the same signature on its beacons.
	sig := args.Peek("sig")
	if _, signer, held := x.winBid(auction, impID, campaign, sig); held && signer != nil &&
		!signer.Valid(sig, auction, impID, campaign) {
		vastRefusedSig.Inc()
		WriteGIF(ctx)
		return nil
	}
	if err := x.commitVideo(x.videoEventOf(now.Unix(), auction, impID, campaign, ev, won.leaf)); err != nil {
		return apierr.Unavailable("VAST event not stored, retry").WithCause(err)
	}
	WriteGIF(ctx)
	return nil
}

// vastCounts is what VAST event ev counts on its segment: a video start, a
// complete, or nothing (impression and the quartiles, known, are only
// counted in metrics).
func vastCounts(ev string) (starts, completes float64, known bool) {
	switch ev {
	case vastStart:
		return 1, 0, true
	case vastComplete:
		return 0, 1, true
	case "impression", "firstQuartile", "midpoint", "thirdQuartile":
		return 0, 0, true
	}
	return 0, 0, false
}

// videoEventOf is VAST event ev (one vastCounts counts) of campaign's ad in
// imp impID of auction, on segment leaf at ts: idempotent by (auction, imp,
// campaign, event) whether it came as a beacon or in process.
func (x *Exposures) videoEventOf(ts int64, auction, impID []byte, campaign, ev string, leaf model.Key) *videoEvent {
	starts, completes, _ := vastCounts(ev)
	return &videoEvent{ts: ts, campaign: campaign, leaf: leaf, starts: starts, complete: completes,
		key: x.idemKey('v', auction, impID, []byte(campaign), []byte(ev))}
}

// commitVideo journals one VAST event unless seen before, and waits until
// it is counted.
func (x *Exposures) commitVideo(v *videoEvent) error {
	return x.commitOnce(v.key, appendVideo(nil, v), func() { x.counter.Video(v.ts, v.leaf, v.starts, v.complete) }, nil)
}

// commitOnce journals rec unless key was seen before (within the
// idempotency window), applies it with apply once journaled, and waits
// until it is durable; a key seen before waits for its original's record
// while that is in flight (awaitSeenLocked).
// stored (may be nil) runs when rec was appended.
func (x *Exposures) commitOnce(key dedup.Key, rec []byte, apply, stored func()) error {
	now := x.now()
	x.mu.Lock()
	x.advanceLocked(now.UnixMilli())
	var lsn, epoch uint64
	var res *idemReservation
	if x.seen.Contains(key) {
		lsn, epoch = x.awaitSeenLocked([]dedup.Key{key})
	} else {
		g := x.seen.Gen(now.UnixMilli())
		x.seen.Insert(key, g)
		var err error
		lsn, epoch, err = x.log.AppendApply(rec,
			func() {
				x.mu.Lock()
				x.seen.Remove(key, g)
				if res != nil {
					res.done = true
				}
				x.mu.Unlock()
			},
			apply)
		if err != nil {
			x.seen.Remove(key, g)
			x.mu.Unlock()
			return err
		}
		res = x.reserveLocked(lsn, epoch, []dedup.Key{key})
		if stored != nil {
			stored()
		}
	}
	x.mu.Unlock()
	if lsn == 0 {
		return nil
	}
	err := x.log.Wait(lsn, epoch)
	if res != nil {
		x.release(res)
	}
	return err
}
