package conversions

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"

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

var errRecordShort = errors.New("conversion record: truncated")

type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("conversion record: "+format, args...)
	}
}

func (r *recordReader) byte() byte {
	if len(r.b) < 1 {
		r.err = errRecordShort
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *recordReader) uvarint(limit uint64, what string) int {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || n != uvarintLen(v) { // overlong encodings are corruption too
		r.fail("%s: bad varint", what)
		return 0
	}
	r.b = r.b[n:]
	if v > limit {
		r.fail("%s: %d exceeds %d", what, v, limit)
		return 0
	}
	return int(v)
}

func (r *recordReader) varint(what string) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 || n != uvarintLen(uint64(v<<1)^uint64(v>>63)) {
		r.fail("%s: bad varint", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// uvarintLen is the length of the canonical uvarint encoding of v.
func uvarintLen(v uint64) int {
	return 1 + (bits.Len64(v|1)-1)/7
}

func (r *recordReader) bytes(n int) []byte {
	if len(r.b) < n {
		r.err = errRecordShort
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *recordReader) name(what string) []byte {
	n := r.uvarint(maxRecordName, what)
	if r.err != nil {
		return nil
	}
	if n == 0 {
		r.fail("%s: empty", what)
		return nil
	}
	return r.bytes(n)
}

// decodeRecord decodes rec into d (reusing its slices) and checks every
// invariant the encoder guarantees; it never panics on corrupt input.
func decodeRecord(d *decodedRecord, rec []byte) error {
	r := recordReader{b: rec}
	if t := r.byte(); r.err == nil && t != RecordTypeConversionBatch {
		return fmt.Errorf("conversion record: type 0x%02x is not a conversion batch", t)
	}
	if v := r.byte(); r.err == nil && v != recordVersion {
		return fmt.Errorf("conversion record: unknown format version %d", v)
	}
	ds := r.name("dataset")
	d.received = r.varint("received")
	d.source = Source(r.byte())
	d.nReceived = r.uvarint(maxEventsLimit, "events received")
	d.nDedup = r.uvarint(maxEventsLimit, "events deduplicated")
	k := r.uvarint(maxEventsLimit, "deduplicated names")
	if r.err != nil {
		return r.err
	}
	if d.source != SourceCAPI && d.source != SourcePixel {
		return fmt.Errorf("conversion record: unknown source %d", d.source)
	}
	d.dataset = string(ds)
	d.dupNames = d.dupNames[:0]
	sum := 0
	for range k {
		name := r.name("deduplicated name")
		n := r.uvarint(maxEventsLimit, "deduplicated count")
		if r.err != nil {
			return r.err
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
	m := r.uvarint(uint64(len(r.b)/minRecordEventLen), "stored events")
	if r.err != nil {
		return r.err
	}
	if m+d.nDedup != d.nReceived || m == 0 {
		return fmt.Errorf("conversion record: %d stored + %d deduplicated != %d received", m, d.nDedup, d.nReceived)
	}
	d.events, d.ids = d.events[:0], d.ids[:0]
	for range m {
		var e event
		e.name = r.name("event name")
		e.time = r.varint("event_time")
		copy(e.key[:], r.bytes(len(e.key)))
		e.flags = Flags(r.byte())
		e.action = ActionSource(r.byte())
		if r.err != nil {
			return r.err
		}
		if e.flags&^flagsKnown != 0 {
			return fmt.Errorf("conversion record: unknown flags 0x%02x", byte(e.flags))
		}
		if e.action == ActionNone || e.action >= numActionSources {
			return fmt.Errorf("conversion record: unknown action_source %d", e.action)
		}
		if e.flags&FlagValue != 0 {
			v := r.bytes(8)
			cur := r.bytes(3)
			if r.err != nil {
				return r.err
			}
			e.value = math.Float64frombits(binary.LittleEndian.Uint64(v))
			if math.IsNaN(e.value) || math.IsInf(e.value, 0) || e.value < 0 {
				return errors.New("conversion record: value not a finite number >= 0")
			}
			if e.currency = currencyCode(cur); e.currency == "" || e.currency != string(cur) {
				return errors.New("conversion record: bad currency")
			}
		}
		n := r.uvarint(maxRecordIDs, "identities")
		if r.err != nil {
			return r.err
		}
		if n > 0 && e.flags&FlagLDU != 0 {
			return errors.New("conversion record: LDU event with identities")
		}
		e.idOff, e.idN = len(d.ids), n
		for range n {
			kind := signals.IDKind(r.byte())
			key := r.bytes(8)
			if r.err != nil {
				return r.err
			}
			if !storedKind(kind) {
				return fmt.Errorf("conversion record: identity kind %d not expected", kind)
			}
			id := signals.ID{Kind: kind, Key: binary.LittleEndian.Uint64(key)}
			if id.Key == 0 {
				return errors.New("conversion record: zero identity key")
			}
			d.ids = append(d.ids, id)
		}
		d.events = append(d.events, e)
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("conversion record: %d trailing bytes", len(r.b))
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
