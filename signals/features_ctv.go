package signals

import (
	"strings"
	"unsafe"
)

// The CTV features below are derived from raw OpenRTB fields into the few
// values a buyer segments on. The extractor and the reference decoder of
// the tests both call these functions; the tests pin their values.

// positionOf maps imp.video.startdelay (set: the field was given) to the
// ad's position in the content: "preroll" (0), "midroll" (−1, generic
// mid-roll, or > 0, a mid-roll starting that many seconds in),
// "postroll" (−2), "" (not given, or another negative value). OpenRTB 2.6
// §3.2.7 and AdCOM List: Start Delay Modes. The field is a pointer in
// openrtb2 (Video.StartDelay): absent is unknown, not pre-roll.
func positionOf(set bool, v int64) string {
	switch {
	case !set:
		return ""
	case v == 0:
		return "preroll"
	case v == -1 || v > 0:
		return "midroll"
	case v == -2:
		return "postroll"
	}
	return ""
}

// slotOf maps imp.video.slotinpod to the imp's slot in its ad pod: 1
// "first", −1 "last", 2 "first_or_last" (AdCOM List: Slot Position in
// Pod). 0 (any position, also what an absent field reads as) means
// "middle" for a slot of a structured pod (podid given, and the imp is not
// itself a dynamic pod: no maxseq, poddur or rqddurs) — the slots of a
// structured pod that are neither first nor last carry 0 — and "any" for a
// dynamic pod; "" elsewhere.
func slotOf(slotInPod int8, inPod, dynamic bool) string {
	switch slotInPod {
	case 1:
		return "first"
	case -1:
		return "last"
	case 2:
		return "first_or_last"
	case 0:
		switch {
		case dynamic:
			return "any"
		case inPod:
			return "middle"
		}
	}
	return ""
}

// dynamicSlots is how many ads a dynamic pod described by one imp may hold:
// maxseq when given, else the number of required durations (rqddurs), else
// poddur in 30-second spots (rounded up; 30 s is the standard CTV spot),
// else 0 (not a dynamic pod).
func dynamicSlots(maxSeq int64, rqdDurs int, podDur int64) int64 {
	switch {
	case maxSeq > 0:
		return maxSeq
	case rqdDurs > 0:
		return int64(rqdDurs)
	case podDur > 0:
		return (podDur + 29) / 30
	}
	return 0
}

// podSizeBucket buckets the number of ad slots of a pod: "1", "2-3",
// "4-6", "7+"; "" for 0 (unknown). A pod's slots are its fixed slots (the
// imps of the request that share its podid and are not dynamic) plus the
// dynamicSlots of its dynamic imps; an imp without podid is a pod of its
// own dynamicSlots.
func podSizeBucket(n int64) string {
	switch {
	case n <= 0:
		return ""
	case n == 1:
		return "1"
	case n <= 3:
		return "2-3"
	case n <= 6:
		return "4-6"
	}
	return "7+"
}

// daypartOf maps the viewer's local hour (0-23) to a US television
// daypart, at hour resolution:
//
//	early_morning 06-09, daytime 09-16, early_fringe 16-20 (with prime
//	access), prime 20-23, late_fringe 23-01 (with the late news),
//	overnight 01-06
//
// after the standard broadcast dayparts (Barron's Dictionary of Marketing
// Terms, "daypart": morning 7-9 a.m., daytime 9 a.m.-4:30 p.m., early
// fringe 4:30-7:30 p.m., prime access 7:30-8, prime 8-11, late news
// 11-11:30, late fringe 11:30 p.m.-1 a.m.; Wikipedia "Dayparting"). Prime
// is 8-11 p.m. in the Eastern and Pacific zones and 7-10 p.m. in the
// Central and Mountain ones; the local hour cannot tell the zones apart,
// so 19:00-20:00 counts as early fringe everywhere. Other hours give "".
func daypartOf(hour int) string {
	switch {
	case hour < 0 || hour > 23:
		return ""
	case hour >= 6 && hour < 9:
		return "early_morning"
	case hour >= 9 && hour < 16:
		return "daytime"
	case hour >= 16 && hour < 20:
		return "early_fringe"
	case hour >= 20 && hour < 23:
		return "prime"
	case hour == 23 || hour == 0:
		return "late_fringe"
	}
	return "overnight"
}

// contentLenBucket buckets content.len (seconds) by the kind of
// programme: "clip" (under 5 minutes), "half_hour" (5-35 min: a half-hour
// episode runs about 22 minutes without ads), "hour" (35-75 min), "long"
// (75 min or more: films, sports events); "" when not given (≤ 0).
func contentLenBucket(sec int64) string {
	switch {
	case sec <= 0:
		return ""
	case sec < 5*60:
		return "clip"
	case sec < 35*60:
		return "half_hour"
	case sec < 75*60:
		return "hour"
	}
	return "long"
}

// DeviceIFA reports whether an IFA of the given ifa_type
// (device.ext.ifa_type, any letter case) is a device's advertising id,
// worth keeping in the identity index. The IAB Tech Lab "Guidelines for
// Identifier for Advertising (IFA) on CTV/OTT platforms" (2018, updated
// 2020) have the type say where the id comes from: the device (dpid, or a
// platform's name: rida Roku, aaid/adid Android, idfa Apple, afai Amazon,
// tifa Samsung, vida Vizio, lgudid LG, msai Microsoft, ...), the publisher
// (ppid), the SSP (sspid) or a temporary session (sessionid). A
// publisher- or SSP-scoped id is not the id a conversion carries, and a
// session id lives minutes: neither can match one, so they are not
// indexed. An absent type, or one not named here (platforms add their
// own), is taken for a device id, as before ifa_type was read.
func DeviceIFA(ifaType []byte) bool {
	for _, t := range [...]string{"ppid", "sspid", "sessionid", "session_id"} {
		if len(ifaType) == len(t) && strings.EqualFold(unsafe.String(unsafe.SliceData(ifaType), len(ifaType)), t) {
			return false
		}
	}
	return true
}
