package conversions

import (
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

// TestJournalErrorAnswerNamesNoPath: when the journal cannot persist, the
// 503 says what failed and the operating system's reason, never the
// journal's file names (which the error behind it holds, for the log).
func TestJournalErrorAnswerNamesNoPath(t *testing.T) {
	e := newTestEnv(t, nil)
	const path = "/srv/cpafeed-secret-dir/journal/00000000000000000001.wal"
	e.log.appendFn = func() error {
		return &fs.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
	}
	body := batchOf(ev("Purchase", "p-1", testNow.Unix()-5, `"em":"jane.doe@example.com"`))
	r := e.postCAPI(body)
	if r.status != 503 || strings.Contains(string(r.body), "cpafeed-secret-dir") ||
		!strings.Contains(r.err.Message, "no space left on device") || !strings.Contains(r.err.Message, "retry") {
		t.Fatalf("append failure: %d %s", r.status, r.body)
	}
	if r.err.Cause == nil || !strings.Contains(r.err.Cause.Error(), path) {
		t.Fatalf("the cause, for the log, is lost: %v", r.err.Cause)
	}
}
