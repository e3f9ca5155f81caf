// Package listener relays committed events to subscribers, in global-position
// order, with no gap and no duplicate beyond what the chosen delivery mode
// allows, on every dialect eventfold supports.
//
// # Pieces
//
//   - [Tail] follows the log from a position held in memory: catch up, then
//     follow live. The building block for everything else (and for package
//     listener/sse, which pushes events to browsers).
//   - [Subscription] is a durable, named subscription whose checkpoint lives
//     in the database (table checkpoints, migration 00003). [New] gives the
//     at-least-once mode for handlers with outside side effects; [NewTx] the
//     exactly-once mode for handlers that write to the same database;
//     [NewBatch] and [NewPipeline] hand whole batches to a broker relay (the
//     latter reads ahead while earlier batches await their acks). Only
//     one process at a time drives a named subscription: it holds a lease row
//     (table leases) with an expiry that it renews.
//   - [Signal], [Notifier] and [pgxdriver.Listener] wake followers up early; polling
//     every [Options.PollInterval] is the fallback and the only path on MySQL,
//     SQLite and SQL Server.
//
// # Shared reads
//
// Followers of the same [eventfold.Log] value in one process (Tails,
// Subscriptions, the SSE handler's tail) share their reads at the head: the
// last few thousand events read are kept in a gap-free window, a follower
// inside it is served from it, and only one read at a time goes to the
// database for all the followers at its end. A follower behind the window
// reads alone until it reaches it. A shared read serves a follower only if
// it started after everything that woke the follower was announced, so no
// wake-up is lost. Each follower gets its own copy of the events.
//
// # Why nothing is skipped
//
// Every follower reads with Store.ReadAll from "last position + 1", and
// ReadAll never returns an event past one that a still-running transaction
// may yet commit (see the eventfold package documentation). A long-running
// writer therefore shows up as lag, never as loss. Positions are sparse
// (rolled-back appends leave holes; on PostgreSQL a position is
// (xid << 20) + index), so the listener never assumes next = last + 1.
//
// # Events held back
//
// Where a log's head can lag its commits (PostgreSQL: a transaction with
// an xid anywhere in the cluster holds the snapshot horizon; MySQL/MariaDB:
// an append still running with a lower position), a read after a wake-up
// may return part of what committed, or nothing: the rest becomes readable
// when that transaction ends, and nothing announces that moment. A follower
// that knows events are owed re-reads soon, 1 ms doubling to the smaller of
// a second and [Options.PollInterval], until it has them. It knows from
// [Signal.Announce] (a [Notifier], or a [pgxdriver.Listener] for a
// notification that carries a position) at no cost; after a
// [Signal.Broadcast], which carries no position, it asks the log for its
// last position once per wake-up (one query per follower, and only on those
// databases). A wake-up whose read found everything costs no extra read.
//
// # Wake-ups and what NOTIFY costs
//
// PostgreSQL's NOTIFY takes a database-wide lock at commit; one pg_notify per
// write transaction was measured to halve write throughput (about 9,000 tps
// to 4,400 tps). So a notification is only a hint ("something committed,
// around position p"), never the event itself, and it is sent by a
// [Notifier] after the commit, outside the write transaction, at most one in
// flight at a time: under load, many commits collapse into one notification.
// Hook [Notifier.Notify] into the orchestrator's after-commit hook. Appends
// made directly from SQL can be announced by the optional trigger function
// eventfold.notify_events (see sql/postgres/00003_subscriptions.sql and
// [EnableNotifyTrigger]); that one does cost the write path.
//
// A [pgxdriver.Listener] (in the driver package, so that programs without
// PostgreSQL do not link pgx) LISTENs on a dedicated connection (never a pooled one), and
// wakes followers each time it (re)connects, so that what committed while it
// was away is caught up: listen first, then catch up. It reconnects with
// backoff. Behind PgBouncer in transaction mode LISTEN does not work; polling
// alone still delivers everything, only later.
//
// # Delivery modes
//
// At-least-once ([New]): the handler runs outside any transaction; the
// checkpoint is saved after handling (after each batch, and before backing
// off on an error), so a crash or a lost lease replays at most the events
// handled since the last save. A handler error is retried with exponential
// backoff; the event is never skipped ([Options.MaxAttempts] makes Run stop
// instead of retrying forever).
//
// Exactly-once ([NewTx]): the handler gets the transaction; its writes and the
// checkpoint commit together, and the checkpoint moves by compare-and-set, so
// a process that lost its lease cannot commit. A failing handler rolls back
// its writes and the checkpoint together.
package listener
