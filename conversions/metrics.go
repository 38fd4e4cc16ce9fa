package conversions

import "github.com/VictoriaMetrics/metrics"

// Metrics, registered once. Indexed by Source (index 0 unused).
var (
	metricReceived = [numSources]*metrics.Counter{
		SourceCAPI:  metrics.NewCounter(`cpafeed_conversions_events_received_total{source="capi"}`),
		SourcePixel: metrics.NewCounter(`cpafeed_conversions_events_received_total{source="pixel"}`),
	}
	metricStored = [numSources]*metrics.Counter{
		SourceCAPI:  metrics.NewCounter(`cpafeed_conversions_events_stored_total{source="capi"}`),
		SourcePixel: metrics.NewCounter(`cpafeed_conversions_events_stored_total{source="pixel"}`),
	}
	metricDeduplicated = [numSources]*metrics.Counter{
		SourceCAPI:  metrics.NewCounter(`cpafeed_conversions_events_deduplicated_total{source="capi"}`),
		SourcePixel: metrics.NewCounter(`cpafeed_conversions_events_deduplicated_total{source="pixel"}`),
	}
	metricRejected = [numSources]*metrics.Counter{
		SourceCAPI:  metrics.NewCounter(`cpafeed_conversions_events_rejected_total{source="capi"}`),
		SourcePixel: metrics.NewCounter(`cpafeed_conversions_events_rejected_total{source="pixel"}`),
	}
	// metricUnmatchable counts stored events valid for Meta through its own
	// ids only (fbp, fbc, lead_id, ...): never matched to an exposure.
	metricUnmatchable = metrics.NewCounter(`cpafeed_conversions_events_unmatchable_total`)
	// metricLDU counts stored events sent with Limited Data Use, by what it
	// did: restricted (identifiers discarded) or kept, and why.
	metricLDU = [numLDUOutcomes]*metrics.Counter{
		lduGeolocate:      metrics.NewCounter(`cpafeed_conversions_ldu_events_total{outcome="restricted",reason="geolocate"}`),
		lduCoveredState:   metrics.NewCounter(`cpafeed_conversions_ldu_events_total{outcome="restricted",reason="covered_state"}`),
		lduOutsideUS:      metrics.NewCounter(`cpafeed_conversions_ldu_events_total{outcome="kept",reason="outside_us"}`),
		lduUncoveredState: metrics.NewCounter(`cpafeed_conversions_ldu_events_total{outcome="kept",reason="uncovered_state"}`),
	}
	// metricTestEvents counts the events of test batches (test_event_code):
	// [0] accepted, [1] rejected. They are never stored nor journaled.
	metricTestEvents = [2]*metrics.Counter{
		metrics.NewCounter(`cpafeed_conversions_test_events_total{outcome="accepted"}`),
		metrics.NewCounter(`cpafeed_conversions_test_events_total{outcome="rejected"}`),
	}
	// metricDedupEntries is the number of remembered dedup keys, all datasets.
	metricDedupEntries = metrics.NewGauge(`cpafeed_conversions_dedup_entries`, nil)
)
