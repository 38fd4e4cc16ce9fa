package signals

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
	"unsafe"
)

// WinSigner makes and checks the sig parameter of a bidder's win notices
// and VAST beacons (GET /v1/win, /v1/vast): the lowercase hex of
// HMAC-SHA-256, keyed with the bidder's win_secret, of
//
//	auction + "\n" + imp + "\n" + campaign
//
// (the values as the URL carries them once decoded). It proves that the
// bidder, who alone besides cpafeed knows the secret, wrote the URL for
// that auction, imp and campaign; the price (the ${AUCTION_PRICE} macro,
// substituted by the exchange after the bidder signed) and the creative
// are not covered. A value containing a newline never verifies (it would
// make the message ambiguous). A WinSigner is safe for concurrent use and
// checks without allocating in steady state.
//
// While a bidder rotates its secret, the signer also accepts the previous
// one (NewWinSigner's previous): URLs signed before the bidder switched
// keep arriving for as long as their ads play (VAST beacons) and their
// notices are retried.
type WinSigner struct {
	pool sync.Pool  // *winMAC
	prev *WinSigner // the previous secret's, accepted, never signed with; nil = none
}

type winMAC struct {
	h   hash.Hash
	sum [sha256.Size]byte
	got [sha256.Size]byte
}

var newline = []byte{'\n'}

// NewWinSigner returns the signer of a bidder's win_secret; a non-empty
// previous (the secret before a rotation) is accepted by Valid too.
func NewWinSigner(secret []byte, previous ...[]byte) *WinSigner {
	key := bytes.Clone(secret)
	s := &WinSigner{}
	s.pool.New = func() any { return &winMAC{h: hmac.New(sha256.New, key)} }
	if len(previous) > 0 && len(previous[0]) > 0 {
		s.prev = NewWinSigner(previous[0])
	}
	return s
}

// mac computes the signature of (auction, imp, campaign) into m.sum.
func (s *WinSigner) mac(auction, imp []byte, campaign string) *winMAC {
	m := s.pool.Get().(*winMAC)
	m.h.Reset()
	m.h.Write(auction)
	m.h.Write(newline)
	m.h.Write(imp)
	m.h.Write(newline)
	m.h.Write(unsafe.Slice(unsafe.StringData(campaign), len(campaign)))
	m.h.Sum(m.sum[:0])
	return m
}

// AppendSig appends the sig parameter's value (64 hex digits) for
// (auction, imp, campaign) to dst: what a Go bidder puts in its burl.
func (s *WinSigner) AppendSig(dst []byte, auction, imp, campaign string) []byte {
	m := s.mac(unsafe.Slice(unsafe.StringData(auction), len(auction)), unsafe.Slice(unsafe.StringData(imp), len(imp)), campaign)
	dst = hex.AppendEncode(dst, m.sum[:])
	s.pool.Put(m)
	return dst
}

// Valid reports whether sig (hex, either case) is the signature of
// (auction, imp, campaign) under the secret, or under the previous one. It
// compares in constant time.
func (s *WinSigner) Valid(sig, auction, imp []byte, campaign string) bool {
	if s.valid(sig, auction, imp, campaign) {
		return true
	}
	return s.prev != nil && s.prev.valid(sig, auction, imp, campaign)
}

func (s *WinSigner) valid(sig, auction, imp []byte, campaign string) bool {
	if len(sig) != 2*sha256.Size || bytes.IndexByte(auction, '\n') >= 0 || bytes.IndexByte(imp, '\n') >= 0 ||
		bytes.IndexByte(unsafe.Slice(unsafe.StringData(campaign), len(campaign)), '\n') >= 0 {
		return false
	}
	m := s.mac(auction, imp, campaign)
	_, err := hex.Decode(m.got[:], sig)
	ok := err == nil && hmac.Equal(m.sum[:], m.got[:])
	s.pool.Put(m)
	return ok
}
