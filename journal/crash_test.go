package journal

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const crashDirEnv = "JOURNAL_CRASH_CHILD_DIR"

// crashRecord is the content of record (round, worker, seq) in TestKill9.
func crashRecord(round, worker, seq int) []byte {
	id := fmt.Sprintf("r%d-w%d-s%d:", round, worker, seq)
	return append([]byte(id), bytes.Repeat([]byte{byte(seq)}, (seq*37)%400)...)
}

// TestCrashChild is the process TestKill9 kills: it appends with
// fsync=always from several goroutines and prints "ack <lsn> <round> <worker>
// <seq>" for every acknowledged record.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process of TestKill9")
	}
	round, _ := strconv.Atoi(os.Getenv("JOURNAL_CRASH_ROUND"))
	j, err := Open(Options{Dir: dir, Fsync: FsyncAlways, SegmentBytes: 32 << 10, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Replay(0, nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	deadline := time.Now().Add(10 * time.Second) // the parent kills us long before
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for seq := 0; time.Now().Before(deadline); seq++ {
				lsn, ep, err := j.Append(crashRecord(round, w, seq), nil)
				if err == nil {
					err = j.Wait(lsn, ep)
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d %d %d %d\n", lsn, round, w, seq)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestKill9 SIGKILLs a child process at random moments while it appends and
// checks after each kill that every record it acknowledged is replayed, with
// its content, and that appending continues correctly across the restarts.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	acked := map[uint64][]byte{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	for round := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, "JOURNAL_CRASH_ROUND="+strconv.Itoa(round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 1 + rng.IntN(300) // acknowledged records before the kill
		sc := bufio.NewScanner(stdout)
		n := 0
		killed := false
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 5 || f[0] != "ack" {
				continue
			}
			var v [4]int
			for i := range v {
				v[i], _ = strconv.Atoi(f[i+1])
			}
			acked[uint64(v[0])] = crashRecord(v[1], v[2], v[3])
			if n++; n == killAfter && !killed {
				// Not right at the ack: somewhere in the next few flushes.
				time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
				cmd.Process.Kill()
				killed = true
			}
		}
		cmd.Wait()
		if !killed {
			t.Fatalf("round %d: the child exited after %d acks before being killed", round, n)
		}

		recs, rep := replayAll(t, Options{Dir: dir})
		if len(rep.Dropped) != 0 || rep.GapLSNs != 0 {
			t.Fatalf("round %d: replay %+v", round, rep)
		}
		for lsn, want := range acked {
			if lsn > uint64(len(recs)) || !bytes.Equal(recs[lsn-1], want) {
				t.Fatalf("round %d: acknowledged LSN %d lost or changed (replayed %d records)", round, lsn, len(recs))
			}
		}
		for i, r := range recs {
			if r == nil {
				t.Fatalf("round %d: LSN %d missing", round, i+1)
			}
		}
		t.Logf("round %d: killed after %d acks; %d records on disk (%d acked in all), torn tail %d bytes",
			round, n, len(recs), len(acked), rep.TruncatedBytes)
	}
}
