package server

import (
	"strings"
	"testing"
)

// TestBearerSchemeAnyCase: the Authorization scheme is matched in any case
// and spaces around it are tolerated, on every kind of route: issue 17
// found "BEARER" accepted on /v1/stats and refused on /v1/score, read by
// two parsers; there is one now (auth.Bearer), called by the front door.
func TestBearerSchemeAnyCase(t *testing.T) {
	s := testServer(t, nil)
	for _, scheme := range []string{"Bearer %s", "BEARER %s", "bearer %s", "bEaReR %s", "  Bearer   %s  ", "Bearer\t%s"} {
		adv := "Authorization: " + strings.Replace(scheme, "%s", advToken, 1)
		bid := "Authorization: " + strings.Replace(scheme, "%s", bidderToken, 1)
		for _, c := range []struct{ method, uri, body, auth string }{
			{"GET", "/v1/stats?dataset=1234567890", "", adv},
			{"GET", "/v1/test_events?dataset=1234567890", "", adv},
			{"GET", "/v1/score?campaign=demo-ctv-purchase&genre=Sports", "", bid},
			{"POST", "/v1/score?campaigns=demo-ctv-purchase", engineRequest, bid},
			{"POST", "/v1/bids", engineRequest, bid},
			{"GET", "/v1/campaigns/demo-ctv-purchase/stats", "", adv},
			{"GET", "/v1/campaigns/demo-ctv-purchase/stats", "", bid},
			{"GET", "/v1/segments?campaign=demo-ctv-purchase", "", bid},
			{"DELETE", "/v1/identities", `{"em":"a@b.c"}`, adv},
		} {
			if status, body := call(s, c.method, c.uri, c.body, c.auth, "Content-Type: application/json"); status != 200 {
				t.Errorf("%s %s with %q: %d %s", c.method, c.uri, c.auth, status, body)
			}
		}
	}
}

// TestFrontDoorRefuses: every route that takes a token refuses a request
// without one, with an unknown one, or with another role's, before its
// handler runs; the Meta path's access_token resolves through the same
// table, in the query or in the body.
func TestFrontDoorRefuses(t *testing.T) {
	s := testServer(t, nil)
	paths := map[route]string{
		routeConversions:   "/v1/conversions?dataset=1234567890",
		routeMetaEvents:    "/v24.0/1234567890/events",
		routeStats:         "/v1/stats",
		routeTestEvents:    "/v1/test_events",
		routeIdentities:    "/v1/identities",
		routeScore:         "/v1/score",
		routeBids:          "/v1/bids",
		routeExposures:     "/v1/exposures",
		routeModelSnapshot: "/v1/model/snapshot",
		routeCampaignStats: "/v1/campaigns/demo-ctv-purchase/stats",
		routeCampaignLift:  "/v1/campaigns/demo-ctv-purchase/lift",
		routeSegments:      "/v1/segments?campaign=demo-ctv-purchase",
		routeEffects:       "/v1/effects?campaign=demo-ctv-purchase&key=genre",
	}
	for r := routeNotFound + 1; r < numRoutes; r++ {
		p, ok := paths[r]
		if r.role() == roleNone {
			if ok {
				t.Errorf("route %s takes no token", r)
			}
			continue
		}
		if !ok {
			t.Errorf("route %s takes a token: add it to this test", r)
			continue
		}
		if routeOf([]byte(strings.Split(p, "?")[0])) != r {
			t.Fatalf("%s is not route %s", p, r)
		}
		method := map[route]string{routeConversions: "POST", routeMetaEvents: "POST", routeIdentities: "DELETE", routeScore: "POST", routeBids: "POST", routeExposures: "POST"}[r]
		if method == "" {
			method = "GET"
		}
		const body = `{"data":[]}`
		for _, auth := range []string{"", "Authorization: Bearer nope", "Authorization: Basic " + advToken, "Authorization: Bearer"} {
			if status, answer := call(s, method, p, body, auth); status != 401 {
				t.Errorf("%s %s with %q: %d %s", method, p, auth, status, answer)
			}
		}
		var other string // a token of the other role
		switch r.role() {
		case roleAdvertiser, roleMeta:
			other = bidderToken
		case roleBidder:
			other = advToken
		default:
			continue // a reader may be either
		}
		want := map[role]int{roleAdvertiser: 401, roleMeta: 401, roleBidder: 403}[r.role()]
		uri, auth := p, "Authorization: Bearer "+other
		if r == routeMetaEvents {
			uri, auth = p+"?access_token="+other, ""
		}
		if status, answer := call(s, method, uri, body, auth); status != want {
			t.Errorf("%s %s with the other role's token: %d %s, want %d", method, uri, status, answer, want)
		}
	}
	// The Meta path: access_token in the query or the body, the same table.
	meta := "/v24.0/1234567890/events"
	for _, c := range []struct {
		uri, ctype, body string
		want             int
	}{
		{meta + "?access_token=nope", "application/json", `{"data":[]}`, 401},
		{meta, "application/json", `{"data":[],"access_token":"nope"}`, 401},
		{meta, "application/json", `{"data":[],"access_token":"` + bidderToken + `"}`, 401},
		{meta, "application/x-www-form-urlencoded", "data=%5B%5D&access_token=" + bidderToken, 401},
		{meta, "application/json", `{"data":[]}`, 401},
		// A known advertiser's token gets past the door: the empty batch is then a 400.
		{meta + "?access_token=" + advToken, "application/json", `{"data":[]}`, 400},
		{meta, "application/json", `{"data":[],"access_token":"` + advToken + `"}`, 400},
		{meta, "application/x-www-form-urlencoded", "data=%5B%5D&access_token=" + advToken, 400},
	} {
		if status, answer := call(s, "POST", c.uri, c.body, "Content-Type: "+c.ctype); status != c.want {
			t.Errorf("POST %s %s: %d %s, want %d", c.uri, c.body, status, answer, c.want)
		}
	}
}

// TestEveryRouteHasARole: every route is given its role in routeRoles; a
// route without one is answered 500, never served.
func TestEveryRouteHasARole(t *testing.T) {
	for r := route(0); r < numRoutes; r++ {
		if r.role() == roleUnset {
			t.Errorf("route %s has no role in routeRoles (server/auth.go)", r)
		}
	}
	s := testServer(t, nil)
	saved := routeRoles[routeEffects]
	routeRoles[routeEffects] = roleUnset
	defer func() { routeRoles[routeEffects] = saved }()
	status, body := call(s, "GET", "/v1/effects?campaign=demo-ctv-purchase&key=genre", "", "Authorization: Bearer "+bidderToken)
	if status != 500 || !strings.Contains(body, "internal error") {
		t.Errorf("a route without a role: %d %s", status, body)
	}
}
