package signals

import "unsafe"

// Reasons Gate gives for keeping an exposure out of the identity index;
// short constants for metrics labels.
const (
	ReasonCOPPA         = "coppa"
	ReasonGDPRNoConsent = "gdpr_no_consent"
	ReasonUSPOptOut     = "usp_opt_out"
	ReasonGPPOptOut     = "gpp_opt_out"
)

// TCF purposes an exposure needs under GDPR: 1 store and/or access
// information on a device, 7 measure advertising performance.
const (
	tcfPurposeStorage = 1
	tcfPurposeMeasure = 7
)

// Gate decides whether an exposure with the privacy signals p may enter the
// identity index (it counts in segment totals either way). It refuses, in
// this order:
//   - regs.coppa = 1 ("coppa");
//   - regs.gdpr = 1 without a TCF v2 consent string that consents to
//     purposes 1 and 7 and, when tcfVendorID > 0, to that vendor
//     ("gdpr_no_consent"); a string that does not decode counts as none;
//   - a US privacy string that opts out of sale, i.e. its third character is
//     'Y' ("1YY-") ("usp_opt_out");
//   - a GPP string whose usnat section (id 7) says SaleOptOut or
//     TargetedAdvertisingOptOut = 1, or any of whose US state sections
//     (ids 8-27: usca ... usri) says SaleOptOut or its second opt-out
//     (SharingOptOut in usca, TargetedAdvertisingOptOut elsewhere) = 1
//     ("gpp_opt_out"). Sections are read whether or not gpp_sid lists
//     them; a GPP string or section that does not decode carries no
//     opt-out we can read and does not refuse.
//
// device.lmt = 1 is not a gate: Request.IDs leaves the IFA out instead.
// Gate does not allocate.
func Gate(p Privacy, tcfVendorID int) (allowed bool, reason string) {
	if p.COPPA {
		return false, ReasonCOPPA
	}
	if p.GDPR == 1 && !tcfAllows(bytesString(p.Consent), tcfVendorID) {
		return false, ReasonGDPRNoConsent
	}
	if usp := p.USPrivacy; len(usp) >= 3 && usp[0] == '1' && (usp[2] == 'Y' || usp[2] == 'y') {
		return false, ReasonUSPOptOut
	}
	if len(p.GPP) > 0 && gppOptedOut(bytesString(p.GPP)) {
		return false, ReasonGPPOptOut
	}
	return true, ""
}

func tcfAllows(consent string, vendorID int) bool {
	t, err := DecodeTCF(consent)
	if err != nil {
		return false
	}
	if !t.PurposeConsent(tcfPurposeStorage) || !t.PurposeConsent(tcfPurposeMeasure) {
		return false
	}
	return vendorID <= 0 || t.VendorConsent(vendorID)
}

// gppOptedOut reports whether a GPP string opts out of sale, sharing or
// targeted advertising in its US national section or in any US state
// section it carries (a section that does not decode counts as no opt-out,
// like a missing one).
func gppOptedOut(s string) bool {
	g, err := DecodeGPP(s)
	if err != nil {
		return false
	}
	if sec, ok := g.Section(GPPSectionUSNat); ok {
		if u, err := DecodeUSNat(sec); err == nil && (u.SaleOptOut == GPPOptedOut || u.TargetedAdvertisingOptOut == GPPOptedOut) {
			return true
		}
	}
	for i := range gppUSStates {
		id := gppUSStateFirst + i
		if sec, ok := g.Section(id); ok {
			if u, err := DecodeUSState(id, sec); err == nil && (u.SaleOptOut == GPPOptedOut || u.SecondOptOut == GPPOptedOut) {
				return true
			}
		}
	}
	return false
}

// bytesString views b as a string for the decoders, which keep it only in
// values that do not outlive Gate.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
