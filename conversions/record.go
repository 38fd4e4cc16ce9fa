package conversions

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/signals"
)

// Journal record of one conversion batch (format version 1). All integers are
// Go varints (uvarint, or zig-zag varint for times); floats are IEEE 754 bits,
// little endian.
//
//	u8       0x01 record type "conversion batch"
//	u8       0x01 format version
//	uvarint  len, dataset id bytes
//	varint   received time, Unix ms (server clock)
//	u8       source (1 capi, 2 pixel)
//	uvarint  events received in the request (stored + deduplicated)
//	uvarint  events deduplicated
//	uvarint  K; K x (uvarint len, event name, uvarint count): deduplicated events by name
//	uvarint  M stored events; M x:
//	  uvarint len, event name
//	  varint   event_time, Unix s
//	  16 bytes dedup key
//	  u8       flags (FlagLDU, FlagOptOut, FlagValue, FlagFingerprint)
//	  u8       action_source
//	  [FlagValue] 8 bytes value (float64 LE), 3 bytes currency
//	  uvarint  I; I x (u8 identity kind, 8 bytes keyed hash LE)
//
// No raw PII: identities are keyed hashes, the dedup key is a SHA-256 prefix.
const (
	RecordTypeConversionBatch = 0x01
	recordVersion             = 1

	maxRecordName     = 1024 // decode limit for names and the dataset id
	maxRecordIDs      = 255
	minRecordEventLen = 1 + 1 + 1 + 16 + 1 + 1 + 1 // smallest encoded event
)

type recordHeader struct {
	dataset   string
	received  int64 // Unix ms
	source    Source
	nReceived int
	nDedup    int
	dupNames  []nameCount
}

type nameCount struct {
	name []byte
	n    int
}

// appendRecord appends the record of the batch: the header and every event
// of events that is not a duplicate.
func appendRecord(dst []byte, h *recordHeader, events []event, ids []signals.ID) []byte {
	dst = append(dst, RecordTypeConversionBatch, recordVersion)
	dst = binary.AppendUvarint(dst, uint64(len(h.dataset)))
	dst = append(dst, h.dataset...)
	dst = binary.AppendVarint(dst, h.received)
	dst = append(dst, byte(h.source))
	dst = binary.AppendUvarint(dst, uint64(h.nReceived))
	dst = binary.AppendUvarint(dst, uint64(h.nDedup))
	dst = binary.AppendUvarint(dst, uint64(len(h.dupNames)))
	for _, nc := range h.dupNames {
		dst = binary.AppendUvarint(dst, uint64(len(nc.name)))
		dst = append(dst, nc.name...)
		dst = binary.AppendUvarint(dst, uint64(nc.n))
	}
	m := 0
	for i := range events {
		if !events[i].dup {
			m++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(m))
	for i := range events {
		e := &events[i]
		if e.dup {
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(len(e.name)))
		dst = append(dst, e.name...)
		dst = binary.AppendVarint(dst, e.time)
		dst = append(dst, e.key[:]...)
		dst = append(dst, byte(e.flags), byte(e.action))
		if e.flags&FlagValue != 0 {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.value))
			dst = append(dst, e.currency...)
		}
		dst = binary.AppendUvarint(dst, uint64(e.idN))
		for _, id := range ids[e.idOff : e.idOff+e.idN] {
			dst = append(dst, byte(id.Kind))
			dst = binary.LittleEndian.AppendUint64(dst, id.Key)
		}
	}
	return dst
}

// decodedRecord is a decoded record. Names alias the record's bytes.
type decodedRecord struct {
	recordHeader
	events []event
	ids    []signals.ID
}

// errConvRecord is wrapped by the errors of a conversion record that is not
// what the encoder writes.
var errConvRecord = errors.New("conversion record")

// readName reads a non-empty name of at most maxRecordName bytes.
func readName(r *binenc.Slice, what string) []byte {
	n := r.LenMax(maxRecordName, what)
	if r.Err() == nil && n == 0 {
		r.Fail(what, "empty")
	}
	return r.Raw(n, what)
}

// decodeRecord decodes rec into d (reusing its slices) and checks every
// invariant the encoder guarantees; it never panics on corrupt input.
func decodeRecord(d *decodedRecord, rec []byte) error {
	r := binenc.NewSlice(rec, errConvRecord)
	if t := r.Byte("type"); r.Err() == nil && t != RecordTypeConversionBatch {
		return fmt.Errorf("conversion record: type 0x%02x is not a conversion batch", t)
	}
	if v := r.Byte("version"); r.Err() == nil && v != recordVersion {
		return fmt.Errorf("conversion record: unknown format version %d", v)
	}
	ds := readName(&r, "dataset")
	d.received = r.Varint("received")
	d.source = Source(r.Byte("source"))
	d.nReceived = r.LenMax(maxEventsLimit, "events received")
	d.nDedup = r.LenMax(maxEventsLimit, "events deduplicated")
	k := r.LenMax(maxEventsLimit, "deduplicated names")
	if r.Err() != nil {
		return r.Err()
	}
	if d.source != SourceCAPI && d.source != SourcePixel {
		return fmt.Errorf("conversion record: unknown source %d", d.source)
	}
	d.dataset = string(ds)
	d.dupNames = d.dupNames[:0]
	sum := 0
	for range k {
		name := readName(&r, "deduplicated name")
		n := r.LenMax(maxEventsLimit, "deduplicated count")
		if r.Err() != nil {
			return r.Err()
		}
		if n == 0 {
			return errors.New("conversion record: zero deduplicated count")
		}
		sum += n
		d.dupNames = append(d.dupNames, nameCount{name: name, n: n})
	}
	if sum != d.nDedup {
		return fmt.Errorf("conversion record: deduplicated names sum to %d, not %d", sum, d.nDedup)
	}
	m := r.Count(minRecordEventLen, "stored events")
	if r.Err() != nil {
		return r.Err()
	}
	if m+d.nDedup != d.nReceived || m == 0 {
		return fmt.Errorf("conversion record: %d stored + %d deduplicated != %d received", m, d.nDedup, d.nReceived)
	}
	d.events, d.ids = d.events[:0], d.ids[:0]
	for range m {
		var e event
		e.name = readName(&r, "event name")
		e.time = r.Varint("event_time")
		copy(e.key[:], r.Raw(len(e.key), "dedup key"))
		e.flags = Flags(r.Byte("flags"))
		e.action = ActionSource(r.Byte("action_source"))
		if r.Err() != nil {
			return r.Err()
		}
		if e.flags&^flagsKnown != 0 {
			return fmt.Errorf("conversion record: unknown flags 0x%02x", byte(e.flags))
		}
		if e.action == ActionNone || e.action >= numActionSources {
			return fmt.Errorf("conversion record: unknown action_source %d", e.action)
		}
		if e.flags&FlagValue != 0 {
			v := r.F64("value")
			cur := r.Raw(3, "currency")
			if r.Err() != nil {
				return r.Err()
			}
			e.value = v
			if math.IsNaN(e.value) || math.IsInf(e.value, 0) || e.value < 0 {
				return errors.New("conversion record: value not a finite number >= 0")
			}
			if e.currency = currencyCode(cur); e.currency == "" || e.currency != string(cur) {
				return errors.New("conversion record: bad currency")
			}
		}
		n := r.LenMax(maxRecordIDs, "identities")
		if r.Err() != nil {
			return r.Err()
		}
		if n > 0 && e.flags&FlagLDU != 0 {
			return errors.New("conversion record: LDU event with identities")
		}
		e.idOff, e.idN = len(d.ids), n
		for range n {
			kind := signals.IDKind(r.Byte("identity kind"))
			key := r.U64("identity")
			if r.Err() != nil {
				return r.Err()
			}
			if !storedKind(kind) {
				return fmt.Errorf("conversion record: identity kind %d not expected", kind)
			}
			id := signals.ID{Kind: kind, Key: key}
			if id.Key == 0 {
				return errors.New("conversion record: zero identity key")
			}
			d.ids = append(d.ids, id)
		}
		d.events = append(d.events, e)
	}
	if r.Err() != nil {
		return r.Err()
	}
	if r.Len() != 0 {
		return fmt.Errorf("conversion record: %d trailing bytes", r.Len())
	}
	return nil
}

// storedKind reports whether conversions produce identities of kind k.
func storedKind(k signals.IDKind) bool {
	switch k {
	case signals.IDIFA, signals.IDIP, signals.IDEmail, signals.IDPhone, signals.IDExternalID, signals.IDHousehold:
		return true
	}
	return false
}
