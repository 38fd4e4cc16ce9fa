package bidder

import (
	"errors"

	"github.com/cpafeed/cpafeed/model"
)

// TEMPORARY until model's binary encoding of Estimates lands on main.
func encodeEstimates(est *model.Estimates, campaigns []string) ([]byte, error) {
	return nil, errors.New("estimates encoding not available yet")
}

func decodeEstimates(b []byte) (*model.Estimates, error) {
	return nil, errors.New("estimates encoding not available yet")
}
