package signals

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/dedup"
	"github.com/cpafeed/cpafeed/model"
)

// Journal record types of this package (the first byte of a record).
const (
	RecordExposures byte = 0x10 // a batch of exposures
	RecordVideo     byte = 0x11 // one VAST event
)

// exposuresVersion is the version byte of the exposure batches written:
// 2 ends each exposure with its predicted conversion rate (the CPA
// controller's); 3 adds ghost exposures (flags bit 1, then the would-be
// bid and the win probability). decodeExposures reads versions 1 to 3.
// VAST events are version 1.
const (
	exposuresVersion   = 3
	videoRecordVersion = 1
)

// Exposure flags as journaled.
const (
	expFlagIndexed = 1 << 0 // passed the privacy gates: enters the identity index
	expFlagGhost   = 1 << 1 // a ghost exposure (version 3)
)

// exposure is one accepted exposure, as journaled and applied. It holds no
// raw identity: ids are keyed hashes.
type exposure struct {
	ts       int64 // Unix seconds of the impression
	campaign string
	cost     float64 // price paid, currency units (price_cpm / 1000)
	key      dedup.Key
	indexed  bool // passed the privacy gates: enters the identity index
	// ghost marks an auction the bidder held back for the campaign's
	// holdout (a control household): never shown, never counted in the
	// model; indexed and matched like a real exposure for the control arm.
	// bid is the bid it would have made (CPM), winProb the bidder's
	// probability that it would have won (1 when it knows it would have).
	ghost        bool
	bid, winProb float64
	auction      []byte
	imp          []byte
	path         []model.Key // path[0] is the campaign's root
	labels       [][]byte    // readable value of each level; labels[0] (the root) is nil
	ids          []ID
	// pred is the conversion rate predicted for the impression when it
	// was reported (the bid's, or cpafeed's estimate then; 0: none): the
	// CPA controller's expected conversions.
	pred float64
}

// videoEvent is one VAST event on a remembered exposure.
type videoEvent struct {
	ts       int64
	campaign string
	leaf     model.Key
	starts   float64
	complete float64
	key      dedup.Key
}

var errRecord = errors.New("signals: malformed record")

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// appendExposures encodes a batch: type, version (3), ingest time, count,
// then each exposure.
func appendExposures(b []byte, ingest int64, es []exposure) []byte {
	b = append(b, RecordExposures, exposuresVersion)
	b = binary.AppendVarint(b, ingest)
	b = appendUvarint(b, uint64(len(es)))
	for i := range es {
		e := &es[i]
		b = binary.AppendVarint(b, e.ts)
		b = appendBytes(b, []byte(e.campaign))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e.cost))
		b = append(b, e.key[:]...)
		flags := byte(0)
		if e.indexed {
			flags |= expFlagIndexed
		}
		if e.ghost {
			flags |= expFlagGhost
		}
		b = append(b, flags)
		if e.ghost {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e.bid))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e.winProb))
		}
		b = appendBytes(b, e.auction)
		b = appendBytes(b, e.imp)
		b = appendUvarint(b, uint64(len(e.path)))
		for _, k := range e.path {
			b = binary.LittleEndian.AppendUint64(b, uint64(k))
		}
		for _, l := range e.labels[1:] {
			b = appendBytes(b, l)
		}
		b = appendUvarint(b, uint64(len(e.ids)))
		for _, id := range e.ids {
			b = append(b, byte(id.Kind))
			b = binary.LittleEndian.AppendUint64(b, id.Key)
		}
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e.pred))
	}
	return b
}

// readKey reads an idempotency key.
func readKey(r *binenc.Slice) (k dedup.Key) {
	copy(k[:], r.Raw(len(k), "idempotency key"))
	return k
}

// decodeExposures decodes a RecordExposures record. The exposures' slices
// point into rec.
func decodeExposures(rec []byte) (ingest int64, es []exposure, err error) {
	r := binenc.NewSlice(rec, errRecord)
	if r.Byte("type") != RecordExposures {
		return 0, nil, fmt.Errorf("%w: not an exposure batch", errRecord)
	}
	version := r.Byte("version")
	if version < 1 || version > exposuresVersion {
		return 0, nil, fmt.Errorf("%w: exposure batch v%d, this cpafeed reads v1 to v%d", errRecord, version, exposuresVersion)
	}
	ingest = r.Varint("ingest time")
	n := r.Count(30, "exposures")
	es = make([]exposure, 0, n)
	for range n {
		var e exposure
		e.ts = r.Varint("ts")
		e.campaign = string(r.Bytes("campaign"))
		e.cost = r.F64("cost")
		e.key = readKey(&r)
		flags := r.Byte("flags")
		e.indexed = flags&expFlagIndexed != 0
		if version >= 3 && flags&expFlagGhost != 0 {
			e.ghost = true
			e.bid, e.winProb = r.F64("bid_cpm"), r.F64("win_prob")
		}
		e.auction = r.Bytes("auction id")
		e.imp = r.Bytes("imp id")
		depth := r.Count(8, "path")
		if depth == 0 {
			r.Fail("path", "empty")
		}
		e.path = make([]model.Key, depth)
		for j := range e.path {
			e.path[j] = model.Key(r.U64("path key"))
		}
		if depth > 0 {
			e.labels = make([][]byte, depth)
			for j := 1; j < depth; j++ {
				e.labels[j] = r.Bytes("label")
			}
		}
		e.ids = make([]ID, r.Count(9, "identities"))
		for j := range e.ids {
			e.ids[j] = ID{Kind: IDKind(r.Byte("identity kind")), Key: r.U64("identity")}
		}
		if version >= 2 {
			e.pred = r.F64("predicted cvr")
			if !(e.pred >= 0 && e.pred <= 1) && r.Err() == nil {
				r.Fail("predicted cvr", "%g not in [0, 1]", e.pred)
			}
		}
		if r.Err() != nil {
			break
		}
		es = append(es, e)
	}
	if r.Err() == nil && r.Len() != 0 {
		r.Fail("batch", "%d bytes after it", r.Len())
	}
	if r.Err() != nil {
		return 0, nil, r.Err()
	}
	return ingest, es, nil
}

func appendVideo(b []byte, v *videoEvent) []byte {
	b = append(b, RecordVideo, videoRecordVersion)
	b = binary.AppendVarint(b, v.ts)
	b = appendBytes(b, []byte(v.campaign))
	b = binary.LittleEndian.AppendUint64(b, uint64(v.leaf))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.starts))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.complete))
	return append(b, v.key[:]...)
}

func decodeVideo(rec []byte) (videoEvent, error) {
	r := binenc.NewSlice(rec, errRecord)
	if r.Byte("type") != RecordVideo || r.Byte("version") != videoRecordVersion {
		return videoEvent{}, fmt.Errorf("%w: not a video event v%d", errRecord, videoRecordVersion)
	}
	var v videoEvent
	v.ts = r.Varint("ts")
	v.campaign = string(r.Bytes("campaign"))
	v.leaf = model.Key(r.U64("leaf"))
	v.starts = r.F64("starts")
	v.complete = r.F64("completes")
	v.key = readKey(&r)
	if r.Err() == nil && r.Len() != 0 {
		r.Fail("video event", "%d bytes after it", r.Len())
	}
	return v, r.Err()
}
