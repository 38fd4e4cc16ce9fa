package market

// Built-in name lists of the synthetic market. They are read-only.

// metroInfo is a Nielsen DMA: code, name, state and standard-time UTC offset
// in minutes.
type metroInfo struct {
	code, name, region string
	utcOffset          int
}

var builtinMetros = [...]metroInfo{
	{"501", "New York", "NY", -300}, {"803", "Los Angeles", "CA", -480}, {"602", "Chicago", "IL", -360},
	{"504", "Philadelphia", "PA", -300}, {"623", "Dallas-Ft. Worth", "TX", -360}, {"807", "San Francisco-Oakland-San Jose", "CA", -480},
	{"511", "Washington DC", "DC", -300}, {"618", "Houston", "TX", -360}, {"506", "Boston", "MA", -300},
	{"524", "Atlanta", "GA", -300}, {"539", "Tampa-St. Petersburg", "FL", -300}, {"753", "Phoenix", "AZ", -420},
	{"613", "Minneapolis-St. Paul", "MN", -360}, {"505", "Detroit", "MI", -300}, {"819", "Seattle-Tacoma", "WA", -480},
	{"751", "Denver", "CO", -420}, {"528", "Miami-Ft. Lauderdale", "FL", -300}, {"534", "Orlando-Daytona Beach-Melbourne", "FL", -300},
	{"510", "Cleveland-Akron", "OH", -300}, {"862", "Sacramento-Stockton-Modesto", "CA", -480}, {"517", "Charlotte", "NC", -300},
	{"820", "Portland", "OR", -480}, {"508", "Pittsburgh", "PA", -300}, {"560", "Raleigh-Durham", "NC", -300},
	{"609", "St. Louis", "MO", -360}, {"527", "Indianapolis", "IN", -300}, {"659", "Nashville", "TN", -360},
	{"512", "Baltimore", "MD", -300}, {"825", "San Diego", "CA", -480}, {"770", "Salt Lake City", "UT", -420},
	{"616", "Kansas City", "MO", -360}, {"535", "Columbus", "OH", -300}, {"641", "San Antonio", "TX", -360},
	{"617", "Milwaukee", "WI", -360}, {"515", "Cincinnati", "OH", -300}, {"839", "Las Vegas", "NV", -480},
	{"533", "Hartford-New Haven", "CT", -300}, {"548", "West Palm Beach-Ft. Pierce", "FL", -300}, {"635", "Austin", "TX", -360},
	{"571", "Ft. Myers-Naples", "FL", -300}, {"544", "Norfolk-Portsmouth-Newport News", "VA", -300}, {"561", "Jacksonville", "FL", -300},
	{"650", "Oklahoma City", "OK", -360}, {"640", "Memphis", "TN", -360}, {"556", "Richmond-Petersburg", "VA", -300},
	{"622", "New Orleans", "LA", -360}, {"630", "Birmingham", "AL", -360}, {"790", "Albuquerque-Santa Fe", "NM", -420},
	{"518", "Greensboro-High Point-Winston Salem", "NC", -300}, {"514", "Buffalo", "NY", -300}, {"529", "Louisville", "KY", -300},
	{"521", "Providence-New Bedford", "RI", -300}, {"866", "Fresno-Visalia", "CA", -480}, {"789", "Tucson", "AZ", -420},
	{"744", "Honolulu", "HI", -600}, {"671", "Tulsa", "OK", -360}, {"563", "Grand Rapids-Kalamazoo-Battle Creek", "MI", -300},
	{"567", "Greenville-Spartanburg-Asheville", "SC", -300}, {"566", "Harrisburg-Lancaster-Lebanon-York", "PA", -300},
	{"532", "Albany-Schenectady-Troy", "NY", -300},
}

var builtinGenres = [...]string{
	"Drama", "Comedy", "News", "Sports", "Reality", "Documentary", "Kids & Family", "Action",
	"Crime", "Thriller", "Horror", "Lifestyle", "Food", "Home & Garden", "Travel", "Music",
	"Animation", "Sci-Fi & Fantasy", "Romance", "Talk Show", "Game Show", "Western", "Anime", "Faith",
}

var nameWords1 = [...]string{
	"Blue", "Red", "North", "Summit", "River", "Silver", "Golden", "Bright", "Pioneer", "Coastal",
	"Metro", "Prairie", "Harbor", "Crystal", "Evergreen", "Liberty", "Maple", "Granite", "Sunset", "Atlas",
	"Orbit", "Cedar", "Falcon", "Lakeside", "Canyon", "Redwood", "Beacon", "Frontier", "Echo", "Nova",
}

var nameWords2 = [...]string{
	"Media", "Networks", "Studios", "Broadcasting", "Entertainment", "Streaming", "Pictures", "Digital",
	"Channels", "Television",
}

var bundleSuffixes = [...]string{"TV", "Movies", "Now", "Plus", "Live", "Kids", "News", "Classics", "Sports", "Max", "Go", "Free"}

var seriesWords = [...]string{
	"Files", "Kitchen", "Ranch", "Detectives", "Island", "Hour", "Games", "Chronicles", "Frontier", "Road",
	"Garage", "Lab", "Empire", "Valley", "Court", "Station",
}

var firstNames = [...]string{
	"james", "mary", "robert", "patricia", "john", "jennifer", "michael", "linda", "david", "elizabeth",
	"william", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah", "chris", "karen",
	"daniel", "lisa", "matthew", "nancy", "anthony", "betty", "mark", "sandra", "paul", "ashley",
}

var lastNames = [...]string{
	"smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez", "martinez",
	"hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor", "moore", "jackson", "martin",
}

var emailDomains = [...]string{"gmail.com", "yahoo.com", "outlook.com", "icloud.com", "aol.com", "hotmail.com", "comcast.net"}

// phoneUAs are the browsers conversions on a phone or laptop come from.
var phoneUAs = [...]string{
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.6312.99 Mobile Safari/537.36",
	"Mozilla/5.0 (Linux; Android 13; SM-S911U) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.6261.119 Mobile Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36 Edg/123.0.2420.65",
}

// ispOctets are first octets of public IPv4 blocks common on US residential
// networks (no private, CGNAT, documentation or benchmark ranges).
var ispOctets = [...]byte{24, 47, 50, 63, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 96, 97, 98, 99, 104, 107, 108, 136, 162, 173, 174, 184}

// TCF v2 consent strings from /work/shared/fixtures/tcf (made with the IAB
// Tech Lab library): all purposes granted, and purpose 1 denied.
const (
	tcfAllGranted     = "CQdWToAQdWToAAKABBENEsFoAP_gAAAAAAYgJpQBAAFAA0AXmBNIAAAAAAAA.IAAA.YAAAAAAAAAAA"
	tcfPurpose1Denied = "CQdWToAQdWToAAKABBENEsFoAH_gAAAAAAYgJpQBAAFAA0AXmBNIAAAAAAAA.IAAA.YAAAAAAAAAAA"
)

// GPP strings with one US National (section 7) core segment and a GPC
// subsection. The first is a real-world string (notices given, no opt-out:
// SaleOptOut, SharingOptOut and TargetedAdvertisingOptOut = 2); the second
// flips those three fields to 1 (opted out).
const (
	gppUSNatNoOptOut = "DBABLA~BVQqAAAAAAJY.QA"
	gppUSNatOptOut   = "DBABLA~BVQVAAAAAAJY.QA"
)

const bcatList = `["IAB25","IAB26","IAB7-39","IAB8-18","IAB9-9"]`
const badvList = `["competitor-one.example","competitor-two.example"]`
