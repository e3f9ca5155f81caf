package mssql

import (
	"errors"
	"fmt"
	"testing"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

// serverError builds the error go-mssqldb returns for a batch that raised
// errs, in order: the last one in the fields, all of them in All.
func serverError(errs ...mssql.Error) error {
	last := errs[len(errs)-1]
	last.All = errs
	return last
}

func TestAppendErrorWrongExpectedVersion(t *testing.T) {
	t.Parallel()
	err := serverError(mssql.Error{Number: 50001, Class: 16, Message: "eventfold: wrong expected version: actual=7", ProcName: "eventfold.append_events"})
	got := appendError(err, "account-1", eventfold.Exact(3))

	var wev *eventfold.WrongExpectedVersionError
	require.ErrorAs(t, got, &wev)
	require.Equal(t, "account-1", wev.StreamID)
	require.Equal(t, eventfold.Exact(3), wev.Expected)
	require.Equal(t, int64(7), wev.Actual)
	require.ErrorIs(t, got, eventfold.ErrWrongExpectedVersion)
}

func TestAppendErrorWrongVersionFollowedByTrancountError(t *testing.T) {
	t.Parallel()
	// 266 (transaction count mismatch) can follow the real error.
	err := serverError(
		mssql.Error{Number: 50001, Message: "eventfold: wrong expected version: actual=0"},
		mssql.Error{Number: 266, Message: "Transaction count after EXECUTE indicates a mismatching number of BEGIN and COMMIT statements. Previous count = 1, current count = 0."},
	)
	var wev *eventfold.WrongExpectedVersionError
	require.ErrorAs(t, appendError(err, "s", eventfold.StreamExists), &wev)
	require.Equal(t, int64(0), wev.Actual)
}

func TestAppendErrorDuplicateEventID(t *testing.T) {
	t.Parallel()
	for _, e := range []mssql.Error{
		{Number: 2627, Message: "Violation of UNIQUE KEY constraint 'uq_events_event_id'. Cannot insert duplicate key in object 'eventfold.events'. The duplicate key value is (0190f5a2-6c1e-7b3a-9d2e-4f5a6b7c8d90)."},
		{Number: 2601, Message: "Cannot insert duplicate key row in object 'eventfold.events' with unique index 'uq_events_event_id'. The duplicate key value is (0190f5a2-6c1e-7b3a-9d2e-4f5a6b7c8d90)."},
	} {
		got := appendError(serverError(e), "s", eventfold.Any)
		require.ErrorIs(t, got, eventfold.ErrDuplicateEventID, "error %d", e.Number)
		var me mssql.Error
		require.ErrorAs(t, got, &me, "the driver's error stays reachable")
		require.EqualValues(t, e.Number, me.Number)
	}
}

func TestAppendErrorStreamVersionRace(t *testing.T) {
	t.Parallel()
	// The stream id is user data inside the message; a stream named after
	// the event id constraint must not turn this into a duplicate id.
	err := serverError(mssql.Error{Number: 2627, Message: "Violation of UNIQUE KEY constraint 'uq_events_stream_version'. Cannot insert duplicate key in object 'eventfold.events'. The duplicate key value is ('uq_events_event_id', 3)."})
	got := appendError(err, "'uq_events_event_id'", eventfold.Exact(2))
	var wev *eventfold.WrongExpectedVersionError
	require.ErrorAs(t, got, &wev)
	require.Equal(t, int64(-1), wev.Actual, "the constraint cannot tell the actual version")
	require.NotErrorIs(t, got, eventfold.ErrDuplicateEventID)
}

func TestAppendErrorInvalidInput(t *testing.T) {
	t.Parallel()
	err := serverError(mssql.Error{Number: 50002, Message: "eventfold: invalid input: stream id must not end with a space"})
	got := appendError(err, "s ", eventfold.Any)
	var ve *eventfold.ValidationError
	require.ErrorAs(t, got, &ve)
	require.Equal(t, "stream id must not end with a space", ve.Reason)
	require.ErrorIs(t, got, eventfold.ErrInvalidInput)
}

func TestAppendErrorOtherUniqueViolationIsNotMapped(t *testing.T) {
	t.Parallel()
	err := serverError(mssql.Error{Number: 2627, Message: "Violation of PRIMARY KEY constraint 'pk_events'. Cannot insert duplicate key in object 'eventfold.events'. The duplicate key value is (5)."})
	got := appendError(err, "s", eventfold.Any)
	require.NotErrorIs(t, got, eventfold.ErrDuplicateEventID)
	require.NotErrorIs(t, got, eventfold.ErrWrongExpectedVersion)
	require.NotErrorIs(t, got, eventfold.ErrTransient)
	var me mssql.Error
	require.ErrorAs(t, got, &me)
}

func TestInterpretErrorTransient(t *testing.T) {
	t.Parallel()
	for _, n := range []int32{1205, 1222, 3960} {
		err := serverError(mssql.Error{Number: n, Message: fmt.Sprintf("error %d", n)})
		for name, got := range map[string]error{
			"interpretError": interpretError(err),
			"appendError":    appendError(err, "s", eventfold.Any),
			"wrapped":        interpretError(fmt.Errorf("read: %w", err)),
		} {
			require.ErrorIs(t, got, eventfold.ErrTransient, "%s %d", name, n)
			var me mssql.Error
			require.ErrorAs(t, got, &me, "%s %d", name, n)
			require.Equal(t, n, me.Number)
		}
	}
}

func TestInterpretErrorLeavesOthersAlone(t *testing.T) {
	t.Parallel()
	plain := errors.New("connection refused")
	require.Same(t, plain, interpretError(plain))

	syntax := serverError(mssql.Error{Number: 102, Message: "Incorrect syntax near 'x'."})
	got := interpretError(syntax)
	require.NotErrorIs(t, got, eventfold.ErrTransient)
	require.Equal(t, syntax, got)
}

func TestSQLErrorsPointer(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("wrapped: %w", &mssql.Error{Number: 1205, Message: "deadlock"})
	require.ErrorIs(t, interpretError(err), eventfold.ErrTransient)
}

// TestIsTransientLooksAtEveryError: go-mssqldb describes only the last
// error of a batch in mssql.Error's own fields; a deadlock followed by
// 266 (transaction count mismatch on the procedure's exit) is still a
// deadlock. The orchestrator's old fallback read only the last number.
func TestIsTransientLooksAtEveryError(t *testing.T) {
	t.Parallel()
	err := serverError(
		mssql.Error{Number: 3960, Message: "Snapshot isolation transaction aborted due to update conflict."},
		mssql.Error{Number: 266, Message: "Transaction count after EXECUTE indicates a mismatching number of BEGIN and COMMIT statements."},
	)
	require.True(t, IsTransient(err))
	require.ErrorIs(t, Classify(err), eventfold.ErrTransient)
	require.False(t, IsTransient(serverError(mssql.Error{Number: 266})))
	require.False(t, IsTransient(nil))
	require.NoError(t, Classify(nil))
	// Classifying twice wraps once.
	once := Classify(err)
	require.Same(t, once, Classify(once))
}
