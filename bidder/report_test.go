package bidder

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestQueryPage(t *testing.T) {
	f := func(query string, sorts []string, limit int, sortBy, msg string) {
		t.Helper()
		var args fasthttp.Args
		args.Parse(query)
		l, s, err := queryPage(&args, sorts...)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if l != limit || s != sortBy || got != msg {
			t.Errorf("%q %v: %d %q %q, want %d %q %q", query, sorts, l, s, got, limit, sortBy, msg)
		}
	}
	seg, eff := []string{"cvr", "n", "cpa"}, []string{"effect", "n"}
	f("", seg, 100, "cvr", "")
	f("", eff, 100, "effect", "")
	f("limit=1&sort=cpa", seg, 1, "cpa", "")
	f("limit=10000&sort=n", eff, 10000, "n", "")
	f("limit=0", seg, 0, "", "limit: must be 1 to 10000")
	f("limit=10001&sort=n", seg, 0, "", "limit: must be 1 to 10000")
	f("limit=x", eff, 0, "", "limit: must be 1 to 10000")
	f("sort=effect", seg, 0, "", `sort: must be cvr, n or cpa, not "effect"`)
	f("sort=cvr", eff, 0, "", `sort: must be effect or n, not "cvr"`)
}
