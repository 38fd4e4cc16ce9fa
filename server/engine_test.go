package server

import (
	"strconv"
	"testing"
	"time"

	"github.com/cpafeed/cpafeed/bidder"
	"github.com/cpafeed/cpafeed/configs"
	"github.com/cpafeed/cpafeed/model"
	"github.com/cpafeed/cpafeed/signals"
)

// syncLog is an in-memory EngineLog: applies run in log order when waited
// for, as the journal runs them once durable.
type syncLog struct {
	lsn     uint64
	applied uint64
	applies []func()
}

func (l *syncLog) AppendApply(rec []byte, undo, apply func()) (uint64, uint64, error) {
	l.lsn++
	l.applies = append(l.applies, apply)
	return l.lsn, 0, nil
}

func (l *syncLog) Tail() (uint64, uint64) { return l.lsn, 0 }

func (l *syncLog) Wait(lsn, epoch uint64) error {
	for l.applied < lsn {
		if fn := l.applies[l.applied]; fn != nil {
			fn()
		}
		l.applies[l.applied] = nil
		l.applied++
	}
	return nil
}

const engineRequest = `{"id":"req-1","imp":[{"id":"1","video":{"mimes":["video/mp4"]}}],
"app":{"bundle":"com.example.tv","publisher":{"id":"pub-9"},"content":{"genre":"Sports"}},
"device":{"ip":"73.92.14.201","ifa":"5a6e2c1b-9d3f-4e7a-8b4c-0f1d2e3a4b5c","devicetype":3,"geo":{"metro":"501"}}}`

// An Engine runs the whole path on its own clock (years away from the wall
// clock): an exposure, its VAST events and a matching conversion end up as
// a credited conversion on the exposure's segment.
func TestEngineWholePathOnItsClock(t *testing.T) {
	t.Run("chain", func(t *testing.T) { testEngineWholePath(t, model.StructureChain) })
	t.Run("crossed", func(t *testing.T) { testEngineWholePath(t, model.StructureCrossed) })
}

func testEngineWholePath(t *testing.T, structure string) {
	cfg, err := ParseConfig(configs.Default)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Model.Structure = structure
	now := time.Date(2031, 3, 1, 20, 0, 0, 0, time.UTC)
	log := &syncLog{}
	e, err := NewEngine(cfg, log, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	req, err := signals.NewExtractor().Extract([]byte(engineRequest), now.Unix())
	if err != nil {
		t.Fatal(err)
	}
	const camp = "demo-ctv-purchase"
	if stored, err := e.Exposures.Expose(req, 0, camp, 20, now.Unix()); err != nil || !stored {
		t.Fatalf("exposure: %v %v", stored, err)
	}
	for _, ev := range []string{"start", "complete"} {
		if err := e.Exposures.VideoEvent(req, 0, camp, ev); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(2 * time.Hour)
	body := `{"data":[{"event_name":"Purchase","event_time":` + strconv.FormatInt(now.Unix()-600, 10) +
		`,"event_id":"ev-1","action_source":"website","event_source_url":"https://shop.example.com/thanks",` +
		`"user_data":{"client_ip_address":"73.92.14.201","client_user_agent":"Mozilla/5.0"},"custom_data":{"value":10,"currency":"USD"}}]}`
	for i, wantDup := range []int{0, 1} { // the retry is deduplicated
		if n, dup, err := e.Conversions.Ingest("1234567890", []byte(body), "application/json"); err != nil || n != 1 || dup != wantDup {
			t.Fatalf("ingest %d: %d %d %v", i, n, dup, err)
		}
	}
	st, _ := e.Attributor.Stats(camp)
	if st.Attributed != 1 || st.ByMethod["household_ip"] != 1 {
		t.Fatalf("attribution: %+v", st)
	}
	e.Model.Refresh(now.Unix())
	e.Sweep()
	var res bidder.Result
	if err := e.Bidder.ScoreRequest(req, bidder.ScoreOptions{Campaigns: []string{camp}}, &res); err != nil {
		t.Fatal(err)
	}
	s := res.Imps[0].Scores[0]
	// Counts decay (half-life 168h): two hours later one conversion weighs 0.992.
	level, seg := 4, camp+"/pub-9/com.example.tv/Sports/501"
	if structure == model.StructureCrossed {
		// Every effect table knows the cell; the segment is the cell (the
		// request has no utcoffset, position, slot, pod or content length).
		level = len(model.DefaultEffects)
		seg = camp + "/pub-9/com.example.tv/Sports/501/unknown/3/unknown/unknown/unknown/unknown"
		var genre string
		e.Model.Estimates().Effects(camp, "genre", func(ef model.Effect) bool { genre = string(ef.Value); return true })
		if genre != "Sports" {
			t.Fatalf("genre effects: %q", genre)
		}
	}
	if s.Level != level || s.Conversions < 0.98 || s.Conversions > 1 || s.VTR <= 0 || string(s.Segment) != seg {
		t.Fatalf("score: %+v (%s)", s, s.Segment)
	}
	if log.lsn != 5 { // exposure, start, complete, conversion batch, the retry's counts
		t.Fatalf("%d records, want 5", log.lsn)
	}
}
