package journal

import (
	"sync"
	"syscall"
	"testing"
)

// TestAppendApplyRunsInLSNOrder: applies run once per durable record, in
// LSN order whatever the order in which the appenders wait, and Wait returns
// only after the record's apply ran.
func TestAppendApplyRunsInLSNOrder(t *testing.T) {
	j, _, _ := openJ(t, Options{Dir: t.TempDir()})
	defer j.Close()
	var mu sync.Mutex
	var order []uint64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				var mine uint64
				var me sync.Mutex
				me.Lock()
				lsn, ep, err := j.AppendApply(testRecord(w*1000+i, 64), nil, func() {
					me.Lock() // the appender has recorded its LSN
					mu.Lock()
					order = append(order, mine)
					mu.Unlock()
					me.Unlock()
				})
				if err != nil {
					t.Error(err)
					return
				}
				mine = lsn
				me.Unlock()
				if err := j.Wait(lsn, ep); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen := false
				for _, l := range order {
					seen = seen || l == lsn
				}
				mu.Unlock()
				if !seen {
					t.Errorf("Wait(%d) returned before its apply ran", lsn)
				}
			}
		}()
	}
	wg.Wait()
	if len(order) != 400 {
		t.Fatalf("%d applies, want 400", len(order))
	}
	for i := 1; i < len(order); i++ {
		if order[i] != order[i-1]+1 {
			t.Fatalf("applies out of LSN order at %d: %d after %d", i, order[i], order[i-1])
		}
	}
}

// TestAppendApplyNotRunForFailedRecords: a record whose flush failed gets its
// undo and never its apply; the LSN it had is reused by the next record,
// whose apply runs.
func TestAppendApplyNotRunForFailedRecords(t *testing.T) {
	j, ffs, _ := openJ(t, Options{Dir: t.TempDir()})
	defer j.Close()
	var applied, undone []string
	var mu sync.Mutex
	rec := func(name string) (func(), func()) {
		return func() { mu.Lock(); undone = append(undone, name); mu.Unlock() },
			func() { mu.Lock(); applied = append(applied, name); mu.Unlock() }
	}
	u, a := rec("a")
	l, e, _ := j.AppendApply(testRecord(1, 10), u, a)
	if err := j.Wait(l, e); err != nil {
		t.Fatal(err)
	}
	ffs.failSyncs(&pathErr{syscall.EIO})
	u, a = rec("b")
	lb, eb, _ := j.AppendApply(testRecord(2, 10), u, a)
	if err := j.Wait(lb, eb); err == nil {
		t.Fatal("Wait of a failed record succeeded")
	}
	u, a = rec("c")
	lc, ec, err := j.AppendApply(testRecord(3, 10), u, a)
	if err != nil {
		t.Fatal(err)
	}
	if lc != lb {
		t.Fatalf("LSN %d not reused (failed one was %d)", lc, lb)
	}
	if err := j.Wait(lc, ec); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(applied) != 2 || applied[0] != "a" || applied[1] != "c" {
		t.Fatalf("applied %v, want [a c]", applied)
	}
	if len(undone) != 1 || undone[0] != "b" {
		t.Fatalf("undone %v, want [b]", undone)
	}
}
