// Package journal is cpafeed's durable log: length-prefixed, CRC32-C checked
// records in segment files, appended with group commit (concurrent appends
// share one fsync), replayed at start, and snapshots that let the log be
// trimmed. A record is opaque bytes to it; it imports nothing of cpafeed.
package journal
