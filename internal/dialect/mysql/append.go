package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/dialect"
)

// callAppend invokes the stored procedure. sqlc does not model CALL or a
// procedure's result set, so this statement is written by hand.
const callAppend = `CALL eventfold_append_events(?, ?, ?)`

// appendedEvent is one element of the procedure's p_events argument.
type appendedEvent struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Data     json.RawMessage `json:"data"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// Append appends events to one stream after checking expected, through the
// procedure eventfold_append_events, and returns them as recorded. On a
// *sql.DB it runs in a transaction of its own, because outside one each
// statement of the procedure would commit by itself.
func (o *Ops) Append(ctx context.Context, streamID string, expected eventfold.ExpectedVersion, events []eventfold.EventData) ([]eventfold.Event, error) {
	payload, err := appendPayload(events)
	if err != nil {
		return nil, err
	}
	pool, ok := o.db.(*sql.DB)
	if !ok {
		return appendOn(ctx, o.db, streamID, expected, events, payload)
	}
	tx, err := pool.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, fmt.Errorf("begin append transaction: %w", interpretError(err))
	}
	out, err := appendOn(ctx, tx, streamID, expected, events, payload)
	if err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit append: %w", interpretError(err))
	}
	return out, nil
}

// appendOn calls the procedure on db and pairs the rows it returns
// (global_position, stream_version, recorded_at, in event order) with the
// events that were sent.
func appendOn(ctx context.Context, db dialect.DB, streamID string, expected eventfold.ExpectedVersion, events []eventfold.EventData, payload string) ([]eventfold.Event, error) {
	rows, err := db.QueryContext(ctx, callAppend, streamID, int64(expected), payload)
	if err != nil {
		return nil, appendError(err, streamID, expected)
	}
	defer rows.Close()
	out := make([]eventfold.Event, 0, len(events))
	for rows.Next() {
		var (
			pos, version int64
			at           time.Time
		)
		if err := rows.Scan(&pos, &version, &at); err != nil {
			return nil, fmt.Errorf("read appended positions: %w", err)
		}
		if len(out) == len(events) {
			return nil, fmt.Errorf("eventfold_append_events returned more rows than the %d events sent", len(events))
		}
		e := events[len(out)]
		if len(e.Metadata) == 0 {
			e.Metadata = json.RawMessage(`{}`) // what the procedure stored
		}
		out = append(out, eventfold.Event{
			GlobalPosition: pos,
			StreamID:       streamID,
			StreamVersion:  version,
			ID:             e.ID,
			Type:           e.Type,
			Data:           stored(e.Data),
			Metadata:       stored(e.Metadata),
			RecordedAt:     at.UTC(),
		})
	}
	// Errors raised after the first row, or while the driver drains the
	// CALL's trailing status, surface here and in Close.
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, appendError(err, streamID, expected)
	}
	if len(out) != len(events) {
		return nil, fmt.Errorf("eventfold_append_events returned %d rows for %d events", len(out), len(events))
	}
	return out, nil
}

// stored returns raw JSON as MariaDB stores it through the procedure: the
// payload's encoder compacts every json.RawMessage (insignificant whitespace
// removed, nothing else changed, HTML escaping off) and MariaDB keeps that
// text as it is, so the caller gets the bytes readers will read. (MySQL 8
// stores JSON in a binary form and reads it back normalised; see the
// README's section on JSON.)
func stored(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw // validated by the Store; cannot happen
	}
	return buf.Bytes()
}

// appendPayload renders events as the procedure's JSON array. Data and
// metadata were validated by the Store; HTML escaping is off so that
// MariaDB, which stores JSON as text, keeps "<" and "&" as sent.
func appendPayload(events []eventfold.EventData) (string, error) {
	items := make([]appendedEvent, len(events))
	for i, e := range events {
		items[i] = appendedEvent{ID: e.ID, Type: e.Type, Data: e.Data, Metadata: e.Metadata}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(items); err != nil {
		return "", fmt.Errorf("encode events for eventfold_append_events: %w", err)
	}
	return buf.String(), nil
}

// AppendMany implements contract.Log: Append for each element in order.
func (o *Ops) AppendMany(ctx context.Context, appends []contract.StreamAppend) ([][]eventfold.Event, error) {
	out := make([][]eventfold.Event, len(appends))
	for i, a := range appends {
		evs, err := o.Append(ctx, a.StreamID, a.Expected, a.Events)
		if err != nil {
			return nil, &contract.AppendManyError{Index: i, Err: err}
		}
		out[i] = evs
	}
	return out, nil
}
