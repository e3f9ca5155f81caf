package mssql

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/eventfold/eventfold"
)

// appendSQL calls the procedure from sql/mssql/00001_events.sql. Its one
// result set holds global_position, stream_version and recorded_at of each
// appended event, in order.
const appendSQL = `EXEC eventfold.append_events @stream_id = @p1, @expected_version = @p2, @events = @p3`

// appendEvent is one element of the JSON array append_events parses.
type appendEvent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// Data and Metadata are embedded as JSON, not as strings, so that a
	// DBA's hand-written call and ours look the same.
	Data     json.RawMessage `json:"data"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// encodeEvents renders events as the JSON array append_events expects.
func encodeEvents(events []eventfold.EventData) (string, error) {
	batch := make([]appendEvent, len(events))
	for i, e := range events {
		batch[i] = appendEvent{ID: e.ID, Type: e.Type, Data: e.Data, Metadata: e.Metadata}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// json.Marshal would rewrite <, > and & inside the payload as \u003c
	// and so on: valid, but not the bytes the caller gave.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(batch); err != nil {
		return "", err
	}
	return string(bytes.TrimRight(buf.Bytes(), "\n")), nil
}

// Append appends events to one stream through eventfold.append_events.
// The payload goes as nvarchar(max): go-mssqldb would declare a plain
// string as nvarchar(<its exact length>), and every new length would
// compile and cache a plan of its own.
// Run on a *sql.Tx the append joins that transaction; run on a *sql.DB the
// procedure commits it on its own.
//
// A wrong expected version leaves the caller's transaction usable (the
// procedure refuses before writing); a duplicate event id or a transient
// conflict rolls the whole transaction back on the server.
func (o *Ops) Append(ctx context.Context, streamID string, expected eventfold.ExpectedVersion, events []eventfold.EventData) ([]eventfold.Event, error) {
	if endsWithSpace(streamID) {
		return nil, &eventfold.ValidationError{Field: "stream id", Reason: "ends with a space, which SQL Server ignores when it compares strings"}
	}
	for _, e := range events {
		if err := exactIdentifier("event type", e.Type); err != nil {
			return nil, err
		}
	}
	payload, err := encodeEvents(events)
	if err != nil {
		return nil, fmt.Errorf("encode events for eventfold.append_events: %w", interpretError(err))
	}
	rows, err := o.db.QueryContext(ctx, appendSQL, streamID, int64(expected), mssql.NVarCharMax(payload))
	if err != nil {
		return nil, appendError(err, streamID, expected)
	}
	defer rows.Close()

	out := make([]eventfold.Event, 0, len(events))
	for rows.Next() {
		if len(out) == len(events) {
			return nil, fmt.Errorf("eventfold.append_events returned more rows than the %d events appended", len(events))
		}
		var pos, version int64
		var at time.Time
		if err := rows.Scan(&pos, &version, &at); err != nil {
			return nil, fmt.Errorf("scan result of eventfold.append_events: %w", interpretError(err))
		}
		e := events[len(out)]
		meta := e.Metadata
		if len(meta) == 0 {
			meta = json.RawMessage(`{}`) // what the procedure stored
		}
		out = append(out, eventfold.Event{
			GlobalPosition: pos,
			StreamID:       streamID,
			StreamVersion:  version,
			ID:             e.ID,
			Type:           e.Type,
			Data:           e.Data,
			Metadata:       meta,
			RecordedAt:     utc(at),
		})
	}
	// An error raised after the result set (a failed COMMIT of the
	// procedure's own transaction) surfaces here or at Close.
	if err := rows.Err(); err != nil {
		return nil, appendError(err, streamID, expected)
	}
	if err := rows.Close(); err != nil {
		return nil, appendError(err, streamID, expected)
	}
	if len(out) != len(events) {
		return nil, fmt.Errorf("eventfold.append_events returned %d rows for %d events", len(out), len(events))
	}
	return out, nil
}

// utc reinterprets a DATETIME2 value as UTC. The columns hold UTC wall
// clock times (SYSUTCDATETIME), but go-mssqldb labels DATETIME2 values
// with the connection's configured location, which need not be UTC.
func utc(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}
