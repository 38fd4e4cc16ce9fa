// Sends one Purchase through Meta's Node business SDK to cpafeed, the way
// README "Meta's SDKs against cpafeed" says: the SDK's Graph host
// (FacebookAdsApi.GRAPH, a static getter) redefined to cpafeed's base URL.
// Used by conversions/node_sdk_test.go.
//
// Usage: node send_events.js <base URL> <access token> <dataset> <event_time> <event_id>
// Prints one JSON line: {"ok": EventResponse} or {"error": {...}}.
'use strict';
const bizSdk = require('facebook-nodejs-business-sdk');
const {FacebookAdsApi, EventRequest, ServerEvent, UserData, CustomData} = bizSdk;

const [base, token, dataset, eventTime, eventId] = process.argv.slice(2);

// The recipe: every Graph call of the SDK goes to cpafeed.
Object.defineProperty(FacebookAdsApi, 'GRAPH', {get: () => base});
// crash_log false: the SDK would otherwise report its own errors to Meta.
FacebookAdsApi.init(token, 'en_US', false);

const user = new UserData()
  .setEmails(['jane.doe@example.com'])
  .setClientIpAddress('203.0.113.42')
  .setClientUserAgent('Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5)')
  .setFbp('fb.1.1795001234567.1234567890');
const custom = new CustomData().setCurrency('usd').setValue(129.9);
const event = new ServerEvent()
  .setEventName('Purchase')
  .setEventTime(Number(eventTime))
  .setEventId(eventId)
  .setUserData(user)
  .setCustomData(custom)
  .setEventSourceUrl('https://shop.example.com/checkout/thanks')
  .setActionSource('website');

new EventRequest(token, dataset)
  .setEvents([event])
  .execute()
  .then((r) => console.log(JSON.stringify({ok: r})))
  .catch((e) => {
    const data = e.response && e.response.data ? e.response.data : e.response;
    console.log(JSON.stringify({error: {message: e.message, status: e.status, response: data}}));
  });
