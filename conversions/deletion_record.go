package conversions

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cpafeed/cpafeed/binenc"
)

// RecordTypeDeletion is the journal record of a deletion request: the
// advertiser and the keyed identity hashes to forget (never raw values).
// Replayed in log order, it removes again what the records before it
// brought back.
const RecordTypeDeletion byte = 0x02

// appendDeletion appends the deletion record (version 1) of keys for
// advertiser to b: type, version, the advertiser as uvarint length and
// bytes, the key count as uvarint, then each key as 8 little-endian bytes.
func appendDeletion(b []byte, advertiser string, keys []uint64) []byte {
	b = append(b, RecordTypeDeletion, 1)
	b = binary.AppendUvarint(b, uint64(len(advertiser)))
	b = append(b, advertiser...)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binary.LittleEndian.AppendUint64(b, k)
	}
	return b
}

// errDeletionRecord is wrapped by the errors of a malformed deletion record.
var errDeletionRecord = errors.New("conversions: malformed deletion record")

// decodeDeletion is the inverse of appendDeletion; a record that is not a
// whole deletion v1 is an error wrapping errDeletionRecord.
func decodeDeletion(rec []byte) (string, []uint64, error) {
	r := binenc.NewSlice(rec, errDeletionRecord)
	if r.Byte("type") != RecordTypeDeletion || r.Byte("version") != 1 {
		return "", nil, fmt.Errorf("%w: not a deletion v1", errDeletionRecord)
	}
	adv := string(r.Bytes("advertiser"))
	keys := make([]uint64, r.Count(8, "keys"))
	for i := range keys {
		keys[i] = r.U64("key")
	}
	if r.Err() == nil && r.Len() != 0 {
		r.Fail("keys", "%d bytes after them", r.Len())
	}
	if r.Err() != nil {
		return "", nil, r.Err()
	}
	return adv, keys, nil
}
