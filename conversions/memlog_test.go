package conversions

import (
	"errors"
	"sync"
)

// memLog is an in-memory Log with group commit and failure injection, for
// tests and benchmarks. In auto mode a Wait flushes everything pending (one
// "fsync" for all); in manual mode Waits block until the test calls Flush.
type memLog struct {
	mu       sync.Mutex
	cond     *sync.Cond
	manual   bool
	next     uint64 // last LSN assigned
	epoch    uint64
	resolved uint64 // every LSN <= resolved is durable or lost
	flushing bool
	pending  []memRec
	durable  [][]byte          // persisted records, in LSN order
	failNext int               // how many of the next flushes fail
	acked    map[uint64]uint64 // failure epoch -> every LSN <= it was durable before that failure
	appendFn func() error
	onAppend func() // called once after the next AppendApply (an append by another goroutine right after it)
	discard  bool   // drop records instead of keeping them (benchmarks)
	waiting  int    // goroutines blocked in Wait
}

type memRec struct {
	lsn   uint64
	rec   []byte
	undo  func()
	apply func()
}

var errFlushFailed = errors.New("memlog: flush failed (injected)")

func newMemLog() *memLog {
	m := &memLog{}
	m.cond = sync.NewCond(&m.mu)
	return m
}

func (m *memLog) AppendApply(rec []byte, undo, apply func()) (uint64, uint64, error) {
	m.mu.Lock()
	if f := m.onAppend; f != nil {
		m.onAppend = nil
		defer f() // after the unlock below
	}
	defer m.mu.Unlock()
	if m.appendFn != nil {
		if err := m.appendFn(); err != nil {
			return 0, 0, err
		}
	}
	m.next++
	if !m.discard {
		rec = append([]byte(nil), rec...)
	} else {
		rec = nil
	}
	m.pending = append(m.pending, memRec{lsn: m.next, rec: rec, undo: undo, apply: apply})
	return m.next, m.epoch, nil
}

func (m *memLog) Tail() (uint64, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.next, m.epoch
}

func (m *memLog) Wait(lsn, epoch uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		// As the journal: a failure after epoch fails the wait only if it
		// dropped a record <= lsn.
		if m.epoch > epoch && lsn > m.acked[epoch+1] {
			return errFlushFailed
		}
		if m.resolved >= lsn {
			return nil
		}
		if !m.manual && !m.flushing {
			m.flushLocked()
			continue
		}
		m.waiting++
		m.cond.Wait()
		m.waiting--
	}
}

// Flush persists (or, with failNext, loses) everything pending.
func (m *memLog) Flush() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.flushing {
		m.cond.Wait()
	}
	m.flushLocked()
}

// FlushTo persists (or loses) the pending records <= lsn only.
func (m *memLog) FlushTo(lsn uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for m.flushing {
		m.cond.Wait()
	}
	i := 0
	for i < len(m.pending) && m.pending[i].lsn <= lsn {
		i++
	}
	rest := append([]memRec(nil), m.pending[i:]...)
	m.pending = m.pending[:i]
	m.flushLocked()
	m.pending = append(rest, m.pending...)
}

// FailNextFlush makes the next flush lose its records.
func (m *memLog) FailNextFlush() {
	m.mu.Lock()
	m.failNext++
	m.mu.Unlock()
}

func (m *memLog) flushLocked() {
	if len(m.pending) == 0 {
		return
	}
	recs := m.pending
	m.pending = nil
	last := recs[len(recs)-1].lsn
	if m.failNext > 0 {
		m.failNext--
		m.flushing = true
		m.mu.Unlock() // undo takes the dataset's lock, which Append callers hold
		for _, r := range recs {
			if r.undo != nil {
				r.undo()
			}
		}
		m.mu.Lock()
		m.flushing = false
		if m.acked == nil {
			m.acked = map[uint64]uint64{}
		}
		m.acked[m.epoch+1] = m.resolved
		m.resolved = last
		m.epoch++
		m.cond.Broadcast()
		return
	}
	if !m.discard {
		for _, r := range recs {
			m.durable = append(m.durable, r.rec)
		}
	}
	// Applies run in LSN order after the records are durable and before
	// their waiters wake, as the journal's applier does.
	m.flushing = true
	m.mu.Unlock()
	for _, r := range recs {
		if r.apply != nil {
			r.apply()
		}
	}
	m.mu.Lock()
	m.flushing = false
	m.resolved = last
	m.cond.Broadcast()
}

// Records returns the persisted records.
func (m *memLog) Records() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][]byte(nil), m.durable...)
}

// BatchRecords returns the persisted conversion batch records (the records
// that store events), leaving out counts records.
func (m *memLog) BatchRecords() [][]byte {
	var out [][]byte
	for _, rec := range m.Records() {
		if rec[0] == RecordTypeConversionBatch {
			out = append(out, rec)
		}
	}
	return out
}

// replayRecord replays one record of this package as the server does at
// start.
func replayRecord(s *Service, rec []byte) error {
	if rec[0] == RecordTypeConversionCounts {
		return s.ReplayCounts(rec)
	}
	return s.Replay(rec)
}

// PendingCount is the number of records appended and not flushed.
func (m *memLog) PendingCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
}

// Waiting is the number of goroutines blocked in Wait.
func (m *memLog) Waiting() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.waiting
}

// SetManual switches between manual and auto flushing.
func (m *memLog) SetManual(manual bool) {
	m.mu.Lock()
	m.manual = manual
	m.cond.Broadcast()
	m.mu.Unlock()
}
