package conversions

// ISO 4217 currency codes (iso-codes 4.15.0, plus XCG and ZWG introduced since;
// withdrawn codes such as HRK stay accepted), sorted, each followed by a space.
// Lookups binary-search the string, so a match returns a substring of it and
// allocates nothing.
const iso4217 = "" +
	"AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP " +
	"BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB " +
	"EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD " +
	"JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU " +
	"MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD " +
	"RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY " +
	"TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD " +
	"XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL " +
	""

// ISO 3166-1 alpha-2 country codes (iso-codes 4.15.0), lower case, sorted,
// each followed by a space.
const iso3166 = "" +
	"ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo bq br bs " +
	"bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee " +
	"eg eh er es et fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm " +
	"hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km kn kp kr kw ky kz la lb lc " +
	"li lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp mq mr ms mt mu mv mw mx my mz na " +
	"nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw py qa re ro rs ru rw " +
	"sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st sv sx sy sz tc td tf tg th tj tk tl tm tn to " +
	"tr tt tv tw tz ua ug um us uy uz va vc ve vg vi vn vu wf ws ye yt za zm zw " +
	""

// currencyCode returns the canonical (upper case) ISO 4217 code for b, in
// any case, or "" when b is not one.
func currencyCode(b []byte) string {
	if len(b) != 3 {
		return ""
	}
	var k [3]byte
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c < 'A' || c > 'Z' {
			return ""
		}
		k[i] = c
	}
	return lookupCode(iso4217, k[:])
}

// isCountry reports whether b is a lower-case ISO 3166-1 alpha-2 code.
func isCountry(b []byte) bool { return len(b) == 2 && lookupCode(iso3166, b) != "" }

// lookupCode binary-searches list (fixed-width codes, each followed by a
// space) for k and returns the matching substring of list.
func lookupCode(list string, k []byte) string {
	w := len(k) + 1
	lo, hi := 0, len(list)/w
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		c := list[m*w : m*w+len(k)]
		switch {
		case c == string(k):
			return c
		case c < string(k):
			lo = m + 1
		default:
			hi = m
		}
	}
	return ""
}
