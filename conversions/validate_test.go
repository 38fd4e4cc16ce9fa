package conversions

import (
	"strings"
	"testing"
)

// One event, one line: the fields added to a valid website event and the
// problems expected ("" = accepted).
func TestEventFieldVariants(t *testing.T) {
	e := newTestEnv(t, nil)
	n := 0
	f := func(extra, want string) {
		t.Helper()
		n++
		base := `"event_name":"Lead","event_time":1795628530,"action_source":"website","event_source_url":"https://x","user_data":{"client_user_agent":"UA","em":"a@b.co"}`
		// extra fields come after base ones and override them (the last key wins)
		body := `{"data":[{` + base + `,"event_id":"v-` + itoa(int64(n)) + `"` + extra + `}]}`
		r := e.postCAPI(body)
		var got []string
		if r.err != nil {
			for _, d := range r.err.Details {
				got = append(got, strings.TrimPrefix(d.Field, "data[0].")+": "+d.Reason)
			}
			if len(got) == 0 {
				got = append(got, r.err.Message)
			}
		}
		if g := strings.Join(got, "; "); g != want {
			t.Fatalf("%s:\n got %q\nwant %q", extra, g, want)
		}
	}
	f(``, "")
	f(`,"event_time":1795628530.7`, "")
	f(`,"event_time":" 1795628530 "`, "")
	f(`,"event_time":-5`, "event_time: not a Unix time in seconds")
	f(`,"event_time":1e30`, "event_time: not a Unix time in seconds")
	f(`,"event_time":"17956285x0"`, "event_time: not a Unix time in seconds")
	f(`,"event_time":true`, "event_time: not a Unix time in seconds")
	f(`,"event_name":"Pur\u0001chase"`, "event_name: contains control characters")
	// Issue 18: invalid UTF-8 and raw control bytes (which the JSON parser
	// lets through) in the name and the ids that are stored or keyed.
	f(`,"event_name":"Pur`+"\x01"+`chase"`, "event_name: contains control characters")
	f(`,"event_name":"Pur`+"\x7f"+`chase"`, "event_name: contains control characters")
	f(`,"event_name":"Pur`+"\xff"+`chase"`, "event_name: not UTF-8")
	f(`,"event_name":"Pur`+"\xc3"+`"`, "event_name: not UTF-8")
	f(`,"event_name":"Achat-réussi"`, "")
	f(`,"event_id":"ord`+"\x00"+`er-1"`, "event_id: contains control characters")
	f(`,"event_id":"ord\u001ber-1"`, "event_id: contains control characters")
	f(`,"event_id":"ord`+"\xed\xa0\x80"+`er-1"`, "event_id: not UTF-8") // a surrogate
	f(`,"event_id":"commande-№1"`, "")
	f(`,"custom_data":{"order_id":"o`+"\n"+`1"}`, "custom_data.order_id: contains control characters")
	f(`,"custom_data":{"order_id":"o`+"\xfe"+`1"}`, "custom_data.order_id: not UTF-8")
	f(`,"user_data":{"client_user_agent":"UA","household_id":"hh`+"\x80"+`"}`, "user_data.household_id: not UTF-8; user_data: "+noInfo+"")
	f(`,"event_name":"`+strings.Repeat("x", 101)+`"`, "event_name: longer than 100 bytes")
	f(`,"event_name":""`, "event_name: required")
	f(`,"event_name":null`, "event_name: required")
	f(`,"event_id":"`+strings.Repeat("x", 501)+`"`, "event_id: too long")
	f(`,"event_id":{"a":1}`, "event_id: not a string")
	f(`,"event_id":123456789012345678901234567890123456789012345678901234567890123456789`, "event_id: not a string")
	f(`,"event_id":""`, "") // no id: a fingerprint
	f(`,"event_source_url":7`, "event_source_url: not a string")
	f(`,"event_source_url":"  "`, "event_source_url: required for action_source website")
	f(`,"opt_out":false`, "")
	f(`,"opt_out":1`, "opt_out: not a boolean")
	f(`,"data_processing_options":"ldu","data_processing_options_country":"1","data_processing_options_state":"1000"`, "")
	f(`,"data_processing_options":[""]`, "")
	f(`,"data_processing_options":[7]`, "data_processing_options[0]: not a string")
	f(`,"data_processing_options":{}`, "data_processing_options: not an array of strings")
	f(`,"data_processing_options_country":"US"`, "data_processing_options_country: not an integer")
	f(`,"data_processing_options_state":1.5`, "data_processing_options_state: not an integer")
	f(`,"app_data":{"advertiser_tracking_enabled":2}`, "app_data.advertiser_tracking_enabled: not a boolean")
	f(`,"app_data":{"advertiser_tracking_enabled":"yes"}`, "app_data.advertiser_tracking_enabled: not a boolean")
	f(`,"app_data":[]`, "app_data: not an object")
	f(`,"custom_data":{"value":"Infinity","currency":"USD"}`, "custom_data.value: not a finite number >= 0")
	f(`,"custom_data":{"value":1e400,"currency":"USD"}`, "custom_data.value: not a finite number >= 0")
	f(`,"custom_data":{"value":0,"currency":" usd "}`, "")
	f(`,"custom_data":{"currency":"USD"}`, "")
	f(`,"custom_data":{"currency":5}`, "custom_data.currency: not a string")
	f(`,"custom_data":{"order_id":[1]}`, "custom_data.order_id: not a string")
	f(`,"custom_data":{"order_id":"`+strings.Repeat("x", 501)+`"}`, "custom_data.order_id: too long")
	f(`,"user_data":{"client_user_agent":7,"em":"a@b.co"}`, "user_data.client_user_agent: not a string")
	f(`,"user_data":{"client_user_agent":"UA","madid":5}`, "user_data.madid: not a string; user_data: "+noInfo+"")
	f(`,"user_data":{"client_user_agent":"UA","ifa":"00000000-0000-0000-0000-000000000000"}`, "user_data: "+noInfo+"")
	f(`,"user_data":{"client_user_agent":"UA","household_id":"`+strings.Repeat("h", 257)+`"}`, "user_data.household_id: too long; user_data: "+noInfo+"")
	f(`,"user_data":{"client_user_agent":"UA","household_id":true}`, "user_data.household_id: not a string; user_data: "+noInfo+"")
	f(`,"user_data":{"client_user_agent":"UA","client_ip_address":""}`, "user_data: "+noInfo+"")
	f(`,"user_data":{"client_user_agent":"UA","client_ip_address":[]}`, "user_data.client_ip_address: not a string; user_data: "+noInfo+"")
	f(`,"user_data":{"client_user_agent":"UA","em":{"a":1}}`, "user_data.em: not a string or an array of strings; user_data: "+noInfo+"")
	f(`,"user_data":{"client_user_agent":"UA","em":[null,"a@b.co"],"ge":"x","zp":"1"}`, "")
	f(`,"user_data":{"client_user_agent":"UA","ph":15551234567}`, "")
	f(`,"user_data":{"client_user_agent":"UA","fbp":1,"fbc":2,"anon_id":3,"ifa_type":4,"em":"a@b.co"}`, "user_data.fbc: not a string; user_data.fbp: not a string; user_data.anon_id: not a string; user_data.ifa_type: not a string")
	f(`,"action_source":7`, "action_source: not a string")
	f(`,"action_source":"physical_store","event_time":1792000000`, "") // 42 days old
	f(`,"action_source":"email","event_source_url":null,"user_data":{"em":"a@b.co"}`, "")
	// Meta's own ids alone make an event valid (stored, unmatchable).
	f(`,"user_data":{"client_user_agent":"UA","fbp":"fb.1.1.2"}`, "")
	f(`,"user_data":{"client_user_agent":"UA","lead_id":1234567890123456}`, "")
	f(`,"user_data":{"client_user_agent":"UA","ig_sid":"17841400000000000"}`, "")
	f(`,"user_data":{"client_user_agent":"UA","page_id":"1","page_scoped_user_id":"2"}`, "")
	f(`,"user_data":{"client_user_agent":"UA","ctwa_clid":""}`, "user_data: "+noInfo)
	f(`,"user_data":{"client_user_agent":"UA","lead_id":{}}`, "user_data.lead_id: not a string; user_data: "+noInfo)
	// Purchase needs value and currency (not a custom "purchase").
	f(`,"event_name":"Purchase","custom_data":{"value":1,"currency":"USD"}`, "")
	f(`,"event_name":"Purchase","custom_data":{"value":1}`, "custom_data.currency: required for Purchase events")
	f(`,"event_name":"Purchase","custom_data":{"currency":"USD"}`, "custom_data.value: required for Purchase events")
	f(`,"event_name":"Purchase"`, "custom_data.currency: required for Purchase events; custom_data.value: required for Purchase events")
	f(`,"event_name":"purchase"`, "")
	// Limited Data Use with country and state.
	f(`,"data_processing_options":["LDU"],"data_processing_options_country":2`, "")
	f(`,"data_processing_options":["LDU"],"data_processing_options_country":1,"data_processing_options_state":1000`, "")
}

// noInfo is the reason of an event without any customer information.
const noInfo = "no customer information parameter: send em, ph, external_id, ifa, madid, client_ip_address or household_id (Meta's fbp, fbc, lead_id, ... ids are accepted too, but never matched)"
