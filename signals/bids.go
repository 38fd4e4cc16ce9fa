package signals

import (
	"bytes"
	"encoding/binary"

	"github.com/cpafeed/cpafeed/binenc"
	"github.com/cpafeed/cpafeed/model"
)

// remembered is what cpafeed keeps of a scored bid request until its win
// notices: one pointer-free record (so the garbage collector never scans
// it, and a request costs one allocation), identities only as keyed
// hashes computed once for the request. Layout:
//
//	ts       int64, little endian: Unix seconds the bid was seen
//	flags    byte: bit 0 set when the request passed the privacy gates;
//	         bit 1 set when the imps hold NumFeatures features (else the
//	         numFeaturesV1 of records written before FeaturePosition)
//	key      uvarint length, bytes: the auction id (the cache key)
//	bidder   uvarint length, bytes
//	ids      uvarint count, then per id its kind (byte) and key (uint64 LE)
//	imps     uvarint count, then per imp its id (uvarint length, bytes) and
//	         per feature a uvarint code: 0 the previous imp's value (a
//	         pod's imps share the request's features), else 1 + the
//	         value's length, then the value (code 1: Unknown)
//
// Records are immutable once stored: the slices decoded from one alias it.
type remembered []byte

const rememberedHeader = 9 // ts and flags

func (r remembered) ts() int64     { return int64(binary.LittleEndian.Uint64(r)) }
func (r remembered) indexed() bool { return r[8]&1 == 1 }

// features is how many features per imp the record holds.
func (r remembered) features() int {
	if len(r) >= rememberedHeader && r[8]&2 != 0 {
		return int(NumFeatures)
	}
	return numFeaturesV1
}

// appendRemembered appends the record of a request to dst.
func appendRemembered(dst []byte, key []byte, bidder string, ts int64, indexed bool, ids []ID, imps []Imp) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(ts))
	flags := byte(2)
	if indexed {
		flags |= 1
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	dst = binary.AppendUvarint(dst, uint64(len(bidder)))
	dst = append(dst, bidder...)
	dst = binary.AppendUvarint(dst, uint64(len(ids)))
	for _, id := range ids {
		dst = append(dst, byte(id.Kind))
		dst = binary.LittleEndian.AppendUint64(dst, id.Key)
	}
	dst = binary.AppendUvarint(dst, uint64(len(imps)))
	for i := range imps {
		imp := &imps[i]
		dst = binary.AppendUvarint(dst, uint64(len(imp.ID)))
		dst = append(dst, imp.ID...)
		for f := range NumFeatures {
			v := knownFeature(imp, f)
			if i > 0 && bytes.Equal(v, knownFeature(&imps[i-1], f)) {
				dst = append(dst, 0)
				continue
			}
			dst = binary.AppendUvarint(dst, uint64(len(v))+1)
			dst = append(dst, v...)
		}
	}
	return dst
}

// knownFeature is feature f of imp, empty when Unknown (the extractor
// writes the word).
func knownFeature(imp *Imp, f FeatureID) []byte {
	if v := imp.feat[f]; string(v) != Unknown {
		return v
	}
	return nil
}

// maxRemembered bounds a remembered bid's record, so that every record a
// snapshot holds can be read back (ReadSnapshot refuses longer ones). A
// CTV request takes a few hundred bytes; one over 1 MiB (tens of thousands
// of imps) is not remembered, and counted.
const maxRemembered = 1 << 20

// key returns the auction id of the record.
func (r remembered) key() []byte {
	d := binenc.NewSlice(r, errRecord)
	d.Raw(rememberedHeader, "remembered bid")
	return d.Bytes("auction id")
}

// bidder returns the name of the bidder that remembered the bid.
func (r remembered) bidder() []byte {
	d := binenc.NewSlice(r, errRecord)
	d.Raw(rememberedHeader, "remembered bid")
	d.Bytes("auction id")
	return d.Bytes("bidder")
}

// head decodes the record up to its imps: the key, the bidder and the
// identities (appended to ids), and returns the number of imps.
func (r remembered) head(d *binenc.Slice, ids []ID) (key, bidder []byte, _ []ID, nImps int) {
	*d = binenc.NewSlice(r, errRecord)
	d.Raw(rememberedHeader, "remembered bid")
	key = d.Bytes("auction id")
	bidder = d.Bytes("bidder")
	for range d.Count(9, "identities") {
		ids = append(ids, ID{Kind: IDKind(d.Byte("identity kind")), Key: d.U64("identity")})
	}
	return key, bidder, ids, d.Count(1+r.features(), "imps")
}

// nextImp decodes the next imp of a record of nf features into imp, whose
// features hold the previous imp's (the first: zero values).
func nextImp(d *binenc.Slice, imp *Imp, first bool, nf int) {
	imp.ID = d.Bytes("imp id")
	for f := range FeatureID(nf) {
		switch c := d.Uvarint("feature"); {
		case c == 0 && first:
			d.Fail("feature", "the first imp refers to a previous one")
		case c > 0 && c-1 <= uint64(d.Len()):
			imp.feat[f] = d.Raw(int(c-1), "feature")
		case c > 0:
			d.Fail("feature", "truncated")
		}
	}
}

// find decodes the imp with id into imp and returns its identities (the
// request's, without the IP when its ads are stitched server-side).
func (r remembered) find(id []byte, imp *Imp) (ids []ID, ok bool) {
	var d binenc.Slice
	_, _, ids, n := r.head(&d, nil)
	for i := 0; i < n && d.Err() == nil; i++ {
		nextImp(&d, imp, i == 0, r.features())
		if d.Err() == nil && bytes.Equal(imp.ID, id) {
			if serverStitched(imp) {
				ids = withoutIP(ids)
			}
			return ids, true
		}
	}
	return nil, false
}

// valid reports whether the record decodes to its end (snapshots).
func (r remembered) valid() bool {
	var d binenc.Slice
	_, _, _, n := r.head(&d, nil)
	var imp Imp
	for i := 0; i < n && d.Err() == nil; i++ {
		nextImp(&d, &imp, i == 0, r.features())
	}
	return d.Err() == nil && d.Len() == 0
}

// withoutIP removes the IP identities from ids, in place.
func withoutIP(ids []ID) []ID {
	out := ids[:0]
	for _, id := range ids {
		if id.Kind != IDIP {
			out = append(out, id)
		}
	}
	return out
}

// impIDs appends the identity keys of an imp of req: the request's, without
// the IP when the imp's ads are stitched server-side (imp.ssai = 3: the IP
// is the stitcher's, not the household's).
func (x *Exposures) impIDs(req *Request, imp *Imp, dst []ID) []ID {
	start := len(dst)
	dst = req.IDs(x.hasher, dst)
	if serverStitched(imp) {
		dst = dst[:start+len(withoutIP(dst[start:]))]
	}
	return dst
}

func serverStitched(imp *Imp) bool { return string(imp.Feature(FeatureSSAI)) == "3" }

// Remember keeps the request (every imp) for its win notices (BidTTL): one
// record copied into the bid memory, the identities hashed once; nothing
// allocated in steady state. Nothing of req is retained. It returns the
// number of imps remembered: 0 for a request too large to keep or a bid_ttl
// under a second.
func (x *Exposures) Remember(req *Request, bidder string, now int64) int {
	if x.bids.ttl == 0 {
		return 0 // a bid_ttl under a second keeps nothing
	}
	allowed, _ := Gate(req.Privacy(), x.cfg.TCFVendorID)
	var idBuf [8]ID
	ids := idBuf[:0]
	if allowed { // a gated request's exposure never enters the index: keep no identity of it
		ids = req.IDs(x.hasher, ids)
	}
	buf := x.recBufs.Get().(*[]byte)
	*buf = appendRemembered((*buf)[:0], req.ID, bidder, now, allowed, ids, req.Imps)
	if len(*buf) > maxRemembered {
		bidsTooLarge.Inc()
		return 0 // and the buffer is left to the GC
	}
	x.bids.put(*buf)
	x.recBufs.Put(buf)
	bidsRemembered.Add(len(req.Imps))
	return len(req.Imps)
}

// rememberWon keeps the leaf of a won exposure, ingested at the Unix second
// ingest, for its VAST events.
func (x *Exposures) rememberWon(e *exposure, leaf model.Key, ingest int64) {
	x.won.put(wonHash(e.auction, e.imp, e.campaign), wonEntry{leaf: leaf, ts: ingest}, x.now().Unix())
}

// lookupBid returns the bid bidder remembered for an auction, the newer if
// it was remembered twice, unless it is BidTTL old.
func (x *Exposures) lookupBid(auction []byte, bidder string) (remembered, bool) {
	return x.bids.get(auction, bidder, x.now().Unix())
}

// winBid finds the remembered bid a win notice or beacon of campaign in
// auction is for: the bid of a bidder that may use campaign (several may
// have scored one auction: exchanges send one id to every bidder). Among
// several, one whose signer accepts sig goes first (the signature says
// whose win it is), then the newest. signer is that bidder's (nil: it
// signs nothing); ok is false when no such bid is held.
func (x *Exposures) winBid(auction, impID []byte, campaign string, sig []byte) (r remembered, signer *WinSigner, ok bool) {
	if x.bidders == nil {
		return nil, nil, false
	}
	signed := false
	for _, b := range x.bidders.CampaignBidders(campaign) {
		rb, held := x.lookupBid(auction, b.Name)
		if !held {
			continue
		}
		valid := b.Signer != nil && b.Signer.Valid(sig, auction, impID, campaign)
		if !ok || valid && !signed || valid == signed && rb.ts() > r.ts() {
			r, signer, ok, signed = rb, b.Signer, true, valid
		}
	}
	return r, signer, ok
}
