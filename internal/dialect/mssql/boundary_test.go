package mssql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

// No SQL Server runs on this project's machines. serverDown is a
// database/sql driver standing in for a server that answers every
// statement with one constructed error, the way go-mssqldb delivers it, so
// that the error boundary of every operation in this package can be
// checked: which errors come out transient, and which inputs are refused
// before any statement is sent.
type serverDown struct {
	err        error
	statements atomic.Int64

	mu   sync.Mutex
	sent []sentStatement
}

// sentStatement is a statement as the driver received it.
type sentStatement struct {
	query string
	args  []any
}

func (s *serverDown) record(query string, args []driver.NamedValue) {
	s.statements.Add(1)
	st := sentStatement{query: query}
	for _, a := range args {
		st.args = append(st.args, a.Value)
	}
	s.mu.Lock()
	s.sent = append(s.sent, st)
	s.mu.Unlock()
}

func (s *serverDown) Connect(context.Context) (driver.Conn, error) { return downConn{s}, nil }
func (s *serverDown) Driver() driver.Driver                        { return nil }

type downConn struct{ s *serverDown }

func (c downConn) Prepare(string) (driver.Stmt, error) { c.s.statements.Add(1); return nil, c.s.err }
func (c downConn) Close() error                        { return nil }
func (c downConn) Begin() (driver.Tx, error)           { return nil, c.s.err }
func (c downConn) ExecContext(_ context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.s.record(q, args)
	return nil, c.s.err
}
func (c downConn) QueryContext(_ context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.s.record(q, args)
	return nil, c.s.err
}

// CheckNamedValue accepts go-mssqldb's own parameter types.
func (c downConn) CheckNamedValue(*driver.NamedValue) error { return nil }

func opsAnswering(t *testing.T, err error) (*Ops, *serverDown) {
	t.Helper()
	s := &serverDown{err: err}
	db := sql.OpenDB(s)
	t.Cleanup(func() { db.Close() })
	return New(db), s
}

// everyOperation calls each operation of Ops with the given identifier
// wherever one is taken; it returns the error of each by name.
func everyOperation(o *Ops, id string) map[string]error {
	ctx := context.Background()
	errOf := func(_ any, err error) error { return err }
	errOf2 := func(_, _ any, err error) error { return err }
	errOf4 := func(_, _, _ any, err error) error { return err }
	errOf5 := func(_, _, _, _ any, err error) error { return err }
	ev := []eventfold.EventData{{ID: "0190f5a2-6c1e-7b3a-9d2e-4f5a6b7c8d90", Type: "T", Data: json.RawMessage(`{}`)}}
	return map[string]error{
		"Append":                  errOf(o.Append(ctx, "s", eventfold.Any, ev)),
		"ReadAll":                 errOf(o.ReadAll(ctx, 0, 10)),
		"ReadStream":              errOf(o.ReadStream(ctx, "s", 1, 10, false)),
		"Head":                    errOf(o.Head(ctx)),
		"LastPosition":            errOf(o.LastPosition(ctx)),
		"StreamVersion":           errOf(o.StreamVersion(ctx, "s")),
		"Exec":                    o.Exec(ctx, "SAVE TRANSACTION x"),
		"LookupCommand":           errOf5(o.LookupCommand(ctx, "", id)),
		"RecordCommand":           errOf(o.RecordCommand(ctx, "", id, "C", "", []byte(`[]`))),
		"PruneCommands":           errOf(o.PruneCommands(ctx, time.Now())),
		"GetCheckpoint":           errOf2(o.GetCheckpoint(ctx, id)),
		"CreateCheckpoint":        o.CreateCheckpoint(ctx, id, 0),
		"AdvanceCheckpoint":       errOf(o.AdvanceCheckpoint(ctx, id, 0, 1)),
		"SetCheckpoint":           o.SetCheckpoint(ctx, id, 1),
		"DeleteCheckpoint":        o.DeleteCheckpoint(ctx, id),
		"ListCheckpoints":         errOf(o.ListCheckpoints(ctx)),
		"AcquireLease":            errOf(o.AcquireLease(ctx, id, "owner", time.Second)),
		"LeaseOwner":              errOf(o.LeaseOwner(ctx, id)),
		"ReleaseLease":            o.ReleaseLease(ctx, id, "owner"),
		"ArchivedBefore":          errOf(o.ArchivedBefore(ctx)),
		"SetArchivedBefore":       o.SetArchivedBefore(ctx, 1),
		"FirstPositionRecordedAt": errOf(o.FirstPositionRecordedAt(ctx, time.Now())),
		"DeleteEventRange":        errOf(o.DeleteEventRange(ctx, 1, 2)),
		"RestoreEvents":           errOf(o.RestoreEvents(ctx, []eventfold.Event{{GlobalPosition: 1, StreamID: "s", StreamVersion: 1, ID: ev[0].ID, Type: "T", Data: ev[0].Data, Metadata: json.RawMessage(`{}`)}})),
		"StatsEventTypes":         errOf(o.StatsEventTypes(ctx)),
		"StatsEventDays":          errOf(o.StatsEventDays(ctx)),
		"StatsTotals":             errOf4(o.StatsTotals(ctx)),
		"StatsEventsAfter":        errOf(o.StatsEventsAfter(ctx, 0)),
	}
}

// TestEveryOperationMarksTransientErrors: a deadlock, a snapshot conflict
// or an Azure throttling error is ErrTransient from every operation of the
// dialect, with the driver's error still reachable. Before the fix the
// idempotency records, checkpoints, leases and the archive watermark
// returned them unmarked, and 3960 from RecordCommand was never retried.
func TestEveryOperationMarksTransientErrors(t *testing.T) {
	t.Parallel()
	for _, n := range []int32{1205, 1222, 3960, 40501, 40613, 40197, 49918, 49919, 49920, 10928, 10929, 17809} {
		o, _ := opsAnswering(t, serverError(mssql.Error{Number: n, Class: 16, Message: "constructed"}))
		for name, err := range everyOperation(o, "id-1") {
			require.ErrorIs(t, err, eventfold.ErrTransient, "%s, error %d: %v", name, n, err)
			var me mssql.Error
			require.ErrorAs(t, err, &me, "%s, error %d", name, n)
			require.Equal(t, n, me.Number)
		}
	}
	// And a permanent error stays unmarked everywhere.
	o, _ := opsAnswering(t, serverError(mssql.Error{Number: 229, Class: 14, Message: "The SELECT permission was denied"}))
	for name, err := range everyOperation(o, "id-1") {
		require.Error(t, err, name)
		require.NotErrorIs(t, err, eventfold.ErrTransient, name)
	}
}

// TestIdentifiersEndingInSpaceRefusedBeforeSQL: SQL Server's = ignores
// trailing spaces under every collation, BIN2 included, so "pay-X " would
// read and overwrite the records of "pay-X". Such identifiers are refused
// with ErrInvalidInput before any statement reaches the server.
func TestIdentifiersEndingInSpaceRefusedBeforeSQL(t *testing.T) {
	t.Parallel()
	o, server := opsAnswering(t, errors.New("the server must not be asked"))
	refused := []string{"LookupCommand", "RecordCommand", "GetCheckpoint", "CreateCheckpoint", "AdvanceCheckpoint",
		"SetCheckpoint", "DeleteCheckpoint", "AcquireLease", "ReleaseLease"}
	errs := everyOperation(o, "pay-X ")
	// A read answers "no lease" without asking (the query would find the
	// lease of "pay-X").
	require.NoError(t, errs["LeaseOwner"])
	// The server answers every statement with a plain error, so
	// ErrInvalidInput can only come from the check before any SQL.
	for _, name := range refused {
		require.ErrorIs(t, errs[name], eventfold.ErrInvalidInput, name)
		require.NotContains(t, errs[name].Error(), "must not be asked", name)
	}

	ctx := context.Background()
	n := server.statements.Load()
	_, err := o.AcquireLease(ctx, "sub", "worker-1 ", time.Second)
	require.ErrorIs(t, err, eventfold.ErrInvalidInput, "lease owner")
	require.ErrorIs(t, o.ReleaseLease(ctx, "sub", "worker-1 "), eventfold.ErrInvalidInput, "lease owner")
	_, err = o.Append(ctx, "s", eventfold.Any, []eventfold.EventData{{ID: "0190f5a2-6c1e-7b3a-9d2e-4f5a6b7c8d90", Type: "Deposited ", Data: json.RawMessage(`1`)}})
	require.ErrorIs(t, err, eventfold.ErrInvalidInput, "event type")
	require.Equal(t, n, server.statements.Load(), "nothing reached the server")

	// Other characters SQL Server compares exactly under BIN2 pass.
	for _, id := range []string{"pay-X\t", "pay-X\u00a0", "Pay-X", "pay-\u200bX"} {
		_, _, _, _, err := o.LookupCommand(ctx, "", id)
		require.NotErrorIs(t, err, eventfold.ErrInvalidInput, "%q", id)
	}
}

// TestParametersKeepPlansAndSeeks: the JSON payload goes as nvarchar(max)
// (a plain string is declared nvarchar(<exact length>), one cached plan
// per length), and a time.Time (sent as datetimeoffset) is CAST to the
// DATETIME2 of the column it is compared with, so that the column is not
// converted row by row and its index can be sought.
func TestParametersKeepPlansAndSeeks(t *testing.T) {
	t.Parallel()
	o, server := opsAnswering(t, serverError(mssql.Error{Number: 1205, Message: "constructed"}))
	everyOperation(o, "id-1")
	server.mu.Lock()
	defer server.mu.Unlock()
	var sawAppend, sawRecord, sawRestore bool
	timeCompare := regexp.MustCompile(`(recorded_at|updated_at|expires_at)\s*(<|>|<=|>=|=)\s*@p\d`)
	for _, st := range server.sent {
		require.NotRegexp(t, timeCompare, st.query, "a time column compared with a bare datetimeoffset parameter")
		for i, a := range st.args {
			if _, isTime := a.(time.Time); isTime && !strings.Contains(st.query, "INSERT INTO") {
				require.Contains(t, st.query, "CAST(@p"+strconv.Itoa(i+1)+" AS DATETIME2(6))", st.query)
			}
		}
		switch {
		case st.query == appendSQL:
			sawAppend = true
			require.IsType(t, mssql.NVarCharMax(""), st.args[2], "the events payload")
		case strings.Contains(st.query, "INSERT INTO eventfold.commands"):
			sawRecord = true
			require.IsType(t, mssql.NVarCharMax(""), st.args[4], "the event references")
		case strings.Contains(st.query, "INSERT INTO eventfold.events"):
			sawRestore = true
			require.IsType(t, mssql.NVarCharMax(""), st.args[5], "restored data")
			require.IsType(t, mssql.NVarCharMax(""), st.args[6], "restored metadata")
		}
	}
	require.True(t, sawAppend && sawRecord && sawRestore)
}
