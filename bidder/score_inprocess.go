package bidder

import (
	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/signals"
)

// ScoreRequest scores every imp of a request the caller already extracted
// (signals.Extractor) for the campaigns of opts (none: every campaign) into
// res, with the estimates the model publishes now: the answer of POST
// /v1/score for the same request, without the HTTP round trip and without
// remembering the request for its win notice. For in-process callers such
// as the market simulation of package bench. Errors are *apierr.Error 404
// for an unknown campaign, 400 for an empty id. req is read during the call
// only; res follows the Result lifetime rules.
func (s *Service) ScoreRequest(req *signals.Request, opts ScoreOptions, res *Result) error {
	sc := s.pool.Get().(*scratch)
	defer s.pool.Put(sc)
	camps, err := s.pickOpts(opts, sc.camps[:0])
	sc.camps = camps
	if err != nil {
		return err
	}
	rng := s.rng
	if !opts.Thompson {
		rng = nil
	}
	s.rules.scoreRequest(s.table(), req, camps, rng, res)
	return nil
}

// pickOpts appends the campaigns of opts (every campaign when none).
func (s *Service) pickOpts(opts ScoreOptions, dst []int) ([]int, error) {
	if len(opts.Campaigns) == 0 {
		return s.rules.pickAll(allowAll, dst), nil
	}
	var err error
	for _, id := range opts.Campaigns {
		if id == "" {
			return dst, apierr.BadRequest("campaigns: empty campaign id in the list")
		}
		if dst, err = s.rules.pick(id, allowAll, dst); err != nil {
			return dst, err
		}
	}
	return dst, nil
}
