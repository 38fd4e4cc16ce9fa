package bidder

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
)

// What the estimate reports (GET /v1/segments, GET /v1/effects) share.

// queryPage reads a report's ?limit=K (1 to 10000, 100 when absent) and
// ?sort=, one of sorts (the first when absent).
func queryPage(args *fasthttp.Args, sorts ...string) (limit int, sortBy string, err error) {
	limit = 100
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > 10000 {
			return 0, "", apierr.BadRequest("limit: must be 1 to 10000")
		}
		limit = n
	}
	sortBy = string(args.Peek("sort"))
	switch {
	case sortBy == "":
		sortBy = sorts[0]
	case !slices.Contains(sorts, sortBy):
		last := len(sorts) - 1
		return 0, "", apierr.BadRequest("sort: must be %s or %s, not %q", strings.Join(sorts[:last], ", "), sorts[last], sortBy)
	}
	return limit, sortBy, nil
}

// firstRows returns the first limit rows, never nil (an empty report
// answers [], not null), and how many there were.
func firstRows[T any](rows []T, limit int) (page []T, total int) {
	total = len(rows)
	if len(rows) > limit {
		rows = rows[:limit]
	}
	if rows == nil {
		rows = []T{}
	}
	return rows, total
}

// writeJSON answers v as JSON.
func writeJSON(ctx *fasthttp.RequestCtx, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
	return nil
}
