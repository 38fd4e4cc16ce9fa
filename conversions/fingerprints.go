package conversions

import "github.com/cpafeed/cpafeed/dedup"

// fpRef is a fingerprinted event's dedup key and the generation it lives in.
type fpRef struct {
	key DedupKey
	gen int64
}

// rememberFingerprints indexes the stored fingerprinted events of b by
// their identity keys.
func (s *Service) rememberFingerprints(ds *dataset, b *batch) {
	var g int64 = -1
	for i := range b.events {
		e := &b.events[i]
		if e.dup || e.flags&FlagFingerprint == 0 || e.idN == 0 {
			continue
		}
		ds.mu.Lock()
		if g < 0 {
			g = ds.set.Gen(b.nowMs)
		}
		if ds.fps == nil {
			ds.fps = map[uint64][]fpRef{}
		}
		for _, id := range b.ids[e.idOff : e.idOff+e.idN] {
			ds.fps[id.Key] = append(ds.fps[id.Key], fpRef{key: e.key, gen: g})
		}
		ds.mu.Unlock()
	}
}

// pruneFingerprintsLocked drops the references into expired generations.
// ds.mu must be held.
func (ds *dataset) pruneFingerprintsLocked() {
	for k, refs := range ds.fps {
		n := 0
		for _, r := range refs {
			if ds.set.Live(r.gen) {
				refs[n] = r
				n++
			}
		}
		if n == 0 {
			delete(ds.fps, k)
		} else {
			ds.fps[k] = refs[:n]
		}
	}
}

// forgetIdentities removes, from every dataset of the advertiser, the
// dedup entries of fingerprinted events made of the given identity keys
// (deletion requests). It returns how many entries it removed.
func (s *Service) forgetIdentities(advertiser string, keys []uint64) int {
	n := 0
	for _, ds := range s.byAdv[advertiser] {
		ds.mu.Lock()
		for _, k := range keys {
			for _, r := range ds.fps[k] {
				if ds.set.Contains(r.key) {
					ds.set.Remove(r.key, r.gen)
					n++
				}
			}
			delete(ds.fps, k)
		}
		ds.mu.Unlock()
	}
	metricDedupEntries.Add(-float64(n))
	return n
}

// newSet is an empty dedup set with the configured window.
func (s *Service) newSet() dedup.Set {
	return dedup.New(s.cfg.DedupWindow.Milliseconds(), s.cfg.DedupGenerations)
}
