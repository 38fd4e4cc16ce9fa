package server

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/auth"
)

// role is what a route asks of its caller.
type role uint8

const (
	// roleUnset: a route not given a role in routeRoles. It is answered
	// 500, never served (TestEveryRouteHasARole fails first).
	roleUnset role = iota
	// roleNone: no token (probes, metrics, the API description, the pixel,
	// win notices and VAST beacons).
	roleNone
	// roleAdvertiser: an advertiser's Bearer token.
	roleAdvertiser
	// roleMeta: an advertiser's access_token, in the query (resolved here)
	// or in the body (resolved by conversions through the same table,
	// tenants.Advertiser, once it parsed the body).
	roleMeta
	// roleBidder: a bidder's Bearer token.
	roleBidder
	// roleReader: an advertiser's or a bidder's Bearer token; which
	// campaigns it may read is mayRead's question.
	roleReader
)

// routeRoles is the role of every route: a new route must be given one.
var routeRoles = [numRoutes]role{
	routeNotFound:      roleNone,
	routeHealthz:       roleNone,
	routeReadyz:        roleNone,
	routeMetrics:       roleNone,
	routeOpenAPI:       roleNone,
	routePixel:         roleNone,
	routeWin:           roleNone,
	routeVAST:          roleNone,
	routeLoss:          roleNone,
	routeConversions:   roleAdvertiser,
	routeStats:         roleAdvertiser,
	routeTestEvents:    roleAdvertiser,
	routeIdentities:    roleAdvertiser,
	routeMetaEvents:    roleMeta,
	routeScore:         roleBidder,
	routeBids:          roleBidder,
	routeExposures:     roleBidder,
	routeModelSnapshot: roleBidder,
	routeCampaignStats: roleReader,
	routeCampaignLift:  roleReader,
	routeSegments:      roleReader,
	routeEffects:       roleReader,
}

// role is the caller route r asks for.
func (r route) role() role { return routeRoles[r] }

// authenticate is the front door: it resolves the caller of a request to
// route r from the request's head alone, before any handler runs, and
// checks it has the route's role. authorization is the Authorization
// header's value, read by the one parser (auth.Bearer); accessToken is
// Meta's access_token from the query (only read for roleMeta). Tokens are
// resolved by the tenant table in constant time (tenants.lookup). It
// returns nil and no error for a route that takes no token, and for the
// Meta path when the token is not in the query.
func (s *Server) authenticate(r route, authorization, accessToken []byte) (*tenant, error) {
	switch r.role() {
	case roleAdvertiser:
		tn, err := s.bearerTenant(authorization, "Authorization: missing; send \"Authorization: Bearer <token>\"")
		if err == nil && !tn.advertiser {
			return nil, apierr.Unauthorized("Authorization: an advertiser's token is required")
		}
		return tn, err
	case roleMeta:
		if len(accessToken) == 0 {
			return nil, nil
		}
		if tn := s.tenants.lookup(accessToken); tn != nil && tn.advertiser {
			return tn, nil
		}
		return nil, apierr.Unauthorized("access_token: invalid")
	case roleBidder:
		tn, err := s.bearerTenant(authorization, "Authorization: a bidder's Bearer token is required")
		if err == nil && tn.advertiser {
			return nil, apierr.Forbidden("Authorization: an advertiser's token cannot use a bidder endpoint")
		}
		return tn, err
	case roleReader:
		return s.bearerTenant(authorization, "Authorization: a Bearer token is required")
	case roleNone:
		return nil, nil
	}
	return nil, apierr.New(500, apierr.CodeInternal, "internal error: route %s has no role", r)
}

// bearerTenant resolves the token of an Authorization header's value;
// missing is the message when it has none.
func (s *Server) bearerTenant(authorization []byte, missing string) (*tenant, error) {
	tok := auth.Bearer(authorization)
	if tok == nil {
		return nil, apierr.Unauthorized("%s", missing)
	}
	if tn := s.tenants.lookup(tok); tn != nil {
		return tn, nil
	}
	return nil, apierr.Unauthorized("Authorization: unknown token")
}

// authenticateRequest is authenticate on a request being served.
func (s *Server) authenticateRequest(ctx *fasthttp.RequestCtx, r route) (*tenant, error) {
	var accessToken []byte
	if r == routeMetaEvents {
		accessToken = ctx.QueryArgs().Peek("access_token")
	}
	return s.authenticate(r, ctx.Request.Header.Peek(fasthttp.HeaderAuthorization), accessToken)
}

// preAuth is authenticate on a request's head alone, before its body is
// read (headerReceived, connError).
func (s *Server) preAuth(h *fasthttp.RequestHeader) error {
	path, query, _ := bytes.Cut(h.RequestURI(), []byte("?"))
	r := routeOf(path)
	var accessToken []byte
	if r == routeMetaEvents {
		args := fasthttp.AcquireArgs()
		defer fasthttp.ReleaseArgs(args)
		args.ParseBytes(query)
		accessToken = args.Peek("access_token")
	}
	_, err := s.authenticate(r, h.Peek(fasthttp.HeaderAuthorization), accessToken)
	return err
}

// mayRead checks that a reader (roleReader) may read a campaign's reports:
// its advertiser, or a bidder allowed the campaign. Another tenant's
// campaign answers what an unknown one does (404, the same message, the
// same lookups), so that no token can tell other tenants' campaign ids from
// made-up ones.
func (s *Server) mayRead(tn *tenant, campaign string) error {
	if tn == nil { // only a route that is not roleReader can get here
		return apierr.Unauthorized("Authorization: a Bearer token is required")
	}
	if campaign == "" {
		return apierr.BadRequest("campaign: required")
	}
	owner, known := s.campaignOwner[campaign]
	mine := tn.MayUse(campaign) // a bidder's
	if tn.advertiser {
		mine = tn.name == owner
	}
	if !known || !mine {
		return apierr.NotFound("campaign %q: unknown", campaign)
	}
	return nil
}
