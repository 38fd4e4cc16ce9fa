// Package bench is cpafeed's synthetic CTV market and its load and bidding
// tools: a deterministic generator of bid requests, exposures, VAST events and
// Meta-format conversion batches from a scenario file; the load generator
// behind `cpafeed bench`; and the strategy simulation behind `cpafeed simulate`.
//
// # The market
//
// A Scenario (configs/scenarios/*.yaml, decoded on top of DefaultScenario)
// and a seed make a Market (NewMarket). Everything it produces is a function
// of the two: the same seed gives byte-identical output. The Market is
// read-only and safe for concurrent use. A simulation drives it day by day:
//
//	m, _ := bench.NewMarket(sc, seed)
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
// # The load generator
//
// RunLoad pre-generates a pool of requests from the scenario (generation is
// never on the hot path), then drives a server over HTTP with fasthttp's
// HostClient: a closed loop of Concurrency workers, or an open loop at a fixed
// rate with latency measured from the intended send time. It only ever
// connects to loopback addresses, for a bounded time. It never writes raw PII
// anywhere: the generated identities are synthetic, emails are sent hashed.
package bench
