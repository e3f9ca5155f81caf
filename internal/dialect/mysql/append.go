package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/dialect"
)

// The library's appends go through two procedures of migration 00015 that
// trust their (already validated) arguments: eventfold_append_one for a
// single event (no JSON to parse on the server) and eventfold_append_batch
// for several events or streams. eventfold_append_events, the DBA-facing
// procedure, checks every argument itself. sqlc does not model CALL or a
// procedure's result set, so these statements are written by hand.
const (
	callAppendOne   = `CALL eventfold_append_one(?, ?, ?, ?, ?, ?)`
	callAppendBatch = `CALL eventfold_append_batch(?)`
)

// appendedEvent is one element of an event array in eventfold_append_batch's
// argument.
type appendedEvent struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Data     json.RawMessage `json:"data"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// batchElement is one stream's part of eventfold_append_batch's argument.
type batchElement struct {
	Stream   string          `json:"s"`
	Expected int64           `json:"x"`
	Events   []appendedEvent `json:"e"`
}

// Append appends events to one stream after checking expected, and returns
// them as recorded. On a *sql.DB it runs in a transaction of its own: the
// procedures must run inside one.
func (o *Ops) Append(ctx context.Context, streamID string, expected eventfold.ExpectedVersion, events []eventfold.EventData) ([]eventfold.Event, error) {
	if len(events) == 0 {
		return nil, errors.New("eventfold: invalid append: no events")
	}
	one := []contract.StreamAppend{{StreamID: streamID, Expected: expected, Events: events}}
	out, err := o.inTx(ctx, func(db dialect.DB) ([][]eventfold.Event, error) {
		if len(events) == 1 {
			evs, err := appendOne(ctx, db, streamID, expected, events[0])
			if isMissingProcedure(err) {
				return appendLegacy(ctx, db, one)
			}
			return [][]eventfold.Event{evs}, err
		}
		return appendBatch(ctx, db, one)
	})
	if err != nil {
		var me *contract.AppendManyError
		if errors.As(err, &me) {
			return nil, me.Err
		}
		return nil, err
	}
	return out[0], nil
}

// AppendMany appends to several streams with one CALL of
// eventfold_append_batch (see contract.Log).
func (o *Ops) AppendMany(ctx context.Context, appends []contract.StreamAppend) ([][]eventfold.Event, error) {
	if len(appends) == 0 {
		return nil, nil
	}
	for i, a := range appends {
		if len(a.Events) == 0 {
			return nil, &contract.AppendManyError{Index: i, Err: errors.New("eventfold: invalid append: no events")}
		}
	}
	return o.inTx(ctx, func(db dialect.DB) ([][]eventfold.Event, error) {
		return appendBatch(ctx, db, appends)
	})
}

// inTx runs fn on o's transaction, or on a READ COMMITTED transaction of
// its own when o is bound to a pool.
func (o *Ops) inTx(ctx context.Context, fn func(dialect.DB) ([][]eventfold.Event, error)) ([][]eventfold.Event, error) {
	pool, ok := o.db.(*sql.DB)
	if !ok {
		return fn(o.db)
	}
	tx, err := pool.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, fmt.Errorf("begin append transaction: %w", interpretError(err))
	}
	out, err := fn(tx)
	if err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit append: %w", interpretError(err))
	}
	return out, nil
}

// appendOne appends a single event with eventfold_append_one.
func appendOne(ctx context.Context, db dialect.DB, streamID string, expected eventfold.ExpectedVersion, e eventfold.EventData) ([]eventfold.Event, error) {
	data := stored(e.Data)
	meta := json.RawMessage(`{}`) // what a missing metadata is stored as
	if len(e.Metadata) > 0 {
		meta = stored(e.Metadata)
	}
	rows, err := db.QueryContext(ctx, callAppendOne, streamID, int64(expected), e.ID, e.Type, string(data), string(meta))
	if err != nil {
		return nil, appendError(err, streamID, expected)
	}
	defer rows.Close()
	var (
		pos, version int64
		at           time.Time
		n            int
	)
	for rows.Next() {
		if err := rows.Scan(&pos, &version, &at); err != nil {
			return nil, fmt.Errorf("read appended position: %w", err)
		}
		n++
	}
	// Errors raised after the first row, or while the driver drains the
	// CALL's trailing status, surface here and in Close.
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, appendError(err, streamID, expected)
	}
	if n != 1 {
		return nil, fmt.Errorf("eventfold_append_one returned %d rows for one event", n)
	}
	return []eventfold.Event{{
		GlobalPosition: pos,
		StreamID:       streamID,
		StreamVersion:  version,
		ID:             e.ID,
		Type:           e.Type,
		Data:           data,
		Metadata:       meta,
		RecordedAt:     at.UTC(),
	}}, nil
}

// appendBatch appends every element of appends with one CALL of
// eventfold_append_batch and pairs the rows it returns (global_position,
// stream_version, recorded_at, in batch order) with the events sent.
func appendBatch(ctx context.Context, db dialect.DB, appends []contract.StreamAppend) ([][]eventfold.Event, error) {
	payload, err := batchPayload(appends)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, callAppendBatch, payload)
	if isMissingProcedure(err) {
		return appendLegacy(ctx, db, appends)
	}
	if err != nil {
		return nil, batchError(err, appends)
	}
	defer rows.Close()
	out := make([][]eventfold.Event, len(appends))
	el, total := 0, 0
	for rows.Next() {
		var (
			pos, version int64
			at           time.Time
		)
		if err := rows.Scan(&pos, &version, &at); err != nil {
			return nil, fmt.Errorf("read appended positions: %w", err)
		}
		for el < len(appends) && len(out[el]) == len(appends[el].Events) {
			el++
		}
		if el == len(appends) {
			return nil, errors.New("eventfold_append_batch returned more rows than events sent")
		}
		e := appends[el].Events[len(out[el])]
		meta := json.RawMessage(`{}`)
		if len(e.Metadata) > 0 {
			meta = stored(e.Metadata)
		}
		out[el] = append(out[el], eventfold.Event{
			GlobalPosition: pos,
			StreamID:       appends[el].StreamID,
			StreamVersion:  version,
			ID:             e.ID,
			Type:           e.Type,
			Data:           stored(e.Data),
			Metadata:       meta,
			RecordedAt:     at.UTC(),
		})
		total++
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, batchError(err, appends)
	}
	want := 0
	for _, a := range appends {
		want += len(a.Events)
	}
	if total != want {
		return nil, fmt.Errorf("eventfold_append_batch returned %d rows for %d events", total, want)
	}
	return out, nil
}

// isMissingProcedure tells whether err says that a procedure does not
// exist (1305): the database is not migrated to 00015 yet.
func isMissingProcedure(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && me.Number == errNoSuchProcedure
}

// appendLegacy appends each element with eventfold_append_events, the
// DBA-facing procedure, for a database not yet migrated to 00015 (a new
// binary may run before its migrations do).
func appendLegacy(ctx context.Context, db dialect.DB, appends []contract.StreamAppend) ([][]eventfold.Event, error) {
	out := make([][]eventfold.Event, len(appends))
	for i, a := range appends {
		payload, err := encodeJSON(toAppended(a.Events))
		if err != nil {
			return nil, fmt.Errorf("encode events for eventfold_append_events: %w", err)
		}
		evs, err := appendCall(ctx, db, a.StreamID, a.Expected, a.Events, payload)
		if err != nil {
			return nil, &contract.AppendManyError{Index: i, Err: err}
		}
		out[i] = evs
	}
	return out, nil
}

// appendCall calls eventfold_append_events and pairs the rows it returns
// (global_position, stream_version, recorded_at, in event order) with the
// events that were sent.
func appendCall(ctx context.Context, db dialect.DB, streamID string, expected eventfold.ExpectedVersion, events []eventfold.EventData, payload string) ([]eventfold.Event, error) {
	rows, err := db.QueryContext(ctx, `CALL eventfold_append_events(?, ?, ?)`, streamID, int64(expected), payload)
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
		meta := json.RawMessage(`{}`)
		if len(e.Metadata) > 0 {
			meta = stored(e.Metadata)
		}
		out = append(out, eventfold.Event{
			GlobalPosition: pos, StreamID: streamID, StreamVersion: version,
			ID: e.ID, Type: e.Type, Data: stored(e.Data), Metadata: meta, RecordedAt: at.UTC(),
		})
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, appendError(err, streamID, expected)
	}
	if len(out) != len(events) {
		return nil, fmt.Errorf("eventfold_append_events returned %d rows for %d events", len(out), len(events))
	}
	return out, nil
}

// batchError maps an error of eventfold_append_batch onto the element it
// concerns: a refused expectation names its index, a duplicate event id
// is found by the id the server quotes.
func batchError(err error, appends []contract.StreamAppend) error {
	var me *gomysql.MySQLError
	if !errors.As(err, &me) {
		return err
	}
	index := 0
	switch me.Number {
	case errWrongExpectedVersion:
		if i := strings.Index(me.Message, " index="); i >= 0 {
			if n, perr := strconv.Atoi(me.Message[i+len(" index="):]); perr == nil && n >= 0 && n < len(appends) {
				index = n
			}
		}
	case errDuplicateKey:
		index = elementWithEventID(me.Message, appends)
	}
	a := appends[index]
	return &contract.AppendManyError{Index: index, Err: appendError(err, a.StreamID, a.Expected)}
}

// elementWithEventID returns the element that failed on the event id the
// duplicate-key message quotes (0 when no element holds it).
func elementWithEventID(msg string, appends []contract.StreamAppend) int {
	// The procedure inserts in order and stops at the first duplicate: an
	// id that occurs twice in the batch fails at its second occurrence (the
	// first went in); an id that occurs once clashes with the log there.
	first, seen := -1, 0
	for i, a := range appends {
		for _, e := range a.Events {
			if strings.Contains(msg, "'"+e.ID+"'") {
				seen++
				if seen == 1 {
					first = i
				} else {
					return i
				}
			}
		}
	}
	if first < 0 {
		return 0
	}
	return first
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

// batchPayload renders appends as eventfold_append_batch's JSON argument.
func batchPayload(appends []contract.StreamAppend) (string, error) {
	items := make([]batchElement, len(appends))
	for i, a := range appends {
		items[i] = batchElement{Stream: a.StreamID, Expected: int64(a.Expected), Events: toAppended(a.Events)}
	}
	s, err := encodeJSON(items)
	if err != nil {
		return "", fmt.Errorf("encode events for eventfold_append_batch: %w", err)
	}
	return s, nil
}

func toAppended(events []eventfold.EventData) []appendedEvent {
	out := make([]appendedEvent, len(events))
	for i, e := range events {
		out[i] = appendedEvent{ID: e.ID, Type: e.Type, Data: e.Data, Metadata: e.Metadata}
	}
	return out
}

// encodeJSON encodes v for a procedure argument. Data and metadata were
// validated by the Store (the encoder compacts them); HTML escaping is off
// so that MariaDB, which stores JSON as text, keeps "<" and "&" as sent.
func encodeJSON(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return buf.String(), nil
}
