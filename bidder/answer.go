package bidder

import (
	"fmt"
	"strconv"

	"github.com/valyala/fastjson"

	"github.com/cpafeed/cpafeed/apierr"
)

// Answer is a decoded answer of POST /v1/score.
type Answer struct {
	ID           string
	Imps         []ImpAnswer
	ModelVersion uint64
}

// ImpAnswer is the answer for one imp.
type ImpAnswer struct {
	ID        string
	Campaigns []CampaignScore
}

// FeatureAnswer is a decoded answer of GET /v1/score.
type FeatureAnswer struct {
	Campaigns    []CampaignScore
	ModelVersion uint64
}

// CampaignScore is the answer for one imp and one campaign (see Score for
// the meaning of each field).
type CampaignScore struct {
	Campaign               string
	CVR, CVRLo, CVRHi, VTR float64
	NEff, Conversions      float64
	Segment                string
	Level                  int
	BidCPM, Multiplier     float64
	// BidUnshadedCPM, CPAControl, Pacing and Shading are the parts of
	// BidCPM (Score.UnshadedCPM, CPAControl, Pacing, Shading).
	BidUnshadedCPM, CPAControl, Pacing, Shading float64
	CVRSample                                   float64 // when Sampled
	Sampled                                     bool
	Explored                                    bool // the bid is on the draw
	// Arm is "treatment" or "control" for a campaign with a holdout ("":
	// none); WouldBidCPM the bid held back in the control arm.
	Arm         string
	WouldBidCPM float64
}

// decodeAnswer reads a POST /v1/score answer.
func decodeAnswer(p *fastjson.Parser, body []byte) (*Answer, error) {
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, fmt.Errorf("bidder: answer is not JSON: %w", err)
	}
	a := &Answer{ID: string(v.GetStringBytes("id")), ModelVersion: v.GetUint64("model_version")}
	iv := v.Get("imp")
	if iv == nil {
		return nil, fmt.Errorf("bidder: answer: imp: missing")
	}
	imps, err := iv.Array()
	if err != nil {
		return nil, fmt.Errorf("bidder: answer: imp: %w", err)
	}
	a.Imps = make([]ImpAnswer, len(imps))
	for i, iv := range imps {
		a.Imps[i].ID = string(iv.GetStringBytes("id"))
		if a.Imps[i].Campaigns, err = decodeScores(iv.Get("campaigns")); err != nil {
			return nil, fmt.Errorf("bidder: answer: imp[%d].campaigns: %w", i, err)
		}
	}
	return a, nil
}

// decodeFeatureAnswer reads a GET /v1/score answer.
func decodeFeatureAnswer(p *fastjson.Parser, body []byte) (*FeatureAnswer, error) {
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, fmt.Errorf("bidder: answer is not JSON: %w", err)
	}
	a := &FeatureAnswer{ModelVersion: v.GetUint64("model_version")}
	if a.Campaigns, err = decodeScores(v.Get("campaigns")); err != nil {
		return nil, fmt.Errorf("bidder: answer: campaigns: %w", err)
	}
	return a, nil
}

func decodeScores(v *fastjson.Value) ([]CampaignScore, error) {
	if v == nil {
		return nil, fmt.Errorf("missing")
	}
	arr, err := v.Array()
	if err != nil {
		return nil, err
	}
	out := make([]CampaignScore, len(arr))
	for i, c := range arr {
		s := &out[i]
		s.Campaign = string(c.GetStringBytes("campaign"))
		s.Segment = string(c.GetStringBytes("segment"))
		s.Level = c.GetInt("level")
		for _, f := range [...]struct {
			name string
			dst  *float64
		}{{"cvr", &s.CVR}, {"cvr_lo", &s.CVRLo}, {"cvr_hi", &s.CVRHi}, {"vtr", &s.VTR}, {"n_eff", &s.NEff},
			{"conversions", &s.Conversions}, {"bid_cpm", &s.BidCPM}, {"multiplier", &s.Multiplier},
			{"bid_unshaded_cpm", &s.BidUnshadedCPM}, {"cpa_control", &s.CPAControl}, {"pacing", &s.Pacing}, {"shading", &s.Shading}} {
			if *f.dst, err = exactFloat(c.Get(f.name)); err != nil {
				return nil, fmt.Errorf("[%d].%s: %w", i, f.name, err)
			}
		}
		s.Arm = string(c.GetStringBytes("arm"))
		if s.WouldBidCPM, err = exactFloat(c.Get("would_bid_cpm")); err != nil {
			return nil, fmt.Errorf("[%d].would_bid_cpm: %w", i, err)
		}
		if x := c.Get("cvr_sample"); x != nil {
			if s.CVRSample, err = exactFloat(x); err != nil {
				return nil, fmt.Errorf("[%d].cvr_sample: %w", i, err)
			}
			s.Sampled = true
			s.Explored = c.GetBool("explored")
		}
	}
	return out, nil
}

// exactFloat reads a JSON number with strconv (correctly rounded: the
// server writes the shortest form that reads back to its float64, and
// fastjson's own parser may be off by an ulp). A missing value is 0.
func exactFloat(v *fastjson.Value) (float64, error) {
	if v == nil {
		return 0, nil
	}
	if v.Type() != fastjson.TypeNumber {
		return 0, fmt.Errorf("not a number")
	}
	var buf [32]byte
	return strconv.ParseFloat(string(v.MarshalTo(buf[:0])), 64)
}

// decodeError turns a non-2xx answer into an *apierr.Error (the API's one
// error shape), or a plain one naming the status when the body is not it.
func decodeError(p *fastjson.Parser, status int, body []byte) error {
	v, err := p.ParseBytes(body)
	if err == nil {
		if ev := v.Get("error"); ev != nil && ev.Type() == fastjson.TypeObject {
			e := &apierr.Error{
				Status:  status,
				Type:    string(ev.GetStringBytes("type")),
				Code:    ev.GetInt("code"),
				Subcode: ev.GetInt("error_subcode"),
				Message: string(ev.GetStringBytes("message")),
			}
			for _, d := range ev.GetArray("details") {
				e.Details = append(e.Details, apierr.Detail{Index: d.GetInt("index"), Field: string(d.GetStringBytes("field")), Reason: string(d.GetStringBytes("reason"))})
			}
			return e
		}
	}
	if len(body) > 200 {
		body = body[:200]
	}
	return apierr.New(status, apierr.CodeInternal, "HTTP %d: %q", status, body)
}
