package bidder

import (
	"github.com/valyala/fastjson"
	"strconv"
	"time"

	"github.com/cpafeed/cpafeed/model"
)

// SnapshotOf is the snapshot a bidder allowed every campaign of r would
// get of est, built in memory (no encoding).
func SnapshotOf(r *Rules, est *model.Estimates) *Snapshot {
	return &Snapshot{rules: r, tab: newTable(r, est, nil)}
}

// SetClock replaces the Scorer's time.Now (the hour and daypart features).
func (s *Scorer) SetClock(now func() time.Time) { s.now = now }

// DecodeAnswer reads a POST /v1/score answer as Client does.
func DecodeAnswer(body []byte) (*Answer, error) {
	var p fastjson.Parser
	return decodeAnswer(&p, body)
}

// WireFloat is f as the JSON answers carry it (six significant digits).
func WireFloat(f float64) float64 {
	v, _ := strconv.ParseFloat(string(appendFloat(nil, f)), 64)
	return v
}
