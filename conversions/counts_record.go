package conversions

import (
	"encoding/binary"
	"fmt"

	"github.com/cpafeed/cpafeed/binenc"
)

// Journal record of a batch that stored no event (format version 1): every
// event was a duplicate, or the batch was rejected. It keeps a dataset's
// received, deduplicated and rejected counters across a crash, as the
// conversion batch record does for batches that store events.
//
//	u8       0x03 record type "conversion counts"
//	u8       0x01 format version
//	uvarint  len, dataset id bytes
//	u8       source (1 capi, 2 pixel)
//	u8       outcome (1 every event deduplicated, 2 rejected)
//	uvarint  N events in the request
//	uvarint  K; K x (uvarint len, event name, uvarint count): events by
//	         name, summing to at most N (the rest count as "(other)")
//
// Only names a dataset already counts are written for a rejected batch, so
// a malformed or hostile event name never reaches the disk.
const RecordTypeConversionCounts byte = 0x03

// Outcomes of a counts record.
const (
	outcomeDeduplicated byte = 1
	outcomeRejected     byte = 2
)

func appendCountsRecord(dst []byte, dataset string, src Source, outcome byte, n int, names []nameCount) []byte {
	dst = append(dst, RecordTypeConversionCounts, 1)
	dst = binary.AppendUvarint(dst, uint64(len(dataset)))
	dst = append(dst, dataset...)
	dst = append(dst, byte(src), outcome)
	dst = binary.AppendUvarint(dst, uint64(n))
	dst = binary.AppendUvarint(dst, uint64(len(names)))
	for _, nc := range names {
		dst = binary.AppendUvarint(dst, uint64(len(nc.name)))
		dst = append(dst, nc.name...)
		dst = binary.AppendUvarint(dst, uint64(nc.n))
	}
	return dst
}

// countsRecord is a decoded counts record; names alias the record.
type countsRecord struct {
	dataset string
	source  Source
	outcome byte
	n       int
	names   []nameCount
}

func decodeCountsRecord(rec []byte) (countsRecord, error) {
	var d countsRecord
	r := binenc.NewSlice(rec, errConvRecord)
	if r.Byte("type") != RecordTypeConversionCounts || r.Byte("version") != 1 {
		if r.Err() != nil {
			return d, r.Err()
		}
		return d, fmt.Errorf("%w: not a conversion counts record v1", errConvRecord)
	}
	d.dataset = string(readName(&r, "dataset"))
	d.source = Source(r.Byte("source"))
	d.outcome = r.Byte("outcome")
	d.n = r.LenMax(maxEventsLimit, "events")
	k := r.LenMax(maxEventsLimit, "names")
	if r.Err() != nil {
		return d, r.Err()
	}
	if d.source != SourceCAPI && d.source != SourcePixel {
		return d, fmt.Errorf("%w: unknown source %d", errConvRecord, d.source)
	}
	if d.outcome != outcomeDeduplicated && d.outcome != outcomeRejected {
		return d, fmt.Errorf("%w: unknown outcome %d", errConvRecord, d.outcome)
	}
	sum := 0
	for range k {
		name := readName(&r, "name")
		c := r.LenMax(maxEventsLimit, "count")
		if r.Err() != nil {
			return d, r.Err()
		}
		if c == 0 {
			return d, fmt.Errorf("%w: zero count for a name", errConvRecord)
		}
		sum += c
		d.names = append(d.names, nameCount{name: name, n: c})
	}
	if sum > d.n {
		return d, fmt.Errorf("%w: names count %d events of %d", errConvRecord, sum, d.n)
	}
	if r.Len() != 0 {
		return d, fmt.Errorf("%w: %d trailing bytes", errConvRecord, r.Len())
	}
	return d, nil
}

// ReplayCounts applies a counts record (RecordTypeConversionCounts) at
// start, in journal order; live, the same counting runs as the record's
// apply. A record of a dataset no longer configured is skipped. rec is not
// retained.
func (s *Service) ReplayCounts(rec []byte) error {
	d, err := decodeCountsRecord(rec)
	if err != nil {
		return err
	}
	if ds := s.datasets[d.dataset]; ds != nil {
		applyCounts(ds, &d)
	}
	return nil
}

// applyCounts adds a counts record to its dataset's stats.
func applyCounts(ds *dataset, d *countsRecord) {
	ds.statsMu.Lock()
	defer ds.statsMu.Unlock()
	st := &ds.stats
	n := uint64(d.n)
	byName := func(nc nameCount) *counts {
		if ns := st.name(nc.name, false); ns != nil {
			return &ns.c
		}
		return &st.other
	}
	rest := n
	switch d.outcome {
	case outcomeDeduplicated:
		st.add(d.source, counts{Received: n, Deduplicated: n})
		for _, nc := range d.names {
			c := byName(nc)
			c.Received += uint64(nc.n)
			c.Deduplicated += uint64(nc.n)
			rest -= uint64(nc.n)
		}
		st.other.Received += rest
		st.other.Deduplicated += rest
	case outcomeRejected:
		st.add(d.source, counts{Rejected: n})
		for _, nc := range d.names {
			byName(nc).Rejected += uint64(nc.n)
			rest -= uint64(nc.n)
		}
		st.other.Rejected += rest
	}
}
