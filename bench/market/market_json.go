package market

import (
	"github.com/cpafeed/cpafeed/apierr"
	"strconv"
)

// JSON is written by hand with append functions: the generator renders
// millions of requests per simulated run, and the output must be the same
// bytes for the same seed (no map iteration anywhere).

const hexDigits = "0123456789abcdef"

// appendKey appends ,"k": (or "k": right after an opening brace).
func appendKey(dst []byte, k string) []byte {
	if n := len(dst); n > 0 && dst[n-1] != '{' && dst[n-1] != '[' {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, k...)
	return append(dst, '"', ':')
}

func appendKV(dst []byte, k, v string) []byte {
	return apierr.AppendString(appendKey(dst, k), v)
}

func appendKI(dst []byte, k string, v int64) []byte {
	return strconv.AppendInt(appendKey(dst, k), v, 10)
}

// appendPrice appends a price with at most 4 decimals and no trailing zeros.
func appendPrice(dst []byte, v float64) []byte {
	return strconv.AppendFloat(dst, v, 'f', -1, 64)
}

func appendHex64(dst []byte, v uint64) []byte {
	for i := 60; i >= 0; i -= 4 {
		dst = append(dst, hexDigits[(v>>uint(i))&0xf])
	}
	return dst
}

// AppendRequestID appends the id of o's bid request (a UUID derived from the
// seed and o.Seq).
func (m *Market) AppendRequestID(dst []byte, o *Opportunity) []byte {
	h := hash3(m.seed, tagRequestID, o.Seq)
	return append(dst, uuid(h, mix64(h+1))...)
}

// RequestID returns the id of o's bid request.
func (m *Market) RequestID(o *Opportunity) string { return string(m.AppendRequestID(nil, o)) }

// HouseholdEIDSource is the user.eids source of the market's household
// graph: its ids are the household ids conversions carry as household_id
// (a cpafeed configured with identity.household_eid_sources matches them).
const HouseholdEIDSource = "hhgraph.example"

// AppendBidRequest appends o as an OpenRTB 2.6 CTV BidRequest (JSON).
func (m *Market) AppendBidRequest(dst []byte, o *Opportunity) []byte {
	hh := &m.households[o.Household]
	tv := &m.tvs[o.TV]
	dev := &m.sc.Inventory.Devices[o.Device]
	pub := &m.pubs[o.Publisher]
	b := &m.bundles[o.Bundle]
	mt := &m.metros[o.Metro]
	var idBuf [36]byte
	id := m.AppendRequestID(idBuf[:0], o)

	dst = append(dst, `{"id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","imp":[`...)
	podID := "pod-1"
	podSeq, startDelay := 1, 0
	if o.midroll {
		podID = "pod-" + strconv.Itoa(2+int(o.content%5))
		podSeq, startDelay = 0, -1
	}
	for i, s := range o.Slots {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":"`...)
		dst = append(dst, s.ImpID...)
		dst = append(dst, `","video":{"mimes":["video/mp4","video/webm","application/x-mpegURL"],"minduration":5`...)
		dst = appendKI(dst, "maxduration", int64(s.MaxDuration))
		dst = appendKI(dst, "startdelay", int64(startDelay))
		dst = append(dst, `,"protocols":[2,3,5,6,7,8],"w":1920,"h":1080,"plcmt":1,"linearity":1,"skip":0,"battr":[13,14],"maxbitrate":16000,"boxingallowed":1,"playbackmethod":[1],"playbackend":1,"delivery":[2],"pos":7`...)
		dst = appendKV(dst, "podid", podID)
		dst = appendKI(dst, "podseq", int64(podSeq))
		dst = appendKI(dst, "slotinpod", int64(s.SlotInPod))
		dst = append(dst, '}')
		dst = appendKV(dst, "tagid", b.id+"-"+podID)
		if s.FloorCPM > 0 {
			dst = appendPrice(appendKey(dst, "bidfloor"), s.FloorCPM)
			dst = append(dst, `,"bidfloorcur":"USD"`...)
		}
		dst = append(dst, `,"secure":1,"exp":300}`...)
	}
	dst = append(dst, `],"app":{`...)
	dst = appendKV(dst, "id", "app-"+strconv.Itoa(int(o.Bundle)+1))
	dst = appendKV(dst, "name", b.name)
	dst = appendKV(dst, "bundle", b.id)
	dst = appendKV(dst, "storeurl", b.storeURL)
	dst = appendKV(dst, "domain", pub.domain)
	dst = append(dst, `,"cat":["IAB1"],"ver":"4.2.1","publisher":{`...)
	dst = appendKV(dst, "id", pub.id)
	dst = appendKV(dst, "name", pub.name)
	dst = appendKV(dst, "domain", pub.domain)
	dst = append(dst, `},"content":{"id":"ct-`...)
	series := int(hash3(m.seed, uint64(o.Bundle), o.content%12) % uint64(len(seriesWords)*len(nameWords1)))
	season, episode := 1+int(o.content>>8%6), 1+int(o.content>>16%22)
	seriesName := "The " + nameWords1[series%len(nameWords1)] + " " + seriesWords[series/len(nameWords1)]
	dst = strconv.AppendInt(dst, int64(o.Bundle)*1000+int64(series), 10)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, int64(season*100+episode), 10)
	dst = append(dst, '"')
	dst = appendKI(dst, "episode", int64(episode))
	dst = appendKV(dst, "title", seriesName+" S"+strconv.Itoa(season)+"E"+strconv.Itoa(episode))
	dst = appendKV(dst, "series", seriesName)
	dst = appendKV(dst, "season", strconv.Itoa(season))
	dst = appendKV(dst, "genre", m.genres[o.Genre])
	dst = appendKV(dst, "contentrating", contentRatings[o.content>>24%uint64(len(contentRatings))])
	live, length := 0, 1320+1320*int(o.content>>32%3)
	if o.Live {
		live, length = 1, 0
	}
	dst = appendKI(dst, "livestream", int64(live))
	if length > 0 {
		dst = appendKI(dst, "len", int64(length))
	}
	dst = append(dst, `,"language":"en","prodq":1,"context":1,"network":{`...)
	dst = appendKV(dst, "id", "net-"+pub.id[4:])
	dst = appendKV(dst, "name", pub.name)
	dst = append(dst, `},"channel":{`...)
	dst = appendKV(dst, "id", "ch-"+b.id)
	dst = appendKV(dst, "name", b.name)
	dst = append(dst, `}}`...)
	dst = appendKV(dst, "inventorypartnerdomain", pub.domain)

	dst = append(dst, `},"device":{`...)
	dst = appendKV(dst, "ua", dev.UA)
	dst = append(dst, `,"geo":{"country":"USA"`...)
	dst = appendKV(dst, "region", mt.region)
	dst = appendKV(dst, "metro", mt.code)
	dst = appendKV(dst, "city", mt.name)
	dst = appendKI(dst, "utcoffset", int64(mt.utcOffset))
	dst = append(dst, `,"type":2,"ipservice":3}`...)
	lmt, ifa := 0, tv.ifa
	if tv.lmt {
		lmt, ifa = 1, "00000000-0000-0000-0000-000000000000"
	}
	dst = appendKI(dst, "dnt", int64(lmt))
	dst = appendKI(dst, "lmt", int64(lmt))
	dst = append(m.appendIP(append(appendKey(dst, "ip"), '"'), o.Household, o.Day), '"')
	dst = appendKI(dst, "devicetype", int64(dev.DeviceType))
	dst = appendKV(dst, "make", dev.Make)
	dst = appendKV(dst, "model", dev.Model)
	dst = appendKV(dst, "os", dev.OS)
	dst = appendKV(dst, "osv", dev.OSV)
	dst = append(dst, `,"h":1080,"w":1920,"language":"en","connectiontype":2`...)
	dst = appendKV(dst, "ifa", ifa)
	dst = append(dst, `,"ext":{`...)
	dst = appendKV(dst, "ifa_type", dev.IFAType)
	dst = append(dst, `}}`...)

	dst = append(dst, `,"user":{"id":"`...)
	dst = appendHex64(dst, hash3(m.seed, tagRequestID, uint64(o.TV)))
	dst = append(dst, '"')
	if o.Privacy&PrivacyGDPR != 0 {
		switch {
		case o.Privacy&PrivacyGDPRConsent != 0:
			dst = appendKV(dst, "consent", tcfAllGranted)
		case !o.gdprNoTCF:
			dst = appendKV(dst, "consent", tcfPurpose1Denied)
		}
	}
	if o.eid {
		dst = append(dst, `,"eids":[{"source":"`+HouseholdEIDSource+`","uids":[{"id":"`...)
		dst = append(dst, hh.id...)
		dst = append(dst, `","atype":1}]}]`...)
	}
	dst = append(dst, '}')

	at := 2
	if m.sc.Market.Auction == FirstPrice {
		at = 1
	}
	dst = appendKI(dst, "at", int64(at))
	dst = append(dst, `,"tmax":300,"cur":["USD"],"bcat":`...)
	dst = append(dst, bcatList...)
	dst = append(dst, `,"badv":`...)
	dst = append(dst, badvList...)
	dst = append(dst, `,"source":{"tid":"`...)
	h := hash3(m.seed, tagRequestID^0xff, o.Seq)
	dst = append(dst, uuid(h, ^h)...)
	dst = append(dst, `","schain":{"complete":1,"nodes":[{"asi":"ctv-ssp.example","sid":"`...)
	dst = append(dst, pub.id...)
	dst = append(dst, `","rid":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","hp":1}],"ver":"1.0"}}`...)

	if o.Privacy&(PrivacyCOPPA|PrivacyGDPR) != 0 || hh.usp != 0 || hh.gpp != 0 {
		dst = append(dst, `,"regs":{`...)
		if o.Privacy&PrivacyCOPPA != 0 {
			dst = append(dst, `"coppa":1`...)
		}
		if o.Privacy&PrivacyGDPR != 0 {
			dst = appendKI(dst, "gdpr", 1)
		}
		switch hh.usp {
		case 1:
			dst = appendKV(dst, "us_privacy", "1YNN")
		case 2:
			dst = appendKV(dst, "us_privacy", "1YYN")
		}
		switch hh.gpp {
		case 1:
			dst = appendKV(dst, "gpp", gppUSNatNoOptOut)
		case 2:
			dst = appendKV(dst, "gpp", gppUSNatOptOut)
		}
		if hh.gpp != 0 {
			dst = append(dst, `,"gpp_sid":[7]`...)
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

var contentRatings = [...]string{"TV-G", "TV-PG", "TV-14", "TV-MA", "TV-Y7"}

// AppendExposure appends one exposure object of POST /v1/exposures: campaign
// c with creative k won slot s of o at priceCPM and was shown at ts (unix
// seconds). A body is {"exposures":[object, ...]} or the objects as NDJSON.
func (m *Market) AppendExposure(dst []byte, o *Opportunity, s, c, k int, priceCPM float64, ts int64) []byte {
	dst = append(dst, `{"request":`...)
	dst = m.AppendBidRequest(dst, o)
	dst = appendKV(dst, "imp_id", o.Slots[s].ImpID)
	dst = appendKV(dst, "campaign", m.sc.Campaigns[c].ID)
	dst = appendKV(dst, "creative", m.Creative(c, k))
	dst = appendPrice(appendKey(dst, "price_cpm"), priceCPM)
	dst = appendKI(dst, "ts", ts)
	return append(dst, '}')
}

// AppendWinURL appends the path and query of the win notice of campaign c
// with creative k in slot s of o, cleared at priceCPM.
func (m *Market) AppendWinURL(dst []byte, o *Opportunity, s, c, k int, priceCPM float64) []byte {
	dst = append(dst, "/v1/win?auction="...)
	dst = m.AppendRequestID(dst, o)
	dst = append(dst, "&imp="...)
	dst = append(dst, o.Slots[s].ImpID...)
	dst = append(dst, "&campaign="...)
	dst = append(dst, m.sc.Campaigns[c].ID...)
	dst = append(dst, "&creative="...)
	dst = append(dst, m.Creative(c, k)...)
	dst = append(dst, "&price="...)
	return appendPrice(dst, priceCPM)
}

// AppendVASTURL appends the path and query of the VAST tracking beacon for
// event ev (a VASTEvent name) of campaign c in slot s of o.
func (m *Market) AppendVASTURL(dst []byte, o *Opportunity, s, c int, ev string) []byte {
	dst = append(dst, "/v1/vast?auction="...)
	dst = m.AppendRequestID(dst, o)
	dst = append(dst, "&imp="...)
	dst = append(dst, o.Slots[s].ImpID...)
	dst = append(dst, "&campaign="...)
	dst = append(dst, m.sc.Campaigns[c].ID...)
	dst = append(dst, "&ev="...)
	return append(dst, ev...)
}
