package main

import (
	"bytes"
	le "encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A journal frame as journal/doc.go describes it: a 28-byte header (magic,
// kind, reserved, length, payload CRC, LSN, header CRC), then the payload.
const frameHeader = 28

type frame struct {
	off     int64
	length  int
	lsn     uint64
	payload []byte
}

// frames parses the frames of a segment file (stopping at the first that
// does not parse).
func frames(t *testing.T, seg []byte) []frame {
	t.Helper()
	var out []frame
	for off := 0; off+frameHeader <= len(seg); {
		h := seg[off : off+frameHeader]
		if !bytes.Equal(h[:4], []byte{0xC5, 0x4A, 0x52, 0x01}) {
			break
		}
		n := int(le.LittleEndian.Uint32(h[8:]))
		if off+frameHeader+n > len(seg) {
			break
		}
		out = append(out, frame{off: int64(off), length: n, lsn: le.LittleEndian.Uint64(h[16:]),
			payload: seg[off+frameHeader : off+frameHeader+n]})
		off += frameHeader + n
	}
	return out
}

// appendFrame appends a valid data frame (kind 1) for lsn to dst.
func appendFrame(dst []byte, lsn uint64, payload []byte) []byte {
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	var h [frameHeader]byte
	copy(h[:], []byte{0xC5, 0x4A, 0x52, 0x01, 1})
	le.LittleEndian.PutUint32(h[8:], uint32(len(payload)))
	le.LittleEndian.PutUint32(h[12:], crc32.Checksum(payload, castagnoli))
	le.LittleEndian.PutUint64(h[16:], lsn)
	le.LittleEndian.PutUint32(h[24:], crc32.Checksum(h[:24], castagnoli))
	return append(append(dst, h[:]...), payload...)
}

// ingestBatches posts n conversion batches of size events each (one journal
// record each), plus an exposure batch, all acknowledged, and returns the
// conversion batch bodies.
func ingestBatches(t *testing.T, p *proc, prefix string, n, size int) [][]byte {
	t.Helper()
	now := time.Now().Unix()
	var bodies [][]byte
	for b := range n {
		var evs []any
		for i := range size {
			evs = append(evs, conversionEvent("Purchase", fmt.Sprintf("%s-%d-%d", prefix, b, i), now-60, 20,
				map[string]any{"em": fmt.Sprintf("%s.%d.%d@example.com", prefix, b, i), "client_ip_address": "198.51.100.77"}))
		}
		body := jsonBody(t, map[string]any{"data": evs})
		if status, out, raw := p.do("POST", "/v1/conversions?dataset=1234567890", "application/json", advToken, body); status != 200 || num(out, "events_deduplicated") != 0 {
			t.Fatalf("batch %d: %d %s", b, status, raw)
		}
		bodies = append(bodies, body)
	}
	exp := exposure(prefix+"-auction", "demo-ctv-purchase", 25, now-3600,
		map[string]any{"publisher": "pub-1", "bundle": "com.tv", "genre": "News", "metro": "501"}, map[string]any{"ip": "198.51.100.77"})
	if status, _, raw := p.do("POST", "/v1/exposures", "application/json", bidderToken, jsonBody(t, map[string]any{"exposures": []any{exp}})); status != 200 {
		t.Fatalf("exposure: %d %s", status, raw)
	}
	return bodies
}

// durableStats is the part of the stats that only acknowledged records make.
func durableStats(t *testing.T, p *proc) string {
	t.Helper()
	s := stats(t, p)
	_, r, _ := p.do("GET", "/v1/campaigns/demo-ctv-purchase/stats", "", advToken, nil)
	return fmt.Sprintf("stored=%v purchase=%v exposures=%v spend=%v", num(s, "stored"), num(s, "by_event_name", "Purchase", "stored"), num(r, "exposures"), num(r, "spend"))
}

var tornWarning = regexp.MustCompile(`level=WARN msg="journal: truncating a torn tail of the last segment[^"]*" segment=(\S+) offset=(\d+) bytes=(\d+)`)

// TestFaultTornJournalTail: after acknowledged ingest and kill -9, the last
// segment gets a torn or garbage tail as a crash in the middle of a write
// (or preallocated blocks) would leave. The server starts, warns that it
// truncated the tail, and has every acknowledged event; the next restart is
// clean.
func TestFaultTornJournalTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	tails := map[string]func(seg []byte) []byte{
		"half a frame header": func(seg []byte) []byte {
			fs := frames(t, seg)
			last := fs[len(fs)-1]
			return appendFrame(nil, last.lsn+1, last.payload)[:frameHeader/2]
		},
		"a whole header and half the payload": func(seg []byte) []byte {
			fs := frames(t, seg)
			last := fs[len(fs)-1]
			return appendFrame(nil, last.lsn+1, last.payload)[:frameHeader+last.length/2]
		},
		"a frame with a bad payload checksum": func(seg []byte) []byte {
			fs := frames(t, seg)
			last := fs[len(fs)-1]
			f := appendFrame(nil, last.lsn+1, last.payload)
			f[len(f)-1] ^= 0x40
			return f
		},
		"random garbage": func([]byte) []byte {
			b := make([]byte, 3000)
			for i := range b {
				b[i] = byte(rng.UintN(256))
			}
			return b
		},
		"zeroed blocks": func([]byte) []byte { return make([]byte, 8192) },
	}
	for name, tail := range tails {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := start(t, dir)
			ingestBatches(t, p, "torn", 4, 10)
			want := durableStats(t, p)
			p.kill9()

			segs := segments(t, dir)
			last := segs[len(segs)-1]
			seg := readFixture(t, last)
			garbage := tail(seg)
			f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(garbage); err != nil {
				t.Fatal(err)
			}
			f.Close()

			p = start(t, dir)
			m := tornWarning.FindStringSubmatch(p.Logs())
			if m == nil || m[1] != last || m[2] != strconv.Itoa(len(seg)) || m[3] != strconv.Itoa(len(garbage)) {
				t.Fatalf("no warning about the %d-byte torn tail at offset %d of %s:\n%s", len(garbage), len(seg), last, p.Logs())
			}
			if got := durableStats(t, p); got != want {
				t.Fatalf("after the torn tail: %s, want %s", got, want)
			}
			// Ingest goes on after the truncated tail, and the next start is
			// clean.
			ingestBatches(t, p, "after", 1, 5)
			want = durableStats(t, p)
			p.kill9()
			p = start(t, dir)
			if strings.Contains(p.Logs(), "torn tail") {
				t.Fatalf("second restart still finds a torn tail:\n%s", p.Logs())
			}
			if got := durableStats(t, p); got != want {
				t.Fatalf("after the second restart: %s, want %s", got, want)
			}
		})
	}
}

// TestFaultCorruptJournalRecordInMiddle: a flipped byte inside an early
// record, with intact records after it, stops `cpafeed serve` with a message
// naming the segment and the offset; `cpafeed serve --repair` starts, keeps
// every intact record and logs what it dropped; later starts are clean.
func TestFaultCorruptJournalRecordInMiddle(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	const batches, size = 8, 6
	bodies := ingestBatches(t, p, "mid", batches, size)
	p.kill9() // no shutdown snapshot: the journal alone holds the records

	segs := segments(t, dir)
	if len(segs) != 1 {
		t.Fatalf("want one segment, have %v", segs)
	}
	seg := readFixture(t, segs[0])
	fs := frames(t, seg)
	if len(fs) != batches+1 {
		t.Fatalf("%d frames, want %d (one a batch)", len(fs), batches+1)
	}
	// Flip a byte in the middle of the third record's payload: the third
	// conversion batch.
	bad := fs[2]
	seg[bad.off+frameHeader+int64(bad.length/2)] ^= 0x20
	if err := os.WriteFile(segs[0], seg, 0o644); err != nil {
		t.Fatal(err)
	}

	out, code := runServe(t, time.Minute, "--config", "../../configs/cpafeed.yaml", "--data", dir)
	if code <= 0 {
		t.Fatalf("cpafeed serve started on a corrupt journal (exit %d):\n%s", code, out)
	}
	want := fmt.Sprintf("corrupt record in segment %s at offset %d", segs[0], bad.off)
	if !strings.Contains(out, want) || !strings.Contains(out, "cpafeed serve --repair") {
		t.Fatalf("exit %d, the message does not say %q and how to repair:\n%s", code, want, out)
	}
	for line := range strings.Lines(out) {
		if strings.Contains(line, "corrupt") {
			t.Logf("refused (exit %d): %s", code, strings.TrimSpace(line))
		}
	}
	if after := readFixture(t, segs[0]); !bytes.Equal(after, seg) {
		t.Fatal("a refused start changed the segment")
	}

	p = start(t, dir, "--repair")
	logs := p.Logs()
	if !strings.Contains(logs, fmt.Sprintf(`msg="journal: repair: dropping a corrupt part of the log" segment=%s offset=%d bytes=%d first_lsn=%d records=1`,
		segs[0], bad.off, frameHeader+bad.length, bad.lsn)) || !strings.Contains(logs, "dropped_ranges=1") {
		t.Fatalf("the repair does not report what it dropped:\n%s", logs)
	}
	// Every intact record is kept: all batches but the third, and the
	// exposure.
	if got, want := durableStats(t, p), fmt.Sprintf("stored=%d purchase=%d exposures=1 spend=0.025", (batches-1)*size, (batches-1)*size); got != want {
		t.Fatalf("after the repair: %s, want %s", got, want)
	}
	// The client's retry of the lost batch stores it; the others are
	// duplicates.
	for i, body := range bodies {
		status, out, raw := p.do("POST", "/v1/conversions?dataset=1234567890", "application/json", advToken, body)
		wantDedup := float64(size)
		if i == 2 {
			wantDedup = 0
		}
		if status != 200 || num(out, "events_deduplicated") != wantDedup {
			t.Fatalf("retry of batch %d: %d %s", i, status, raw)
		}
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	// Started again without --repair: the gap is known, nothing is corrupt.
	p = start(t, dir)
	if !strings.Contains(p.Logs(), "records marked lost by an earlier repair") || strings.Contains(p.Logs(), "corrupt") {
		t.Fatalf("start after the repair:\n%s", p.Logs())
	}
	if got, want := durableStats(t, p), fmt.Sprintf("stored=%d purchase=%d exposures=1 spend=0.025", batches*size, batches*size); got != want {
		t.Fatalf("after the retry and a restart: %s, want %s", got, want)
	}
}
