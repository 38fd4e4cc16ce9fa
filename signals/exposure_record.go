package signals

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cpafeed/cpafeed/dedup"
	"github.com/cpafeed/cpafeed/model"
)

// Journal record types of this package (the first byte of a record).
const (
	RecordExposures byte = 0x10 // a batch of exposures
	RecordVideo     byte = 0x11 // one VAST event
)

const recordVersion = 1

// exposure is one accepted exposure, as journaled and applied. It holds no
// raw identity: ids are keyed hashes.
type exposure struct {
	ts       int64 // Unix seconds of the impression
	campaign string
	cost     float64 // price paid, currency units (price_cpm / 1000)
	key      dedup.Key
	indexed  bool // passed the privacy gates: enters the identity index
	auction  []byte
	imp      []byte
	path     []model.Key // path[0] is the campaign's root
	labels   [][]byte    // readable value of each level; labels[0] (the root) is nil
	ids      []ID
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

// appendExposures encodes a batch: type, version, ingest time, count, then
// each exposure.
func appendExposures(b []byte, ingest int64, es []exposure) []byte {
	b = append(b, RecordExposures, recordVersion)
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
			flags = 1
		}
		b = append(b, flags)
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
	}
	return b
}

// reader decodes records; its first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errRecord
	}
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) u64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || uint64(len(r.b)) < n {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) key() (k dedup.Key) {
	if r.err != nil || len(r.b) < len(k) {
		r.fail()
		return k
	}
	copy(k[:], r.b)
	r.b = r.b[len(k):]
	return k
}

// count reads a count of items of at least min bytes each, refusing counts
// the rest of the record cannot hold (so a corrupt count cannot make us
// allocate gigabytes).
func (r *reader) count(min int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/min) {
		r.fail()
		return 0
	}
	return int(n)
}

// decodeExposures decodes a RecordExposures record. The exposures' slices
// point into rec.
func decodeExposures(rec []byte) (ingest int64, es []exposure, err error) {
	r := reader{b: rec}
	if r.byte() != RecordExposures || r.byte() != recordVersion {
		return 0, nil, fmt.Errorf("%w: not an exposure batch v%d", errRecord, recordVersion)
	}
	ingest = r.varint()
	n := r.count(30)
	es = make([]exposure, 0, n)
	for range n {
		var e exposure
		e.ts = r.varint()
		e.campaign = string(r.bytes())
		e.cost = math.Float64frombits(r.u64())
		e.key = r.key()
		e.indexed = r.byte()&1 == 1
		e.auction = r.bytes()
		e.imp = r.bytes()
		depth := r.count(8)
		if depth == 0 {
			r.fail()
		}
		e.path = make([]model.Key, depth)
		for j := range e.path {
			e.path[j] = model.Key(r.u64())
		}
		if depth > 0 {
			e.labels = make([][]byte, depth)
			for j := 1; j < depth; j++ {
				e.labels[j] = r.bytes()
			}
		}
		nids := r.count(9)
		e.ids = make([]ID, nids)
		for j := range e.ids {
			e.ids[j] = ID{Kind: IDKind(r.byte()), Key: r.u64()}
		}
		if r.err != nil {
			break
		}
		es = append(es, e)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail()
	}
	if r.err != nil {
		return 0, nil, r.err
	}
	return ingest, es, nil
}

func appendVideo(b []byte, v *videoEvent) []byte {
	b = append(b, RecordVideo, recordVersion)
	b = binary.AppendVarint(b, v.ts)
	b = appendBytes(b, []byte(v.campaign))
	b = binary.LittleEndian.AppendUint64(b, uint64(v.leaf))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.starts))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.complete))
	return append(b, v.key[:]...)
}

func decodeVideo(rec []byte) (videoEvent, error) {
	r := reader{b: rec}
	if r.byte() != RecordVideo || r.byte() != recordVersion {
		return videoEvent{}, fmt.Errorf("%w: not a video event v%d", errRecord, recordVersion)
	}
	var v videoEvent
	v.ts = r.varint()
	v.campaign = string(r.bytes())
	v.leaf = model.Key(r.u64())
	v.starts = math.Float64frombits(r.u64())
	v.complete = math.Float64frombits(r.u64())
	v.key = r.key()
	if r.err == nil && len(r.b) != 0 {
		r.fail()
	}
	return v, r.err
}
