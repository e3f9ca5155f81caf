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
// # Deferred writes (PostgreSQL through pgxdriver)
//
// A reducer registered WithDeferredWrites gets a pgx.Tx whose Exec queues
// the statement: it travels with the transaction's next statement or with
// COMMIT, so a plain Dispatch is two round trips ([BEGIN + append],
// [reducer writes + idempotency record + commit marker + COMMIT]) instead
// of three, and the window in which the transaction holds PostgreSQL's
// read horizon (and every subscriber's delivery) back is one round trip
// shorter. The price: Exec cannot report rows affected (the tag is
// "DEFERRED", RowsAffected 0), and a write's error arrives later, still as
// a *ReducerError naming the reducer that queued it. Elsewhere (database/sql,
// MySQL/MariaDB, SQLite, SQL Server, a pgx.Tx not made by pgxdriver) the
// option is a no-op. See WithDeferredWrites.
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
// # Batched mode
//
// With Config.GroupCommit set, concurrent dispatches share transactions.
// By default (GroupCommitConfig.Batched false) each command of a batch runs
// exactly as a lone Dispatch would, one after the other: its handler sees
// the appends and reducers of every command before it. That costs each
// command its own statements: an append per stream, a statement per
// reducer per event, the idempotency record.
//
// GroupCommitConfig.Batched trades some of that visibility for a batch
// that costs a few statements in all. The commands of a batch run in
// segments; in each segment:
//
//	for each command: idempotency lookup, handler      (no writes of the segment yet)
//	one Store.AppendManyTx with every command's events (one statement where the dialect has a native one)
//	reducers over all the segment's events             (a ReduceBatch reducer: one call per run of its type)
//	the idempotency records
//
// What a handler sees, exactly:
//   - the read model and the log as they were when its segment started:
//     everything committed before the transaction, and everything the
//     earlier segments of the batch wrote;
//   - never the effects of the other commands of its own segment. Those
//     commands write streams other than its own: when a handler emits to a
//     stream that an earlier command of the segment emits to (or a command
//     carries the id of an earlier one), the segment is flushed first and
//     the handler runs again on the state the flush left, so it sees that
//     stream's version and the read model the earlier command's reducers
//     built. Expected versions are therefore checked exactly as in a lone
//     Dispatch. A handler that fails while earlier commands of its segment
//     are not yet applied runs again after them too, and fails the
//     command only if it fails then.
//
// So an invariant that one command's handler checks in the read model
// against another command writing other streams (a unique user name held
// in a read-model table, a total over several accounts) can be passed by
// two commands of one segment at once. Keep such invariants in a stream
// both commands write (an expected-version conflict then catches it), or in
// a database constraint that makes the second command's reducer fail, or
// leave Batched off. A handler may run twice in one batch (like a retry):
// it must have no effects outside tx.
//
// Reducers get the segment's events in runs of one event type: each
// command's events, hence each stream's, keep their order; the events of
// different commands may interleave differently than command by command
// (all the batch's deposits, then all its withdrawals). A per-event
// reducer runs with its command's ctx (CommandFrom); a batch reducer whose
// run holds several commands' events gets a ctx without a command.
//
// Failures stay their command's own: when a handler, an append, a reducer
// or an idempotency record fails, the transaction is rolled back, the
// command is answered with its error (or, for a retryable one such as a
// wrong expected version, dispatched on its own afterwards with the usual
// retries) and the rest of the batch runs again without it. After a few
// such rounds, or when a batch reducer fails over several commands' events
// (no single command to blame), the rest of the batch runs in the default
// mode with a savepoint per command. Commit markers, the answers after a
// failed COMMIT and AfterCommit work as in the default mode.
//
// # Metadata
//
// Every event's metadata gets "command" (the command name), "causation_id"
// (the command's ID) and "correlation_id" (the envelope's correlation id,
// defaulting to the command's ID), plus the envelope's caller metadata
// (user, request id ...) and whatever the Emit adds.
package orchestrator
