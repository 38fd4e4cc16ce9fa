package bidder

import (
	"github.com/cpafeed/cpafeed/model"
)

// decodeEstimates decodes the estimates of a snapshot
// (model.Estimates.MarshalCampaigns); model checks every invariant its
// lookups rely on.
func decodeEstimates(b []byte) (*model.Estimates, error) {
	return model.UnmarshalEstimates(b)
}
