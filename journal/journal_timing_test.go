package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkAppendWait measures concurrent Append+Wait as ingest does it:
// 16 goroutines per core (b.SetParallelism(8) on 2 cores = 16 callers),
// each waiting for its own record. Reported besides ns/op and MB/s:
// records/s, fsyncs/s and records/fsync (how many appends shared one fsync,
// counted through the file interface), and records/write.
func BenchmarkAppendWait(b *testing.B) {
	for _, size := range []int{200, 100 << 10} {
		for _, mode := range []string{FsyncAlways, FsyncInterval} {
			b.Run(fmt.Sprintf("%s/%s", sizeName(size), mode), func(b *testing.B) {
				j, ffs, _ := openJ(b, Options{Dir: b.TempDir(), Fsync: mode})
				defer j.Close()
				rec := make([]byte, size)
				for i := range rec {
					rec[i] = byte(i)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.SetParallelism(8)
				syncs0, writes0 := ffs.syncs.Load(), ffs.writes.Load()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						lsn, ep, err := j.Append(rec, nil)
						if err == nil {
							err = j.Wait(lsn, ep)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				secs := b.Elapsed().Seconds()
				syncs, writes := ffs.syncs.Load()-syncs0, ffs.writes.Load()-writes0
				b.ReportMetric(float64(b.N)/secs, "records/s")
				b.ReportMetric(float64(syncs)/secs, "fsyncs/s")
				if syncs > 0 {
					b.ReportMetric(float64(b.N)/float64(syncs), "records/fsync")
				}
				if writes > 0 {
					b.ReportMetric(float64(b.N)/float64(writes), "records/write")
				}
			})
		}
	}
}

// BenchmarkWriteFsyncBaseline is the baseline for BenchmarkAppendWait/*/always:
// one goroutine, one write(2) and one fdatasync per record, no group commit.
func BenchmarkWriteFsyncBaseline(b *testing.B) {
	for _, size := range []int{200, 100 << 10} {
		b.Run(sizeName(size), func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "baseline"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			rec := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.Write(rec); err != nil {
					b.Fatal(err)
				}
				if err := fdatasync(f); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkReplay reads back a log of 10 MB of 200-byte records or 20 MB of
// 100 KB records (page cache warm): Open + Replay + Close per op.
func BenchmarkReplay(b *testing.B) {
	for _, c := range []struct{ size, n int }{{200, 50_000}, {100 << 10, 200}} {
		b.Run(sizeName(c.size), func(b *testing.B) {
			dir := b.TempDir()
			j, _, _ := openJ(b, Options{Dir: dir, Fsync: FsyncInterval, SegmentBytes: 8 << 20})
			rec := make([]byte, c.size)
			var lsn, ep uint64
			for range c.n {
				var err error
				if lsn, ep, err = j.Append(rec, nil); err != nil {
					b.Fatal(err)
				}
			}
			if err := j.Wait(lsn, ep); err != nil {
				b.Fatal(err)
			}
			j.Close()
			b.SetBytes(int64(c.size * c.n))
			b.ReportAllocs()
			for b.Loop() {
				j, err := Open(Options{Dir: dir, Logger: quietLogger()})
				if err != nil {
					b.Fatal(err)
				}
				var sum int
				rep, err := j.Replay(0, func(_ uint64, rec []byte) error { sum += len(rec); return nil })
				if err != nil || rep.Records != c.n {
					b.Fatal(err, rep.Records)
				}
				j.Close()
			}
			b.ReportMetric(float64(c.n*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

func sizeName(size int) string {
	if size >= 1<<10 {
		return fmt.Sprintf("%dKB", size>>10)
	}
	return fmt.Sprintf("%dB", size)
}
