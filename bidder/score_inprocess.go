package bidder

import "github.com/cpafeed/cpafeed/signals"

// ScoreRequest scores every imp of a request the caller already extracted
// (signals.Extractor) for the campaigns of opts (none: every campaign) into
// res, with the estimates the model publishes now: the answer of POST
// /v1/score for the same request, without the HTTP round trip and without
// remembering the request for its win notice. For in-process callers such
// as the market simulation of package bench/simulate. Errors are *apierr.Error 404
// for an unknown campaign, 400 for an empty id. req is read during the call
// only; res follows the Result lifetime rules.
func (s *Service) ScoreRequest(req *signals.Request, opts ScoreOptions, res *Result) error {
	sc := s.pool.Get().(*scratch)
	defer s.pool.Put(sc)
	camps, err := s.rules.pickIDs(opts.Campaigns, sc.camps[:0])
	sc.camps = camps
	if err != nil {
		return err
	}
	rng := s.rng
	if !opts.Thompson {
		rng = nil
	}
	s.rules.scoreRequest(s.table(), req, camps, rng, opts.Pace, res)
	return nil
}
