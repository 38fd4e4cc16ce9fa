package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/control"
	"github.com/cpafeed/cpafeed/conversions"
	"github.com/cpafeed/cpafeed/journal"
)

// state is everything the server keeps in memory and how it reaches disk:
// the journal, and the in-memory components rebuilt from a snapshot and the
// journal after it.
type state struct {
	cfg     Config
	tenants *tenants
	log     *slog.Logger
	journal *journal.Journal
	// eng holds the in-memory components, wired over the journal and the
	// wall clock; build replaces it.
	eng *Engine

	lastSnapshot uint64        // LSN of the newest snapshot written or loaded
	lastPause    time.Duration // how long the last snapshot held applies (ingest answers) back
	snapBuf      chunks        // the state encoded at the checkpoint
	prevSnapshot uint64        // LSN of the one before: the journal is kept from there
}

// newState opens the journal and builds empty components; nothing is read
// from disk yet (see recover).
func newState(cfg Config, t *tenants, logger *slog.Logger) (*state, error) {
	st := &state{cfg: cfg, tenants: t, log: logger}
	var err error
	if st.journal, err = journal.Open(cfg.Journal); err != nil {
		return nil, fmt.Errorf("cannot open the journal: %w", err)
	}
	if err := st.build(); err != nil {
		st.journal.Close()
		return nil, err
	}
	return st, nil
}

// build makes fresh, empty in-memory components, wired as the Engine wires
// them, over the journal and the wall clock.
func (st *state) build() error {
	if st.eng != nil {
		st.eng.Exposures.Close()
	}
	e, err := newEngine(st.cfg, st.journal, time.Now, st.tenants)
	if err != nil {
		return err
	}
	st.eng = e
	return nil
}

// recoverState loads the newest valid snapshot (falling back to older ones,
// then to none) and replays the journal after it.
func (st *state) recoverState() (journal.ReplayReport, error) {
	from := uint64(1)
	files, err := journal.OpenSnapshots(st.cfg.DataDir)
	if err != nil {
		return journal.ReplayReport{}, err
	}
	for i, sf := range files {
		start := time.Now()
		err := journal.ReadSnapshot(sf, st.readSnapshot)
		if err == nil {
			st.log.Info("snapshot loaded", "lsn", sf.LSN, "bytes", sf.Bytes, "duration", time.Since(start).Round(time.Millisecond).String())
			from = sf.LSN
			st.lastSnapshot = sf.LSN
			if i+1 < len(files) {
				st.prevSnapshot = files[i+1].LSN
			}
			break
		}
		st.log.Warn("snapshot unusable; trying an older one, then the journal alone", "snapshot", sf.Path, "err", err.Error())
		if err := st.build(); err != nil {
			return journal.ReplayReport{}, err
		}
	}
	return st.replay(from)
}

// replay applies the journal's records from LSN from on, in order.
func (st *state) replay(from uint64) (journal.ReplayReport, error) {
	return st.journal.Replay(from, func(lsn uint64, rec []byte) error {
		if len(rec) == 0 {
			return fmt.Errorf("record %d: empty", lsn)
		}
		switch rec[0] {
		case conversions.RecordTypeConversionBatch:
			if err := st.eng.Conversions.Replay(rec); err != nil {
				return fmt.Errorf("record %d (conversions): %w", lsn, err)
			}
			return nil
		case conversions.RecordTypeConversionCounts:
			if err := st.eng.Conversions.ReplayCounts(rec); err != nil {
				return fmt.Errorf("record %d (conversion counts): %w", lsn, err)
			}
			return nil
		case conversions.RecordTypeDeletion:
			if err := st.eng.Eraser.Replay(rec); err != nil {
				return fmt.Errorf("record %d (deletion): %w", lsn, err)
			}
			return nil
		case conversions.RecordTypeCredits:
			if err := st.eng.Attributor.ReplayCredits(rec); err != nil {
				return fmt.Errorf("record %d (credits): %w", lsn, err)
			}
			return nil
		case control.RecordType:
			if err := st.eng.Control.Replay(rec); err != nil {
				return fmt.Errorf("record %d (control): %w", lsn, err)
			}
			return nil
		}
		ok, err := st.eng.Exposures.Replay(rec)
		if err != nil {
			return fmt.Errorf("record %d (exposures): %w", lsn, err)
		}
		if !ok {
			return fmt.Errorf("record %d: unknown type 0x%02x", lsn, rec[0])
		}
		return nil
	})
}

// snapshotFormat is the version of the snapshot layout. 2: remembered bids
// as single records (section exposures3); 3: remembered bids oldest first,
// from the generations of the bid memory (section exposures4); 4: the
// identity index carries its campaign table and is renumbered by id at a
// restart (section index2); 5: the CPA controllers and the bid outcomes of
// first-price shading (sections control1, shading1, before the model); 6:
// ghost exposures and lift groups in the index (index3), the lift
// measurement and the conversions awaiting probabilistic credit
// (attribution2). This cpafeed still reads 1 to 5.
const snapshotFormat = 6

// writeSnapshot writes every component's state as of the records before
// LSN next; it runs at the journal checkpoint at next, where every record
// < next is applied and no later one.
func (st *state) writeSnapshot(w io.Writer, next uint64) error {
	bw := binenc.NewWriter(w)
	bw.Tag("cpafeed")
	bw.Uvarint(snapshotFormat)
	st.eng.Index.WriteSnapshot(bw, st.eng.Exposures.CampaignIDs())
	st.eng.Exposures.WriteSnapshot(bw, next)
	st.eng.Conversions.WriteSnapshot(bw, next)
	st.eng.Attributor.WriteSnapshot(bw)
	st.eng.Control.WriteSnapshot(bw)
	st.eng.Shading.WriteSnapshot(bw)
	bw.Tag("model")
	if err := bw.Flush(); err != nil {
		return err
	}
	// The model's own codec comes last: its reader buffers ahead.
	return st.eng.Model.WriteSnapshot(w)
}

// readSnapshot restores what writeSnapshot wrote into the (fresh)
// components.
func (st *state) readSnapshot(r io.Reader) error {
	br := binenc.NewReader(r)
	br.Tag("cpafeed")
	format := br.Uvarint()
	if br.Err() == nil && (format < 1 || format > snapshotFormat) {
		return fmt.Errorf("snapshot format %d, this cpafeed reads 1 to %d", format, snapshotFormat)
	}
	if err := st.eng.Index.ReadSnapshot(br, st.eng.Exposures.CampaignNumber); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if err := st.eng.Exposures.ReadSnapshot(br); err != nil {
		return fmt.Errorf("exposures: %w", err)
	}
	if err := st.eng.Conversions.ReadSnapshot(br); err != nil {
		return fmt.Errorf("conversions: %w", err)
	}
	if err := st.eng.Attributor.ReadSnapshot(br); err != nil {
		return fmt.Errorf("attribution: %w", err)
	}
	if format >= 5 {
		if err := st.eng.Control.ReadSnapshot(br); err != nil {
			return err
		}
		if err := st.eng.Shading.ReadSnapshot(br); err != nil {
			return err
		}
	}
	br.Tag("model")
	if err := br.Err(); err != nil {
		return err
	}
	res, err := st.eng.Model.ReadSnapshot(br.Reader())
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	st.log.Info("model restored", "restored", fmt.Sprintf("%+v", res))
	return nil
}

// snapshot writes a snapshot at a journal checkpoint and trims the journal
// to what the older of the two kept snapshots needs. At the checkpoint
// (where later records' applies, and so ingest answers, wait) the state is
// only encoded into memory; compression and the disk write come after it,
// while ingest goes on. That costs a transient buffer of the raw size.
func (st *state) snapshot() (journal.SnapshotInfo, error) {
	var info journal.SnapshotInfo
	buf := &st.snapBuf
	defer buf.Reset(64 << 20) // keep a little for the next snapshot, not the whole state
	start := time.Now()
	next, err := st.journal.Checkpoint(func(next uint64) error { return st.writeSnapshot(buf, next) })
	if err != nil {
		return info, err
	}
	st.lastPause = time.Since(start)
	info, err = journal.WriteSnapshot(st.cfg.DataDir, next, func(w io.Writer) error {
		_, err := buf.WriteTo(w)
		return err
	})
	if err != nil {
		return info, err
	}
	st.prevSnapshot, st.lastSnapshot = st.lastSnapshot, next
	keep := st.prevSnapshot
	if keep == 0 {
		keep = 1 // no older snapshot: keep the whole journal as its fallback
	}
	if err := st.journal.RemoveBefore(keep); err != nil {
		return info, fmt.Errorf("snapshot written, journal not trimmed: %w", err)
	}
	return info, nil
}

// background runs the periodic work until ctx ends: estimate refreshes,
// prior refits, snapshots, and expiry of dedup keys, pending conversions
// and index entries.
func (st *state) background(ctx context.Context) {
	cfg := st.cfg
	refresh := time.NewTimer(cfg.Model.RefreshInterval)
	refit := time.NewTicker(cfg.Model.RefitInterval)
	sweep := time.NewTicker(time.Minute)
	defer refresh.Stop()
	defer refit.Stop()
	defer sweep.Stop()
	var snap <-chan time.Time
	if !cfg.Snapshot.Disable {
		t := time.NewTicker(cfg.Snapshot.Interval)
		defer t.Stop()
		snap = t.C
	}
	credit := time.NewTicker(cfg.Attribution.CreditInterval)
	defer credit.Stop()
	st.eng.Shading.Refit(time.Now().Unix())
	st.eng.Model.Refresh(time.Now().Unix()) // publish what replay added, at once
	nextSteer := time.Now().Add(cfg.Control.Interval)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-credit.C:
			st.flushCredits(now)
		case now := <-refresh.C:
			start := time.Now()
			st.flushCredits(now) // the estimates see every credit so far
			if !now.Before(nextSteer) {
				// The controllers step and the curves refit just before
				// a refresh: the next model version carries them.
				if err := st.eng.Steer(now.Unix()); err != nil {
					st.log.Warn("CPA controllers not stepped", "err", err.Error())
				}
				nextSteer = now.Add(cfg.Control.Interval)
			}
			st.eng.Model.Refresh(now.Unix())
			refresh.Reset(refreshWait(cfg.Model.RefreshInterval, time.Since(start)))
		case now := <-refit.C:
			st.eng.Model.Refit(now.Unix())
		case now := <-sweep.C:
			st.eng.Conversions.Expire()
			st.eng.Attributor.Expire(now)
			st.eng.Index.Sweep(now.Unix())
		case <-snap:
			st.logSnapshot(st.snapshot())
		}
	}
}

// flushCredits journals the pending probabilistic credits; a failure (the
// journal cannot persist) is logged and retried on the next tick.
func (st *state) flushCredits(now time.Time) {
	if _, err := st.eng.Attributor.FlushCredits(now); err != nil {
		st.log.Warn("probabilistic credits not journaled; retrying", "err", err.Error())
	}
}

// refreshBudget bounds the share of a core that estimate refreshes take: the
// wait after a refresh is at least refreshBudget times its duration.
const refreshBudget = 10

// refreshWait is the wait before the next refresh: the configured interval,
// stretched when a refresh took more than a tenth of it (about 0.35-0.7 s
// at a million segments, where the default 2 s would spend a sixth to a
// third of a core).
func refreshWait(interval, took time.Duration) time.Duration {
	return max(interval, refreshBudget*took)
}

func (st *state) logSnapshot(info journal.SnapshotInfo, err error) {
	if err != nil {
		st.log.Error("snapshot failed", "err", err.Error())
		return
	}
	st.log.Info("snapshot written", "lsn", info.LSN, "raw_bytes", info.RawBytes, "bytes", info.CompressedBytes, "duration", info.Duration.Round(time.Millisecond).String())
}

// close snapshots (when configured), flushes and releases everything.
func (st *state) close(snapshot bool) error {
	var err error
	if snapshot {
		var info journal.SnapshotInfo
		info, err = st.snapshot()
		st.logSnapshot(info, err)
	}
	st.eng.Exposures.Close()
	return errors.Join(err, st.journal.Close())
}
