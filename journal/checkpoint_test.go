package journal

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestCheckpointSeesExactlyTheRecordsBeforeItsBoundary: while appenders run,
// the checkpoint function observes the state after exactly the applies of
// records < next, and no later apply runs concurrently with it.
func TestCheckpointSeesExactlyTheRecordsBeforeItsBoundary(t *testing.T) {
	j, _, _ := openJ(t, Options{Dir: t.TempDir()})
	defer j.Close()
	var applied atomic.Uint64 // the last LSN whose apply ran
	var inBarrier atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var lsn uint64
				var mu sync.Mutex
				mu.Lock()
				l, e, err := j.AppendApply(testRecord(w*100000+i, 32), nil, func() {
					mu.Lock()
					defer mu.Unlock()
					if inBarrier.Load() {
						t.Error("an apply ran during the checkpoint")
					}
					if prev := applied.Swap(lsn); prev != lsn-1 {
						t.Errorf("apply of %d after %d", lsn, prev)
					}
				})
				lsn = l
				mu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
				if err := j.Wait(l, e); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 5 {
		var seen uint64
		next, err := j.Checkpoint(func(next uint64) error {
			inBarrier.Store(true)
			defer inBarrier.Store(false)
			seen = applied.Load()
			if seen != next-1 {
				t.Errorf("checkpoint at %d saw applies up to %d", next, seen)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if seen != next-1 {
			t.Fatalf("boundary %d, applied %d", next, seen)
		}
	}
	close(stop)
	wg.Wait()
	if len(segmentFiles(t, j.opts.Dir)) < 2 {
		t.Fatal("checkpoints did not rotate segments")
	}
}
