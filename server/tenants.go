package server

import (
	"crypto/sha256"
	"crypto/subtle"

	"github.com/cpafeed/cpafeed/signals"
)

// tenant is who a token belongs to: an advertiser or a bidder.
type tenant struct {
	name       string
	advertiser bool                // else a bidder
	datasets   []string            // advertisers: owned dataset ids
	campaigns  map[string]struct{} // bidders: allowed campaigns; nil = all
	noWins     bool                // bidders: sends no win notices, so scored requests are not remembered
	winSigner  *signals.WinSigner  // bidders: signs its win notices (win_secret); nil = unsigned
	token      []byte
}

// tenants resolves bearer tokens. Lookups go through the SHA-256 of the
// token, so the map's timing depends on a digest, not on the secret; the
// final comparison is constant time.
type tenants struct {
	byDigest map[[sha256.Size]byte]*tenant
	bidders  map[string]*tenant // by name
	names    []string           // of every bidder
	// byCampaign lists, per campaign some bidder is limited to, the
	// bidders that may use it; allCampaigns those that may use every one.
	byCampaign   map[string][]signals.CampaignBidder
	allCampaigns []signals.CampaignBidder
}

func newTenants(c Config) *tenants {
	t := &tenants{byDigest: map[[sha256.Size]byte]*tenant{}, bidders: map[string]*tenant{}}
	for _, a := range c.Advertisers {
		t.byDigest[sha256.Sum256([]byte(a.Token))] = &tenant{name: a.Name, advertiser: true, datasets: a.Datasets, token: []byte(a.Token)}
	}
	for _, b := range c.Bidders {
		tn := &tenant{name: b.Name, token: []byte(b.Token), noWins: b.WinNotices != nil && !*b.WinNotices}
		if b.WinSecret != "" {
			tn.winSigner = signals.NewWinSigner([]byte(b.WinSecret), []byte(b.PreviousWinSecret))
		}
		if len(b.Campaigns) > 0 {
			tn.campaigns = map[string]struct{}{}
			for _, id := range b.Campaigns {
				tn.campaigns[id] = struct{}{}
			}
		}
		t.byDigest[sha256.Sum256([]byte(b.Token))] = tn
		t.bidders[b.Name] = tn
		t.names = append(t.names, b.Name)
	}
	t.byCampaign = map[string][]signals.CampaignBidder{}
	for _, b := range c.Bidders {
		tn := t.bidders[b.Name]
		cb := signals.CampaignBidder{Name: b.Name, Signer: tn.winSigner}
		if tn.campaigns == nil {
			t.allCampaigns = append(t.allCampaigns, cb)
		}
	}
	for _, b := range c.Bidders {
		for id := range t.bidders[b.Name].campaigns {
			if _, ok := t.byCampaign[id]; !ok {
				t.byCampaign[id] = append([]signals.CampaignBidder(nil), t.allCampaigns...)
			}
			t.byCampaign[id] = append(t.byCampaign[id], signals.CampaignBidder{Name: b.Name, Signer: t.bidders[b.Name].winSigner})
		}
	}
	return t
}

// CampaignBidders implements signals.Bidders: the bidders that may use
// campaign, with their win signers.
func (t *tenants) CampaignBidders(campaign string) []signals.CampaignBidder {
	if bs, ok := t.byCampaign[campaign]; ok {
		return bs
	}
	return t.allCampaigns // a campaign no bidder is limited to: those allowed every campaign
}

// BidderNames implements signals.Bidders.
func (t *tenants) BidderNames() []string { return t.names }

// lookup returns the tenant of token, or nil.
func (t *tenants) lookup(token []byte) *tenant {
	if len(token) == 0 {
		return nil
	}
	tn := t.byDigest[sha256.Sum256(token)]
	if tn == nil || subtle.ConstantTimeCompare(tn.token, token) != 1 {
		return nil
	}
	return tn
}

// Advertiser implements conversions.Tenants.
func (t *tenants) Advertiser(token []byte) (string, bool) {
	if tn := t.lookup(token); tn != nil && tn.advertiser {
		return tn.name, true
	}
	return "", false
}

// BidderName implements signals.Bidder.
func (tn *tenant) BidderName() string { return tn.name }

// SendsWins implements signals.Bidder.
func (tn *tenant) SendsWins() bool { return !tn.noWins }

// MayUse reports whether a bidder tenant may score or report for campaign
// (signals.Bidder).
func (tn *tenant) MayUse(campaign string) bool {
	if tn.advertiser {
		return false
	}
	if tn.campaigns == nil {
		return true
	}
	_, ok := tn.campaigns[campaign]
	return ok
}
