package model

import (
	"fmt"
	"sync"
)

// The crossed model's live state: its effect tables and the dictionary of
// their levels. A cell is a node at level 1 below its campaign's root,
// keyed as the leaf of a path over the dimensions (Config.Dims), and
// carries the id of its level in every effect table (shard.lv).

// crossed is the crossed model's configuration and level dictionary.
type crossed struct {
	dims   []string
	tables []effTable

	mu     sync.Mutex // guards index and appends to levels and labels
	index  map[Key]uint32
	levels []level
	labels []byte // append-only arena of level labels ("genre=Sports")
}

// effTable is one effect key: its name, the salt of its level keys and the
// indexes of its features among the dimensions.
type effTable struct {
	name string
	salt uint64
	dims []uint8
}

// level is one level of one campaign's effect table.
type level struct {
	key      Key
	vk       uint64 // its values' valueKey (the same in every campaign)
	labelOff uint32
	labelLen uint16
	camp     uint16
	table    uint8
}

// noLevel is the level id of a cell in no level of a table (a foreign cell:
// an exposure whose path does not have the dimensions' depth).
const noLevel = ^uint32(0)

func newCrossed(cfg Config) *crossed {
	cr := &crossed{dims: cfg.Dims(), index: make(map[Key]uint32)}
	for _, key := range cfg.Effects {
		t := effTable{name: EffectName(key), salt: effectSalt(EffectName(key))}
		for _, f := range key {
			for d, name := range cr.dims {
				if name == f {
					t.dims = append(t.dims, uint8(d))
				}
			}
		}
		cr.tables = append(cr.tables, t)
	}
	return cr
}

// same reports whether o has the same dimensions and tables.
func (cr *crossed) same(dims []string, tables []effTable) bool {
	if len(dims) != len(cr.dims) || len(tables) != len(cr.tables) {
		return false
	}
	for i := range dims {
		if dims[i] != cr.dims[i] {
			return false
		}
	}
	for i := range tables {
		a, b := &tables[i], &cr.tables[i]
		if a.name != b.name || string(a.dims) != string(b.dims) {
			return false
		}
	}
	return true
}

// exposeCrossed counts an exposure on the campaign's root and on the cell
// of path: its last key, whose effect levels are those of its labels when
// the path has the dimensions' depth (else a foreign cell, counted in the
// base only).
func (m *Model) exposeCrossed(ts int64, cs *campState, path []Key, labels [][]byte, cost float64) bool {
	root, ok := m.exposeNode(ts, cs, path[0], noNode, 0, nil, nil, cost)
	if !ok || len(path) == 1 {
		return true
	}
	if labels == nil {
		labels = [][]byte{} // a foreign cell, not a chain node
	}
	m.exposeNode(ts, cs, path[len(path)-1], root, 1, nil, labels, cost)
	return true
}

// cellLabel appends the readable name of a cell to dst: its values
// (labels[1:]) joined with "/".
func (cr *crossed) cellLabel(dst []byte, labels [][]byte) []byte {
	for j := 1; j < len(labels); j++ {
		if j > 1 {
			dst = append(dst, '/')
		}
		dst = append(dst, labels[j]...)
	}
	return dst
}

// appendLevels appends to lv the level ids of a new node of campaign cs:
// for a cell (level 1) with labels of the dimensions' depth, its level in
// every table (created as needed); noLevel for a root or a foreign cell.
// It takes cr.mu (callers may hold a shard lock: cr.mu is innermost).
func (cr *crossed) appendLevels(lv []uint32, cs *campState, lvl int, labels [][]byte) []uint32 {
	if lvl != 1 || len(labels) != len(cr.dims)+1 {
		for range cr.tables {
			lv = append(lv, noLevel)
		}
		return lv
	}
	var vals [MaxLevels]uint64
	for d := range cr.dims {
		vals[d] = ValueHash(labels[d+1])
	}
	cr.mu.Lock()
	defer cr.mu.Unlock()
	for t := range cr.tables {
		tb := &cr.tables[t]
		vk := valueKey(tb.salt, tb.dims, &vals)
		k := levelKey(cs.root, vk)
		id, ok := cr.index[k]
		if !ok {
			id = uint32(len(cr.levels))
			off := len(cr.labels)
			cr.labels = append(cr.labels, tb.name...)
			cr.labels = append(cr.labels, '=')
			for i, d := range tb.dims {
				if i > 0 {
					cr.labels = append(cr.labels, '+')
				}
				cr.labels = append(cr.labels, labels[d+1]...)
			}
			if len(cr.labels)-off > maxLabel {
				cr.labels = cr.labels[:off+maxLabel]
			}
			cr.levels = append(cr.levels, level{key: k, vk: vk, labelOff: uint32(off), labelLen: uint16(len(cr.labels) - off), camp: uint16(cs.idx), table: uint8(t)})
			cr.index[k] = id
		}
		lv = append(lv, id)
	}
	return lv
}

// Cell is an impression's values of the crossed model's dimensions, each
// hashed with ValueHash, as Estimates.LookupCell takes them. Fill it once
// per impression (SetValue, or Set from the labels of its path); it serves
// every campaign. The zero Cell has no values.
type Cell struct {
	n    int
	vals [MaxLevels]uint64
}

// Reset empties c for an impression with n dimensions (at most
// MaxLevels−1).
func (c *Cell) Reset(n int) {
	if n < 0 || n >= MaxLevels {
		panic(fmt.Sprintf("model.Cell: %d dimensions", n))
	}
	c.n = n
}

// SetValue sets dimension d to value v (hashed; v is not kept).
func (c *Cell) SetValue(d int, v []byte) { c.vals[d] = ValueHash(v) }

// Key returns the key of the cell of campaign root: the leaf of the path
// over its values (root.Child(v1).Child(v2)...), the key its exposures are
// counted under.
func (c *Cell) Key(root Key) Key {
	k := root
	for d := range c.n {
		k = k.ChildHash(c.vals[d])
	}
	return k
}
