// Package dedup is an exact set of 128-bit keys remembered for a time window,
// in time generations so that expiry drops whole maps at once. Conversions use
// it for (dataset, event_name, event_id), exposures for (request, imp,
// campaign). It imports nothing of cpafeed and is not safe for concurrent use:
// its owner's mutex guards it.
package dedup
