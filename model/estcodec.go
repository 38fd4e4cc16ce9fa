package model

import (
	"bytes"
	"fmt"
)

// Estimates encoding (little endian; version 2), for embedded scorers that
// follow a server's model:
//
//	"CPAFEST\x00" u32 format, u64 version, i64 time, f64 q_lo, q_hi
//	u8 structure (0 chain, 1 crossed); crossed: u32 n and n dimension
//	  names, u32 n and n tables (name, u32 k and k u8 dimension indexes)
//	u32 campaigns, then per campaign: id, i32 root entry, [17]i32 level
//	  offsets; crossed: per table f64 strength, E[ln m], Var[ln m] of its
//	  prior
//	u32 entries, then per entry: u64 key, f64 cvr, lo, hi, vtr, n_eff,
//	  conversions, exposures, spend, alpha, beta, [crossed: f64 ln E,
//	  E ln, Var ln], i32 parent, u16 campaign, u8 level, u32 label offset,
//	  u16 label length
//	u32 label bytes and the labels
//	u32 CRC-32C
//
// 108 bytes per entry (132 crossed) plus its label. Only whole tables are
// encoded (no delta since a version), of every campaign or of some
// (MarshalCampaigns). Version 1 is version 2 of a chain without the
// structure byte; it is still read.
const (
	estMagic   = "CPAFEST\x00"
	estVersion = 2
)

// MarshalBinary encodes the table (labels gathered into one arena).
func (e *Estimates) MarshalBinary() ([]byte, error) { return e.MarshalCampaigns(nil) }

// MarshalCampaigns encodes the table of the campaigns keep accepts (every
// campaign when keep is nil), as a table of its own: the others' nodes,
// labels and ids are left out, so that a bidder allowed some campaigns is
// sent nothing of the rest. Version, time and quantiles are the table's.
func (e *Estimates) MarshalCampaigns(keep func(id string) bool) ([]byte, error) {
	// The kept campaigns in table order, each with the shift of its entry
	// indexes (entries are grouped by campaign: ents[off[0]:off[MaxLevels]]).
	type kept struct {
		ci    int
		shift int32
	}
	ks := make([]kept, 0, len(e.camps))
	n := int32(0)
	for ci := range e.camps {
		c := &e.camps[ci]
		if keep == nil || keep(c.id) {
			ks = append(ks, kept{ci, n - c.off[0]})
			n += c.off[MaxLevels] - c.off[0]
		}
	}
	var buf bytes.Buffer
	buf.Grow(64 + int(n)*128)
	enc := newEncoder(&buf)
	enc.buf = append(enc.buf, estMagic...)
	enc.u32(estVersion)
	enc.u64(e.version)
	enc.i64(e.at)
	enc.f64(e.q[0])
	enc.f64(e.q[1])
	x := e.cross
	if x == nil {
		enc.u8(0)
	} else {
		enc.u8(1)
		enc.u32(uint32(len(x.dims)))
		for _, d := range x.dims {
			enc.str(d)
		}
		enc.u32(uint32(len(x.tables)))
		for _, t := range x.tables {
			enc.str(t.name)
			enc.bytes(t.dims)
		}
	}
	enc.u32(uint32(len(ks)))
	for _, k := range ks {
		c := &e.camps[k.ci]
		enc.str(c.id)
		root := c.root
		if root >= 0 {
			root += k.shift
		}
		enc.u32(uint32(root))
		for _, o := range c.off {
			enc.u32(uint32(o + k.shift))
		}
		if x != nil {
			for t := range x.tables {
				p := c.eff[t]
				enc.f64(p.s)
				enc.f64(p.lc)
				enc.f64(p.lv)
			}
		}
	}
	enc.u32(uint32(n))
	var arena []byte
	for camp, k := range ks {
		c := &e.camps[k.ci]
		for i := c.off[0]; i < c.off[MaxLevels]; i++ {
			x := &e.ents[i]
			enc.u64(uint64(x.key))
			for _, v := range [...]float64{x.cvr, x.lo, x.hi, x.vtr, x.neff, x.conv, x.exps, x.spend, x.alpha, x.beta} {
				enc.f64(v)
			}
			if e.cross != nil {
				enc.f64(x.lm)
				enc.f64(x.lc)
				enc.f64(x.lv)
			}
			parent := x.parent
			if parent >= 0 {
				parent += k.shift
			}
			enc.u32(uint32(parent))
			enc.u16(uint16(camp))
			enc.u8(x.level)
			enc.u32(uint32(len(arena)))
			enc.u16(x.labelLen)
			arena = append(arena, e.labels[x.arena][x.labelOff:x.labelOff+uint32(x.labelLen)]...)
		}
	}
	enc.bytes(arena)
	if err := enc.finish(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// UnmarshalEstimates decodes a table written by MarshalBinary. It checks
// every invariant lookups rely on (parents before children in the same
// campaign one level up, labels within the arena, unique keys, campaign
// level offsets), so a hostile input cannot make lookups misbehave.
func UnmarshalEstimates(data []byte) (*Estimates, error) {
	d := newDecoder(bytes.NewReader(data))
	var magic [8]byte
	d.read(magic[:])
	if d.e == nil && string(magic[:]) != estMagic {
		return nil, fmt.Errorf("%w: not an estimates table", errCorrupt)
	}
	format := d.u32()
	if d.e == nil && format != 1 && format != estVersion {
		return nil, fmt.Errorf("estimates format %d, want %d (or 1)", format, estVersion)
	}
	e := &Estimates{version: d.u64(), at: d.i64()}
	e.q[0], e.q[1] = d.fin("quantile"), d.fin("quantile")
	if format >= 2 {
		switch d.u8() {
		case 0:
		case 1:
			x := &estCross{}
			nd := d.count(MaxLevels-1, "dimensions")
			for range nd {
				x.dims = append(x.dims, d.str(1<<10, "dimension"))
			}
			nt := d.count(MaxLevels-1, "effect tables")
			for range nt {
				t := effTable{name: d.str(1<<12, "effect key")}
				t.dims = d.bytesMax(MaxLevels-1, "effect dimensions")
				t.salt = effectSalt(t.name)
				for _, v := range t.dims {
					if int(v) >= nd && d.e == nil {
						d.fail("effect %q: dimension %d of %d", t.name, v, nd)
					}
				}
				x.tables = append(x.tables, t)
			}
			e.cross = x
		default:
			d.fail("structure")
		}
	}
	maxRec := len(data) / 8 // every record takes more than 8 bytes
	nc := d.count(min(1<<16, maxRec), "campaigns")
	for i := 0; i < nc && d.e == nil; i++ {
		c := estCamp{id: d.str(1<<16, "campaign id"), root: int32(d.u32())}
		for l := range c.off {
			c.off[l] = int32(d.u32())
		}
		if e.cross != nil {
			c.eff = make([]effPrior, len(e.cross.tables))
			for t := range c.eff {
				c.eff[t] = effPrior{s: d.fin("strength"), lc: d.fin("prior"), lv: d.fin("prior")}
				if !(c.eff[t].s > 0) && d.e == nil {
					d.fail("campaign %d: strength %g", i, c.eff[t].s)
				}
			}
		}
		e.camps = append(e.camps, c)
	}
	n := d.count(min(1<<30, len(data)/100), "entries") // an entry takes 108 bytes
	if d.e == nil {
		e.ents = make([]entry, n)
	}
	for i := 0; i < n && d.e == nil; i++ {
		x := &e.ents[i]
		x.key = Key(d.u64())
		x.cvr, x.lo, x.hi, x.vtr = d.fin("cvr"), d.fin("lo"), d.fin("hi"), d.fin("vtr")
		x.neff, x.conv, x.exps, x.spend = d.fin("n_eff"), d.fin("conversions"), d.fin("exposures"), d.fin("spend")
		x.alpha, x.beta = d.fin("alpha"), d.fin("beta")
		if e.cross != nil {
			x.lm, x.lc, x.lv = d.fin("ln mean"), d.fin("mean ln"), d.fin("variance of ln")
		}
		x.parent = int32(d.u32())
		x.camp = d.u16()
		x.level = d.u8()
		x.labelOff = d.u32()
		x.labelLen = d.u16()
	}
	arena := d.bytesMax(len(data), "labels")
	if err := d.finish(); err != nil {
		return nil, err
	}
	e.labels = [][]byte{arena}
	// Invariants.
	bad := func(format string, a ...any) (*Estimates, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{errCorrupt}, a...)...)
	}
	if !(e.q[0] > 0 && e.q[0] < e.q[1] && e.q[1] < 1) {
		return bad("quantiles %v", e.q)
	}
	for i := range e.ents {
		x := &e.ents[i]
		if int(x.camp) >= len(e.camps) || x.level >= MaxLevels {
			return bad("entry %d: campaign %d, level %d", i, x.camp, x.level)
		}
		if uint64(x.labelOff)+uint64(x.labelLen) > uint64(len(arena)) {
			return bad("entry %d: label out of range", i)
		}
		// A chain node's parent is one level up; an effect level's is its
		// campaign's root.
		up := x.level - 1
		if e.cross != nil {
			up = 0
		}
		if x.level == 0 {
			if x.parent != -1 {
				return bad("entry %d: root with a parent", i)
			}
		} else if x.parent < 0 || int(x.parent) >= i || e.ents[x.parent].camp != x.camp || e.ents[x.parent].level != up {
			return bad("entry %d: bad parent %d", i, x.parent)
		}
		if e.cross != nil && (int(x.level) > len(e.cross.tables) || x.lv < 0) {
			return bad("entry %d: level %d of %d effect tables, variance %g", i, x.level, len(e.cross.tables), x.lv)
		}
	}
	prev := int32(0)
	for ci := range e.camps {
		c := &e.camps[ci]
		if c.off[0] != prev {
			return bad("campaign %d: offsets do not follow", ci)
		}
		for l := 0; l < MaxLevels; l++ {
			if c.off[l+1] < c.off[l] || int(c.off[l+1]) > len(e.ents) {
				return bad("campaign %d: bad offsets", ci)
			}
			for i := c.off[l]; i < c.off[l+1]; i++ {
				if int(e.ents[i].camp) != ci || int(e.ents[i].level) != l {
					return bad("entry %d outside its campaign's level range", i)
				}
			}
		}
		prev = c.off[MaxLevels]
		if c.off[1]-c.off[0] > 1 || c.root != -1 && c.root != c.off[0] {
			return bad("campaign %d: bad root", ci)
		}
		if c.root == -1 && c.off[1] != c.off[0] {
			return bad("campaign %d: root missing", ci)
		}
	}
	if int(prev) != len(e.ents) {
		return bad("campaign offsets cover %d of %d entries", prev, len(e.ents))
	}
	if e.cross != nil {
		e.cross.z = [2]float64{normQuantile(e.q[0]), normQuantile(e.q[1])}
	}
	e.buildSlots()
	for i := range e.ents {
		if e.find(e.ents[i].key) != i {
			return bad("key %x twice", uint64(e.ents[i].key))
		}
	}
	return e, nil
}
