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
//			// bid per slot with the strategy; o.Truth[c] is the hidden truth
//			won, price := m.Auction(o.Slots[s], bid)
//			out := m.Outcome(o, s, c)       // same for every strategy
//			// out.Events(): VAST events; exposure: m.AppendExposure(...)
//			if out.Converted { rep.Add(m.Conversion(o, s, c, out)) }
//			for _, b := range rep.Flush(o.Time) { /* b.Body: Meta CAPI batch */ }
//		}
//	}
//
// Lifetimes: the *Opportunity returned by DayIter.Next (its Slots and Truth
// included) is valid until the next call to Next; copy what must outlive it.
// Conversion, Outcome and Batch values are owned by the caller. DayIter and
// Reporter are not safe for concurrent use.
//
// The market never writes raw PII anywhere: its identities are synthetic and
// emails are sent hashed.
package market
