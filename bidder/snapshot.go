package bidder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/model"
)

// A snapshot is what GET /v1/model/snapshot sends and a Scorer loads: the
// estimates of one model version plus everything an embedded scorer needs
// to answer as the server does. Its bytes are one or more zstd frames whose
// content is
//
//	magic "CPFS", format 2 (byte)
//	model version (uvarint)
//	chain levels: count (uvarint), per level its feature names (count, strings)
//	campaigns the bidder may score: count, then per campaign its id,
//	  currency (strings), target CPA, floor, cap, pacing, average CVR
//	  (float64 bits, little endian), bid_on (byte: 0 cvr, 1 cvr_lo),
//	  [format 2] holdout share (float64)
//	a count (uvarint) and as many campaign ids: always 0 now; servers
//	  before issue 18 listed the campaigns the bidder may not score here
//	  (read and ignored)
//	[format 2] the holdout: its key (bytes; empty: none), the household
//	  eid sources (count, strings), the TCF vendor id (uvarint)
//	the estimates of the campaigns it may score (length-prefixed, in the
//	  model's binary encoding, model.Estimates.MarshalCampaigns)
//
// Strings are a uvarint length then the bytes. Only the campaigns the
// bidder may score are in the snapshot: a bidder never sees another
// tenant's segments, nor its campaign ids. Format 1 (servers before issue
// 14) is still read: no holdout.
const (
	snapMagic  = "CPFS"
	snapFormat = 2
)

// SnapshotContentType is the Content-Type of a snapshot answer.
const SnapshotContentType = "application/zstd"

// VersionHeader is the answer header carrying the snapshot's model version.
const VersionHeader = "X-Cpafeed-Model-Version"

// Snapshot is a decoded snapshot: immutable, safe for concurrent use.
type Snapshot struct {
	rules *Rules
	tab   *table
	size  int           // compressed bytes
	hold  HoldoutConfig // the server's holdout (empty key: none)
}

// Version returns the model version of the snapshot's estimates.
func (sn *Snapshot) Version() uint64 { return sn.tab.est.Version() }

// Estimates returns the snapshot's estimates.
func (sn *Snapshot) Estimates() *model.Estimates { return sn.tab.est }

// Rules returns the chain and the bid rules of the campaigns the bidder may
// score.
func (sn *Snapshot) Rules() *Rules { return sn.rules }

// Size returns the snapshot's compressed size in bytes.
func (sn *Snapshot) Size() int { return sn.size }

func allowAll(int) bool { return true }

// appendSnapshotContent appends the uncompressed content of the snapshot of
// t for a bidder that may score campaign i of r when allow[i], and any
// campaign of the model when mayUse says so: only those are in it.
func appendSnapshotContent(dst []byte, r *Rules, t *table, allow []bool, mayUse func(id string) bool) ([]byte, error) {
	dst = append(dst, snapMagic...)
	dst = append(dst, snapFormat)
	dst = binary.AppendUvarint(dst, t.est.Version())
	dst = binary.AppendUvarint(dst, uint64(len(r.levels)))
	for _, lv := range r.levels {
		dst = binary.AppendUvarint(dst, uint64(len(lv)))
		for _, f := range lv {
			dst = appendStr(dst, f)
		}
	}
	n := 0
	for _, ok := range allow {
		if ok {
			n++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for i := range r.camps {
		if !allow[i] {
			continue
		}
		c := &r.camps[i]
		dst = appendStr(dst, c.ID)
		dst = appendStr(dst, c.Currency)
		for _, f := range [...]float64{c.TargetCPA, c.FloorCPM, c.CapCPM, c.Pacing, t.avg[i]} {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
		}
		b := byte(0)
		if c.onLo {
			b = 1
		}
		dst = append(dst, b)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(c.HoldoutShare))
	}
	dst = binary.AppendUvarint(dst, 0) // no campaigns listed as another's
	var hold HoldoutConfig
	if r.holdout != nil {
		hold = r.holdout.cfg
	}
	dst = binary.AppendUvarint(dst, uint64(len(hold.Key)))
	dst = append(dst, hold.Key...)
	dst = binary.AppendUvarint(dst, uint64(len(hold.HouseholdSources)))
	for _, src := range hold.HouseholdSources {
		dst = appendStr(dst, src)
	}
	dst = binary.AppendUvarint(dst, uint64(hold.TCFVendorID))
	est, err := t.est.MarshalCampaigns(mayUse)
	if err != nil {
		return nil, err
	}
	dst = binary.AppendUvarint(dst, uint64(len(est)))
	return append(dst, est...), nil
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// ErrSnapshot is wrapped by every error of a snapshot that cannot be read.
var ErrSnapshot = errors.New("bidder: invalid snapshot")

// parseSnapshotContent reads the uncompressed content of a snapshot.
func parseSnapshotContent(b []byte) (*Snapshot, error) {
	if len(b) < len(snapMagic)+1 || string(b[:len(snapMagic)]) != snapMagic {
		return nil, fmt.Errorf("%w: not a cpafeed snapshot", ErrSnapshot)
	}
	format := b[len(snapMagic)]
	if format != 1 && format != snapFormat {
		return nil, fmt.Errorf("%w: format %d, this client reads formats 1 and %d (upgrade it)", ErrSnapshot, format, snapFormat)
	}
	r := binenc.NewSlice(b[len(snapMagic)+1:], ErrSnapshot)
	version := r.Uvarint("model version")
	levels := make([][]string, r.Count(1, "levels"))
	for i := range levels {
		lv := make([]string, r.Count(1, "level features"))
		for j := range lv {
			lv[j] = string(r.Bytes("feature name"))
		}
		levels[i] = lv
	}
	rules := make([]CampaignRule, r.Count(2+5*8+1, "campaigns"))
	avg := make([]float64, len(rules))
	for i := range rules {
		c := &rules[i]
		c.ID = string(r.Bytes("campaign id"))
		c.Currency = string(r.Bytes("currency"))
		c.TargetCPA, c.FloorCPM, c.CapCPM, c.Pacing = r.F64("target_cpa"), r.F64("floor_cpm"), r.F64("cap_cpm"), r.F64("pacing")
		avg[i] = r.F64("average cvr")
		c.BidOn = BidOnCVR
		if r.Byte("bid_on") == 1 {
			c.BidOn = BidOnCVRLo
		}
		if format >= 2 {
			c.HoldoutShare = r.F64("holdout share")
		}
	}
	for range r.Count(1, "denied campaigns") { // from servers before issue 18: ignored
		r.Bytes("campaign id")
	}
	var hold HoldoutConfig
	if format >= 2 {
		hold.Key = append([]byte(nil), r.Bytes("holdout key")...)
		for range r.Count(1, "household sources") {
			hold.HouseholdSources = append(hold.HouseholdSources, string(r.Bytes("household source")))
		}
		hold.TCFVendorID = int(r.Uvarint("tcf vendor id"))
	}
	raw := r.Bytes("estimates")
	if r.Err() != nil {
		return nil, r.Err()
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the estimates", ErrSnapshot, r.Len())
	}
	est, err := decodeEstimates(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: estimates: %v", ErrSnapshot, err)
	}
	if est.Version() != version {
		return nil, fmt.Errorf("%w: estimates of version %d in a snapshot of version %d", ErrSnapshot, est.Version(), version)
	}
	rs, err := newRules(levels, rules)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	tab := &table{est: est, avg: avg}
	tab.resolveDims()
	return &Snapshot{rules: rs, tab: tab, hold: hold}, nil
}

// snapCodec compresses and decompresses snapshots; its encoder and decoder
// are safe for concurrent use.
type snapCodec struct {
	once sync.Once
	enc  *zstd.Encoder
	err  error
}

func (c *snapCodec) encoder() (*zstd.Encoder, error) {
	c.once.Do(func() {
		c.enc, c.err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
	})
	return c.enc, c.err
}

// ParseSnapshot decodes a snapshot as GET /v1/model/snapshot sends it,
// refusing one that decompresses to more than maxBytes (≤ 0: 1 GiB).
func ParseSnapshot(data []byte, maxBytes int64) (*Snapshot, error) {
	if maxBytes <= 0 {
		maxBytes = 1 << 30
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(maxBytes)))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	raw, err := dec.DecodeAll(data, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	sn, err := parseSnapshotContent(raw)
	if err != nil {
		return nil, err
	}
	sn.size = len(data)
	return sn, nil
}
