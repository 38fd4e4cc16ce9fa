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
	// metricDedupEntries is the number of remembered dedup keys, all datasets.
	metricDedupEntries = metrics.NewGauge(`cpafeed_conversions_dedup_entries`, nil)
)
