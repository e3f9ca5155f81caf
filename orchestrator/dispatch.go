package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/backoff"
	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/txguard"
)

// MaxCommandIDLength bounds Envelope.ID, in bytes.
const MaxCommandIDLength = 200

// Dispatch runs cmd through the middleware chain and then, in one
// transaction, its handler, the appends and every reducer, and commits.
// It returns the committed events, or an error after which nothing of the
// command is stored. See the package documentation for the steps and the
// errors.
func (o *Orchestrator[TTx]) Dispatch(ctx context.Context, cmd Command) (*Result, error) {
	// The envelope is checked before any middleware, which may run SQL; it
	// is checked again after, in prepare, in case middleware changed it.
	if err := validateEnvelope(cmd); err != nil {
		return nil, err
	}
	if raw, ok := cmd.Payload.(json.RawMessage); ok {
		// The payload rules of events apply to a JSON command too: what
		// the database would refuse or store differently is refused here,
		// before the handler runs.
		if err := eventfold.ValidateJSON("command payload", raw); err != nil {
			return nil, fmt.Errorf("%w: command %q: %w", ErrInvalidCommand, cmd.Name, err)
		}
		// Decode before the middleware runs, so that validation and
		// authorisation middleware see the typed command.
		if h, found := o.handler(cmd.Name); found {
			p, err := h.decode(raw, !o.cfg.AllowUnknownFields)
			if err != nil {
				return nil, fmt.Errorf("%w: command %q: decode payload: %v", ErrInvalidCommand, cmd.Name, err)
			}
			cmd.Payload = p
		}
	}
	o.mu.RLock()
	chain := o.chain
	o.mu.RUnlock()
	if o.cfg.Observer == nil {
		res, err := chain(ctx, cmd)
		return res, o.store.SchemaError(ctx, err)
	}
	ctx, end := o.cfg.Observer.StartDispatch(ctx, cmd)
	res, err := chain(ctx, cmd)
	// A database without eventfold's schema: say so, as Append does,
	// rather than the driver's "no such table".
	err = o.store.SchemaError(ctx, err)
	end(res, err)
	return res, err
}

// DispatchJSON dispatches the command name with a JSON payload, decoded
// into the type its handler was registered with (unknown fields are
// rejected unless Config.AllowUnknownFields). It is what an HTTP command
// endpoint calls.
func (o *Orchestrator[TTx]) DispatchJSON(ctx context.Context, name string, payload json.RawMessage, env Envelope) (*Result, error) {
	if len(payload) == 0 {
		payload = json.RawMessage(`{}`)
	}
	return o.Dispatch(ctx, Command{Name: name, Payload: payload, Envelope: env})
}

// dispatch is the innermost Dispatcher: attempts with retries.
func (o *Orchestrator[TTx]) dispatch(ctx context.Context, cmd Command) (*Result, error) {
	h, key, cmd, err := o.prepare(cmd)
	if err != nil {
		return nil, err
	}
	// A schema newer than this eventfold knows: refuse before writing
	// (asked of the database once per Store; an atomic load afterwards).
	if err := o.store.CheckWritable(ctx); err != nil {
		return nil, err
	}
	return o.run(withCommand(ctx, cmd), h, cmd, key)
}

// run dispatches a prepared command in transactions of its own: attempts
// with retries.
func (o *Orchestrator[TTx]) run(ctx context.Context, h *handlerEntry[TTx], cmd Command, key *commandKey) (*Result, error) {
	for attempt := 1; ; attempt++ {
		res, err := o.attempt(ctx, h, cmd, key)
		if err == nil {
			res.Attempts, res.BatchSize = attempt, 1
			if !res.Duplicate && o.cfg.AfterCommit != nil && len(res.Events) > 0 {
				o.cfg.AfterCommit(ctx, res.Events)
			}
			return res, nil
		}
		retry := o.cfg.Retryable(err) && attempt < o.cfg.MaxAttempts
		o.attemptFailed(ctx, cmd, attempt, err, retry)
		if !o.cfg.Retryable(err) {
			return nil, err
		}
		if attempt >= o.cfg.MaxAttempts {
			if o.cfg.MaxAttempts == 1 {
				return nil, err
			}
			return nil, &RetriesExhaustedError{Command: cmd.Name, Attempts: attempt, Err: err}
		}
		wait := o.cfg.backoff(attempt)
		o.cfg.Logger.DebugContext(ctx, "orchestrator: retrying command",
			"command", cmd.Name, "command_id", cmd.Envelope.ID, "attempt", attempt, "wait", wait, "error", err)
		if !backoff.Sleep(ctx, wait) {
			serr := ctx.Err()
			return nil, fmt.Errorf("orchestrator: command %q: %w while waiting to retry after: %w", cmd.Name, serr, err)
		}
	}
}

// prepare resolves the handler, gives the command an id and, for a
// command with an id, works out its idempotency key (nil otherwise).
func (o *Orchestrator[TTx]) prepare(cmd Command) (*handlerEntry[TTx], *commandKey, Command, error) {
	h, ok := o.handler(cmd.Name)
	if !ok {
		return nil, nil, cmd, fmt.Errorf("%w: %q has no handler", ErrUnknownCommand, cmd.Name)
	}
	if raw, isRaw := cmd.Payload.(json.RawMessage); isRaw && h.typ != nil {
		p, err := h.decode(raw, !o.cfg.AllowUnknownFields)
		if err != nil {
			return nil, nil, cmd, fmt.Errorf("%w: command %q: decode payload: %v", ErrInvalidCommand, cmd.Name, err)
		}
		cmd.Payload = p
	}
	if err := validateEnvelope(cmd); err != nil {
		return nil, nil, cmd, err
	}
	if cmd.Envelope.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, nil, cmd, fmt.Errorf("orchestrator: generate command id: %w", err)
		}
		cmd.Envelope.ID = id.String()
		return h, nil, cmd, nil
	}
	if len(cmd.Envelope.ID) > MaxCommandIDLength {
		return nil, nil, cmd, fmt.Errorf("%w: command id is %d bytes long, the limit is %d", ErrInvalidCommand, len(cmd.Envelope.ID), MaxCommandIDLength)
	}
	key, cmd, err := o.commandKey(cmd)
	if err != nil {
		return nil, nil, cmd, err
	}
	return h, key, cmd, nil
}

// validateEnvelope applies eventfold's identifier rules (see
// eventfold.ValidateIdentifier) to the command id and the correlation id,
// so that a key the database would refuse, mangle or compare loosely is
// refused before any SQL runs. The error matches both ErrInvalidCommand and
// eventfold.ErrInvalidInput.
func validateEnvelope(cmd Command) error {
	if id := cmd.Envelope.ID; id != "" {
		if err := eventfold.ValidateIdentifier("command id", id, MaxCommandIDLength); err != nil {
			return fmt.Errorf("%w: command %q: %w", ErrInvalidCommand, cmd.Name, err)
		}
	}
	if id := cmd.Envelope.CorrelationID; id != "" {
		if err := eventfold.ValidateIdentifier("correlation id", id, MaxCommandIDLength); err != nil {
			return fmt.Errorf("%w: command %q: %w", ErrInvalidCommand, cmd.Name, err)
		}
	}
	return nil
}

// attempt runs the command once in a transaction of its own. When the
// driver can (Capabilities.CommitPipeline), the idempotency record and the
// commit marker are queued to go with COMMIT in one round trip.
func (o *Orchestrator[TTx]) attempt(ctx context.Context, h *handlerEntry[TTx], cmd Command, key *commandKey) (res *Result, err error) {
	drv := o.store.Driver()
	tx, err := drv.Begin(ctx)
	if err != nil {
		// Classified: a connection refused because too many are open
		// is transient (retried), as it would be at any later statement.
		return nil, fmt.Errorf("orchestrator: command %q: begin: %w", cmd.Name, o.classify(err))
	}
	done := false // true once the code below ends tx itself
	defer txguard.RollbackUnless(ctx, drv, tx, &done)
	pipe := o.commitPipeline(tx)
	res, err = o.executeBody(ctx, tx, h, cmd, key)
	if err != nil {
		return nil, err
	}
	if res.Duplicate {
		return res, nil // nothing was written; the deferred rollback ends tx
	}
	recordAt := -1 // the idempotency record's place among the queued writes
	if key != nil {
		if pipe != nil {
			recordAt = 0 // queued first, before the marker
		}
		if err := o.record(ctx, tx, cmd, key, res.Events, pipe); err != nil {
			return nil, err
		}
	}
	marker := ""
	if o.markersOn() && (o.cfg.DispatchCommitMarkers || o.group != nil) {
		if marker, err = o.markCommit(ctx, tx, pipe); err != nil {
			return nil, err
		}
	}
	done = true
	endCommit := noEnd
	if o.cfg.Observer != nil {
		_, endCommit = o.step(ctx, Step{Kind: "commit", Name: cmd.Name, Batch: 1})
	}
	err = drv.Commit(ctx, tx)
	endCommit(err)
	if err != nil {
		_ = drv.Rollback(context.WithoutCancel(ctx), tx)
		var qe *contract.QueuedWriteError
		if df := (*deferredFailure)(nil); errors.As(err, &df) && (!errors.As(err, &qe) || o.serverReported(qe.Err)) {
			// A reducer's deferred write failed: before COMMIT (which was
			// then not sent), or in COMMIT's pipeline, refused by the
			// server. Nothing committed.
			return nil, df.re
		}
		if errors.As(err, &qe) && o.serverReported(qe.Err) {
			// The server refused a queued write, so COMMIT never ran:
			// the same errors as when the write ran on its own.
			return nil, o.queuedWriteFailed(cmd, qe, qe.Index == recordAt)
		}
		if marker == "" || o.serverReported(err) {
			// No marker, or the server refused the COMMIT (a deferred
			// constraint, a serialization failure): nothing to resolve.
			return nil, &CommitError{Command: cmd.Name, CommandID: cmd.Envelope.ID, Err: o.classify(err)}
		}
		return o.afterFailedCommit(ctx, cmd, marker, res, err)
	}
	o.committed(marker)
	return res, nil
}

// queuedWriteFailed is the error of an attempt whose idempotency record
// (record) or commit marker, queued with COMMIT, the server refused.
func (o *Orchestrator[TTx]) queuedWriteFailed(cmd Command, qe *contract.QueuedWriteError, record bool) error {
	id := cmd.Envelope.ID
	switch {
	case record && errors.Is(qe.Err, contract.ErrDuplicateCommand):
		return fmt.Errorf("orchestrator: command %q (id %s): %w", cmd.Name, id, errDuplicateInFlight)
	case record:
		return fmt.Errorf("orchestrator: command %q: record command id %q: %w", cmd.Name, id, qe.Err)
	}
	return fmt.Errorf("orchestrator: %w (is migration 00009 applied? run migrate up)", o.classify(qe.Err))
}

// afterFailedCommit answers a lone command whose COMMIT failed, from its
// commit marker: the result when the transaction committed after all, an
// error that IsRetryable accepts when it did not, and a *CommitError
// matching ErrCommitOutcomeUnknown when the marker could not be looked up.
func (o *Orchestrator[TTx]) afterFailedCommit(ctx context.Context, cmd Command, marker string, res *Result, err error) (*Result, error) {
	committed, rerr := o.resolveCommit(ctx, marker)
	switch {
	case rerr != nil:
		return nil, &CommitError{Command: cmd.Name, CommandID: cmd.Envelope.ID,
			Err: fmt.Errorf("%w: %w (looking up commit marker %s: %v)", ErrCommitOutcomeUnknown, err, marker, rerr)}
	case committed:
		o.cfg.Logger.WarnContext(ctx, "orchestrator: COMMIT reported an error but the transaction committed (commit marker found)",
			"command", cmd.Name, "command_id", cmd.Envelope.ID, "error", fmt.Sprint(err))
		return res, nil
	}
	return nil, &CommitError{Command: cmd.Name, CommandID: cmd.Envelope.ID, Err: fmt.Errorf("%w: %w", errNotCommitted, err)}
}

// committed is called after every successful COMMIT that wrote marker.
func (o *Orchestrator[TTx]) committed(marker string) {
	if marker != "" {
		o.maybePruneMarkers()
	}
}

// DispatchTx runs cmd inside the caller's transaction tx: idempotency
// lookup, handler, appends, reducers and the idempotency record, without
// middleware, retries or AfterCommit. The caller commits, or rolls back on
// error (on PostgreSQL the transaction is aborted anyway). Use it to
// combine a command with other writes of your own; Dispatch is the usual
// entry point. It is also the unit a group-commit mode runs per SAVEPOINT.
func (o *Orchestrator[TTx]) DispatchTx(ctx context.Context, tx TTx, cmd Command) (*Result, error) {
	h, key, cmd, err := o.prepare(cmd)
	if err != nil {
		return nil, err
	}
	ctx = withCommand(ctx, cmd)
	res, err := o.execute(ctx, tx, h, cmd, key)
	if err != nil {
		return nil, err
	}
	res.Attempts = 1
	return res, nil
}

// execute runs one prepared command inside an open transaction. key is
// nil for a command without an id.
func (o *Orchestrator[TTx]) execute(ctx context.Context, tx TTx, h *handlerEntry[TTx], cmd Command, key *commandKey) (*Result, error) {
	res, err := o.executeBody(ctx, tx, h, cmd, key)
	// Deferred writes go now, so that a failing one is this command's
	// (group commit's savepoint), also after a failure: the caller of
	// DispatchTx finds its transaction as it would without deferral.
	if ferr := o.flushDeferred(ctx, tx); err == nil && ferr != nil {
		res, err = nil, ferr
	}
	if err != nil || res.Duplicate || key == nil {
		return res, err
	}
	if err := o.record(ctx, tx, cmd, key, res.Events, nil); err != nil {
		return nil, err
	}
	return res, nil
}

// record writes the idempotency record of a command with an id, or queues
// it on pipe (when not nil) to go with COMMIT.
func (o *Orchestrator[TTx]) record(ctx context.Context, tx TTx, cmd Command, key *commandKey, events []eventfold.Event, pipe contract.CommitPipeline) error {
	id := cmd.Envelope.ID
	refs, err := encodeRefs(events)
	if err != nil {
		return err
	}
	rctx := withStep(ctx, Step{Kind: "record", Name: cmd.Name})
	if pipe != nil {
		if err := pipe.QueueRecordCommand(rctx, key.scope, id, cmd.Name, key.payloadHash, refs); err != nil {
			return fmt.Errorf("orchestrator: command %q: record command id %q: %w", cmd.Name, id, err)
		}
		return nil
	}
	rec, err := o.recorder(tx)
	if err != nil {
		return err
	}
	dup, err := rec.RecordCommand(rctx, key.scope, id, cmd.Name, key.payloadHash, refs)
	if err != nil {
		return fmt.Errorf("orchestrator: command %q: record command id %q: %w", cmd.Name, id, err)
	}
	if dup {
		return fmt.Errorf("orchestrator: command %q (id %s): %w", cmd.Name, id, errDuplicateInFlight)
	}
	return nil
}

// executeBody is execute without the idempotency record: the lookup, the
// handler, the appends and the reducers.
func (o *Orchestrator[TTx]) executeBody(ctx context.Context, tx TTx, h *handlerEntry[TTx], cmd Command, key *commandKey) (*Result, error) {
	id := cmd.Envelope.ID
	if key != nil {
		rec, err := o.recorder(tx)
		if err != nil {
			return nil, err
		}
		lctx := withStep(ctx, Step{Kind: "lookup", Name: cmd.Name})
		name, hash, refs, found, err := rec.LookupCommand(lctx, key.scope, id)
		if err != nil {
			return nil, fmt.Errorf("orchestrator: command %q: look up command id %q: %w", cmd.Name, id, err)
		}
		if found {
			// A replay only for the same command with the same payload:
			// anything else is a client reusing a key, and answering it
			// with the recorded events would hide that its own command
			// never ran.
			if err := key.check(cmd.Name, name, hash, id); err != nil {
				return nil, err
			}
			evs, err := o.readBack(lctx, tx, refs)
			if errors.Is(err, eventfold.ErrArchived) {
				return nil, fmt.Errorf("orchestrator: command %q (id %s) was dispatched before: %w: %w", cmd.Name, id, ErrCommandArchived, err)
			}
			if err != nil {
				return nil, fmt.Errorf("orchestrator: command %q (id %s) was dispatched before, but its events cannot be read back: %w", cmd.Name, id, err)
			}
			return &Result{CommandID: id, Events: evs, Duplicate: true}, nil
		}
	}

	hctx, endHandler := o.step(ctx, Step{Kind: "handler", Name: cmd.Name})
	emits, err := h.run(hctx, tx, cmd.Payload)
	endHandler(err)
	if err != nil {
		return nil, &HandlerError{Command: cmd.Name, CommandID: id, Err: o.classify(err)}
	}

	events := make([]eventfold.Event, 0, len(emits))
	batch := make([]eventfold.EventData, 0, len(emits))
	for i := 0; i < len(emits); {
		// Consecutive emits to one stream whose followers expect Any go in
		// one append: one round trip instead of one per event.
		e, end := emits[i], i+1
		for end < len(emits) && emits[end].Stream == e.Stream && emits[end].Expected == eventfold.Any {
			end++
		}
		actx, endAppend := o.step(ctx, Step{Kind: "append", Name: e.Stream, EventType: e.Type, Events: end - i, Expected: e.Expected})
		batch = batch[:0]
		for j := i; j < end; j++ {
			data, err := o.buildEvent(actx, cmd, emits[j])
			if err != nil {
				endAppend(err)
				return nil, &AppendError{Command: cmd.Name, Index: j, Stream: emits[j].Stream, EventType: emits[j].Type, Err: err}
			}
			batch = append(batch, data)
		}
		got, err := o.store.AppendTx(actx, tx, e.Stream, e.Expected, batch...)
		endAppend(err)
		j := end
		if err != nil {
			return nil, &AppendError{Command: cmd.Name, Index: i, Stream: e.Stream, EventType: e.Type, Err: err}
		}
		events = append(events, got...)
		i = j
	}

	if err := o.reduceAll(ctx, tx, cmd.Name, events); err != nil {
		return nil, undefer(err)
	}

	return &Result{CommandID: id, Events: events}, nil
}

// buildEvent turns an Emit into the EventData to append, with the
// command's metadata.
func (o *Orchestrator[TTx]) buildEvent(ctx context.Context, cmd Command, e Emit) (eventfold.EventData, error) {
	data, err := marshalData(e.Data)
	if err != nil {
		return eventfold.EventData{}, fmt.Errorf("marshal %s data: %w", e.Type, err)
	}
	if len(cmd.Envelope.Metadata) == 0 && len(e.Metadata) == 0 && o.cfg.Observer == nil {
		// Only the system keys: a struct marshals to the same bytes as the
		// map below (keys in sorted order, the same string escaping) with
		// no map to build and sort; it was half of a dispatch's
		// allocations on PostgreSQL.
		meta, err := json.Marshal(systemMetadata{
			CausationID: cmd.Envelope.ID, Command: cmd.Name, CorrelationID: correlationID(cmd),
		})
		if err != nil {
			return eventfold.EventData{}, fmt.Errorf("marshal %s metadata: %w", e.Type, err)
		}
		return eventfold.EventData{ID: e.ID, Type: e.Type, Data: data, Metadata: meta}, nil
	}
	md := make(map[string]any, len(cmd.Envelope.Metadata)+len(e.Metadata)+3)
	for k, v := range cmd.Envelope.Metadata {
		md[k] = v
	}
	// The system keys win over caller metadata, so a client cannot forge
	// causation; the handler's own Emit.Metadata wins over everything.
	md["command"] = cmd.Name
	md["causation_id"] = cmd.Envelope.ID
	md["correlation_id"] = correlationID(cmd)
	if o.cfg.Observer != nil {
		o.cfg.Observer.EventMetadata(ctx, md)
	}
	for k, v := range e.Metadata {
		md[k] = v
	}
	meta, err := json.Marshal(md)
	if err != nil {
		return eventfold.EventData{}, fmt.Errorf("marshal %s metadata: %w", e.Type, err)
	}
	return eventfold.EventData{ID: e.ID, Type: e.Type, Data: data, Metadata: meta}, nil
}

// systemMetadata is an event's metadata when only the system keys are
// set. Its fields are in sorted key order, as json.Marshal writes a map's.
type systemMetadata struct {
	CausationID   string `json:"causation_id"`
	Command       string `json:"command"`
	CorrelationID string `json:"correlation_id"`
}

// correlationID is the command's correlation id, its id when it has none.
func correlationID(cmd Command) string {
	if cmd.Envelope.CorrelationID == "" {
		return cmd.Envelope.ID
	}
	return cmd.Envelope.CorrelationID
}

func decodeJSON(raw json.RawMessage, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// Apply runs every reducer registered for ev's type, in registration
// order, in tx: what a dispatch does after appending ev. It rebuilds read
// models from the log (esctl replay, a new read model catching up); a
// failure is a *ReducerError.
func (o *Orchestrator[TTx]) Apply(ctx context.Context, tx TTx, ev eventfold.Event) error {
	return o.applyAll(ctx, tx, []eventfold.Event{ev})
}

// ApplyAll is Apply for a page of events, in order: batch reducers
// (ReduceBatch) get each run of consecutive events of their type at once.
// Use it for replays.
func (o *Orchestrator[TTx]) ApplyAll(ctx context.Context, tx TTx, evs []eventfold.Event) error {
	return o.applyAll(ctx, tx, evs)
}

// applyAll is ApplyAll; deferred writes are sent before it returns.
func (o *Orchestrator[TTx]) applyAll(ctx context.Context, tx TTx, evs []eventfold.Event) error {
	err := o.reduceAll(ctx, tx, "", evs)
	if ferr := o.flushDeferred(ctx, tx); err == nil {
		err = ferr
	}
	return undefer(err)
}

// reduceAll runs the reducers of evs in order; command names the command
// being dispatched ("" on replay). Types without a batch reducer run event
// by event, every reducer per event; a type with one runs reducer by
// reducer over each run of consecutive events of that type.
func (o *Orchestrator[TTx]) reduceAll(ctx context.Context, tx TTx, command string, evs []eventfold.Event) error {
	for i := 0; i < len(evs); {
		rs := o.reducersFor(evs[i].Type)
		j := i + 1
		if hasBatch(rs) {
			for j < len(evs) && evs[j].Type == evs[i].Type {
				j++
			}
			for _, r := range rs {
				if err := o.runReducer(ctx, tx, command, r, evs[i:j]); err != nil {
					return err
				}
			}
		} else {
			for _, r := range rs {
				if err := o.runReducer(ctx, tx, command, r, evs[i:j]); err != nil {
					return err
				}
			}
		}
		i = j
	}
	return nil
}

func hasBatch[TTx any](rs []*reducerEntry[TTx]) bool {
	for _, r := range rs {
		if r.batch != nil {
			return true
		}
	}
	return false
}

// runReducer runs r over evs (one call for a batch reducer, one per event
// otherwise) and names the reducer and event in its error.
func (o *Orchestrator[TTx]) runReducer(ctx context.Context, tx TTx, command string, r *reducerEntry[TTx], evs []eventfold.Event) error {
	fail := func(ev eventfold.Event, err error) error {
		var df *deferredFailure
		if errors.As(err, &df) {
			// A deferred write (maybe another reducer's) failed when this
			// reducer's statement sent it: it is that write's failure.
			return df
		}
		return &ReducerError{
			Reducer: r.name, Command: command,
			EventType: ev.Type, StreamID: ev.StreamID, StreamVersion: ev.StreamVersion, EventID: ev.ID,
			Err: o.classify(err),
		}
	}
	// view is the tx the reducer gets for the events evs[k:k+n].
	view := func(k, n int) TTx {
		if !r.deferred || o.deferrer == nil {
			return tx
		}
		span := evs[k : k+n]
		v, _ := o.deferrer.DeferWrites(tx, func(err error) error {
			re, _ := fail(span[0], err).(*ReducerError)
			if re == nil {
				return err
			}
			return &deferredFailure{re: re, evs: span}
		})
		return v
	}
	rctx, end := o.step(ctx, Step{Kind: "reducer", Name: r.name, EventType: evs[0].Type, Events: len(evs)})
	if r.batch != nil {
		if err := r.batch(rctx, view(0, len(evs)), evs); err != nil {
			end(err)
			return fail(evs[0], err)
		}
		end(nil)
		return nil
	}
	for i, ev := range evs {
		if err := r.run(rctx, view(i, 1), ev); err != nil {
			end(err)
			return fail(ev, err)
		}
	}
	end(nil)
	return nil
}

// deferredFailure is the failure of a reducer's deferred write
// (WithDeferredWrites): re is the reducer's error, evs the events of the
// reducer call that queued the write. It reaches the caller as re.
type deferredFailure struct {
	re  *ReducerError
	evs []eventfold.Event
}

func (e *deferredFailure) Error() string { return e.re.Error() }
func (e *deferredFailure) Unwrap() error { return e.re }

// undefer returns err with a deferred write's failure replaced by its
// *ReducerError.
func undefer(err error) error {
	var df *deferredFailure
	if errors.As(err, &df) {
		return df.re
	}
	return err
}

// flushDeferred sends the reducers' deferred writes queued on tx now (see
// WithDeferredWrites); nothing when none are.
func (o *Orchestrator[TTx]) flushDeferred(ctx context.Context, tx TTx) error {
	if o.deferrer == nil {
		return nil
	}
	return undefer(o.deferrer.FlushDeferred(ctx, tx))
}
