//go:build !linux

package load

// rawIOAvailable: elsewhere every connection takes the portable path
// (portableRoundTrip).
const rawIOAvailable = false

func bindRaw(*httpConn) {}

func (c *httpConn) rawRoundTrip(head, body []byte) error { return c.portableRoundTrip(head, body) }
