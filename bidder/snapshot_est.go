package bidder

import (
	"errors"
	"fmt"

	"github.com/cpafeed/cpafeed/model"
)

// errRestricted: the snapshot would show a bidder estimates of campaigns it
// may not score.
var errRestricted = errors.New("restricted")

// encodeEstimates encodes est (model's binary encoding) for a bidder that
// may score the campaigns for which allowed is true. model encodes whole
// tables only, so a bidder allowed some but not all of the table's
// campaigns (including campaigns no longer configured, whose nodes the
// model keeps) gets errRestricted rather than another tenant's segments.
func encodeEstimates(est *model.Estimates, allowed func(id string) bool) ([]byte, error) {
	var denied string
	est.Campaigns(func(id string) bool {
		if !allowed(id) {
			denied = id
			return false
		}
		return true
	})
	if denied != "" {
		return nil, fmt.Errorf("%w: the model holds campaign %q, which this bidder may not score", errRestricted, denied)
	}
	return est.MarshalBinary()
}

// decodeEstimates decodes what encodeEstimates wrote; model checks every
// invariant its lookups rely on.
func decodeEstimates(b []byte) (*model.Estimates, error) {
	return model.UnmarshalEstimates(b)
}
