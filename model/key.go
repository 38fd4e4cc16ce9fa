package model

import (
	"github.com/cespare/xxhash/v2"
)

// Key identifies one node of a segment's backoff chain: the campaign at level 0,
// then one more feature value per level. Keys are stable across runs (they are
// written to the journal and snapshots), so the hash below must never change.
type Key uint64

// RootKey is the level-0 key of a campaign.
func RootKey(campaign string) Key {
	return Key(mix(0x6370616665656400 ^ xxhash.Sum64String(campaign)))
}

// Child is the key of the node one level below k whose feature value is v.
// It does not allocate.
func (k Key) Child(v []byte) Key {
	return Key(mix(uint64(k)*0x9e3779b97f4a7c15 ^ xxhash.Sum64(v)))
}

// mix is the splitmix64 finalizer: it spreads the bits of x so that keys of
// siblings differ in every bit position.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// ValueHash is the hash of a feature value as keys use it:
// k.Child(v) == k.ChildHash(ValueHash(v)).
func ValueHash(v []byte) uint64 { return xxhash.Sum64(v) }

// ChildHash is Child of a value given by its ValueHash.
func (k Key) ChildHash(h uint64) Key {
	return Key(mix(uint64(k)*0x9e3779b97f4a7c15 ^ h))
}

// effectSalt is the hash of an effect key's name, which keys its levels.
func effectSalt(name string) uint64 { return mix(0x6566666563740000 ^ xxhash.Sum64String(name)) }

// valueKey identifies the values vals of effect table (salt, dims),
// whatever the campaign: it keys the values an advertiser's campaigns
// share.
func valueKey(salt uint64, dims []uint8, vals *[MaxLevels]uint64) uint64 {
	h := salt
	for _, d := range dims {
		h = mix(h*0x9e3779b97f4a7c15 ^ vals[d])
	}
	return h
}

// levelKey is the key of the level of the campaign root whose values have
// valueKey vk: stable (snapshots and embedded scorers compute it),
// independent of the order of the tables.
func levelKey(root Key, vk uint64) Key {
	return Key(mix(uint64(root)*0xd1b54a32d192ed03 ^ vk ^ 0x6c6576656c000000))
}
