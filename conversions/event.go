package conversions

import (
	"github.com/cpafeed/cpafeed/dedup"
	"github.com/cpafeed/cpafeed/signals"
)

// Source is where a conversion came from. The values are persisted in journal
// records: append only.
type Source uint8

// Sources. The Meta-compatible path counts as SourceCAPI.
const (
	SourceCAPI  Source = 1 // POST /v1/conversions and POST /{version}/{dataset}/events
	SourcePixel Source = 2 // GET or POST /v1/pixel
	numSources         = 3
)

func (s Source) String() string {
	switch s {
	case SourceCAPI:
		return "capi"
	case SourcePixel:
		return "pixel"
	}
	return "unknown"
}

// ActionSource is Meta's action_source. The values are persisted: append only.
type ActionSource uint8

// Meta's action_source values.
const (
	ActionNone ActionSource = iota
	ActionWebsite
	ActionApp
	ActionEmail
	ActionPhoneCall
	ActionChat
	ActionPhysicalStore
	ActionSystemGenerated
	ActionBusinessMessaging
	ActionOther
	numActionSources
)

var actionSourceNames = [numActionSources]string{"", "website", "app", "email", "phone_call", "chat",
	"physical_store", "system_generated", "business_messaging", "other"}

func (a ActionSource) String() string {
	if a < numActionSources {
		return actionSourceNames[a]
	}
	return "unknown"
}

// parseActionSource matches Meta's spelling case-insensitively (the SDKs
// lower-case it).
func parseActionSource(b []byte) ActionSource {
	for a := ActionWebsite; a < numActionSources; a++ {
		if equalFoldASCII(b, actionSourceNames[a]) {
			return a
		}
	}
	return ActionNone
}

// Flags qualify a stored event. The values are persisted: append only.
type Flags uint8

const (
	// FlagLDU marks an event sent with data_processing_options ["LDU"]
	// (Limited Data Use): it is stored and counted, but its identifiers were
	// discarded on arrival, so it can never be matched to an exposure.
	FlagLDU Flags = 1 << iota
	// FlagOptOut marks an event sent with opt_out: true. Meta's meaning is
	// "not for ads delivery optimization". cpafeed stores, deduplicates and
	// counts it (stats) and keeps its keyed identifiers, but attribution must
	// never credit it to the model, which is cpafeed's optimization.
	FlagOptOut
	// FlagValue says Value and Currency were sent.
	FlagValue
	// FlagFingerprint says the event had no event_id: its DedupKey is a
	// fingerprint of its name, time, order id and identifiers.
	FlagFingerprint
	flagsKnown = FlagLDU | FlagOptOut | FlagValue | FlagFingerprint
)

// DedupKey is the 128-bit deduplication key of an event: the first 16 bytes of
// SHA-256 over (dataset, event_name, event_id) or, without an event_id, over a
// fingerprint. It is journaled, so its derivation must never change.
type DedupKey = dedup.Key

// StoredEvent is a conversion after validation, hashing and deduplication: what
// the journal holds and what the stored-events hook receives. It holds no raw
// PII: identities are keyed hashes.
//
// Lifetime: the strings are immutable and may be kept, but IDs aliases a
// buffer that is reused after the hook returns; copy it to keep it.
type StoredEvent struct {
	Dataset      string
	EventName    string
	EventTime    int64   // Unix seconds, as sent by the advertiser
	Received     int64   // Unix milliseconds, server clock at ingest
	Value        float64 // custom_data.value, >= 0; 0 unless FlagValue
	Currency     string  // ISO 4217, upper case; "" unless FlagValue
	ActionSource ActionSource
	Source       Source
	Flags        Flags
	Key          DedupKey
	IDs          []signals.ID // matchable identities; empty with FlagLDU
}

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
