#!/usr/bin/env python3
"""Writes testdata/valid and testdata/invalid. The fixtures are the spec of the
conversions endpoints; edit here and rerun (python3 testdata/gen/fixtures.py
from conversions/), or edit the JSON files directly. The test clock is
NOW = 1795628590 (Unix seconds)."""
import json, os, urllib.parse

NOW = 1795628590
T = 1795628530  # the reference example's event_time
DAY = 86400
EM = "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"  # jane.doe@example.com
PH = "d6736136ea896c1bfdc553e0e86e702c70d060d805696ca3e4e9e0961353860a"  # 15551234567
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15"
URL = "https://shop.example.com/checkout/thanks"
TOKEN = "dev-advertiser-token"
NOINFO = ("no customer information parameter: send em, ph, external_id, ifa, madid, client_ip_address or household_id "
          "(Meta's fbp, fbc, lead_id, ... ids are accepted too, but never matched)")
UNKNOWN = "Unsupported post request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation"
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)


def web(name="Purchase", eid="order-1", t=T, user=None, custom=None, **extra):
    e = {"event_name": name, "event_time": t, "action_source": "website", "event_source_url": URL}
    if eid is not None:
        e["event_id"] = eid
    u = {"client_user_agent": UA, "em": [EM]}
    if user is not None:
        u = user
    e["user_data"] = u
    e["custom_data"] = {"value": 129.90, "currency": "USD"} if custom is None else custom
    e.update(extra)
    return e


def write(kind, name, fx):
    with open(os.path.join(root, kind, name + ".json"), "w") as f:
        json.dump(fx, f, indent=2, ensure_ascii=False)
        f.write("\n")


def stored(name="Purchase", ids=("email",), flags=("value",), value=129.9, currency="USD", action="website", source="capi", t=None):
    s = {"event_name": name, "ids": list(ids), "flags": list(flags), "value": value, "currency": currency,
         "action_source": action, "source": source}
    if t is not None:
        s["event_time"] = t
    return s


def valid(name, desc, body, want, **kw):
    fx = {"description": desc}
    fx.update(kw)
    if body is not None:
        fx["body"] = body
    fx["want"] = want
    write("valid", name, fx)


def invalid(name, desc, body, status, code, subcode, details, type=None, **kw):
    fx = {"description": desc}
    fx.update(kw)
    fx["body"] = body
    w = {"status": status, "code": code}
    if subcode:
        w["error_subcode"] = subcode
    if type:
        w["type"] = type
    elif code in (100, 190, 10):
        w["type"] = "OAuthException"
    if details:
        w["details"] = [{"index": i, "field": f, "reason": r} for i, f, r in details]
    for k in ("message", "user_title"):
        if k in fx:
            w[k] = fx.pop(k)
    fx["want"] = w
    write("invalid", name, fx)


reference = {
    "data": [{
        "event_name": "Purchase", "event_time": T, "event_id": "order-20261125-88412",
        "action_source": "website", "event_source_url": URL,
        "user_data": {
            "em": [EM], "ph": [PH],
            "fn": ["81f8f6dde88365f3928796ec7aa53f72820b06db8664f5fe76a7eb13e24546a2"],
            "ln": ["799ef92a11af918e3fb741df42934f3b568ed2d93ac1df74f1b8d41a27932a6f"],
            "ge": ["252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"],
            "db": ["849e2789727c811d57203fdea08ebd034951e149a4e68685363e9e2fe4ce5b4f"],
            "ct": ["c7c1319276e936c8d64f1d5ed80cd8a0cf54e6dea7b0125533eb4163e03a2c11"],
            "st": ["1b5b9ccb3e8d006a5230de9bda23ff91edc794d4f56410560830b418528e446c"],
            "zp": ["384248b18055777d69403b479d74e10a96ecc6c6dd6f02308684d3d94eaacad1"],
            "country": ["79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"],
            "external_id": ["cb58ad4c6993d2f89ed48ebd870d694a414105248749eb729407e4206caf1ce7"],
            "client_ip_address": "203.0.113.42", "client_user_agent": UA,
            "fbc": "fb.1.1795620000000.IwAR3xExampleClickId", "fbp": "fb.1.1795001234567.1234567890"},
        "custom_data": {"value": 129.90, "currency": "USD", "order_id": "88412", "content_type": "product",
                        "content_ids": ["SKU-123", "SKU-777"],
                        "contents": [{"id": "SKU-123", "quantity": 1, "item_price": 99.90},
                                     {"id": "SKU-777", "quantity": 2, "item_price": 15.00}],
                        "num_items": 3},
        "data_processing_options": ["LDU"], "data_processing_options_country": 0, "data_processing_options_state": 0}],
    "test_event_code": "TEST12345"}

# ---------------------------------------------------------------- valid
valid("reference_example_test_mode", "The reference's example request as is: test_event_code validates fully and stores nothing.",
      reference, {"events_received": 1, "events_deduplicated": 0,
                  "messages": [], "stored": []})

live = json.loads(json.dumps(reference))
del live["test_event_code"]
valid("reference_example_ldu", "The example without test_event_code, on the Meta path with the token in the query: LDU, so stored and counted without identifiers.",
      live, {"events_received": 1, "events_deduplicated": 0, "messages": [],
             "stored": [stored(ids=(), flags=("ldu", "value"))]},
      endpoint="meta", query="?access_token=" + TOKEN)

nold = json.loads(json.dumps(live))
del nold["data"][0]["data_processing_options"]
valid("reference_example", "The example without LDU: the hashed em, ph and external_id and the IP become keyed identities; fn..country are validated, not kept.",
      nold, {"events_received": 1, "events_deduplicated": 0, "messages": [],
             "stored": [stored(ids=("email", "phone", "external_id", "ip"))]},
      endpoint="meta", query="?access_token=" + TOKEN)

valid("clear_values", "Clear user data is normalized with Meta's rules and hashed on arrival; an IPv6 address is kept as its /64.",
      {"data": [web(user={"em": "  Jane.Doe@Example.COM ", "ph": "+1 (555) 123-4567", "fn": "Jane", "ln": "Doe", "ge": "female",
                          "db": "1985-02-14", "ct": "Austin", "st": "TX", "zp": "78701-1234", "country": "US",
                          "external_id": "CRM-88412", "client_ip_address": "2001:db8:1:2:3:4:5:6", "client_user_agent": UA})]},
      {"events_received": 1, "events_deduplicated": 0, "messages": [],
       "stored": [stored(ids=("email", "phone", "external_id", "ip"))]})

sdk = {
    "data": [{
        "event_name": "Purchase", "event_time": T, "event_id": "sdk-1", "action_source": "website",
        "event_source_url": URL, "opt_out": None, "data_processing_options": None,
        "data_processing_options_country": None, "data_processing_options_state": None, "app_data": None,
        "referrer_url": None, "messaging_channel": None, "original_event_data": None, "attribution_data": None,
        "user_data": {"em": [EM], "ph": None, "fn": None, "external_id": None, "client_ip_address": "203.0.113.42",
                      "client_user_agent": UA, "fbc": None, "fbp": "fb.1.1795001234567.1234567890", "madid": None,
                      "anon_id": None, "subscription_id": None, "lead_id": None},
        "custom_data": {"value": 10, "currency": "usd", "content_ids": None, "contents": None, "order_id": None,
                        "predicted_ltv": None, "custom_properties": {"tier": "gold"}}}],
    "id": "1234567890", "access_token": TOKEN, "partner_agent": None, "test_event_code": None,
    "namespace_id": None, "upload_id": None, "upload_tag": None, "upload_source": None}
valid("meta_sdk_json", "What Meta's SDKs send: the token in the query and in the body at once, an id field, optional keys as explicit null, unknown keys.",
      sdk, {"events_received": 1, "events_deduplicated": 0, "messages": [],
            "stored": [stored(ids=("email", "ip"), value=10)]},
      endpoint="meta", query="?access_token=" + TOKEN, headers=["Content-Type: application/json"])

form_events = [web(eid="curl-1", user={"em": [EM], "client_user_agent": UA})]
form = "data=" + urllib.parse.quote(json.dumps(form_events)) + "&access_token=" + TOKEN
valid("meta_form_curl", "Meta's curl example: form-encoded, data holding the JSON array, the token as a form field.",
      form, {"events_received": 1, "events_deduplicated": 0, "messages": [], "stored": [stored()]},
      endpoint="meta", headers=["Content-Type: application/x-www-form-urlencoded"])

valid("capi_form", "/v1/conversions takes the form-encoded body too (the type sniffed when not sent); the form's access_token is ignored there (Bearer).",
      "data=" + urllib.parse.quote(json.dumps(form_events)) + "&access_token=whatever&appsecret_proof=abc",
      {"events_received": 1, "events_deduplicated": 0, "messages": [], "stored": [stored()]},
      headers=["Authorization: Bearer " + TOKEN])

form2 = "access_token=" + TOKEN + "&test_event_code=TEST1&data=" + urllib.parse.quote(json.dumps(form_events))
valid("meta_form_test_event", "Form-encoded with test_event_code: validated and answered as a real batch, nothing stored.",
      form2, {"events_received": 1, "events_deduplicated": 0, "messages": [], "stored": []},
      endpoint="meta", headers=["Content-Type: application/x-www-form-urlencoded; charset=UTF-8"])

extinfo = ["i2", "com.example.app", "2.1", "2.1.0", "17.4", "iPhone15,2", "en_US", "PST", "Carrier", "393", "852", "3", "6", "256", "120", "America/Los_Angeles"]
valid("app_extinfo_array", "An app event with app_data.extinfo as an array and a madid (IDFA).",
      {"data": [{"event_name": "AppInstall", "event_time": T, "event_id": "inst-1", "action_source": "app",
                 "user_data": {"madid": "7A2016D7-17B0-572F-A7A6-13F89A81D905", "anon_id": "XZ1234"},
                 "app_data": {"advertiser_tracking_enabled": 1, "application_tracking_enabled": 1, "extinfo": extinfo}}]},
      {"events_received": 1, "events_deduplicated": 0, "messages": [],
       "stored": [stored(name="AppInstall", ids=("ifa",), flags=(), value=0, currency="", action="app")]})

valid("app_extinfo_object", "app_data.extinfo as an object keyed \"0\"..\"15\", as some SDK versions send it.",
      {"data": [{"event_name": "AppInstall", "event_time": T, "event_id": "inst-2", "action_source": "app",
                 "user_data": {"madid": "7a2016d7-17b0-572f-a7a6-13f89a81d905"},
                 "app_data": {"advertiser_tracking_enabled": True, "extinfo": {str(i): v for i, v in enumerate(extinfo)}}}]},
      {"events_received": 1, "events_deduplicated": 0, "messages": [],
       "stored": [stored(name="AppInstall", ids=("ifa",), flags=(), value=0, currency="", action="app")]})

valid("app_tracking_disabled", "advertiser_tracking_enabled false (iOS ATT not granted): the madid is ignored, the IP still matches.",
      {"data": [{"event_name": "Subscribe", "event_time": T, "event_id": "sub-1", "action_source": "app",
                 "user_data": {"madid": "7a2016d7-17b0-572f-a7a6-13f89a81d905", "client_ip_address": "198.51.100.7"},
                 "app_data": {"advertiser_tracking_enabled": False}}]},
      {"events_received": 1, "events_deduplicated": 0, "messages": [],
       "stored": [stored(name="Subscribe", ids=("ip",), flags=(), value=0, currency="", action="app")]})

valid("ctv_ifa_household", "CTV additions: a device IFA with its type, and a household id.",
      {"data": [{"event_name": "CompleteRegistration", "event_time": T, "event_id": "reg-1", "action_source": "app",
                 "user_data": {"ifa": "6D92078A-8246-4BA4-AE5B-76104861E7DC", "ifa_type": "rida", "household_id": "hh-4242"}}]},
      {"events_received": 1, "events_deduplicated": 0, "messages": [],
       "stored": [stored(name="CompleteRegistration", ids=("ifa", "household"), flags=(), value=0, currency="", action="app")]})

valid("strings_and_numbers", "event_time and value as strings, ids as numbers, as some SDKs and hand-written clients send them.",
      {"data": [{"event_name": "Purchase", "event_time": str(T), "event_id": 8841201, "action_source": "phone_call",
                 "user_data": {"external_id": 12345, "household_id": 42, "zp": 78701},
                 "custom_data": {"value": "19.99", "currency": "eur", "order_id": 88412}}]},
      {"events_received": 1, "events_deduplicated": 0, "messages": [],
       "stored": [stored(ids=("external_id", "household"), value=19.99, currency="EUR", action="phone_call", t=T)]})

valid("physical_store_30_days", "A physical_store event may be up to 62 days old.",
      {"data": [{"event_name": "Purchase", "event_time": NOW - 30 * DAY, "event_id": "pos-1", "action_source": "physical_store",
                 "user_data": {"ph": "+1 555 123 4567"}, "custom_data": {"value": 5, "currency": "USD"}}]},
      {"events_received": 1, "events_deduplicated": 0, "messages": [],
       "stored": [stored(ids=("phone",), value=5, action="physical_store", t=NOW - 30 * DAY)]})

FBP = "fb.1.1795001234567.1234567890"
meta_only = [("fbp", FBP), ("fbc", "fb.1.1795620000000.IwAR3xExampleClickId"), ("lead_id", 1234567890123456),
             ("anon_id", "XZ1234"), ("subscription_id", "sub-77"), ("fb_login_id", 100012345678901),
             ("page_id", "109876543210987"), ("page_scoped_user_id", "7654321098765432"), ("ctwa_clid", "ARAkLkA8rmlFeiCktEJQ"),
             ("ig_account_id", "17841400000000000"), ("ig_sid", "9876543210")]
valid("meta_ids_only", "An event whose only customer information is one of Meta's own ids (fbp, fbc, lead_id, anon_id, "
      "subscription_id, fb_login_id, page_id, page_scoped_user_id, ctwa_clid, ig_*) is valid for Meta: stored, "
      "counted as unmatchable (cpafeed cannot match it), the batch not failed.",
      {"data": [{"event_name": "Lead", "event_time": T, "event_id": "m-%d" % i, "action_source": "system_generated",
                 "user_data": {k: v}} for i, (k, v) in enumerate(meta_only)]},
      {"events_received": len(meta_only), "events_deduplicated": 0, "messages": [],
       "stored": [stored(name="Lead", ids=(), flags=(), value=0, currency="", action="system_generated") for _ in meta_only]})


def ldu_event(eid, country, state, **kw):
    e = web(eid=eid, user={"em": [EM], "client_user_agent": UA}, data_processing_options=["LDU"])
    if country is not None:
        e["data_processing_options_country"] = country
    if state is not None:
        e["data_processing_options_state"] = state
    e.update(kw)
    return e


valid("ldu_country_and_state", "Limited Data Use honours explicit country and state: country 0 or absent, or US with state 0 "
      "(Meta geolocates, cpafeed cannot) and US California (1000) are restricted (identifiers discarded); a country "
      "outside the US and a US state LDU does not cover keep the identifiers.",
      {"data": [ldu_event("ldu-geo", 0, 0), ldu_event("ldu-absent", None, None), ldu_event("ldu-us-geo", 1, 0),
                ldu_event("ldu-ca", 1, 1000), ldu_event("ldu-ca-str", "1", "1000"), ldu_event("ldu-outside", 2, 0),
                ldu_event("ldu-us-other", 1, 1099)]},
      {"events_received": 7, "events_deduplicated": 0, "messages": [],
       "stored": [stored(ids=(), flags=("ldu", "value"))] * 5 + [stored(ids=("email",))] * 2})

valid("duplicate_in_batch", "A second copy within the same batch is acknowledged and counted as deduplicated, stored once.",
      {"data": [web(eid="dup-1"), web(eid="dup-1"), web(eid="dup-2")]},
      {"events_received": 3, "events_deduplicated": 1, "messages": [], "stored": [stored(), stored()]})

valid("fingerprint_without_event_id", "Without event_id the dedup key is a fingerprint (name, time, order id, value, identities): a copy in the batch is caught.",
      {"data": [web(eid=None, custom={"value": 20, "currency": "USD", "order_id": "A-1"}),
                web(eid=None, custom={"value": 20, "currency": "USD", "order_id": "A-1"}),
                web(eid=None, custom={"value": 20, "currency": "USD", "order_id": "A-2"})]},
      {"events_received": 3, "events_deduplicated": 1, "messages": [],
       "stored": [stored(flags=("value", "fingerprint"), value=20), stored(flags=("value", "fingerprint"), value=20)]})

valid("opt_out", "opt_out true: stored, deduplicated and counted with its identities, flagged so that it is never credited to the model.",
      {"data": [web(eid="oo-1", opt_out=True)]},
      {"events_received": 1, "events_deduplicated": 0, "messages": [], "stored": [stored(flags=("opt_out", "value"))]})

valid("multiple_values", "A field may hold several values (nulls skipped); values equal after hashing count once.",
      {"data": [web(user={"em": [EM, "Jane.Doe@example.com", None, "other@example.com"], "client_user_agent": UA})]},
      {"events_received": 1, "events_deduplicated": 0, "messages": [], "stored": [stored(ids=("email", "email"))]})

valid("ldu_without_identifiers", "With LDU no identifier is required: the event is stored and counted.",
      {"data": [web(eid="ldu-1", user={"client_user_agent": UA}, data_processing_options=["LDU"],
                    data_processing_options_country=1, data_processing_options_state=1000)]},
      {"events_received": 1, "events_deduplicated": 0, "messages": [], "stored": [stored(ids=(), flags=("ldu", "value"))]})

valid("case_insensitive_enums", "action_source, currency and the LDU option in any case; a dataset-less URI uses the advertiser's only dataset.",
      {"data": [dict(web(eid="ci-1", custom={"value": 1.5, "currency": "gbp"}), action_source="WEBSITE")]},
      {"events_received": 1, "events_deduplicated": 0, "messages": [], "stored": [stored(value=1.5, currency="GBP")]},
      uri="/v1/conversions")

valid("pixel_get", "A pixel hit with Meta's spellings (ud[em], cd[value], cd[currency]): website event, IP of the connection, UA header, dl as URL.",
      None, {"gif": True, "stored": [stored(ids=("email", "ip"), value=12.5, source="pixel", t=NOW)]},
      endpoint="pixel",
      query="?id=1234567890&ev=Purchase&eid=order-9&dl=" + urllib.parse.quote(URL, safe="") + "&ud[em]=" + EM + "&cd[value]=12.50&cd[currency]=USD",
      headers=["User-Agent: " + UA])

valid("pixel_beacon_post", "navigator.sendBeacon: a form POST; clear em hashed; the Referer as URL; no eid, so a fingerprint.",
      "id=1234567890&ev=Lead&em=Jane.Doe%40example.com", {"gif": True, "stored": [stored(name="Lead", ids=("email", "ip"), flags=("fingerprint",), value=0, currency="", source="pixel", t=NOW)]},
      endpoint="pixel", headers=["User-Agent: " + UA, "Referer: " + URL, "Content-Type: text/plain;charset=UTF-8"])

valid("pixel_bad_hit", "A bad pixel hit (no event name) still answers the GIF and is counted as rejected.",
      None, {"gif": True, "stored": [], "rejected": 1},
      endpoint="pixel", query="?id=1234567890&eid=x", headers=["User-Agent: " + UA])

valid("pixel_unknown_dataset", "A pixel hit for an unknown dataset answers the GIF and stores nothing.",
      None, {"gif": True, "stored": []},
      endpoint="pixel", query="?id=42&ev=Purchase", headers=["User-Agent: " + UA])

# ---------------------------------------------------------------- invalid
invalid("stale_event", "An event older than 7 days rejects the whole batch (Meta's rule).",
        {"data": [web(eid="a"), web(eid="b", t=NOW - 8 * DAY)]}, 400, 100, 2804003,
        [(1, "data[1].event_time", "older than 7 days")])
invalid("physical_store_too_old", "physical_store events may be 62 days old, not more.",
        {"data": [dict(web(t=NOW - 63 * DAY), action_source="physical_store")]}, 400, 100, 2804003,
        [(0, "data[0].event_time", "older than 62 days (action_source physical_store)")])
invalid("future_event", "More than 10 minutes in the future.",
        {"data": [web(t=NOW + 3600)]}, 400, 100, 2804004,
        [(0, "data[0].event_time", "more than 10 minutes in the future")])
invalid("milliseconds", "event_time in milliseconds.",
        {"data": [web(t=T * 1000)]}, 400, 100, 2804004,
        [(0, "data[0].event_time", "in milliseconds; send Unix seconds")])
invalid("too_little_information", "No customer information parameter (the user agent and a first name alone are none).",
        {"data": [web(user={"client_user_agent": UA, "fn": "jane"})]}, 400, 100, 2804050,
        [(0, "data[0].user_data", NOINFO)])
invalid("every_bad_event_listed", "A batch is atomic, and the error lists every problem of every bad event by index and JSON path.",
        {"data": [web(eid="ok-1"),
                  {"event_time": NOW - 9 * DAY, "action_source": "website", "event_source_url": URL,
                   "user_data": {"em": [EM], "client_user_agent": UA}},
                  web(eid="ok-2"),
                  web(eid="bad-3", user={"em": "jane at example", "client_user_agent": UA, "client_ip_address": "203.0.113.1"},
                      custom={"value": 10, "currency": "US$"})]},
        400, 100, 2804019,
        [(1, "data[1].event_name", "required"),
         (1, "data[1].event_time", "older than 7 days"),
         (3, "data[3].custom_data.currency", "not an ISO 4217 currency code"),
         (3, "data[3].user_data.em", "not an email address or a SHA-256 hex digest")])
invalid("website_needs_url_and_user_agent", "Website events need event_source_url and client_user_agent.",
        {"data": [{"event_name": "Purchase", "event_time": T, "action_source": "website", "user_data": {"em": EM},
                   "custom_data": {"value": 129.9, "currency": "USD"}}]},
        400, 100, 2804019,
        [(0, "data[0].event_source_url", "required for action_source website"),
         (0, "data[0].user_data.client_user_agent", "required for action_source website")])
invalid("action_source", "action_source is required and must be one of Meta's values.",
        {"data": [dict(web(), action_source="web"), {k: v for k, v in web().items() if k != "action_source"}]},
        400, 100, 2804019,
        [(0, "data[0].action_source", "not one of website, app, email, phone_call, chat, physical_store, system_generated, business_messaging, other"),
         (1, "data[1].action_source", "required")])
invalid("value_and_currency", "value must be a finite number >= 0 with a currency; currency an ISO 4217 code.",
        {"data": [web(custom={"value": -1, "currency": "USD"}), web(custom={"value": "abc", "currency": "USD"}),
                  web(name="Lead", custom={"value": 5}), web(custom={"value": 5, "currency": "XYZ"})]},
        400, 100, 2804019,
        [(0, "data[0].custom_data.value", "not a finite number >= 0"),
         (1, "data[1].custom_data.value", "not a number"),
         (2, "data[2].custom_data.currency", "required with custom_data.value"),
         (3, "data[3].custom_data.currency", "not an ISO 4217 currency code")])
invalid("data_missing", "data is required.", {"test_event_code": "X"}, 400, 100, 2804002, [])
invalid("data_not_array", "data must be an array.", {"data": {"event_name": "Purchase"}}, 400, 100, 2804002, [])
invalid("data_empty", "data must not be empty.", {"data": []}, 400, 100, 2804019, [])
invalid("body_not_json", "A body that is not JSON (the answer does not quote it).", "{\"data\": [{\"em\": \"jane@example.com\"", 400, 100, 2804002, [])
invalid("bad_types", "Wrong JSON types are reported per field.",
        {"data": [{"event_name": 42, "event_time": "soon", "action_source": "app", "user_data": "jane@example.com",
                   "opt_out": "yes", "data_processing_options": ["XYZ"], "custom_data": [], "app_data": {"extinfo": "x"}}]},
        400, 100, 2804019,
        [(0, "data[0].event_name", "not a string"),
         (0, "data[0].event_time", "not a Unix time in seconds"),
         (0, "data[0].opt_out", "not a boolean"),
         (0, "data[0].data_processing_options[0]", "unknown option; the only one is LDU"),
         (0, "data[0].app_data.extinfo", "not an array or an object"),
         (0, "data[0].custom_data", "not an object"),
         (0, "data[0].user_data", "not an object"),
         (0, "data[0].user_data", NOINFO)])
invalid("bad_identifiers", "Malformed identifiers are reported; the values are never echoed.",
        {"data": [web(user={"em": ["jane@example.com", "jane at example"], "ph": "123", "client_ip_address": "300.1.2.3",
                            "country": "usa", "client_user_agent": UA})]},
        400, 100, 2804019,
        [(0, "data[0].user_data.em[1]", "not an email address or a SHA-256 hex digest"),
         (0, "data[0].user_data.ph", "not a phone number with country code (7 to 15 digits) or a SHA-256 hex digest"),
         (0, "data[0].user_data.country", "not an ISO 3166-1 alpha-2 country code"),
         (0, "data[0].user_data.client_ip_address", "not an IP address")])
invalid("too_many_values", "At most 10 values per user_data field.",
        {"data": [web(user={"em": [EM] * 11, "client_user_agent": UA, "client_ip_address": "203.0.113.1"})]},
        400, 100, 2804019, [(0, "data[0].user_data.em", "more than 10 values")])
invalid("meta_missing_token", "The Meta path without access_token anywhere.",
        {"data": [web()]}, 401, 190, 0, [], endpoint="meta")
invalid("meta_invalid_token", "The Meta path with an unknown token.",
        {"data": [web()], "access_token": "nope"}, 401, 190, 0, [], endpoint="meta")
invalid("capi_invalid_token", "/v1/conversions with an unknown bearer token.",
        {"data": [web()]}, 401, 190, 0, [], headers=["Authorization: Bearer nope", "Content-Type: application/json"])
invalid("capi_missing_token", "/v1/conversions without Authorization.",
        {"data": [web()]}, 401, 190, 0, [], headers=["Content-Type: application/json"])
invalid("other_advertisers_dataset", "A dataset of another advertiser answers as Meta answers for an unknown pixel (no probing for ids).",
        {"data": [web()]}, 400, 100, 33, [], type="GraphMethodException", uri="/v1/conversions?dataset=999",
        message=UNKNOWN % "999")
invalid("meta_other_advertisers_token", "The Meta path with another advertiser's valid token: Meta's answer for an unknown pixel.",
        {"data": [web()]}, 400, 100, 33, [], type="GraphMethodException", endpoint="meta",
        query="?access_token=other-advertiser-token", message=UNKNOWN % "1234567890")
invalid("multipart_without_boundary", "A multipart body whose Content-Type names no boundary.",
        "--x\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n[]\r\n--x--", 400, 100, 2804002, [],
        endpoint="meta", query="?access_token=" + TOKEN, headers=["Content-Type: multipart/form-data"])
invalid("multipart_unterminated", "A multipart body cut before its closing delimiter.",
        "--x\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n[]", 400, 100, 2804002, [],
        endpoint="meta", query="?access_token=" + TOKEN, headers=["Content-Type: multipart/form-data; boundary=x"])
invalid("purchase_needs_currency_and_value", "A Purchase needs custom_data.currency (Meta's subcode 2804010) and custom_data.value.",
        {"data": [web(custom={"value": 5}), web(custom={"currency": "USD"}), web(custom={}), web(name="Lead", custom={})]},
        400, 100, 2804010,
        [(0, "data[0].custom_data.currency", "required for Purchase events"),
         (1, "data[1].custom_data.value", "required for Purchase events"),
         (2, "data[2].custom_data.currency", "required for Purchase events"),
         (2, "data[2].custom_data.value", "required for Purchase events")],
        user_title="Missing Currency for Purchase Event")
invalid("purchase_needs_value", "A Purchase without custom_data.value (cpafeed's subcode; Meta publishes none).",
        {"data": [web(custom={"currency": "USD"})]}, 400, 100, 2804011,
        [(0, "data[0].custom_data.value", "required for Purchase events")])
invalid("string_events_not_objects", "Events sent as JSON strings (as the Python SDK does) must each hold a JSON object.",
        {"data": [json.dumps(web(eid="s-1")), "[1,2]", "{not json", json.dumps(web(eid="s-4"))]}, 400, 100, 2804019,
        [(1, "data[1]", "not an object"), (2, "data[2]", "not an object")])
invalid("form_data_not_json", "A form body whose data field is not JSON.",
        "data=%5Boops&access_token=" + TOKEN, 400, 100, 2804002, [],
        endpoint="meta", headers=["Content-Type: application/x-www-form-urlencoded"])
