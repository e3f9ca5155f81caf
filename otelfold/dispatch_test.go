package otelfold_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/otelfold"
)

// TestCommittedCommandSpans: a committed command gives a dispatch span
// with its attributes and child spans for the handler, the append, the
// reducer and the commit, in one trace; the event's metadata carries the
// append span's traceparent; the metrics move.
func TestCommittedCommandSpans(t *testing.T) {
	for _, d := range []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			b := setup(t, d, nil)
			res, err := b.dispatch(t, touch{Stream: "acct-1"})
			require.NoError(t, err)

			disp := b.one(t, "dispatch Touch")
			a := attrs(disp)
			require.Equal(t, "Touch", a[otelfold.AttrCommand].AsString())
			require.Equal(t, res.CommandID, a[otelfold.AttrCommandID].AsString())
			require.Equal(t, int64(1), a[otelfold.AttrAttempts].AsInt64())
			require.Equal(t, int64(1), a[otelfold.AttrBatchSize].AsInt64())
			require.Equal(t, otelfold.OutcomeCommitted, a[otelfold.AttrOutcome].AsString())
			require.Equal(t, codes.Unset, disp.Status().Code)

			tid := disp.SpanContext().TraceID()
			for _, name := range []string{"handle Touch", "append", "reduce touches", "commit"} {
				s := b.one(t, name)
				require.Equal(t, tid, s.SpanContext().TraceID(), name)
				require.Equal(t, disp.SpanContext().SpanID(), s.Parent().SpanID(), "%s is a child of the dispatch", name)
			}
			app := attrs(b.one(t, "append"))
			require.Equal(t, "acct-1", app[otelfold.AttrStream].AsString())
			require.Equal(t, int64(1), app[otelfold.AttrEventCount].AsInt64())
			require.Equal(t, eventfold.Any.String(), app[otelfold.AttrExpected].AsString())
			require.Equal(t, trace.SpanKindProducer, b.one(t, "append").SpanKind())

			// The trace context travels with the event, as stored.
			evs, err := b.store.ReadStream(b.ctx, "acct-1", eventfold.ReadStreamOptions{})
			require.NoError(t, err)
			require.Len(t, evs, 1)
			var md map[string]any
			require.NoError(t, json.Unmarshal(evs[0].Metadata, &md))
			sc := b.one(t, "append").SpanContext()
			require.Equal(t, "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-01", md["traceparent"])

			cmd := attribute.String("eventfold.command.name", "Touch")
			require.Equal(t, int64(1), b.sum(t, "eventfold.dispatch.duration", cmd, attribute.String("eventfold.dispatch.outcome", "committed")))
			require.Equal(t, int64(1), b.sum(t, "eventfold.events.appended", cmd))
			require.Equal(t, int64(0), b.sum(t, "eventfold.dispatch.retries"))
		})
	}
}

// TestRolledBackCommandSpans: a reducer failure rolls the command back;
// the reducer's span and the dispatch span record the error, no commit
// span exists, and no event is counted as appended. A rejection is an
// outcome of its own, recorded but not marked failed.
func TestRolledBackCommandSpans(t *testing.T) {
	b := setup(t, eventfold.SQLite, nil)
	_, err := b.dispatch(t, touch{Stream: "acct-1", Fail: "reducer"})
	require.Error(t, err)

	disp := b.one(t, "dispatch Touch")
	require.Equal(t, codes.Error, disp.Status().Code)
	require.Equal(t, otelfold.OutcomeError, attrs(disp)[otelfold.AttrOutcome].AsString())
	require.Equal(t, "reducer", attrs(disp)[otelfold.AttrErrorType].AsString())
	require.NotEmpty(t, disp.Events(), "the error is recorded as an exception event")
	red := b.one(t, "reduce touches")
	require.Equal(t, codes.Error, red.Status().Code)
	require.Empty(t, b.byName("commit"))
	require.Equal(t, int64(0), b.sum(t, "eventfold.events.appended"))
	require.Equal(t, int64(1), b.sum(t, "eventfold.dispatch.duration", attribute.String("eventfold.dispatch.outcome", "error")))

	_, err = b.dispatch(t, touch{Stream: "acct-2", Fail: "reject"})
	require.ErrorIs(t, err, orchestrator.ErrRejected)
	var rejected trace.SpanContext
	for _, s := range b.byName("dispatch Touch") {
		if attrs(s)[otelfold.AttrOutcome].AsString() == otelfold.OutcomeRejected {
			require.Equal(t, codes.Unset, s.Status().Code)
			rejected = s.SpanContext()
		}
	}
	require.True(t, rejected.IsValid(), "a dispatch span with outcome rejected")
	require.Equal(t, int64(1), b.sum(t, "eventfold.dispatch.duration", attribute.String("eventfold.dispatch.outcome", "rejected")))
}

// TestRetriedCommandSpans: a command whose first attempt conflicts runs
// twice: attempts=2 on the dispatch span, a failed-attempt event, two
// handler spans, one retry and one conflict counted.
func TestRetriedCommandSpans(t *testing.T) {
	b := setup(t, eventfold.Postgres, nil)
	b.conflictOnce.Store(true)
	res, err := b.dispatch(t, touch{Stream: "acct-1"})
	require.NoError(t, err)
	require.Equal(t, 2, res.Attempts)

	disp := b.one(t, "dispatch Touch")
	require.Equal(t, int64(2), attrs(disp)[otelfold.AttrAttempts].AsInt64())
	require.Equal(t, otelfold.OutcomeCommitted, attrs(disp)[otelfold.AttrOutcome].AsString())
	var failed int
	for _, e := range disp.Events() {
		if e.Name == "attempt failed" {
			failed++
		}
	}
	require.Equal(t, 1, failed)
	require.Len(t, b.byName("handle Touch"), 2)
	appends := b.byName("append")
	require.Len(t, appends, 2)
	require.Equal(t, codes.Error, appends[0].Status().Code, "the first append failed")
	require.Equal(t, "wrong_expected_version", attrs(appends[0])[otelfold.AttrErrorType].AsString())
	require.Len(t, b.byName("commit"), 1)
	et := attribute.String("error.type", "wrong_expected_version")
	require.Equal(t, int64(1), b.sum(t, "eventfold.dispatch.retries", et))
	require.Equal(t, int64(1), b.sum(t, "eventfold.dispatch.conflicts", et))
}

// TestDuplicateCommandOutcome: an idempotent replay is outcome
// "duplicate" and appends nothing to the events counter.
func TestDuplicateCommandOutcome(t *testing.T) {
	b := setup(t, eventfold.SQLite, nil)
	for range 2 {
		_, err := b.o.Dispatch(b.ctx, orchestrator.Command{Name: "Touch", Payload: touch{Stream: "d"},
			Envelope: orchestrator.Envelope{ID: "cmd-1"}})
		require.NoError(t, err)
	}
	require.Equal(t, int64(1), b.sum(t, "eventfold.dispatch.duration", attribute.String("eventfold.dispatch.outcome", "duplicate")))
	require.Equal(t, int64(1), b.sum(t, "eventfold.events.appended"))
	for _, s := range b.byName("dispatch Touch") {
		require.Equal(t, "cmd-1", attrs(s)[otelfold.AttrCommandID].AsString())
	}
}
