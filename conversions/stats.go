package conversions

// counts are the event counters of one dataset, source or event name.
type counts struct {
	Received     uint64 // events of accepted requests (stored + deduplicated)
	Stored       uint64 // new events, journaled
	Deduplicated uint64 // events acknowledged as copies of remembered ones
	Rejected     uint64 // events of rejected requests (invalid batch, bad pixel hit)
}

func (c *counts) add(o counts) {
	c.Received += o.Received
	c.Stored += o.Stored
	c.Deduplicated += o.Deduplicated
	c.Rejected += o.Rejected
}

type nameStats struct {
	name string // interned: also StoredEvent.EventName
	c    counts
}

// stats of one dataset, guarded by dataset.statsMu. Received, Stored and
// Deduplicated are rebuilt by Replay; Rejected and test batches are not
// journaled, so they restart from zero.
type stats struct {
	total    counts
	bySource [numSources]counts
	names    map[string]*nameStats // at most max names
	other    counts                // events whose name did not fit in names
	max      int
}

func (st *stats) add(src Source, c counts) {
	st.total.add(c)
	if int(src) < len(st.bySource) {
		st.bySource[src].add(c)
	}
}

// name returns the counters of event name b, adding them if insert and there
// is room, or nil (count under "(other)").
func (st *stats) name(b []byte, insert bool) *nameStats {
	if ns := st.names[string(b)]; ns != nil {
		return ns
	}
	if !insert || len(b) == 0 || len(st.names) >= st.max {
		return nil
	}
	ns := &nameStats{name: string(b)}
	st.names[ns.name] = ns
	return ns
}
