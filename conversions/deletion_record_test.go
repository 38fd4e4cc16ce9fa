package conversions

import (
	"bytes"
	"testing"
)

// FuzzDeletionRecord: a deletion record that decodes is re-encoded to the
// same bytes; anything else is an error, never a panic or a huge
// allocation (a count beyond the record).
func FuzzDeletionRecord(f *testing.F) {
	f.Add(appendDeletion(nil, "demo", []uint64{1, 2, 3}))
	f.Add(appendDeletion(nil, "", nil))
	f.Add([]byte{RecordTypeDeletion, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20}) // 2^61 keys: 8 × 2^61 overflows
	f.Fuzz(func(t *testing.T, rec []byte) {
		adv, keys, err := decodeDeletion(rec)
		if err != nil {
			return
		}
		if again := appendDeletion(nil, adv, keys); !bytes.Equal(again, rec) {
			t.Fatalf("record does not round-trip:\n% x\n% x", rec, again)
		}
	})
}
