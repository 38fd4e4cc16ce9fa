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
	"github.com/cpafeed/cpafeed/shading"
)

// A snapshot is what GET /v1/model/snapshot sends and a Scorer loads: the
// estimates of one model version plus everything an embedded scorer needs
// to answer as the server does. Its bytes are one or more zstd frames whose
// content is
//
//	magic "CPFS", format 3 (byte)
//	model version (uvarint)
//	chain levels: count (uvarint), per level its feature names (count, strings)
//	campaigns the bidder may score: count, then per campaign its id,
//	  currency (strings), target CPA, floor, cap, pacing, average CVR
//	  (float64 bits, little endian), bid_on (byte: 0 cvr, 1 cvr_lo);
//	  format 2: shading (byte, 1 on), cpa_control and the exploration
//	  probability (float64 bits); format 3: holdout share (float64)
//	a count (uvarint) and as many campaign ids: always 0 now; servers
//	  before issue 18 listed the campaigns the bidder may not score here
//	  (read and ignored)
//	format 3: the holdout: its key (bytes; empty: none), the household
//	  eid sources (count, strings), the TCF vendor id (uvarint)
//	the estimates of the campaigns it may score (length-prefixed, in the
//	  model's binary encoding, model.Estimates.MarshalCampaigns)
//	format 2 and later: the win-rate curves of those campaigns: count (uvarint),
//	  per curve its campaign's root key, its key (uint64, little endian),
//	  A and K (float64 bits)
//
// Strings are a uvarint length then the bytes. Format 1 (before the closed
// loop) is still read: its campaigns bid with cpa_control 1, never explore
// and are not shaded, as the servers that wrote it answered. Only the campaigns the
// bidder may score are in the snapshot: a bidder never sees another
// tenant's segments, nor its campaign ids. Formats 1 and 2 (servers before
// issue 14) are still read: no holdout.
const (
	snapMagic  = "CPFS"
	snapFormat = 3
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
		dst = append(dst, boolByte(c.onLo), boolByte(c.Shading))
		for _, f := range [...]float64{t.ctl[i].u, t.ctl[i].q} {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
		}
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
	dst = append(dst, est...)
	roots := map[model.Key]bool{}
	for i := range r.camps {
		if allow[i] {
			roots[r.camps[i].root] = true
		}
	}
	camps, keys, curves := curvesOf(t.curves, roots)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for i := range keys {
		dst = binary.LittleEndian.AppendUint64(dst, camps[i])
		dst = binary.LittleEndian.AppendUint64(dst, keys[i])
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(curves[i].A))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(curves[i].K))
	}
	return dst, nil
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
	if format < 1 || format > snapFormat {
		return nil, fmt.Errorf("%w: format %d, this client reads formats 1 to %d (upgrade it)", ErrSnapshot, format, snapFormat)
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
	ctl := make([]ctlEntry, len(rules))
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
		ctl[i] = ctlEntry{u: 1}
		if format >= 2 {
			c.Shading = r.Byte("shading") == 1
			ctl[i] = ctlEntry{u: r.F64("cpa_control"), q: r.F64("explore probability")}
			if e := ctl[i]; r.Err() == nil && (!(e.u > 0) || math.IsInf(e.u, 0) || !(e.q >= 0 && e.q <= 1)) {
				return nil, fmt.Errorf("%w: campaign %q: cpa_control %g, explore probability %g", ErrSnapshot, c.ID, e.u, e.q)
			}
		}
		if format >= 3 {
			c.HoldoutShare = r.F64("holdout share")
		}
	}
	for range r.Count(1, "denied campaigns") { // from servers before issue 18: ignored
		r.Bytes("campaign id")
	}
	var hold HoldoutConfig
	if format >= 3 {
		hold.Key = append([]byte(nil), r.Bytes("holdout key")...)
		for range r.Count(1, "household sources") {
			hold.HouseholdSources = append(hold.HouseholdSources, string(r.Bytes("household source")))
		}
		hold.TCFVendorID = int(r.Uvarint("tcf vendor id"))
	}
	raw := r.Bytes("estimates")
	var curves *shading.Curves
	if format >= 2 {
		n := r.Count(32, "curves")
		camps, keys, cs := make([]uint64, n), make([]uint64, n), make([]shading.Curve, n)
		for i := range n {
			camps[i], keys[i] = r.U64("curve campaign"), r.U64("curve key")
			cs[i] = shading.Curve{A: r.F64("curve A"), K: r.F64("curve K")}
		}
		if r.Err() == nil {
			var err error
			if curves, err = shading.NewCurves(camps, keys, cs); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrSnapshot, err)
			}
		}
	}
	if r.Err() != nil {
		return nil, r.Err()
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d bytes after its end", ErrSnapshot, r.Len())
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
	tab := &table{est: est, avg: avg, ctl: ctl, curves: curves}
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
