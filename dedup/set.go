package dedup

// Key is a 128-bit stable hash of what identifies one event. Keys are
// persisted (journal, snapshots), so the hash that makes them must never
// change.
type Key [16]byte

// Set remembers keys for a window, exactly: no false positives beyond
// collisions of the 128-bit key (with n keys in a window the chance of any
// collision is about n²/2¹²⁹: for a billion keys, 1.5e-21).
//
// Keys inserted while the clock is in generation g live in a map of their
// own, and expiry drops whole maps. With N generations of window/N each, a
// key is remembered for at least the window and at most window·(1+1/N).
//
// Memory: a Go map[Key]struct{} slot is 16 bytes of key plus one control
// byte; swiss tables keep their load between 7/16 and 7/8 and grow table by
// table (at most 1024 slots each), so an entry costs between 19.4 and 38.9
// bytes plus under a byte of directory: within a 48-byte budget.
type Set struct {
	genMs int64        // length of a generation, ms
	gens  []generation // ring of N+1 slots; generation g lives in slot g mod (N+1)
	cur   int64        // newest generation seen (monotonic even if the clock steps back)
	n     int          // live entries
}

type generation struct {
	id int64 // absolute generation number (Unix ms / genMs); -1 = empty slot
	m  map[Key]struct{}
}

// New returns a set remembering keys for windowMs milliseconds in the given
// number of generations (more generations: tighter expiry, more lookups).
func New(windowMs int64, generations int) Set {
	generations = max(generations, 1)
	d := Set{genMs: max(windowMs/int64(generations), 1), gens: make([]generation, generations+1)}
	for i := range d.gens {
		d.gens[i].id = -1
	}
	return d
}

// Gen is the generation number of a time in Unix ms.
func (d *Set) Gen(ms int64) int64 {
	if ms < 0 {
		return 0
	}
	return ms / d.genMs
}

// Len is the number of remembered keys.
func (d *Set) Len() int { return d.n }

// Advance moves the clock to nowMs and drops every generation that left the
// window, each as a whole map. It returns the number of keys dropped.
func (d *Set) Advance(nowMs int64) int {
	if g := d.Gen(nowMs); g > d.cur {
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

// Contains reports whether k is remembered, looking at the newest generation
// first (retries are usually recent).
func (d *Set) Contains(k Key) bool {
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

// Insert adds k to generation g (clamped to the current one) and reports
// whether it was added: false if k is already in that generation, or if g has
// already left the window.
func (d *Set) Insert(k Key, g int64) bool {
	if g > d.cur {
		g = d.cur
	}
	slots := int64(len(d.gens))
	if g <= d.cur-slots || g < 0 {
		return false
	}
	gen := &d.gens[g%slots]
	if gen.id != g { // the slot holds an expired generation (Advance not called yet) or nothing
		d.n -= len(gen.m)
		gen.id, gen.m = g, make(map[Key]struct{})
	}
	if _, ok := gen.m[k]; ok {
		return false
	}
	gen.m[k] = struct{}{}
	d.n++
	return true
}

// Remove deletes k from generation g, if it is there.
func (d *Set) Remove(k Key, g int64) {
	if g < 0 {
		return
	}
	gen := &d.gens[g%int64(len(d.gens))]
	if gen.id != g {
		return
	}
	if _, ok := gen.m[k]; ok {
		delete(gen.m, k)
		d.n--
	}
}

// Each calls fn for every remembered key with its generation (for
// snapshots), oldest generation first.
func (d *Set) Each(fn func(k Key, gen int64)) {
	slots := int64(len(d.gens))
	for g := d.cur - slots + 1; g <= d.cur; g++ {
		if g < 0 {
			continue
		}
		gen := &d.gens[g%slots]
		if gen.id != g {
			continue
		}
		for k := range gen.m {
			fn(k, g)
		}
	}
}

// DropOldest forgets the oldest live generation at once (used when a set
// must stay under a size bound) and returns how many keys it held.
func (d *Set) DropOldest() int {
	slots := int64(len(d.gens))
	for g := d.cur - slots + 1; g <= d.cur; g++ {
		if g < 0 {
			continue
		}
		gen := &d.gens[g%slots]
		if gen.id != g || len(gen.m) == 0 {
			continue
		}
		n := len(gen.m)
		gen.id, gen.m = -1, nil
		d.n -= n
		return n
	}
	return 0
}

// Live reports whether generation g is still in the window (keys inserted
// into it are remembered).
func (d *Set) Live(g int64) bool {
	return g >= 0 && g <= d.cur && g > d.cur-int64(len(d.gens))
}
