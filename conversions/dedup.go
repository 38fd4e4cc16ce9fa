package conversions

// dedupSet remembers the DedupKeys of one dataset for the dedup window, exactly
// (no false positives beyond SHA-256 collisions of the key, see DESIGN notes
// in doc.go), in time generations: entries inserted while the clock is in
// generation g live in a map of their own, and expiry drops whole maps. With
// N generations of window/N each, an entry is remembered for at least the
// window and at most window*(1+1/N).
//
// Memory: a Go map[DedupKey]struct{} slot is 16 bytes of key plus one control
// byte. Go's swiss tables keep their load between 7/16 and 7/8 and grow table
// by table (at most 1024 slots each, so growth never doubles the whole set at
// once); with uniformly random keys the tables fill and split nearly in step,
// so the cost per entry swings between 17/(7/8) = 19.4 and 17/(7/16) = 38.9
// bytes, plus under a byte of directory. TestDedupMemoryPerEntry measures 31
// to 38 bytes with 2 million entries: within the 48-byte budget.
//
// Exactness: two different events share a key only if SHA-256 prefixes of
// 128 bits collide. With n remembered events the chance of any collision is
// about n^2/2^129: for a billion events in one window, 1.5e-21. Keys are also
// partitioned by dataset (and the dataset is hashed in), so one tenant's
// events can never shadow another's.
//
// Not safe for concurrent use: the dataset's mutex guards it.
type dedupSet struct {
	genMs int64        // length of a generation, ms
	gens  []generation // ring of N+1 slots; generation g lives in slot g mod (N+1)
	cur   int64        // newest generation seen (monotonic even if the clock steps back)
	n     int          // live entries
}

type generation struct {
	id int64 // absolute generation number (Unix ms / genMs); -1 = empty slot
	m  map[DedupKey]struct{}
}

func newDedupSet(windowMs int64, generations int) dedupSet {
	d := dedupSet{genMs: max(windowMs/int64(generations), 1), gens: make([]generation, generations+1)}
	for i := range d.gens {
		d.gens[i].id = -1
	}
	return d
}

// genOf is the generation number of a time in Unix ms.
func (d *dedupSet) genOf(ms int64) int64 {
	if ms < 0 {
		return 0
	}
	return ms / d.genMs
}

// advance moves the clock to nowMs and drops every generation that left the
// window, each as a whole map. It returns the number of entries dropped.
func (d *dedupSet) advance(nowMs int64) int {
	if g := d.genOf(nowMs); g > d.cur {
		d.cur = g
	}
	oldest := d.cur - int64(len(d.gens)-1)
	dropped := 0
	for i := range d.gens {
		gen := &d.gens[i]
		if gen.id >= 0 && gen.id < oldest {
			dropped += len(gen.m)
			gen.id, gen.m = -1, nil // the whole map goes to the GC at once
		}
	}
	d.n -= dropped
	return dropped
}

// contains reports whether k is remembered, looking at the newest generation
// first (retries are usually recent).
func (d *dedupSet) contains(k DedupKey) bool {
	slots := int64(len(d.gens))
	for g := d.cur; g > d.cur-slots && g >= 0; g-- {
		gen := &d.gens[g%slots]
		if gen.id != g {
			continue
		}
		if _, ok := gen.m[k]; ok {
			return true
		}
	}
	return false
}

// insert adds k to generation g (clamped to the current one) and reports
// whether it was added: false if k is already in that generation, or if g has
// already left the window.
func (d *dedupSet) insert(k DedupKey, g int64) bool {
	if g > d.cur {
		g = d.cur
	}
	slots := int64(len(d.gens))
	if g <= d.cur-slots || g < 0 {
		return false
	}
	gen := &d.gens[g%slots]
	if gen.id != g { // the slot holds an expired generation (advance not called yet) or nothing
		d.n -= len(gen.m)
		gen.id, gen.m = g, make(map[DedupKey]struct{})
	}
	if _, ok := gen.m[k]; ok {
		return false
	}
	gen.m[k] = struct{}{}
	d.n++
	return true
}

// remove deletes k from generation g, if it is there.
func (d *dedupSet) remove(k DedupKey, g int64) {
	gen := &d.gens[g%int64(len(d.gens))]
	if gen.id != g {
		return
	}
	if _, ok := gen.m[k]; ok {
		delete(gen.m, k)
		d.n--
	}
}
