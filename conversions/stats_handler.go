package conversions

import (
	"slices"
	"strconv"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/valyala/fasthttp"
)

// HandleStats serves GET /v1/stats?dataset=<id> (or the advertiser's only
// dataset) for advertiser adv (the server resolved its Bearer token):
//
//	{"dataset": "1234567890", "received": N, "stored": N, "deduplicated": N, "rejected": N,
//	 "dedup_entries": N,
//	 "by_source": {"capi": {counts}, "pixel": {counts}},
//	 "by_event_name": {"Purchase": {counts}, ..., "(other)": {counts}}}
//
// Names beyond MaxEventNames per dataset are counted under "(other)", and so
// are rejected events whose name was never stored.
func (s *Service) HandleStats(ctx *fasthttp.RequestCtx, adv string) error {
	ds, aerr := s.queryDataset(ctx, adv)
	if aerr != nil {
		return aerr
	}
	ds.mu.Lock()
	entries := ds.set.Len()
	ds.mu.Unlock()

	ds.statsMu.Lock()
	st := &ds.stats
	total, bySource, other := st.total, st.bySource, st.other
	names := make([]nameStats, 0, len(st.names))
	for _, ns := range st.names {
		names = append(names, *ns)
	}
	ds.statsMu.Unlock()
	slices.SortFunc(names, func(a, b nameStats) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})

	out := make([]byte, 0, 256+64*len(names))
	out = append(out, `{"dataset":`...)
	out = apierr.AppendString(out, ds.id)
	out = append(out, ',')
	out = appendCounts(out, total)
	out = append(out, `,"dedup_entries":`...)
	out = strconv.AppendInt(out, int64(entries), 10)
	out = append(out, `,"by_source":{"capi":{`...)
	out = appendCounts(out, bySource[SourceCAPI])
	out = append(out, `},"pixel":{`...)
	out = appendCounts(out, bySource[SourcePixel])
	out = append(out, `}},"by_event_name":{`...)
	for i, ns := range names {
		if i > 0 {
			out = append(out, ',')
		}
		out = apierr.AppendString(out, ns.name)
		out = append(out, `:{`...)
		out = appendCounts(out, ns.c)
		out = append(out, '}')
	}
	if other != (counts{}) {
		if len(names) > 0 {
			out = append(out, ',')
		}
		out = append(out, `"(other)":{`...)
		out = appendCounts(out, other)
		out = append(out, '}')
	}
	out = append(out, "}}"...)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
	return nil
}

func appendCounts(out []byte, c counts) []byte {
	out = append(out, `"received":`...)
	out = strconv.AppendUint(out, c.Received, 10)
	out = append(out, `,"stored":`...)
	out = strconv.AppendUint(out, c.Stored, 10)
	out = append(out, `,"deduplicated":`...)
	out = strconv.AppendUint(out, c.Deduplicated, 10)
	out = append(out, `,"rejected":`...)
	return strconv.AppendUint(out, c.Rejected, 10)
}
