package market

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Scenario describes a synthetic CTV market: its inventory, the hidden truth
// (conversion and completion rates per segment, conversion delays), how
// advertisers report conversions, the competition and the campaigns. A
// scenario and a seed fully determine everything the generator produces.
//
// A scenario file is decoded on top of DefaultScenario: a field absent from the
// file keeps its default, a field present means exactly its value (0 included),
// and a list present replaces the default list as a whole.
type Scenario struct {
	// Name labels reports. Default "default".
	Name string `yaml:"name"`
	// Start is the beginning of simulated day 0 (UTC). Default
	// 2026-01-05T00:00:00Z. The HTTP load generator overrides it with the
	// current time so that the server accepts the event times.
	Start time.Time `yaml:"start"`

	Inventory Inventory      `yaml:"inventory"`
	Truth     TruthSpec      `yaml:"truth"`
	Reporting Reporting      `yaml:"reporting"`
	Market    MarketSpec     `yaml:"market"`
	Campaigns []CampaignSpec `yaml:"campaigns"`
}

// Inventory is the supply side: who sells, what is watched, where, on which
// devices, and when.
type Inventory struct {
	// Publishers is the number of publishers (app owners). Default 200.
	Publishers int `yaml:"publishers"`
	// BundlesPerPublisher is the number of apps (bundles) of each publisher.
	// Default 4.
	BundlesPerPublisher int `yaml:"bundles_per_publisher"`
	// Genres is the number of content genres (named from a built-in list of
	// 24, then "genre-N"). Default 16.
	Genres int `yaml:"genres"`
	// Metros is the number of metro areas (real Nielsen DMA codes from a
	// built-in list of 60, then synthetic codes). Default 60.
	Metros int `yaml:"metros"`
	// Zipf is the popularity skew s: the k-th most popular publisher, bundle
	// of a publisher, genre and metro gets traffic proportional to k^-s.
	// 0 = uniform. Default 1.1.
	Zipf float64 `yaml:"zipf"`
	// BundleGenreAffinity is the probability that an opportunity in a bundle
	// shows that bundle's main genre (otherwise the genre is drawn from the
	// global popularity). 0..1, default 0.6.
	BundleGenreAffinity float64 `yaml:"bundle_genre_affinity"`
	// Devices are the CTV device types with their shares of TVs.
	Devices []DeviceSpec `yaml:"devices"`
	// OpportunitiesPerDay is the number of bid requests per simulated day.
	// Default 100000.
	OpportunitiesPerDay int `yaml:"opportunities_per_day"`
	// HourWeights are 24 relative weights of traffic by local hour of the
	// viewer (0 = midnight to 1 am). Default: a prime-time curve.
	HourWeights []float64 `yaml:"hour_weights"`
	// PodSizeWeights are relative weights of ad pods of 1, 2, 3, 4 ... slots
	// (one imp per slot; at most 8). Default [0.35, 0.3, 0.2, 0.15].
	PodSizeWeights []float64 `yaml:"pod_size_weights"`
	// LiveShare is the share of opportunities in live content. Default 0.1.
	LiveShare float64 `yaml:"live_share"`
	// HouseholdEIDShare is the share of bid requests carrying the household
	// id of a (synthetic) identity graph in user.eids. Default 0.2.
	HouseholdEIDShare float64 `yaml:"household_eid_share"`
}

// DeviceSpec is one CTV device type as it appears in bid requests.
type DeviceSpec struct {
	Name  string  `yaml:"name"`  // label, e.g. "roku"
	Share float64 `yaml:"share"` // relative share of TVs of this type
	// DeviceType is the OpenRTB device.devicetype: 3 connected TV or 7 set-top
	// box (streaming sticks and boxes).
	DeviceType int `yaml:"devicetype"`
	// IFAType is device.ext.ifa_type: rida, afai, tifa, lgudid, idfa, vida,
	// aaid, ppid, ...
	IFAType string `yaml:"ifa_type"`
	Make    string `yaml:"make"`
	Model   string `yaml:"model"`
	OS      string `yaml:"os"`
	OSV     string `yaml:"osv"`
	UA      string `yaml:"ua"`
	// LMT overrides reporting.privacy.lmt for the TVs of this type: the
	// share (0..1) with device.lmt=1 and an all-zero ifa. Absent: the
	// privacy share.
	LMT *float64 `yaml:"lmt,omitempty"`
}

// TruthSpec is what the simulation knows and cpafeed must estimate. The
// rates are built from lists of effects (see Effect): each combination of
// the values of an effect's key moves the rate by its own draw whatever the
// other features are, so the truth is crossed (a metro's effect is the
// same on every app), not a chain of nested segments; a chain is the
// special case of keys that each extend the previous one (see
// configs/scenarios/nested.yaml).
type TruthSpec struct {
	// CVREffects shape the true conversion rate: an impression's CVR is its
	// campaign's BaseCVR × Π exp(σ·z − σ²/2) over the effects (each factor
	// has mean 1), capped at 0.5. Empty: every impression converts at its
	// campaign's BaseCVR. Default: see configs/scenarios/default.yaml.
	CVREffects []Effect `yaml:"cvr_effects"`
	// SharedAcrossCampaigns is the share (0..1) of each effect's variance
	// common to all campaigns (a good publisher is good for everyone); the
	// rest is specific to each campaign. An effect's shared overrides it.
	// Default 0.5.
	SharedAcrossCampaigns float64 `yaml:"shared_across_campaigns"`
	// BaseVTR is the average video completion rate (completes per
	// impression). Default 0.85.
	BaseVTR float64 `yaml:"base_vtr"`
	// VTREffects shape the true completion rate on the logit scale:
	// logit VTR = logit BaseVTR + Σ σ·w, then capped at StartRate.
	VTREffects []Effect `yaml:"vtr_effects"`
	// VTRCVRCorrelation is the correlation (-1..1) of the draws of a VTR
	// effect with those of the CVR effect of the same key (an effect whose
	// key is in one list only is independent of the other rate): 0 means
	// completion says nothing about purchase, negative means the best
	// completers convert worst. Default 0.1.
	VTRCVRCorrelation float64 `yaml:"vtr_cvr_correlation"`
	// StartRate is the share of impressions whose video starts. Default 0.97.
	StartRate float64 `yaml:"start_rate"`
	// Delay is the distribution of the time from exposure to conversion.
	Delay DelayMixture `yaml:"delay"`
	// OrganicPerHouseholdDay is the average number of conversions per
	// household, day and campaign that no ad caused (they still match
	// exposures by household IP, email or household id, and inflate
	// attribution). Default 0.0002.
	OrganicPerHouseholdDay float64 `yaml:"organic_per_household_day"`
	// OrganicEffects shape the organic rate by the household's features
	// (only metro: a household watches many apps), as CVREffects shape the
	// CVR: a household's rate is OrganicPerHouseholdDay × Π exp(σ·z − σ²/2),
	// drawn independently of every CVR effect.
	OrganicEffects []Effect `yaml:"organic_effects"`
}

// DelayMixture is a mixture of exponential distributions.
type DelayMixture struct {
	// Components are the exponentials: a relative weight and a mean
	// duration each. Default 35 % mean 15m, 20 % mean 8h, 45 % mean 48h.
	Components []DelayComponent `yaml:"components"`
	// Max truncates the distribution: longer draws are redrawn, so the
	// delays follow the mixture conditioned on delay ≤ Max. 0 = no limit.
	// Default 168h (the default attribution window).
	Max time.Duration `yaml:"max"`
}

// DelayComponent is one exponential of a DelayMixture.
type DelayComponent struct {
	Weight float64       `yaml:"weight"` // relative weight
	Mean   time.Duration `yaml:"mean"`   // mean delay, e.g. 15m
}

// Reporting is how advertisers report conversions and who the viewers are.
type Reporting struct {
	// PixelShare is the share of website conversions that the browser pixel
	// also reports, with the same event_name and event_id, at the event time
	// (the CAPI copy comes later and must be deduplicated). Default 0.6.
	PixelShare float64 `yaml:"pixel_share"`
	// RetryShare is the share of CAPI batches the advertiser sends twice
	// (a retry after a timeout: same body). Default 0.05.
	RetryShare float64 `yaml:"retry_share"`
	// RetryDelay is the time between a batch and its retry. Default 30s.
	RetryDelay time.Duration `yaml:"retry_delay"`
	// BatchInterval is how often the advertiser's server flushes its CAPI
	// queue: events are sent at the next multiple of it after their event
	// time. Default 10m.
	BatchInterval time.Duration `yaml:"batch_interval"`
	// BatchMax is the largest number of events per CAPI batch (≤ 1000, the
	// Meta limit). Default 500.
	BatchMax int `yaml:"batch_max"`
	// AppShare is the share (0..1) of conversions made in the advertiser's
	// app on the household's TV (action_source "app"); the others are made
	// on a phone or computer (action_source "website"). Default 0.1.
	AppShare float64 `yaml:"app_share"`
	// Identifiers are the shares of conversions carrying each identifier,
	// by where the conversion was made.
	Identifiers Identifiers `yaml:"identifiers"`
	// IP is how households' public IP addresses behave.
	IP IPSpec `yaml:"ip"`
	// Households is the number of households. Default 50000.
	Households int `yaml:"households"`
	// TVsPerHousehold are relative weights of households with 1, 2, 3 ...
	// TVs. Default [0.6, 0.3, 0.1].
	TVsPerHousehold []float64 `yaml:"tvs_per_household"`
	// PersonsPerHousehold are relative weights of households with 1, 2, 3 ...
	// persons; each person has a phone and an email. Default [0.3, 0.4, 0.2, 0.1].
	PersonsPerHousehold []float64 `yaml:"persons_per_household"`
	// HouseholdActivitySigma is the log-normal sigma of how much each
	// household watches (0 = all the same). Default 1.0.
	HouseholdActivitySigma float64 `yaml:"household_activity_sigma"`
	// Privacy are the shares of exposures under each privacy signal.
	Privacy PrivacyShares `yaml:"privacy"`
}

// Identifiers are the identifier shares of the conversions made in the TV
// app and of those made on a web site.
type Identifiers struct {
	App     IdentifierShares `yaml:"app"`
	Website IdentifierShares `yaml:"website"`
}

// IdentifierShares are the shares (0..1, independent) of conversions carrying
// each identifier in user_data.
type IdentifierShares struct {
	// IP: client_ip_address is the household's public IP that day (the
	// CTV household match). Defaults: app 0.95, website 0.6.
	IP float64 `yaml:"ip"`
	// IFA: the ifa and ifa_type of the TV (app conversions only; never when
	// the TV limits ad tracking). Defaults: app 0.9, website 0 (must be).
	IFA float64 `yaml:"ifa"`
	// Email: em holds the SHA-256 of a household member's email.
	// Defaults: app 0.4, website 0.5.
	Email float64 `yaml:"email"`
	// HouseholdID: household_id of the identity graph. Default 0.1.
	HouseholdID float64 `yaml:"household_id"`
	// ExternalID: external_id, the advertiser's hashed customer id, which
	// matches no exposure. An event that drew no other identifier always
	// carries it. Defaults: app 0.5, website 0.3.
	ExternalID float64 `yaml:"external_id"`
}

// IPSpec is how households' public IP addresses behave: they change (a
// conversion days after its exposure may come from another address) and
// some are shared by several households (a conversion may match another
// household's exposure).
type IPSpec struct {
	// ChurnPerDay is the probability (0..1) that a household's public IP
	// changes on a given day (at midnight UTC; a shared IP changes for all
	// its households). Default 0.01.
	ChurnPerDay float64 `yaml:"churn_per_day"`
	// SharedShare is the share (0..1) of households behind an IP shared
	// with other households of their metro (carrier-grade NAT, fixed
	// wireless access). Default 0.07.
	SharedShare float64 `yaml:"shared_share"`
	// HouseholdsPerSharedIP is how many households share one such IP
	// (2..1000; the last group of a metro may be smaller). Default 8.
	HouseholdsPerSharedIP int `yaml:"households_per_shared_ip"`
}

// PrivacyShares are the shares (0..1) of exposures under each privacy signal.
// COPPA and GDPR are drawn per request, the opt-outs per household, LMT per
// device, so a household that opted out stays opted out.
type PrivacyShares struct {
	COPPA         float64 `yaml:"coppa"`           // regs.coppa=1. Default 0.01.
	GDPRNoConsent float64 `yaml:"gdpr_no_consent"` // regs.gdpr=1 without a consent for purpose 1. Default 0.01.
	GDPRConsent   float64 `yaml:"gdpr_consent"`    // regs.gdpr=1 with a TCF string consenting to all. Default 0.01.
	// USPrivacyOptOut: regs.us_privacy "1YYN" (others send "1YNN" when
	// USPrivacyPresent). Default 0.03.
	USPrivacyOptOut float64 `yaml:"us_privacy_opt_out"`
	// USPrivacyPresent is the share of households whose requests carry
	// regs.us_privacy at all. Default 0.5.
	USPrivacyPresent float64 `yaml:"us_privacy_present"`
	// GPPOptOut: regs.gpp with a US National section opting out of sale,
	// sharing and targeted advertising (others send the same section
	// without opt-out when GPPPresent). Default 0.03.
	GPPOptOut float64 `yaml:"gpp_opt_out"`
	// GPPPresent is the share of households whose requests carry regs.gpp.
	// Default 0.3.
	GPPPresent float64 `yaml:"gpp_present"`
	// LMT: device.lmt=1 with an all-zero ifa. Default 0.05.
	LMT float64 `yaml:"lmt"`
}

// MarketSpec is the competition.
type MarketSpec struct {
	// CompetingCPM is the log-normal distribution of the highest competing
	// bid, in USD per thousand impressions: ln(cpm) ~ N(mu, sigma²).
	// Default mu 2.9 (median 18 USD), sigma 0.5.
	CompetingCPM LogNormal `yaml:"competing_cpm"`
	// CompetingCVRCorrelation is the correlation (-1..1) between the log
	// competing price and the segment's log true CVR (averaged over the
	// campaigns): others know good inventory too. Default 0.3.
	CompetingCVRCorrelation float64 `yaml:"competing_cvr_correlation"`
	// Auction is "first" (the winner pays its bid) or "second" (the winner
	// pays the highest competing bid or the floor). Default "second".
	Auction string `yaml:"auction"`
	// FloorCPM is imp.bidfloor in USD CPM; 0 = no floor. Default 2.
	FloorCPM float64 `yaml:"floor_cpm"`
}

// LogNormal is a log-normal distribution: ln(x) ~ N(Mu, Sigma²).
type LogNormal struct {
	Mu    float64 `yaml:"mu"`
	Sigma float64 `yaml:"sigma"`
}

// CampaignSpec is one advertiser campaign of the market.
type CampaignSpec struct {
	ID    string `yaml:"id"`    // campaign id, e.g. "demo-ctv-purchase"
	Event string `yaml:"event"` // optimized event_name, e.g. "Purchase"
	// Dataset is the Meta dataset (pixel) id the conversions are posted to.
	// Default "1234567890".
	Dataset string `yaml:"dataset"`
	// BaseCVR is the average true conversion rate per impression.
	BaseCVR float64 `yaml:"base_cvr"`
	// TargetCPA is the cost per acquisition the advertiser wants, in USD.
	TargetCPA float64 `yaml:"target_cpa"`
	// DailyBudget is the most the campaign may spend per simulated day, USD.
	DailyBudget float64 `yaml:"daily_budget"`
	// Value is the mean order value in custom_data.value, USD (log-normal,
	// sigma 0.5). Default 3 × TargetCPA.
	Value float64 `yaml:"value"`
	// Creatives is the number of creatives the campaign rotates. Default 3.
	Creatives int `yaml:"creatives"`
	// Domain is the advertiser's web site, for event_source_url. Default
	// "<id>.example.com".
	Domain string `yaml:"domain"`
}

// Auction kinds.
const (
	FirstPrice  = "first"
	SecondPrice = "second"
)

// DefaultScenario returns the built-in default scenario; it equals
// configs/scenarios/default.yaml (a test keeps them in step).
func DefaultScenario() Scenario {
	return Scenario{
		Name:  "default",
		Start: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC),
		Inventory: Inventory{
			Publishers:          200,
			BundlesPerPublisher: 4,
			Genres:              16,
			Metros:              60,
			Zipf:                1.1,
			BundleGenreAffinity: 0.6,
			Devices:             defaultDevices(),
			OpportunitiesPerDay: 100000,
			HourWeights: []float64{
				2, 1.2, 0.8, 0.5, 0.4, 0.4, 0.8, 1.5, 2, 2.2, 2.4, 2.6,
				2.8, 2.8, 2.8, 3, 3.5, 4.5, 6, 7.5, 8, 7.5, 5.5, 3.5,
			},
			PodSizeWeights:    []float64{0.35, 0.3, 0.2, 0.15},
			LiveShare:         0.1,
			HouseholdEIDShare: 0.2,
		},
		Truth: TruthSpec{
			// A crossed world: see configs/scenarios/default.yaml and
			// bench/market/doc.go for the reason behind every number.
			CVREffects: []Effect{
				{Key: []string{"publisher"}, Sigma: 0.45},
				{Key: []string{"publisher", "bundle"}, Sigma: 0.3},
				{Key: []string{"genre"}, Sigma: 0.3, Shared: opt(0.3)},
				{Key: []string{"metro"}, Sigma: 0.3, Shared: opt(0.2)},
				{Key: []string{"daypart"}, Sigma: 0.2, Shared: opt(0.7)},
				{Key: []string{"device"}, Sigma: 0.15, Shared: opt(0.7)},
				{Key: []string{"slot"}, Sigma: 0.1, Shared: opt(0.9)},
				{Key: []string{"pod_size"}, Sigma: 0.1, Shared: opt(0.9)},
				{Key: []string{"live"}, Sigma: 0.1},
				{Key: []string{"genre", "metro"}, Sigma: 0.1},
				{Key: []string{"publisher", "daypart"}, Sigma: 0.1},
			},
			SharedAcrossCampaigns: 0.5,
			BaseVTR:               0.85,
			VTREffects: []Effect{
				{Key: []string{"publisher"}, Sigma: 0.6},
				{Key: []string{"publisher", "bundle"}, Sigma: 0.4},
				{Key: []string{"genre"}, Sigma: 0.3},
				{Key: []string{"device"}, Sigma: 0.2},
				{Key: []string{"slot"}, Sigma: 0.3, Shared: opt(0.9)},
				{Key: []string{"pod_size"}, Sigma: 0.2, Shared: opt(0.9)},
				{Key: []string{"live"}, Sigma: 0.3},
			},
			VTRCVRCorrelation: 0.1,
			StartRate:         0.97,
			Delay: DelayMixture{
				Components: []DelayComponent{
					{Weight: 0.35, Mean: 15 * time.Minute},
					{Weight: 0.20, Mean: 8 * time.Hour},
					{Weight: 0.45, Mean: 48 * time.Hour},
				},
				Max: 168 * time.Hour,
			},
			OrganicPerHouseholdDay: 0.0002,
			OrganicEffects:         []Effect{{Key: []string{"metro"}, Sigma: 0.3, Shared: opt(0.2)}},
		},
		Reporting: Reporting{
			PixelShare:    0.6,
			RetryShare:    0.05,
			RetryDelay:    30 * time.Second,
			BatchInterval: 10 * time.Minute,
			BatchMax:      500,
			AppShare:      0.1,
			Identifiers: Identifiers{
				App:     IdentifierShares{IP: 0.95, IFA: 0.9, Email: 0.4, HouseholdID: 0.1, ExternalID: 0.5},
				Website: IdentifierShares{IP: 0.6, Email: 0.5, HouseholdID: 0.1, ExternalID: 0.3},
			},
			IP:                     IPSpec{ChurnPerDay: 0.01, SharedShare: 0.07, HouseholdsPerSharedIP: 8},
			Households:             50000,
			TVsPerHousehold:        []float64{0.6, 0.3, 0.1},
			PersonsPerHousehold:    []float64{0.3, 0.4, 0.2, 0.1},
			HouseholdActivitySigma: 1.0,
			Privacy: PrivacyShares{
				COPPA: 0.01, GDPRNoConsent: 0.01, GDPRConsent: 0.01,
				USPrivacyOptOut: 0.03, USPrivacyPresent: 0.5,
				GPPOptOut: 0.03, GPPPresent: 0.3,
				LMT: 0.05,
			},
		},
		Market: MarketSpec{
			CompetingCPM:            LogNormal{Mu: 2.9, Sigma: 0.5},
			CompetingCVRCorrelation: 0.3,
			Auction:                 SecondPrice,
			FloorCPM:                2,
		},
		Campaigns: []CampaignSpec{
			{
				ID: "demo-ctv-purchase", Event: "Purchase", Dataset: "1234567890",
				BaseCVR: 0.0004, TargetCPA: 40, DailyBudget: 1500, Value: 120,
				Creatives: 3, Domain: "shop.example.com",
			},
			{
				ID: "demo-ctv-signup", Event: "CompleteRegistration", Dataset: "1234567890",
				BaseCVR: 0.002, TargetCPA: 8, DailyBudget: 1000, Value: 0,
				Creatives: 3, Domain: "app.example.com",
			},
		},
	}
}

func defaultDevices() []DeviceSpec {
	return []DeviceSpec{
		{Name: "roku", Share: 0.33, DeviceType: 7, IFAType: "rida", Make: "Roku", Model: "3941X", OS: "Roku OS", OSV: "12.5.5",
			UA: "Roku/DVP-12.5 (12.5.5.4174-46)"},
		{Name: "fire_tv", Share: 0.20, DeviceType: 7, IFAType: "afai", Make: "Amazon", Model: "AFTKA", OS: "Fire OS", OSV: "7.6.6.9",
			UA: "Mozilla/5.0 (Linux; Android 9; AFTKA Build/PS7633.3445N; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/114.0.5735.196 Mobile Safari/537.36"},
		{Name: "samsung", Share: 0.14, DeviceType: 3, IFAType: "tifa", Make: "Samsung", Model: "UN55TU7000", OS: "Tizen", OSV: "6.0",
			UA: "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36"},
		{Name: "lg", Share: 0.09, DeviceType: 3, IFAType: "lgudid", Make: "LG", Model: "OLED55C1PUB", OS: "webOS", OSV: "6.0",
			UA: "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 WebAppManager"},
		{Name: "apple_tv", Share: 0.08, DeviceType: 7, IFAType: "idfa", Make: "Apple", Model: "AppleTV11,1", OS: "tvOS", OSV: "17.4",
			UA: "AppleCoreMedia/1.0.0.21L227 (Apple TV; U; CPU OS 17_4 like Mac OS X; en_us)", LMT: opt(0.54)},
		{Name: "vizio", Share: 0.06, DeviceType: 3, IFAType: "vida", Make: "Vizio", Model: "M55Q7-J01", OS: "SmartCast", OSV: "5.0",
			UA: "Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/87.0.4280.88 Safari/537.36 CrKey/1.43.3 VIZIO SmartCast"},
		{Name: "google_tv", Share: 0.05, DeviceType: 7, IFAType: "aaid", Make: "Google", Model: "Chromecast", OS: "Android", OSV: "12",
			UA: "Mozilla/5.0 (Linux; Android 12; Chromecast Build/STTE.230319.008.R1; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.230 Mobile Safari/537.36"},
		{Name: "set_top_box", Share: 0.05, DeviceType: 7, IFAType: "ppid", Make: "Arris", Model: "XG1v4", OS: "RDK", OSV: "2.0",
			UA: "Mozilla/5.0 (Linux; RDK) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15 WPE"},
	}
}

// opt returns a pointer to x, for the optional fields.
func opt(x float64) *float64 { return &x }

// LoadScenario reads a scenario file (YAML) on top of DefaultScenario and
// validates it.
func LoadScenario(path string) (Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("cannot read scenario: %w", err)
	}
	sc, err := ParseScenario(data)
	if err != nil {
		return Scenario{}, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

// ParseScenario decodes a scenario from YAML on top of DefaultScenario and
// validates it. Unknown fields are errors.
func ParseScenario(data []byte) (Scenario, error) {
	sc := DefaultScenario()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil && !errors.Is(err, io.EOF) {
		return Scenario{}, fmt.Errorf("cannot decode scenario: %w%s", err, renamedHint(err.Error()))
	}
	sc = sc.WithDefaults()
	if errs := sc.Validate(); len(errs) > 0 {
		return Scenario{}, errors.Join(errs...)
	}
	return sc, nil
}

// renamedHint explains a decoding error caused by a field of an older
// scenario format.
func renamedHint(msg string) string {
	switch {
	case strings.Contains(msg, "field cvr_sigma not found"), strings.Contains(msg, "field vtr_sigma not found"):
		return " (truth.cvr_sigma and truth.vtr_sigma became the lists truth.cvr_effects and truth.vtr_effects of {key, sigma}: configs/scenarios/nested.yaml writes the old chain that way)"
	case strings.Contains(msg, "in type market.Identifiers"):
		return " (reporting.identifiers has its shares under app: and website:; the old identifiers.ifa is reporting.app_share)"
	}
	return ""
}

// WithDefaults fills the fields for which zero is not a meaningful value.
func (sc Scenario) WithDefaults() Scenario {
	if sc.Name == "" {
		sc.Name = "default"
	}
	if sc.Start.IsZero() {
		sc.Start = DefaultScenario().Start
	}
	if sc.Reporting.BatchInterval == 0 {
		sc.Reporting.BatchInterval = 10 * time.Minute
	}
	if sc.Reporting.BatchMax == 0 {
		sc.Reporting.BatchMax = 500
	}
	if sc.Reporting.RetryDelay == 0 {
		sc.Reporting.RetryDelay = 30 * time.Second
	}
	if sc.Market.Auction == "" {
		sc.Market.Auction = SecondPrice
	}
	cs := make([]CampaignSpec, len(sc.Campaigns))
	for i, c := range sc.Campaigns {
		if c.Dataset == "" {
			c.Dataset = "1234567890"
		}
		if c.Value == 0 {
			c.Value = 3 * c.TargetCPA
		}
		if c.Creatives == 0 {
			c.Creatives = 3
		}
		if c.Domain == "" {
			c.Domain = c.ID + ".example.com"
		}
		cs[i] = c
	}
	sc.Campaigns = cs
	return sc
}

// Validate reports every problem of the scenario, each naming its field.
func (sc Scenario) Validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	share := func(field string, v float64) {
		if !(v >= 0 && v <= 1) {
			bad(field, "must be within 0..1, got %v", v)
		}
	}
	nonneg := func(field string, v float64) {
		if !(v >= 0) || math.IsInf(v, 0) {
			bad(field, "must be a finite number ≥ 0, got %v", v)
		}
	}
	weights := func(field string, w []float64, n int) {
		if n > 0 && len(w) != n {
			bad(field, "must have %d weights, got %d", n, len(w))
			return
		}
		if len(w) == 0 {
			bad(field, "must not be empty")
			return
		}
		sum := 0.0
		for i, x := range w {
			if !(x >= 0) || math.IsInf(x, 0) {
				bad(fmt.Sprintf("%s[%d]", field, i), "must be a finite weight ≥ 0, got %v", x)
			}
			sum += x
		}
		if !(sum > 0) {
			bad(field, "weights must not all be zero")
		}
	}
	inv := sc.Inventory
	if inv.Publishers < 1 || inv.Publishers > 1<<20 {
		bad("inventory.publishers", "must be within 1..1048576, got %d", inv.Publishers)
	}
	if inv.BundlesPerPublisher < 1 || inv.BundlesPerPublisher > 1000 {
		bad("inventory.bundles_per_publisher", "must be within 1..1000, got %d", inv.BundlesPerPublisher)
	}
	if inv.Genres < 1 || inv.Genres > 1000 {
		bad("inventory.genres", "must be within 1..1000, got %d", inv.Genres)
	}
	if inv.Metros < 1 || inv.Metros > 1000 {
		bad("inventory.metros", "must be within 1..1000, got %d", inv.Metros)
	}
	nonneg("inventory.zipf", inv.Zipf)
	share("inventory.bundle_genre_affinity", inv.BundleGenreAffinity)
	if len(inv.Devices) == 0 {
		bad("inventory.devices", "must not be empty")
	}
	dw := make([]float64, len(inv.Devices))
	for i, d := range inv.Devices {
		f := fmt.Sprintf("inventory.devices[%d]", i)
		dw[i] = d.Share
		if d.Name == "" {
			bad(f+".name", "must not be empty")
		}
		if d.DeviceType != 3 && d.DeviceType != 7 {
			bad(f+".devicetype", "must be 3 (connected TV) or 7 (set-top box), got %d", d.DeviceType)
		}
		if d.IFAType == "" {
			bad(f+".ifa_type", "must not be empty")
		}
		if d.LMT != nil {
			share(f+".lmt", *d.LMT)
		}
	}
	if len(dw) > 0 {
		weights("inventory.devices[].share", dw, 0)
	}
	if inv.OpportunitiesPerDay < 1 || inv.OpportunitiesPerDay > 100_000_000 {
		bad("inventory.opportunities_per_day", "must be within 1..100000000, got %d", inv.OpportunitiesPerDay)
	}
	weights("inventory.hour_weights", inv.HourWeights, 24)
	if len(inv.PodSizeWeights) > 8 {
		bad("inventory.pod_size_weights", "at most 8 pod sizes, got %d", len(inv.PodSizeWeights))
	} else {
		weights("inventory.pod_size_weights", inv.PodSizeWeights, 0)
	}
	share("inventory.live_share", inv.LiveShare)
	share("inventory.household_eid_share", inv.HouseholdEIDShare)

	tr := sc.Truth
	validateEffects("truth.cvr_effects", tr.CVREffects, nil, bad)
	validateEffects("truth.vtr_effects", tr.VTREffects, nil, bad)
	validateEffects("truth.organic_effects", tr.OrganicEffects, []string{"metro"}, bad)
	share("truth.shared_across_campaigns", tr.SharedAcrossCampaigns)
	if !(tr.BaseVTR > 0 && tr.BaseVTR < 1) {
		bad("truth.base_vtr", "must be within (0, 1), got %v", tr.BaseVTR)
	}
	if !(tr.VTRCVRCorrelation >= -1 && tr.VTRCVRCorrelation <= 1) {
		bad("truth.vtr_cvr_correlation", "must be within -1..1, got %v", tr.VTRCVRCorrelation)
	}
	share("truth.start_rate", tr.StartRate)
	if len(tr.Delay.Components) == 0 {
		bad("truth.delay.components", "must not be empty")
	}
	ww := make([]float64, len(tr.Delay.Components))
	for i, c := range tr.Delay.Components {
		ww[i] = c.Weight
		if c.Mean <= 0 {
			bad(fmt.Sprintf("truth.delay.components[%d].mean", i), "must be > 0, got %v", c.Mean)
		}
	}
	if len(ww) > 0 {
		weights("truth.delay.components[].weight", ww, 0)
	}
	if tr.Delay.Max < 0 {
		bad("truth.delay.max", "must be ≥ 0, got %v", tr.Delay.Max)
	} else if tr.Delay.Max > 0 && tr.Delay.Max < time.Second {
		bad("truth.delay.max", "must be 0 (no limit) or ≥ 1s, got %v", tr.Delay.Max)
	}
	nonneg("truth.organic_per_household_day", tr.OrganicPerHouseholdDay)

	rp := sc.Reporting
	share("reporting.pixel_share", rp.PixelShare)
	share("reporting.retry_share", rp.RetryShare)
	if rp.RetryDelay < 0 {
		bad("reporting.retry_delay", "must be ≥ 0, got %v", rp.RetryDelay)
	}
	if rp.BatchInterval < time.Second {
		bad("reporting.batch_interval", "must be ≥ 1s, got %v", rp.BatchInterval)
	}
	if rp.BatchMax < 1 || rp.BatchMax > 1000 {
		bad("reporting.batch_max", "must be within 1..1000, got %d", rp.BatchMax)
	}
	share("reporting.app_share", rp.AppShare)
	for _, src := range []struct {
		name string
		ids  IdentifierShares
	}{{"app", rp.Identifiers.App}, {"website", rp.Identifiers.Website}} {
		f := "reporting.identifiers." + src.name
		share(f+".ip", src.ids.IP)
		share(f+".ifa", src.ids.IFA)
		share(f+".email", src.ids.Email)
		share(f+".household_id", src.ids.HouseholdID)
		share(f+".external_id", src.ids.ExternalID)
	}
	if rp.Identifiers.Website.IFA != 0 {
		bad("reporting.identifiers.website.ifa", "must be 0 (a web conversion knows no TV ifa), got %v", rp.Identifiers.Website.IFA)
	}
	share("reporting.ip.churn_per_day", rp.IP.ChurnPerDay)
	share("reporting.ip.shared_share", rp.IP.SharedShare)
	if rp.IP.SharedShare > 0 && (rp.IP.HouseholdsPerSharedIP < 2 || rp.IP.HouseholdsPerSharedIP > 1000) {
		bad("reporting.ip.households_per_shared_ip", "must be within 2..1000 when shared_share > 0, got %d", rp.IP.HouseholdsPerSharedIP)
	}
	if rp.Households < 1 || rp.Households > 50_000_000 {
		bad("reporting.households", "must be within 1..50000000, got %d", rp.Households)
	}
	if len(rp.TVsPerHousehold) > 8 {
		bad("reporting.tvs_per_household", "at most 8 TVs, got %d weights", len(rp.TVsPerHousehold))
	} else {
		weights("reporting.tvs_per_household", rp.TVsPerHousehold, 0)
	}
	if len(rp.PersonsPerHousehold) > 8 {
		bad("reporting.persons_per_household", "at most 8 persons, got %d weights", len(rp.PersonsPerHousehold))
	} else {
		weights("reporting.persons_per_household", rp.PersonsPerHousehold, 0)
	}
	nonneg("reporting.household_activity_sigma", rp.HouseholdActivitySigma)
	pv := rp.Privacy
	share("reporting.privacy.coppa", pv.COPPA)
	share("reporting.privacy.gdpr_no_consent", pv.GDPRNoConsent)
	share("reporting.privacy.gdpr_consent", pv.GDPRConsent)
	if pv.GDPRNoConsent+pv.GDPRConsent > 1 {
		bad("reporting.privacy", "gdpr_no_consent + gdpr_consent must be ≤ 1, got %v", pv.GDPRNoConsent+pv.GDPRConsent)
	}
	share("reporting.privacy.us_privacy_present", pv.USPrivacyPresent)
	share("reporting.privacy.us_privacy_opt_out", pv.USPrivacyOptOut)
	if pv.USPrivacyOptOut > pv.USPrivacyPresent {
		bad("reporting.privacy.us_privacy_opt_out", "must be ≤ us_privacy_present (%v), got %v", pv.USPrivacyPresent, pv.USPrivacyOptOut)
	}
	share("reporting.privacy.gpp_present", pv.GPPPresent)
	share("reporting.privacy.gpp_opt_out", pv.GPPOptOut)
	if pv.GPPOptOut > pv.GPPPresent {
		bad("reporting.privacy.gpp_opt_out", "must be ≤ gpp_present (%v), got %v", pv.GPPPresent, pv.GPPOptOut)
	}
	share("reporting.privacy.lmt", pv.LMT)

	mk := sc.Market
	if math.IsNaN(mk.CompetingCPM.Mu) || math.IsInf(mk.CompetingCPM.Mu, 0) || mk.CompetingCPM.Mu > 10 {
		bad("market.competing_cpm.mu", "must be a finite number ≤ 10, got %v", mk.CompetingCPM.Mu)
	}
	nonneg("market.competing_cpm.sigma", mk.CompetingCPM.Sigma)
	if !(mk.CompetingCVRCorrelation >= -1 && mk.CompetingCVRCorrelation <= 1) {
		bad("market.competing_cvr_correlation", "must be within -1..1, got %v", mk.CompetingCVRCorrelation)
	}
	if mk.Auction != FirstPrice && mk.Auction != SecondPrice {
		bad("market.auction", "must be %q or %q, got %q", FirstPrice, SecondPrice, mk.Auction)
	}
	nonneg("market.floor_cpm", mk.FloorCPM)

	if len(sc.Campaigns) == 0 {
		bad("campaigns", "must not be empty")
	}
	if len(sc.Campaigns) > 64 {
		bad("campaigns", "at most 64 campaigns, got %d", len(sc.Campaigns))
	}
	seen := map[string]bool{}
	for i, c := range sc.Campaigns {
		f := fmt.Sprintf("campaigns[%d]", i)
		if c.ID == "" {
			bad(f+".id", "must not be empty")
		} else if seen[c.ID] {
			bad(f+".id", "duplicate id %q", c.ID)
		}
		seen[c.ID] = true
		if !PlainID(c.ID) {
			bad(f+".id", "must be printable ASCII without quotes, commas, & or backslashes, got %q", c.ID)
		}
		if c.Event == "" || !PlainID(c.Event) {
			bad(f+".event", "must be a non-empty printable ASCII name, got %q", c.Event)
		}
		if c.Dataset == "" || !PlainID(c.Dataset) {
			bad(f+".dataset", "must be a non-empty printable ASCII id, got %q", c.Dataset)
		}
		if !(c.BaseCVR > 0 && c.BaseCVR < 0.5) {
			bad(f+".base_cvr", "must be within (0, 0.5), got %v", c.BaseCVR)
		}
		if !(c.TargetCPA > 0) || math.IsInf(c.TargetCPA, 0) {
			bad(f+".target_cpa", "must be > 0, got %v", c.TargetCPA)
		}
		nonneg(f+".daily_budget", c.DailyBudget)
		nonneg(f+".value", c.Value)
		if c.Creatives < 1 || c.Creatives > 100 {
			bad(f+".creatives", "must be within 1..100, got %d", c.Creatives)
		}
		if !PlainID(c.Domain) {
			bad(f+".domain", "must be printable ASCII, got %q", c.Domain)
		}
	}
	return errs
}

// PlainID reports whether s can be written into JSON and URL query strings
// as is (the rule for campaign ids, event names, datasets and domains).
func PlainID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == ',' || c == '&' || c == '#' || c == '%' || c == '+' || c == '?' || c == '=' {
			return false
		}
	}
	return true
}
