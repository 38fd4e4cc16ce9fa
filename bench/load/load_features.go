package load

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/signals"
)

// Exposure forms of POST /v1/exposures in a load run (PoolOptions.ExposureForm).
const (
	FormRequest  = "request"  // each exposure carries its whole bid request
	FormFeatures = "features" // each exposure carries the features the bidder extracted
)

// bidRequestIDs are the raw fields of a bid request that a bidder sending
// extracted features puts into an exposure's "ids" and "privacy".
type bidRequestIDs struct {
	Device struct {
		IFA  string `json:"ifa"`
		IP   string `json:"ip"`
		IPv6 string `json:"ipv6"`
		Lmt  int    `json:"lmt"`
	} `json:"device"`
	Regs struct {
		COPPA     int    `json:"coppa"`
		GDPR      *int   `json:"gdpr"`
		USPrivacy string `json:"us_privacy"`
		GPP       string `json:"gpp"`
	} `json:"regs"`
	User struct {
		Consent string `json:"consent"`
	} `json:"user"`
}

// appendFeatureExposure appends the features form of the exposure of imp
// impID of the bid request body: what a bidder that extracts features itself
// reports (request_id first, so that the load can patch it), with every
// known feature of the imp as cpafeed reads it, the device's identities in
// the clear and the request's privacy signals. ex reads the features.
func appendFeatureExposure(dst []byte, ex *signals.Extractor, body []byte, impID, campaign, creative string, priceCPM float64, ts int64) ([]byte, error) {
	req, err := ex.Extract(body, ts)
	if err != nil {
		return nil, err
	}
	var imp *signals.Imp
	for i := range req.Imps {
		if string(req.Imps[i].ID) == impID {
			imp = &req.Imps[i]
		}
	}
	if imp == nil {
		return nil, fmt.Errorf("imp %q not in request %s", impID, req.ID)
	}
	var raw bidRequestIDs
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, err
	}
	dst = appendKV(append(dst, '{'), "request_id", string(req.ID))
	dst = appendKV(dst, "imp_id", impID)
	dst = appendKV(dst, "campaign", campaign)
	dst = appendKV(dst, "creative", creative)
	dst = appendPrice(appendKey(dst, "price_cpm"), priceCPM)
	dst = appendKI(dst, "ts", ts)
	dst = append(appendKey(dst, "features"), '{')
	for f := range signals.NumFeatures {
		if v := imp.Feature(f); string(v) != signals.Unknown {
			dst = appendKV(dst, f.String(), string(v))
		}
	}
	dst = append(appendKey(append(dst, '}'), "ids"), '{')
	if d := raw.Device; d.IFA != "" && d.Lmt != 1 {
		dst = appendKV(dst, "ifa", d.IFA)
	}
	if ip := raw.Device.IP; ip != "" {
		dst = appendKV(dst, "ip", ip)
	} else if ip := raw.Device.IPv6; ip != "" {
		dst = appendKV(dst, "ip", ip)
	}
	dst = append(appendKey(append(dst, '}'), "privacy"), '{')
	if r := raw.Regs; r.COPPA == 1 {
		dst = appendKI(dst, "coppa", 1)
	}
	if g := raw.Regs.GDPR; g != nil {
		dst = appendKI(dst, "gdpr", int64(*g))
	}
	for _, kv := range [][2]string{{"consent", raw.User.Consent}, {"us_privacy", raw.Regs.USPrivacy}, {"gpp", raw.Regs.GPP}} {
		if kv[1] != "" {
			dst = appendKV(dst, kv[0], kv[1])
		}
	}
	return append(dst, '}', '}'), nil
}

// appendScoreGetURI appends the GET /v1/score URI of the first imp of the
// bid request body for campaign: what a bidder that extracts features
// itself asks, every known feature of the imp in the query.
func appendScoreGetURI(dst []byte, ex *signals.Extractor, body []byte, campaign string, now int64) ([]byte, error) {
	req, err := ex.Extract(body, now)
	if err != nil {
		return nil, err
	}
	if len(req.Imps) == 0 {
		return nil, fmt.Errorf("request %s has no imp", req.ID)
	}
	imp := &req.Imps[0]
	dst = append(dst, "/v1/score?campaign="...)
	dst = append(dst, url.QueryEscape(campaign)...)
	for f := range signals.NumFeatures {
		if v := imp.Feature(f); string(v) != signals.Unknown {
			dst = append(dst, '&')
			dst = append(dst, f.String()...)
			dst = append(dst, '=')
			dst = append(dst, url.QueryEscape(string(v))...)
		}
	}
	return dst, nil
}

// appendKey appends ,"k": (or "k": right after an opening brace).
func appendKey(dst []byte, k string) []byte {
	if n := len(dst); n > 0 && dst[n-1] != '{' && dst[n-1] != '[' {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, k...)
	return append(dst, '"', ':')
}

func appendKV(dst []byte, k, v string) []byte { return apierr.AppendString(appendKey(dst, k), v) }

func appendKI(dst []byte, k string, v int64) []byte {
	return strconv.AppendInt(appendKey(dst, k), v, 10)
}

func appendPrice(dst []byte, v float64) []byte { return strconv.AppendFloat(dst, v, 'f', -1, 64) }
