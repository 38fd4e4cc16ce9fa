package server

import (
	"context"
	"fmt"
	"time"

	"github.com/cpafeed/cpafeed/bidder"
	"github.com/cpafeed/cpafeed/conversions"
	"github.com/cpafeed/cpafeed/journal"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

// state is everything the server keeps in memory and how it reaches disk.
type state struct {
	journal *journal.Journal
	model   *model.Model
	index   *signals.Index
	exp     *signals.Exposures
	conv    *conversions.Service
	attr    *conversions.Attributor
	eraser  *conversions.Eraser
	bid     *bidder.Service
	chain   *signals.Chain
	hasher  *signals.Hasher
}

// newState builds the components from the config; nothing is read from
// disk yet.
func newState(cfg Config, t *tenants) (*state, error) {
	st := &state{}
	var err error
	if st.chain, err = signals.NewChain(cfg.Segments); err != nil {
		return nil, err
	}
	st.hasher = signals.NewHasher([]byte(cfg.Identity.Secret))
	opts := cfg.Journal
	if st.journal, err = journal.Open(opts); err != nil {
		return nil, fmt.Errorf("cannot open the journal: %w", err)
	}
	st.model = model.New(cfg.Model, cfg.Campaigns)
	st.index = signals.NewIndex(cfg.Exposures.Index)
	if st.exp, err = signals.NewExposures(cfg.Exposures, st.chain, st.hasher, st.index, st.model, st.journal, cfg.Campaigns); err != nil {
		st.journal.Close()
		return nil, err
	}
	if st.conv, err = conversions.NewService(cfg.Conversions, st.journal, st.hasher, t); err != nil {
		st.exp.Close()
		st.journal.Close()
		return nil, err
	}
	st.attr = conversions.NewAttributor(cfg.Attribution, st.index, st.model, cfg.Conversions.Datasets, cfg.Campaigns, st.exp.CampaignNumber)
	st.eraser = conversions.NewEraser(st.conv, st.attr, st.index)
	st.conv.SetStoredHook(st.attr.OnStored)
	st.exp.OnIndexed(st.attr.OnIndexed)
	rules, err := bidder.NewRules(cfg.Segments, cfg.Campaigns)
	if err != nil {
		st.exp.Close()
		st.journal.Close()
		return nil, err
	}
	st.bid = bidder.NewService(cfg.Bidder, rules, st.model, st.exp)
	return st, nil
}

// replay rebuilds the state from the journal, record by record, in order.
func (st *state) replay() (journal.ReplayReport, error) {
	return st.journal.Replay(1, func(lsn uint64, rec []byte) error {
		if len(rec) == 0 {
			return fmt.Errorf("record %d: empty", lsn)
		}
		switch rec[0] {
		case conversions.RecordTypeConversionBatch:
			if err := st.conv.Replay(rec); err != nil {
				return fmt.Errorf("record %d (conversions): %w", lsn, err)
			}
			return nil
		case conversions.RecordTypeDeletion:
			if err := st.eraser.Replay(rec); err != nil {
				return fmt.Errorf("record %d (deletion): %w", lsn, err)
			}
			return nil
		}
		ok, err := st.exp.Replay(rec)
		if err != nil {
			return fmt.Errorf("record %d (exposures): %w", lsn, err)
		}
		if !ok {
			return fmt.Errorf("record %d: unknown type 0x%02x", lsn, rec[0])
		}
		return nil
	})
}

// background runs the periodic work until ctx ends: estimate refreshes,
// prior refits, and expiry of dedup keys and index entries.
func (st *state) background(ctx context.Context, cfg Config) {
	refresh := time.NewTicker(cfg.Model.RefreshInterval)
	refit := time.NewTicker(cfg.Model.RefitInterval)
	sweep := time.NewTicker(time.Minute)
	defer refresh.Stop()
	defer refit.Stop()
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-refresh.C:
			st.model.Refresh(now.Unix())
		case now := <-refit.C:
			st.model.Refit(now.Unix())
		case now := <-sweep.C:
			st.conv.Expire()
			st.attr.Expire(now)
			st.index.Sweep(now.Unix())
		}
	}
}

// close flushes and releases everything.
func (st *state) close() error {
	st.exp.Close()
	return st.journal.Close()
}
