// Package market is cpafeed's synthetic CTV market: a deterministic
// generator of bid requests, exposures, VAST events and Meta-format
// conversion batches from a scenario file. The load generator (package
// bench/load) and the strategy simulation (package bench/simulate) both draw
// their traffic from it; it knows nothing of either.
//
// A Scenario (configs/scenarios/*.yaml, decoded on top of DefaultScenario)
// and a seed make a Market (NewMarket). Everything it produces is a function
// of the two: the same seed gives byte-identical output. The Market is
// read-only and safe for concurrent use. A simulation drives it day by day:
//
//	m, _ := market.NewMarket(sc, seed)
//	rep := m.NewReporter()                 // one per strategy
//	for d := 0; d < days; d++ {
//		for _, c := range m.Organic(d) { rep.Add(c) }
//		it := m.Day(d)                      // opportunities in time order
//		for o := it.Next(); o != nil; o = it.Next() {
//			body := m.AppendBidRequest(buf[:0], o) // OpenRTB 2.6 JSON
//			// bid per slot s with the strategy; o.Truth(s, c) is the hidden truth
//			won, price := m.Auction(o.Slots[s], bid)
//			out := m.Outcome(o, s, c)       // same for every strategy
//			// out.Events(): VAST events; exposure: m.AppendExposure(...)
//			if out.Converted { rep.Add(m.Conversion(o, s, c, out)) }
//			for _, b := range rep.Flush(o.Time) { /* b.Body: Meta CAPI batch */ }
//		}
//	}
//
// Lifetimes: the *Opportunity returned by DayIter.Next (its Slots and truth
// included) is valid until the next call to Next; copy what must outlive it
// (Opportunity.CopyTo). Conversion, Outcome and Batch values are owned by
// the caller. DayIter and Reporter are not safe for concurrent use.
//
// # Truth and observation
//
// What a bidder sees is the rendered bid request; the truth (Opportunity.Truth,
// Outcome, the household index) is for the judge. The truth is crossed, not
// nested: each effect of truth.cvr_effects (see Effect) gives every value of
// its key (publisher; publisher and bundle; genre; metro; daypart; device;
// slot in the pod; genre and metro; ...) its own log-normal factor, the same
// whatever the other features, so a metro's effect is the same on every app.
// cpafeed's model pools along one path (campaign → publisher → bundle →
// genre → metro); a market built along that path (configs/scenarios/
// nested.yaml, the default until issue 12, which it reproduces byte for
// byte) proves little about it.
//
// Observation is imperfect and depends on the segment:
//   - identifiers: a conversion made in the TV app (reporting.app_share)
//     carries the TV's IP and ifa far more often than one made on a phone,
//     which carries the home IP only on the home network
//     (reporting.identifiers.app and .website); a TV that limits ad tracking
//     gives no ifa, and that share differs by device (inventory.devices[].lmt:
//     Apple TV's App Tracking Transparency);
//   - IPs: a household's public IP changes (reporting.ip.churn_per_day), so
//     a conversion days after its exposure may not match it, and some
//     households share one IP (reporting.ip.shared_share: carrier-grade NAT),
//     so a conversion may match another household's exposure;
//   - organic conversions are more common in some metros
//     (truth.organic_effects), independently of the ads' effect there.
//
// # Where the defaults come from
//
// The default scenario's numbers come from public figures, cited in
// configs/scenarios/default.yaml beside each: IP churn (over 20 % of US
// homes change IP at least monthly, tvrev; comScore 2007), shared IPs (US 5G
// fixed wireless access, which shares IPv4 addresses, at 6.8 % of broadband
// lines at the end of 2023, Leichtman Research; CGN in 4.1 K networks,
// CAIDA 2018), App Tracking Transparency consent (46 % where prompted,
// AppsFlyer 2022), time on Wi-Fi (about half of US smartphone time,
// Opensignal 2017), pod position and length (Swaminathan & Kent, JAR 2013;
// Comcast Advertising and MediaScience at the ARF), conversion delays
// (Chapelle, KDD 2014). Where no public figure exists (CTV conversion rates
// by app, daypart or device; households per shared IP) the file says so and
// the value is an assumption: the effect sizes follow the reference
// evaluation protocol (shared/reference/estimation-and-bidding.md, part d)
// and keep the old default's total log spread. No value was chosen because
// cpafeed does well on it, and the market is never tuned to make it look
// good; other scenarios than the team's will be run.
//
// The market never writes raw PII anywhere: its identities are synthetic and
// emails are sent hashed.
package market
