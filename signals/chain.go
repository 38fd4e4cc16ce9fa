package signals

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/cpafeed/cpafeed/model"
)

// maxLevelFeatures bounds the features of one chain level.
const maxLevelFeatures = 8

// Chain is the configured segment backoff chain below the campaign: level j
// (1-based) refines level j-1 by the values of one or more features, e.g.
// [[publisher],[bundle],[genre],[metro]]. It is immutable and safe for
// concurrent use. For the crossed model the server builds it from the
// model's dimensions, one feature a level: a path's leaf is then the cell
// and its labels carry the cell's values to the model (Counter.Expose),
// and the journal keeps them as it keeps any path.
type Chain struct {
	levels [][]FeatureID
	names  []string
}

// NewChain builds a chain from the feature names of each level. An unknown
// name, an empty level, a level with more than 8 features or a feature used
// twice is an error naming the level ("levels[2]: unknown feature \"gnre\"").
func NewChain(levels [][]string) (*Chain, error) {
	c := &Chain{}
	used := map[FeatureID]int{}
	for i, lv := range levels {
		if len(lv) == 0 {
			return nil, fmt.Errorf("levels[%d]: no feature", i)
		}
		if len(lv) > maxLevelFeatures {
			return nil, fmt.Errorf("levels[%d]: %d features, at most %d", i, len(lv), maxLevelFeatures)
		}
		ids := make([]FeatureID, 0, len(lv))
		for _, name := range lv {
			f, ok := FeatureByName(name)
			if !ok {
				return nil, fmt.Errorf("levels[%d]: unknown feature %q", i, name)
			}
			if j, dup := used[f]; dup {
				return nil, fmt.Errorf("levels[%d]: feature %q is already used by levels[%d]", i, name, j)
			}
			used[f] = i
			ids = append(ids, f)
		}
		c.levels = append(c.levels, ids)
		c.names = append(c.names, strings.Join(lv, "+"))
	}
	return c, nil
}

// Depth is the number of levels below the campaign; a path of keys has
// Depth()+1 entries.
func (c *Chain) Depth() int { return len(c.levels) }

// LevelNames returns the name of each level below the campaign: the feature
// name, or the names joined with "+" for a level of several features. The
// slice is new on every call.
func (c *Chain) LevelNames() []string { return append([]string(nil), c.names...) }

// Keys appends the path of segment keys of imp to dst: path[0] is root (the
// campaign's model.RootKey), path[j] = path[j-1].Child(value of level j).
// For a level of several features the child value is the 8-byte
// little-endian FNV-1a 64 hash of the values, each preceded by its length as
// 8 little-endian bytes (stable: keys are persisted). It allocates nothing
// when dst has room for Depth()+1 keys.
func (c *Chain) Keys(root model.Key, imp *Imp, dst []model.Key) []model.Key {
	k := root
	dst = append(dst, k)
	for _, lv := range c.levels {
		k = levelChild(k, lv, imp)
		dst = append(dst, k)
	}
	return dst
}

// Cut returns the key of imp's first level below the campaign (path[1]
// of Keys; root for a chain of no level): the coarse cut first-price
// shading keeps its win-rate curves by. It does not allocate.
func (c *Chain) Cut(root model.Key, imp *Imp) model.Key {
	if len(c.levels) == 0 {
		return root
	}
	return levelChild(root, c.levels[0], imp)
}

// levelChild is k's child of imp's value of level lv.
func levelChild(k model.Key, lv []FeatureID, imp *Imp) model.Key {
	if len(lv) == 1 {
		return k.Child(imp.Feature(lv[0]))
	}
	h := uint64(fnvOffset)
	for _, f := range lv {
		v := imp.Feature(f)
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(v)))
		h = fnv1a(h, n[:])
		h = fnv1a(h, v)
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], h)
	return k.Child(b[:])
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnv1a(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

// Labels appends the readable value of each level of imp to dst (Depth()
// entries): the feature value, or the values joined with "+" for a level of
// several features (only those allocate). The single values are imp's
// read-only bytes.
func (c *Chain) Labels(imp *Imp, dst [][]byte) [][]byte {
	for _, lv := range c.levels {
		if len(lv) == 1 {
			dst = append(dst, imp.Feature(lv[0]))
			continue
		}
		var b []byte
		for i, f := range lv {
			if i > 0 {
				b = append(b, '+')
			}
			b = append(b, imp.Feature(f)...)
		}
		dst = append(dst, b)
	}
	return dst
}

// AppendPath appends the readable segment path of imp to dst, the campaign
// then each level's label separated by "/", e.g.
// "demo-ctv-purchase/pub-1203/com.example.tv/Sports/501". It allocates
// nothing when dst has room.
func (c *Chain) AppendPath(dst []byte, campaign string, imp *Imp) []byte {
	dst = append(dst, campaign...)
	for _, lv := range c.levels {
		dst = append(dst, '/')
		for i, f := range lv {
			if i > 0 {
				dst = append(dst, '+')
			}
			dst = append(dst, imp.Feature(f)...)
		}
	}
	return dst
}
