package conversions

import (
	"fmt"
	"strconv"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/cpafeed/cpafeed/apierr"
	"github.com/cpafeed/cpafeed/signals"
)

// Eraser serves deletion requests: DELETE /v1/identities removes the given
// identities, for the token's advertiser, from the exposure index (the
// exposures of its campaigns), its pending conversions and the dedup
// fingerprints of its events without event_id.
type Eraser struct {
	svc   *Service
	attr  *Attributor
	index *signals.Index
}

// NewEraser ties deletion to the state it removes from.
func NewEraser(svc *Service, attr *Attributor, index *signals.Index) *Eraser {
	return &Eraser{svc: svc, attr: attr, index: index}
}

// Erased is what one deletion removed.
type Erased struct {
	Identities   int
	Exposures    int
	Pending      int
	Fingerprints int
}

// erase removes the keys for the advertiser (the record's apply, and
// replay).
func (e *Eraser) erase(advertiser string, keys []uint64) Erased {
	nums := e.attr.campaignNumbers(advertiser)
	return Erased{
		Identities:   len(keys),
		Exposures:    e.index.Delete(keys, func(c uint16) bool { return nums[c] }),
		Pending:      e.attr.forgetIdentities(advertiser, keys),
		Fingerprints: e.svc.forgetIdentities(advertiser, keys),
	}
}

// deletionFields are the identity fields a deletion request may name, as in
// CAPI user_data (clear or SHA-256 hex for em, ph, external_id).
var deletionFields = []struct {
	name string
	kind signals.IDKind
}{
	{"em", signals.IDEmail}, {"ph", signals.IDPhone}, {"external_id", signals.IDExternalID},
	{"ifa", signals.IDIFA}, {"madid", signals.IDIFA}, {"client_ip_address", signals.IDIP},
	{"ip", signals.IDIP}, {"household_id", signals.IDHousehold},
}

// HandleDeleteIdentities serves DELETE /v1/identities for advertiser adv
// (the server resolved its Bearer token): a JSON body naming the identities, each a string or an
// array: {"em": [...], "ph": [...], "external_id": [...], "ifa": [...],
// "client_ip_address": [...], "household_id": [...]}. A tombstone is
// journaled before anything is removed; the answer says what was removed.
func (e *Eraser) HandleDeleteIdentities(ctx *fasthttp.RequestCtx, body Body, adv string) error {
	log := e.svc.log
	raw, err := body()
	if err != nil {
		return err
	}
	var p fastjson.Parser
	v, err := p.ParseBytes(raw)
	if err != nil || v.Type() != fastjson.TypeObject {
		return apierr.BadRequest("body: must be a JSON object of identity fields")
	}
	var keys []uint64
	var details []apierr.Detail
	var buf []byte
	add := func(field string, kind signals.IDKind, val []byte, idx int) {
		path := field
		if idx >= 0 {
			path = fmt.Sprintf("%s[%d]", field, idx)
		}
		var ok bool
		switch kind {
		case signals.IDEmail, signals.IDPhone, signals.IDExternalID:
			name := field
			var err error
			if buf, err = HashUserData(buf[:0], name, val); err != nil {
				details = append(details, apierr.Detail{Index: -1, Field: path, Reason: err.Error()})
				return
			}
			ok = true
		case signals.IDIFA:
			buf, ok = signals.NormalizeIFA(buf[:0], val)
		case signals.IDIP:
			buf, ok = signals.NormalizeIP(buf[:0], val)
		default:
			buf, ok = append(buf[:0], val...), len(val) > 0
		}
		if !ok {
			details = append(details, apierr.Detail{Index: -1, Field: path, Reason: "not a valid value"})
			return
		}
		keys = append(keys, e.svc.hasher.ID(kind, buf).Key)
	}
	known := map[string]bool{}
	for _, f := range deletionFields {
		known[f.name] = true
		fv := v.Get(f.name)
		switch {
		case fv == nil || fv.Type() == fastjson.TypeNull:
		case fv.Type() == fastjson.TypeString:
			add(f.name, f.kind, fv.GetStringBytes(), -1)
		case fv.Type() == fastjson.TypeArray:
			arr, _ := fv.Array()
			for i, x := range arr {
				if x.Type() != fastjson.TypeString {
					details = append(details, apierr.Detail{Index: -1, Field: fmt.Sprintf("%s[%d]", f.name, i), Reason: "must be a string"})
					continue
				}
				add(f.name, f.kind, x.GetStringBytes(), i)
			}
		default:
			details = append(details, apierr.Detail{Index: -1, Field: f.name, Reason: "must be a string or an array of strings"})
		}
	}
	v.GetObject().Visit(func(k []byte, _ *fastjson.Value) {
		if !known[string(k)] {
			details = append(details, apierr.Detail{Index: -1, Field: string(k), Reason: "unknown identity field"})
		}
	})
	if len(details) > 0 {
		err := apierr.BadRequest("%s: %s", details[0].Field, details[0].Reason)
		err.Details = details
		return err
	}
	if len(keys) == 0 {
		return apierr.BadRequest("body: names no identity (em, ph, external_id, ifa, madid, client_ip_address, household_id)")
	}
	var res Erased
	rec := appendDeletion(nil, adv, keys)
	lsn, epoch, err := log.AppendApply(rec, nil, func() { res = e.erase(adv, keys) })
	if err == nil {
		err = log.Wait(lsn, epoch)
	}
	if err != nil {
		return apierr.Unavailable("deletion not persisted, retry").WithCause(err)
	}
	out := append(ctx.Response.Body()[:0], `{"identities":`...)
	out = strconv.AppendInt(out, int64(res.Identities), 10)
	out = append(out, `,"exposures_removed":`...)
	out = strconv.AppendInt(out, int64(res.Exposures), 10)
	out = append(out, `,"pending_conversions_removed":`...)
	out = strconv.AppendInt(out, int64(res.Pending), 10)
	out = append(out, `,"dedup_fingerprints_removed":`...)
	out = strconv.AppendInt(out, int64(res.Fingerprints), 10)
	out = append(out, '}')
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
	return nil
}

// Replay applies a deletion record at start, in log order.
func (e *Eraser) Replay(rec []byte) error {
	adv, keys, err := decodeDeletion(rec)
	if err != nil {
		return err
	}
	e.erase(adv, keys)
	return nil
}
