package journal

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

func TestParseHeader(t *testing.T) {
	good := appendFrame(nil, kindData, 7, []byte("hello"), crc32c([]byte("hello")))
	f := func(name string, mutate func(h []byte), wantOK bool) {
		t.Helper()
		h := bytes.Clone(good[:headerSize])
		mutate(h)
		if _, ok := parseHeader(h); ok != wantOK {
			t.Errorf("%s: ok=%v, want %v", name, ok, wantOK)
		}
	}
	fixCRC := func(h []byte) { binary.LittleEndian.PutUint32(h[24:], crc32.Checksum(h[:24], castagnoli)) }
	f("good", func([]byte) {}, true)
	f("zeroed", func(h []byte) { clear(h) }, false)
	f("magic", func(h []byte) { h[1] = 'X'; fixCRC(h) }, false)
	f("version", func(h []byte) { h[3] = 2; fixCRC(h) }, false)
	f("reserved", func(h []byte) { h[6] = 1; fixCRC(h) }, false)
	f("unknown kind", func(h []byte) { h[4] = 9; fixCRC(h) }, false)
	f("gap of wrong length", func(h []byte) { h[4] = kindGap; fixCRC(h) }, false)
	f("lsn bit", func(h []byte) { h[16] ^= 1 }, false)
	f("length bit", func(h []byte) { h[8] ^= 1 }, false)
	f("payload crc bit", func(h []byte) { h[12] ^= 1 }, false)
	f("header crc bit", func(h []byte) { h[27] ^= 0x80 }, false)
	for i := range headerSize {
		f("flip", func(h []byte) { h[i] ^= 0x01 }, false)
	}
	if _, ok := parseHeader(good[:headerSize-1]); ok {
		t.Error("a short header parsed")
	}
}

// goldenSegment is the content of testdata/segment-v1.wal: LSNs 5..8, one
// of them empty, and a gap marker for 9..10 before LSN 11.
func goldenSegment() []byte {
	var b []byte
	for i, rec := range []string{"alpha", "", "a somewhat longer record \x00\xff", "delta"} {
		b = appendFrame(b, kindData, uint64(5+i), []byte(rec), crc32c([]byte(rec)))
	}
	b = appendGap(b, 9, 2)
	return appendFrame(b, kindData, 11, []byte("eleven"), crc32c([]byte("eleven")))
}

func TestFormatGolden(t *testing.T) {
	// The on-disk format must not change silently: old files must stay readable.
	path := filepath.Join("testdata", "segment-v1.wal")
	if os.Getenv("JOURNAL_UPDATE_GOLDEN") != "" {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(path, goldenSegment(), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(goldenSegment(), want) {
		t.Fatal("the record format changed; bump the version byte of the magic and keep reading version 1")
	}
	var got []string
	next, end, err := scanSegment(newSegReader(bytes.NewReader(want), int64(len(want))), 5, noLimit, true,
		func(r *record) error {
			if r.kind == kindData {
				got = append(got, string(r.payload))
			}
			return nil
		},
		func(a anomaly) error { t.Fatalf("anomaly %+v", a); return nil })
	if err != nil || next != 12 || end != int64(len(want)) || len(got) != 5 || got[2] != "a somewhat longer record \x00\xff" {
		t.Fatalf("next %d end %d err %v records %q", next, end, err, got)
	}
}

// FuzzJournalRecord feeds arbitrary bytes to the segment reader as a last
// and as a middle segment. It must not panic or hang, and every record it
// returns must have verified: checked here independently of parseHeader.
func FuzzJournalRecord(f *testing.F) {
	seed := goldenSegment()
	f.Add(seed, uint64(5), true)
	f.Add(seed, uint64(5), false)
	f.Add(seed[:len(seed)-3], uint64(5), true)
	f.Add(append(bytes.Clone(seed), make([]byte, 100)...), uint64(5), true)
	mid := bytes.Clone(seed)
	mid[40] ^= 0xff
	f.Add(mid, uint64(5), false)
	var odd []byte // LSNs out of order, a gap, a duplicate
	for _, lsn := range []uint64{1, 3, 2, 2, 9, 4} {
		odd = appendFrame(odd, kindData, lsn, []byte("r"), crc32c([]byte("r")))
	}
	f.Add(odd, uint64(1), true)
	f.Add(odd, uint64(1), false)
	f.Add([]byte{}, uint64(1), true)
	f.Add(recordMagic[:], uint64(1), true)
	f.Fuzz(func(t *testing.T, data []byte, first uint64, last bool) {
		if first == 0 {
			first = 1
		}
		limit := uint64(noLimit)
		if !last {
			limit = first + 8
			if limit < first {
				limit = noLimit
			}
		}
		var prevEnd int64
		var prevLSN uint64
		n := 0
		next, goodEnd, err := scanSegment(newSegReader(bytes.NewReader(data), int64(len(data))), first, limit, last,
			func(r *record) error {
				n++
				verifyFrame(t, data, r)
				if r.off < prevEnd || (n > 1 && r.lsn <= prevLSN) || r.lsn < first || r.lsn >= limit {
					t.Fatalf("record at %d (LSN %d) after end %d (LSN %d), first %d limit %d", r.off, r.lsn, prevEnd, prevLSN, first, limit)
				}
				prevEnd, prevLSN = r.next, r.lsnEnd()-1
				return nil
			},
			func(a anomaly) error {
				if a.off < prevEnd || a.off+a.bytes > int64(len(data)) {
					t.Fatalf("anomaly %+v outside the data (prev end %d, size %d)", a, prevEnd, len(data))
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if goodEnd > int64(len(data)) || goodEnd < prevEnd || (!last && next != limit) {
			t.Fatalf("next %d goodEnd %d size %d prevEnd %d", next, goodEnd, len(data), prevEnd)
		}
	})
}

// verifyFrame re-checks a returned record against the raw bytes.
func verifyFrame(t *testing.T, data []byte, r *record) {
	t.Helper()
	if r.off < 0 || r.next > int64(len(data)) || r.next-r.off < headerSize {
		t.Fatalf("record bounds %d..%d of %d", r.off, r.next, len(data))
	}
	h := data[r.off : r.off+headerSize]
	p := data[r.off+headerSize : r.next]
	if !bytes.Equal(h[:4], []byte{0xC5, 'J', 'R', 1}) {
		t.Fatalf("magic %x", h[:4])
	}
	if crc32.Checksum(h[:24], crc32.MakeTable(crc32.Castagnoli)) != binary.LittleEndian.Uint32(h[24:]) {
		t.Fatal("header checksum did not verify")
	}
	if crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli)) != binary.LittleEndian.Uint32(h[12:]) {
		t.Fatal("payload checksum did not verify")
	}
	if int(binary.LittleEndian.Uint32(h[8:])) != len(p) || binary.LittleEndian.Uint64(h[16:]) != r.lsn || !bytes.Equal(p, r.payload) {
		t.Fatal("returned record differs from its frame")
	}
}
