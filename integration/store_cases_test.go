package integration

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold"
)

// storeCases share one database; each uses streams of its own.
func storeCases[TTx any]() []storeCase[TTx] {
	return []storeCase[TTx]{
		{"expected-version/new-stream", func(t *testing.T, s *eventfold.Store[TTx]) {
			ctx := context.Background()
			for _, c := range []struct {
				exp eventfold.ExpectedVersion
				ok  bool
			}{{eventfold.Any, true}, {eventfold.NoStream, true}, {eventfold.Exact(0), true}, {eventfold.StreamExists, false}, {eventfold.Exact(1), false}, {eventfold.Exact(7), false}} {
				stream := newStream(t)
				out, err := s.Append(ctx, stream, c.exp, ev("Created", `{"n":1}`))
				if c.ok {
					if err != nil || len(out) != 1 || out[0].StreamVersion != 1 {
						t.Fatalf("expected %s on a new stream: got %v, %v", c.exp, out, err)
					}
				} else {
					wantWrongVersion(t, err, stream, 0)
					if v, _ := s.StreamVersion(ctx, stream); v != 0 {
						t.Fatalf("refused append created stream at version %d", v)
					}
				}
			}
		}},
		{"expected-version/existing-stream", func(t *testing.T, s *eventfold.Store[TTx]) {
			ctx := context.Background()
			stream := newStream(t)
			mustAppend(t, s, stream, eventfold.NoStream, ev("A", `1`), ev("B", `2`))
			for _, c := range []struct {
				exp eventfold.ExpectedVersion
				ok  bool
			}{{eventfold.NoStream, false}, {eventfold.Exact(0), false}, {eventfold.Exact(1), false}, {eventfold.Exact(3), false}, {eventfold.Exact(2), true}, {eventfold.StreamExists, true}, {eventfold.Any, true}} {
				before, _ := s.StreamVersion(ctx, stream)
				out, err := s.Append(ctx, stream, c.exp, ev("C", `3`))
				if c.ok {
					if err != nil || out[0].StreamVersion != before+1 {
						t.Fatalf("expected %s at version %d: got %v, %v", c.exp, before, out, err)
					}
				} else {
					wantWrongVersion(t, err, stream, before)
				}
			}
			if got := versions(readStream(t, s, stream, eventfold.ReadStreamOptions{})); !reflect.DeepEqual(got, []int64{1, 2, 3, 4, 5}) {
				t.Fatalf("versions %v, want 1..5", got)
			}
		}},
		{"read-stream", func(t *testing.T, s *eventfold.Store[TTx]) {
			stream := newStream(t)
			var in []eventfold.EventData
			for i := range 10 {
				e := ev("Numbered", `{"i":`+string(rune('0'+i))+`}`)
				e.Metadata = json.RawMessage(`{"user":"ada","n":` + string(rune('0'+i)) + `}`)
				in = append(in, e)
			}
			appended := mustAppend(t, s, stream, eventfold.NoStream, in...)
			all := readStream(t, s, stream, eventfold.ReadStreamOptions{})
			if len(all) != 10 {
				t.Fatalf("read %d events, want 10", len(all))
			}
			for i, e := range all {
				if e.StreamVersion != int64(i+1) || e.StreamID != stream || e.Type != "Numbered" || e.ID != appended[i].ID || e.GlobalPosition != appended[i].GlobalPosition {
					t.Fatalf("event %d: %+v, appended %+v", i, e, appended[i])
				}
				if _, err := uuid.Parse(e.ID); err != nil {
					t.Fatalf("event id %q: %v", e.ID, err)
				}
				if e.RecordedAt.IsZero() || e.RecordedAt.Location().String() != "UTC" {
					t.Fatalf("recorded_at %v", e.RecordedAt)
				}
				if !e.RecordedAt.Equal(appended[i].RecordedAt) {
					t.Fatalf("recorded_at read %v, appended %v", e.RecordedAt, appended[i].RecordedAt)
				}
				jsonEqual(t, in[i].Data, e.Data)
				jsonEqual(t, in[i].Metadata, e.Metadata)
				if i > 0 && e.GlobalPosition <= all[i-1].GlobalPosition {
					t.Fatalf("positions not increasing: %v", positions(all))
				}
			}
			if got := versions(readStream(t, s, stream, eventfold.ReadStreamOptions{From: 4, Limit: 3})); !reflect.DeepEqual(got, []int64{4, 5, 6}) {
				t.Fatalf("forward from 4 limit 3: %v", got)
			}
			if got := versions(readStream(t, s, stream, eventfold.ReadStreamOptions{Backward: true, Limit: 3})); !reflect.DeepEqual(got, []int64{10, 9, 8}) {
				t.Fatalf("backward from end limit 3: %v", got)
			}
			if got := versions(readStream(t, s, stream, eventfold.ReadStreamOptions{Backward: true, From: 2})); !reflect.DeepEqual(got, []int64{2, 1}) {
				t.Fatalf("backward from 2: %v", got)
			}
			if got := readStream(t, s, stream, eventfold.ReadStreamOptions{From: 11}); len(got) != 0 {
				t.Fatalf("read past the end: %v", got)
			}
			if got := readStream(t, s, newStream(t), eventfold.ReadStreamOptions{}); len(got) != 0 {
				t.Fatalf("missing stream read %d events", len(got))
			}
		}},
		{"event-ids", func(t *testing.T, s *eventfold.Store[TTx]) {
			ctx := context.Background()
			stream := newStream(t)
			id := strings.ToUpper(uuid.NewString())
			e := ev("WithID", `{}`)
			e.ID = id
			out := mustAppend(t, s, stream, eventfold.Any, e)
			if out[0].ID != strings.ToLower(id) {
				t.Fatalf("id %q, want canonical %q", out[0].ID, strings.ToLower(id))
			}
			// The same id again, in a batch: the whole batch is refused.
			_, err := s.Append(ctx, stream, eventfold.Any, ev("Fine", `{}`), e)
			if !errors.Is(err, eventfold.ErrDuplicateEventID) {
				t.Fatalf("duplicate id: want ErrDuplicateEventID, got %v", err)
			}
			if v, _ := s.StreamVersion(ctx, stream); v != 1 {
				t.Fatalf("after a refused batch the stream is at %d, want 1", v)
			}
			if got := readStream(t, s, stream, eventfold.ReadStreamOptions{}); len(got) != 1 {
				t.Fatalf("refused batch left %d events", len(got))
			}
		}},
		{"concurrent/exact-version-one-winner", func(t *testing.T, s *eventfold.Store[TTx]) {
			stream := newStream(t)
			mustAppend(t, s, stream, eventfold.NoStream, ev("Start", `0`))
			const n = 8
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					_, errs[i] = s.Append(context.Background(), stream, eventfold.Exact(1), ev("Racer", `1`))
				})
			}
			wg.Wait()
			wins := 0
			for _, err := range errs {
				switch {
				case err == nil:
					wins++
				case errors.Is(err, eventfold.ErrWrongExpectedVersion):
					wantWrongVersion(t, err, stream, 2)
				default:
					t.Fatalf("racer failed with %v, want success or wrong expected version", err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d winners, want exactly 1", wins)
			}
			if got := versions(readStream(t, s, stream, eventfold.ReadStreamOptions{})); !reflect.DeepEqual(got, []int64{1, 2}) {
				t.Fatalf("versions %v, want [1 2]", got)
			}
		}},
		{"concurrent/no-stream-one-winner", func(t *testing.T, s *eventfold.Store[TTx]) {
			stream := newStream(t)
			const n = 8
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					_, errs[i] = s.Append(context.Background(), stream, eventfold.NoStream, ev("Creator", `1`))
				})
			}
			wg.Wait()
			wins := 0
			for _, err := range errs {
				if err == nil {
					wins++
				} else if !errors.Is(err, eventfold.ErrWrongExpectedVersion) {
					t.Fatalf("creator failed with %v, want success or wrong expected version", err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d creators won, want exactly 1", wins)
			}
		}},
		{"concurrent/any-dense-versions", func(t *testing.T, s *eventfold.Store[TTx]) {
			stream := newStream(t)
			const writers, each = 8, 10
			var wg sync.WaitGroup
			errs := make(chan error, writers*each)
			for range writers {
				wg.Go(func() {
					for range each {
						if _, err := s.Append(context.Background(), stream, eventfold.Any, ev("Any", `{}`)); err != nil {
							errs <- err
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if !errors.Is(err, eventfold.ErrTransient) {
					t.Fatalf("append with Any failed: %v", err)
				}
			}
			got := versions(readStream(t, s, stream, eventfold.ReadStreamOptions{}))
			for i, v := range got {
				if v != int64(i+1) {
					t.Fatalf("versions not dense: %v", got)
				}
			}
			if len(got) < writers*each*9/10 {
				t.Fatalf("only %d of %d appends succeeded", len(got), writers*each)
			}
		}},
		{"append-tx/rollback-writes-nothing", func(t *testing.T, s *eventfold.Store[TTx]) {
			ctx := context.Background()
			stream := newStream(t)
			tx, err := s.Driver().Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.AppendTx(ctx, tx, stream, eventfold.NoStream, ev("Gone", `{}`)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.AppendTx(ctx, tx, stream, eventfold.Exact(1), ev("Gone", `{}`)); err != nil {
				t.Fatalf("second append in the same tx: %v", err)
			}
			if err := s.Driver().Rollback(ctx, tx); err != nil {
				t.Fatal(err)
			}
			if v, _ := s.StreamVersion(ctx, stream); v != 0 {
				t.Fatalf("rolled-back stream at version %d", v)
			}
			// The same appends commit fine afterwards.
			mustAppend(t, s, stream, eventfold.NoStream, ev("Kept", `{}`))
		}},
		{"bad-input", func(t *testing.T, s *eventfold.Store[TTx]) {
			ctx := context.Background()
			stream := newStream(t)
			mustAppend(t, s, stream, eventfold.NoStream, ev("Ok", `{}`))
			head, err := s.LastPosition(ctx) // not Head: PostgreSQL's horizon may move meanwhile
			if err != nil {
				t.Fatal(err)
			}
			big := `"` + strings.Repeat("x", eventfold.DefaultMaxEventSize) + `"`
			for _, c := range []struct {
				name, stream, field string
				events              []eventfold.EventData
			}{
				{"empty stream id", "", "stream id", []eventfold.EventData{ev("T", `{}`)}},
				{"long stream id", strings.Repeat("s", eventfold.MaxStreamIDLength+1), "stream id", []eventfold.EventData{ev("T", `{}`)}},
				{"trailing space", stream + " ", "stream id", []eventfold.EventData{ev("T", `{}`)}},
				{"no events", stream, "events", nil},
				{"empty type", stream, "event 0 type", []eventfold.EventData{ev("", `{}`)}},
				{"long type", stream, "event 1 type", []eventfold.EventData{ev("T", `{}`), ev(strings.Repeat("t", eventfold.MaxTypeLength+1), `{}`)}},
				{"bad data", stream, "event 1 data", []eventfold.EventData{ev("T", `{}`), ev("T", `{"unterminated":`)}},
				{"empty data", stream, "event 0 data", []eventfold.EventData{ev("T", ``)}},
				{"bad metadata", stream, "event 0 metadata", []eventfold.EventData{{Type: "T", Data: json.RawMessage(`{}`), Metadata: json.RawMessage(`{bad}`)}}},
				{"metadata not an object", stream, "event 0 metadata", []eventfold.EventData{{Type: "T", Data: json.RawMessage(`{}`), Metadata: json.RawMessage(`[1]`)}}},
				{"bad id", stream, "event 0 id", []eventfold.EventData{{ID: "not-a-uuid", Type: "T", Data: json.RawMessage(`{}`)}}},
				{"too big", stream, "event 1 size", []eventfold.EventData{ev("T", `{}`), ev("T", big)}},
			} {
				_, err := s.Append(ctx, c.stream, eventfold.Any, c.events...)
				var ve *eventfold.ValidationError
				if !errors.As(err, &ve) || !errors.Is(err, eventfold.ErrInvalidInput) {
					t.Fatalf("%s: want *ValidationError, got %v", c.name, err)
				}
				if ve.Field != c.field || ve.Reason == "" {
					t.Fatalf("%s: error names field %q (%s), want %q", c.name, ve.Field, ve.Reason, c.field)
				}
			}
			if _, err := s.Append(ctx, stream, eventfold.ExpectedVersion(-9), ev("T", `{}`)); !errors.Is(err, eventfold.ErrInvalidInput) {
				t.Fatalf("invalid expected version: %v", err)
			}
			if h, _ := s.LastPosition(ctx); h != head {
				t.Fatalf("bad input moved the last position from %d to %d", head, h)
			}
			if v, _ := s.StreamVersion(ctx, stream); v != 1 {
				t.Fatalf("bad input changed the stream to version %d", v)
			}
		}},
		{"wait-head", func(t *testing.T, s *eventfold.Store[TTx]) {
			out := mustAppend(t, s, newStream(t), eventfold.Any, ev("W", `{}`))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if h, err := s.WaitHead(ctx, out[0].GlobalPosition); err != nil || h < out[0].GlobalPosition {
				t.Fatalf("WaitHead for a committed event: %d, %v", h, err)
			}
			short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel2()
			future := out[0].GlobalPosition + 1<<40
			if h, err := s.WaitHead(short, future); !errors.Is(err, context.DeadlineExceeded) || h >= future {
				t.Fatalf("WaitHead for a position nobody wrote: %d, %v (want the deadline)", h, err)
			}
		}},
		{"size-limit-configurable", func(t *testing.T, s *eventfold.Store[TTx]) {
			small := eventfold.New(s.Driver(), &eventfold.Config{Limits: eventfold.Limits{MaxEventSize: 64}})
			stream := newStream(t)
			if _, err := small.Append(context.Background(), stream, eventfold.Any, ev("T", `"`+strings.Repeat("y", 80)+`"`)); !errors.Is(err, eventfold.ErrInvalidInput) {
				t.Fatalf("80-byte event under a 64-byte limit: %v", err)
			}
			mustAppend(t, small, stream, eventfold.Any, ev("T", `"small"`))
		}},
	}
}
