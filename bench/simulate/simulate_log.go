package simulate

// simLog is the journal of one simulated cpafeed: the same contract as
// journal.Journal (AppendApply assigns the next LSN; apply runs in log order,
// once, before Wait returns; Tail is the last LSN) without the disk. A
// record is "durable" as soon as it is appended, so Wait runs the applies
// pending up to its LSN, on the caller's goroutine, after the caller has
// released the locks it held around AppendApply (as the journal's applier
// goroutine would). It keeps counts, not records. Not safe for concurrent
// use: one simulated cpafeed runs on one goroutine.
type simLog struct {
	lsn     uint64
	applied uint64
	pending []func() // applies of LSNs from pending[head] on (nil: none)
	head    int
	records uint64
	bytes   uint64
}

func (l *simLog) AppendApply(rec []byte, undo, apply func()) (lsn, epoch uint64, err error) {
	l.lsn++
	l.records++
	l.bytes += uint64(len(rec))
	l.pending = append(l.pending, apply)
	return l.lsn, 0, nil
}

func (l *simLog) Tail() (lsn, epoch uint64) { return l.lsn, 0 }

func (l *simLog) Wait(lsn, epoch uint64) error {
	for l.applied < lsn && l.head < len(l.pending) {
		fn := l.pending[l.head]
		l.pending[l.head] = nil
		l.head++
		l.applied++
		if fn != nil {
			fn() // may append: pending is re-read each turn
		}
	}
	if l.head == len(l.pending) {
		l.pending, l.head = l.pending[:0], 0
	}
	return nil
}
