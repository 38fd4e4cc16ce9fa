// Package conversions is cpafeed's Conversions API, wire-compatible with
// Meta's: parsing of CAPI bodies in every shape Meta's SDKs and curl send
// (JSON, form-encoded, multipart; events as objects, as JSON strings, or as
// one JSON string: parseTop, eventArray) and pixel hits, validation with
// Meta's rules (Meta's own ids make an event valid but unmatchable; a
// Purchase needs value and currency; Limited Data Use by country and
// state),
// normalization and hashing of user data, exact deduplication across the CAPI,
// the Meta-compatible path and the pixel, the journal record of every accepted
// batch, and per-dataset stats. Attribution plugs in through SetStoredHook.
//
// It holds three jobs, each with its type:
//   - Service: the CAPI (POST /v1/conversions, Meta's /{version}/{dataset}/events,
//     in process Ingest), the pixel (/v1/pixel), dataset stats (/v1/stats)
//     and test events (/v1/test_events), deduplication and the journal
//     records of conversion batches (capi_handler.go the HTTP side; the
//     ingest core in ingest.go: Ingest, parseTop, validateAndCommit; then
//     parse.go, normalize.go, service.go, record.go);
//   - Attributor (attribution.go): matches stored conversions to the
//     exposures that preceded them in the signals.Index, credits their
//     segments in the model (Crediter), and serves a campaign's report
//     (GET /v1/campaigns/{id}/stats, reports_handler.go) and its lift
//     (lift_handler.go); GET /v1/segments, which reads only the model's
//     estimates, is served by bidder.HandleSegments;
//   - Eraser (identities_handler.go): DELETE /v1/identities removes a
//     person's identities from the index, the pending conversions and the
//     dedup fingerprints, after journaling a tombstone (record 0x02, its
//     codec in deletion_record.go).
//
// Callers are resolved by the server before a handler runs (server/auth.go,
// the one Bearer parser in package auth): the advertiser handlers receive
// the advertiser's name, never a token. The one token this package reads is
// Meta's access_token inside a body (form field or JSON member, when the
// query has none), resolved once parsed through the same table (Tenants).
//
// Flow of a request (Service.HandleConversions, HandleMetaEvents, HandlePixel,
// Ingest): with the caller known (or, on Meta's path, its token in the
// body), ask the server for the decompressed body (a Body); parse with a pooled fastjson parser; validate every event, listing
// every problem (a batch is atomic); normalize and hash the identifiers into
// keyed signals.IDs, dropping the clear values at once; derive each event's
// 128-bit dedup key; then, under the dataset's dedup lock, check and reserve
// the keys, encode one journal record of the new events and Append it; wait
// until the record (and any not-yet-durable record the batch deduplicated
// against) is durable; only then count the stats, call the stored-events hook
// and answer. A failed append or flush answers 503 and acknowledges nothing.
//
// Privacy: no raw PII is ever written anywhere. Journal records hold keyed
// identity hashes (HMAC-SHA-256, 64 bits), event names, times, values and the
// dedup key. Clear values live only in request buffers: fasthttp's, the
// parser's private copy of the body (overwritten when the request ends) and
// the package's scratch buffers (cleared when the request ends).
// Limited Data Use (data_processing_options ["LDU"]) of a US state it
// covers, or where Meta would geolocate (country or state 0 or absent,
// which cpafeed cannot): stored and counted, the identifiers are discarded
// on arrival; outside the US or in a state it does not cover, the
// identifiers are kept.
// Test batches (a test_event_code): validated and answered as real ones,
// never stored nor journaled; their events are kept in memory (hashed
// identifiers only, bounded per dataset and in time) for GET
// /v1/test_events. opt_out: true: stored, deduplicated
// and counted with its keyed identities, flagged FlagOptOut so that
// attribution never credits it to the model (Meta: "not for ads delivery
// optimization"; cpafeed's optimization is the model).
// advertiser_tracking_enabled false: the event's device ids are ignored.
//
// Lifetimes: StoredEvent strings may be kept; the []StoredEvent handed to the
// hook and each event's IDs are valid only during the hook call. Nothing of a
// fasthttp.RequestCtx or of a request body is kept after a handler returns.
//
// Locking: each dataset has a dedup mutex (held to check, reserve, encode and
// Append; the journal's undo callback takes it too, so the journal must not
// call undo while holding a lock that Append needs) and a stats mutex. The
// Service is safe for concurrent use; the hook may be called concurrently.
//
// Restart: in journal order before serving, Replay every conversion batch
// record (first byte RecordTypeConversionBatch: a batch that stored events)
// and ReplayCounts every counts record (RecordTypeConversionCounts: a batch
// that was rejected or all duplicates); they rebuild the dedup state and the
// stats and hand the stored events to the hook.
//
// Attribution (Attributor) matches stored conversions to the exposures of
// the identity index, in log order, and credits the model: last touch,
// linear, or probabilistic (each exposure by its match's confidence × its
// segment's current CVR × the delay density at its lag, against the
// campaign's organic rate). Probabilistic credits need the model's current
// estimates, which are not in log order: a match queues the conversion,
// FlushCredits journals the computed weights (RecordTypeCredits) and the
// record's apply credits the model, so a replay credits exactly the same.
// Real and ghost exposures (households held out of a campaign) feed the
// campaign's lift measurement (treatment and control arms, same matcher):
// GET /v1/campaigns/{id}/lift (LiftReport). Restart also replays the
// credit records (ReplayCredits).
//
// Snapshots: a batch reserves its dedup keys when it appends its record,
// before the record is durable and applied. WriteSnapshot(w, next) writes
// the state as of the records before next and leaves out the keys of the
// batches still in flight at that checkpoint, so that a replay of their
// records (or a client's retry of a record that never reached the disk) is
// not taken for a duplicate of itself.
package conversions
