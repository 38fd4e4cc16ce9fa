#!/usr/bin/env python3
"""Writes testdata/sdk/*.json: one CAPI request per wire shape that Meta's
official business SDKs (and curl) put on the wire, byte for byte, written
from what each SDK's serialization code does (no SDK code is copied or run
here; testdata/sdk/README.md names the files and commits read). Run from
conversions/: python3 testdata/gen/sdk_fixtures.py

Each fixture has the request the SDK sends to graph.facebook.com (its
headers, its query, its body); conversions/sdk_test.go sends it to
/{version}/{dataset}/events as it is and to /v1/conversions with a Bearer
token instead of the query, and checks both accept it, then deduplicate a
resend fully."""
import hashlib, hmac, json, os, urllib.parse

T = 1795628530
EM = "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"  # jane.doe@example.com
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15"
URL = "https://shop.example.com/checkout/thanks"
FBP = "fb.1.1795001234567.1234567890"
TOKEN = "dev-advertiser-token"
APP_SECRET = "dev-app-secret"  # only to compute appsecret_proof, which cpafeed ignores
PROOF = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(os.path.dirname(here), "sdk")
os.makedirs(out, exist_ok=True)


def purchase(eid, currency="usd", em_list=True):
    """A Purchase with the keys in the order the SDKs' Event.normalize
    emits them: event_name, event_time, event_source_url, event_id,
    user_data, custom_data, action_source."""
    return {"event_name": "Purchase", "event_time": T, "event_source_url": URL, "event_id": eid,
            "user_data": {"em": [EM] if em_list else EM, "client_ip_address": "203.0.113.42",
                          "client_user_agent": UA, "fbp": FBP},
            "custom_data": {"value": 129.9, "currency": currency},
            "action_source": "website"}


def lead(eid, em_list=True):
    """A Lead whose only customer information is fbp (valid for Meta, not
    matchable by cpafeed) and a first name."""
    return {"event_name": "Lead", "event_time": T, "event_source_url": URL, "event_id": eid,
            "user_data": {"fn": ["81f8f6dde88365f3928796ec7aa53f72820b06db8664f5fe76a7eb13e24546a2"] if em_list
                          else "81f8f6dde88365f3928796ec7aa53f72820b06db8664f5fe76a7eb13e24546a2",
                          "client_user_agent": UA, "fbp": FBP},
            "action_source": "website"}


STORED = [
    {"event_name": "Purchase", "ids": ["email", "ip"], "flags": ["value"], "value": 129.9, "currency": "USD",
     "action_source": "website"},
    {"event_name": "Lead", "ids": [], "flags": [], "value": 0, "currency": "", "action_source": "website"},
]


def write(name, desc, sources, headers, query, body):
    fx = {"description": desc, "sources": sources, "headers": headers, "query": query, "body": body,
          "want": {"events_received": 2, "stored": STORED}}
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(fx, f, indent=2, ensure_ascii=False)
        f.write("\n")


def multipart(boundary, parts):
    """The body curl (PHP) and Java's APIRequest write: a delimiter line,
    one Content-Disposition header, an empty line and the value for each
    part, CRLF line ends, then the closing delimiter."""
    b = ""
    for name, value in parts:
        b += "--" + boundary + "\r\n" + 'Content-Disposition: form-data; name="' + name + '"\r\n\r\n' + value + "\r\n"
    return b + "--" + boundary + "--\r\n"


def php_json(v):
    """PHP's json_encode with default flags: compact, '/' escaped as '\\/',
    non-ASCII as \\uXXXX."""
    return json.dumps(v, separators=(",", ":")).replace("/", "\\/")


# ------------------------------------------------------------------ Python
# EventRequest.normalize json.dumps each event (default separators);
# FacebookAdsApi.call json-dumps the list (_top_level_param_json_encode:
# sort_keys, compact) and posts the params as a form (data=params);
# FacebookSession puts access_token and appsecret_proof in the query.
py_events = [json.dumps(purchase("py-1", em_list=False)), json.dumps(lead("py-2", em_list=False))]
py_data = json.dumps(py_events, sort_keys=True, separators=(",", ":"))
write("python_form_json_strings",
      "Meta's Python SDK: a form body whose data is a JSON array of JSON strings, one json.dumps'd event each; "
      "the token and appsecret_proof in the query.",
      ["facebook/facebook-python-business-sdk facebook_business/adobjects/serverside/event_request.py @ d680613ceed8c01548826f5bace5e8b4b40d83b1 (normalize, get_params, execute)",
       "facebook/facebook-python-business-sdk facebook_business/api.py @ 015e76cd55114c001cee469fb155539aba82dea5 (FacebookAdsApi.call, _top_level_param_json_encode)",
       "facebook/facebook-python-business-sdk facebook_business/session.py @ 0442d2292776b0a6080373a60a1373198cd7341f (access_token, appsecret_proof as session query params)",
       "facebook/facebook-python-business-sdk facebook_business/adobjects/serverside/event.py @ 04f22ef7399ae038a47cec3f548b8232acb1f017 (Event.normalize keys)",
       "facebook/facebook-python-business-sdk facebook_business/adobjects/serverside/user_data.py @ 1afa2c81a3d573dff94716dc8e4d11b196159b82 (UserData.normalize: em as one hash)"],
      ["Content-Type: application/x-www-form-urlencoded", "User-Agent: fbbizsdk-python-v24.0.1"],
      "?access_token=" + TOKEN + "&appsecret_proof=" + PROOF,
      urllib.parse.urlencode({"data": py_data}))

# ------------------------------------------------------------------ PHP
# EventRequest::normalize returns ['data' => events]; Api::prepareRequest
# adds the session's access_token (and appsecret_proof) to the body params;
# Parameters::export json_encodes non-scalars; CurlAdapter hands the array
# to CURLOPT_POSTFIELDS, which curl sends as multipart/form-data.
php_boundary = "------------------------" + "Xb2kQm7tR9vLw4ZpN1cA0s"
write("php_multipart",
      "Meta's PHP SDK: multipart/form-data (curl with an array of fields), data a json_encode'd array of objects "
      "('/' escaped as '\\/'), access_token and appsecret_proof as parts.",
      ["facebook/facebook-php-business-sdk src/FacebookAds/Object/ServerSide/EventRequest.php @ 685b1fd6de83f3d94cea3c12afa15e4a8ff2c8e0 (normalize, defaultExecute)",
       "facebook/facebook-php-business-sdk src/FacebookAds/Api.php @ 0064bac15f069c89d5b9dcca8ec477379eb21a51 (prepareRequest: body params + session params)",
       "facebook/facebook-php-business-sdk src/FacebookAds/Http/Parameters.php @ 44d43cac474087a01d664c58f3a0493fa99eff9b (export: json_encode of non-scalars)",
       "facebook/facebook-php-business-sdk src/FacebookAds/Http/Adapter/CurlAdapter.php @ feca9290e730d4f013f57f1f5b916c92ba351e71 (CURLOPT_POSTFIELDS as an array: multipart)"],
      ["Content-Type: multipart/form-data; boundary=" + php_boundary, "User-Agent: fbbizsdk-php-v24.0.0"],
      "",
      multipart(php_boundary, [("data", php_json([purchase("php-1"), lead("php-2")])),
                               ("access_token", TOKEN), ("appsecret_proof", PROOF)]))

# ------------------------------------------------------------------ Java
# EventRequest.getPixelCreateEvent sets data to getGson().toJson(events)
# (compact, HTML escaping disabled); APIRequest.getAllParams adds
# access_token (and appsecret_proof) to a HashMap; DefaultRequestExecutor.
# sendPost writes every param as a multipart part, in HashMap order
# (access_token hashes to bucket 0, data to 4, appsecret_proof to 10),
# boundary "--------------------------" + Random.nextLong().
java_boundary = "--------------------------" + "-4721036520853434471"
write("java_multipart",
      "Meta's Java SDK: multipart/form-data in HashMap order, data a Gson array of objects, access_token and "
      "appsecret_proof as parts, a boundary made of 26 dashes and a negative long.",
      ["facebook/facebook-java-business-sdk src/main/java/com/facebook/ads/sdk/serverside/EventRequest.java @ 00a32efd6a99c3c8cfb9196f7eda235af97a3d80 (getPixelCreateEvent, getGson)",
       "facebook/facebook-java-business-sdk src/main/java/com/facebook/ads/sdk/APIRequest.java @ c9ba5423beb6765d38f49d3bf6ede22731640433 (getAllParams, DefaultRequestExecutor.sendPost)"],
      ["Content-Type: multipart/form-data; boundary=" + java_boundary, "User-Agent: fbbizsdk-java-v24.0.0"],
      "",
      multipart(java_boundary, [("access_token", TOKEN),
                                ("data", json.dumps([purchase("java-1"), lead("java-2")], separators=(",", ":"), ensure_ascii=False)),
                                ("appsecret_proof", PROOF)]))

# ------------------------------------------------------------------ Ruby
# EventRequest#normalize JSON.generates each event; the events edge
# declares data as list<string>, whose FieldTypes::List#serialize
# JSON.generates the list into one string; Session#request puts
# access_token (and appsecret_proof) in the query and Faraday's :json
# request middleware encodes the params hash as the JSON body.
rb_events = [json.dumps(purchase("rb-1"), separators=(",", ":"), ensure_ascii=False),
             json.dumps(lead("rb-2"), separators=(",", ":"), ensure_ascii=False)]
rb_data = json.dumps(rb_events, separators=(",", ":"), ensure_ascii=False)
write("ruby_json_string_of_strings",
      "Meta's Ruby SDK: a JSON body whose data is a JSON string holding an array of JSON strings, one event each; "
      "the token and appsecret_proof in the query.",
      ["facebook/facebook-ruby-business-sdk lib/facebook_ads/ad_objects/server_side/event_request.rb @ 55fdcb83dcae6c64624943326f58aca6d13f8c14 (execute, normalize)",
       "facebook/facebook-ruby-business-sdk lib/facebook_ads/ad_objects/ads_pixel.rb (events edge: data is list<string>)",
       "facebook/facebook-ruby-business-sdk lib/facebook_ads/param_set.rb, lib/facebook_ads/field_types/list.rb @ 328b75aedae91294e255b5dff00b91c605befeb3 (List#serialize: JSON.generate)",
       "facebook/facebook-ruby-business-sdk lib/facebook_ads/session.rb @ 005f05b68b6d0ab3d414a449e1e0a109610e4944 (query params, request :multipart then :json)"],
      ["Content-Type: application/json", "User-Agent: fbbizsdk-ruby-v24.0.0"],
      "?access_token=" + TOKEN + "&appsecret_proof=" + PROOF,
      json.dumps({"data": rb_data}, separators=(",", ":"), ensure_ascii=False))

# ------------------------------------------------------------------ Node
# EventRequest.execute posts {data: normalized events, access_token, ...}
# (undefined members dropped by JSON.stringify) through AdsPixel.createEvent
# and FacebookAdsApi.call, which adds access_token to the query and sends
# the params as a JSON body.
write("node_json",
      "Meta's Node SDK: a JSON body with data an array of objects and access_token, the token in the query too.",
      ["facebook/facebook-nodejs-business-sdk src/objects/serverside/event-request.js @ 9eb55359e9cc6336ee656c887aca4fda27cf0ed2 (execute)",
       "facebook/facebook-nodejs-business-sdk src/api.js @ 029b61c42bed09311ae7e928decd99d71c13fdd8 (call: access_token in the query, data as the body)",
       "facebook/facebook-nodejs-business-sdk src/http.js @ f0acb5dd520150e17822ddacc709439dbe21ecd0 (requestPromise: json body)"],
      ["Content-Type: application/json", "User-Agent: fbbizsdk-nodejs-v24.0.1"],
      "?access_token=" + TOKEN,
      json.dumps({"data": [purchase("node-1"), lead("node-2")], "access_token": TOKEN}, separators=(",", ":")))

# ------------------------------------------------------------------ curl
events = json.dumps([purchase("curl-1"), lead("curl-2")])
write("curl_json_as_form",
      "curl -d '{\"data\": [...]}' without -H: a JSON body under curl's default type application/x-www-form-urlencoded.",
      ["curl's -d sends Content-Type: application/x-www-form-urlencoded unless told otherwise"],
      ["Content-Type: application/x-www-form-urlencoded"],
      "?access_token=" + TOKEN,
      json.dumps({"data": [purchase("curlj-1"), lead("curlj-2")]}))
curl_boundary = "------------------------" + "d74496d66958873e"
write("curl_multipart",
      "curl -F 'data=[...]' -F access_token=...: multipart/form-data, the token as a part.",
      ["curl's -F sends multipart/form-data, one part per -F"],
      ["Content-Type: multipart/form-data; boundary=" + curl_boundary],
      "",
      multipart(curl_boundary, [("data", events), ("access_token", TOKEN)]))
write("form_json_array",
      "Meta's curl example: data=<JSON array of objects> and access_token as form fields.",
      ["developers.facebook.com/docs/marketing-api/conversions-api/using-the-api (the curl example)"],
      ["Content-Type: application/x-www-form-urlencoded"],
      "",
      urllib.parse.urlencode({"data": json.dumps([purchase("form-1"), lead("form-2")]), "access_token": TOKEN}))
