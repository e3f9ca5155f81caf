// Package orchestrator dispatches commands: "Redux for the backend".
//
// A command handler (Redux: an action creator) turns a command into events.
// In ONE database transaction the orchestrator appends those events to the
// event log and runs every reducer registered for each event, which update
// read-model tables through the same transaction. The caller learns at once
// whether it worked and gets the committed events back.
//
//	Dispatch(ctx, cmd)
//	  └─ middleware (logging, auth, validation, metrics, tracing ...)
//	       └─ attempt 1..MaxAttempts (retry on conflict, with backoff + jitter)
//	            BEGIN
//	              idempotency lookup (command id already done? return its events)
//	              handler(ctx, tx, cmd)          -> []Emit   (or a domain error)
//	              store.AppendTx for each Emit   -> []eventfold.Event
//	              every reducer, for every event, in order
//	              record command id -> events    (only when the command has an ID)
//	            COMMIT                           (any error above: ROLLBACK, nothing stored)
//	            AfterCommit(ctx, events)         (e.g. wake the listener)
//
// # Errors
//
// A failing handler yields a *HandlerError, a failing reducer a
// *ReducerError naming the reducer and the event; both unwrap to the
// original error, so a domain error such as ErrInsufficientFunds stays
// matchable with errors.Is. A handler marks its domain rejections with
// Reject (they match ErrRejected), so that an edge can tell "the command
// is wrong" (shown to the client) from "something broke" (not shown). Version conflicts, serialization failures and
// deadlocks are retried (see Config); when the attempts run out the last
// error is returned, still typed (errors.Is(err,
// eventfold.ErrWrongExpectedVersion) keeps working).
//
// # Idempotency
//
// A command whose Envelope carries an ID is recorded, in the dispatch
// transaction, together with its scope (Envelope.Scope or Config.Scope: the
// caller's key space), its name, a SHA-256 of its canonical JSON payload and
// the stream versions of the events it produced. Dispatching the same ID in
// the same scope with the same name and payload again runs no handler and no
// reducer and returns the events of the first success (Result.Duplicate is
// set), so a client may safely resend a request whose answer it never
// received. The same ID in the same scope with another name or payload is
// refused with *IdempotencyKeyReusedError (ErrIdempotencyKeyReused), never
// answered with the recorded events; the same ID in another scope is another
// command. A recorded command whose events were archived fails with
// ErrCommandArchived. The records need the 00002_commands and
// 00007_command_scope migrations (applied by Store.Migrate).
//
// # Metadata
//
// Every event's metadata gets "command" (the command name), "causation_id"
// (the command's ID) and "correlation_id" (the envelope's correlation id,
// defaulting to the command's ID), plus the envelope's caller metadata
// (user, request id ...) and whatever the Emit adds.
package orchestrator
