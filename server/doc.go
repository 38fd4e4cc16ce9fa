// Package server wires cpafeed together: configuration, the HTTP routes (one
// switch shows them all, routes.go), the front door that resolves every
// caller before its handler runs (auth.go: each route's role, the tenant
// table of tenants.go, the one Bearer parser of package auth), limits,
// request decompression, metrics, logging, and the lifecycle (replay,
// readiness, draining and graceful shutdown). The domain work lives in the
// packages it calls; Engine is that wiring of the in-memory components
// without HTTP or disk (for in-process simulations), and the server's state
// holds one Engine over the journal (state.go).
package server
