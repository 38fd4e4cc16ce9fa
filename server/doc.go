// Package server wires cpafeed together: configuration, the HTTP routes (one
// switch shows them all), authentication of tenants, limits, request
// decompression, metrics, logging, and the lifecycle (replay, readiness,
// graceful shutdown). The domain work lives in the packages it calls.
package server
