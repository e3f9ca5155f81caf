package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/eventfold/eventfold"
)

// GroupCommitConfig configures group commit: concurrent dispatches share
// one transaction. A batch first runs without savepoints (a savepoint costs
// a round trip per command); when a command fails, the batch is rolled back
// and run again with a savepoint per command, so the failure stays its own.
//
// The database pays per transaction (a commit, a WAL flush, locks taken and
// released), so batching commands into fewer transactions is what raises
// throughput once the database, not the network, is the bottleneck. The
// semantics stay exactly those of a lone Dispatch:
//   - a failing command rolls back to its savepoint, alone; the others in
//     the batch go on;
//   - a retryable conflict re-runs the command's handler at once, inside
//     the batch, on the state the earlier commands left; if it conflicts
//     again it leaves the batch and is dispatched on its own, with backoff;
//   - every caller is answered only after the shared COMMIT;
//   - when the transaction fails before COMMIT, every command of the
//     batch is dispatched again on its own, so none is answered on the
//     strength of a batch that did not commit;
//   - when COMMIT itself fails (the connection may have died after the
//     server committed), the batch's commit marker (see
//     Config.NoCommitMarkers) is looked up on a new connection: a batch
//     that committed is answered with its results, one that did not is
//     dispatched again command by command, and if the marker cannot be
//     looked up every command of the batch gets a *CommitError matching
//     ErrCommitOutcomeUnknown. A command is never applied twice. Without
//     markers a failed COMMIT is answered with *CommitError as well.
//
// Batches form by themselves: a command that finds no committer running is
// dispatched at once (no added latency at low load, and a batch of one is
// a plain dispatch); commands that arrive while a committer runs queue up
// and go together in the next transaction. While one committer runs,
// another (up to Committers) runs a batch only when MaxBatch/4 commands
// wait, so that busy committers do not split the queue into batches of
// one or two.
type GroupCommitConfig struct {
	// MaxBatch caps the commands in one transaction. PostgreSQL caches 64
	// subtransactions per backend and slows down past that, so on
	// PostgreSQL it is capped at 60 savepoints per transaction, retries
	// included. Defaults to 32.
	MaxBatch int
	// Committers is how many batches may run at once, each on a connection
	// of its own; while one runs, another runs a batch only when
	// MaxBatch/4 commands wait. Defaults to 4, and to 1 on SQLite, which has
	// one writer at a time: there a second committer only waits for the
	// write lock holding a batch it took before the lock was free, so that
	// both batches are smaller (measured at 16 clients: about 8 commands per
	// transaction with 4 committers, 12 with 1, 14 with 1 and the yield of
	// letAnsweredRequeue; BenchmarkGroupCommitBatchSize in package bench
	// reports it).
	Committers int
	// Batched runs a batch's handlers first, then appends all their events
	// with one Store.AppendManyTx, then runs the reducers once per run of
	// event types over the whole batch (a batch reducer, ReduceBatch, gets
	// every command's events in one call), then records the idempotency
	// records: a batch costs a few statements instead of a few per
	// command. It changes what a handler sees; see "Batched mode" in the
	// package documentation. Defaults to false: each command's handler runs
	// after the earlier commands' reducers, exactly as in a lone Dispatch.
	Batched bool
}

func (c GroupCommitConfig) withDefaults() GroupCommitConfig {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 32
	}
	if c.Committers <= 0 {
		c.Committers = 4
	}
	return c
}

// pending is one queued command and where its answer goes.
type pending[TTx any] struct {
	ctx context.Context
	h   *handlerEntry[TTx]
	cmd Command
	key *commandKey // nil for a command without an id

	res  *Result
	err  error
	solo bool // leave the batch: dispatch on its own after it
	// panicked holds what the command's handler, reducer or AfterCommit
	// panicked with; the caller's goroutine panics again with it.
	panicked *panicValue
	// hookPanic holds what an Observer callback a committer made for this
	// command (or, for the command first in its batch, for the whole
	// batch) panicked with. It does not change the command's answer and
	// is never reset by a batch's re-runs; the caller's goroutine panics
	// with it once answered (see observerPanicked).
	hookPanic *panicValue
	done      chan struct{}
}

// panicValue carries a recovered panic from a committer goroutine to the
// caller's goroutine.
type panicValue struct{ v any }

// errPanicked stands for a command that panicked inside a shared
// transaction; it never reaches a caller (the panic does).
var errPanicked = errors.New("orchestrator: command panicked")

// groupCommitter queues commands and runs them in shared transactions. A
// caller that finds a committer slot free runs batches itself; queued work
// left when it is answered goes to a goroutine that exits when the queue is
// empty, so an idle orchestrator holds no goroutine and needs no Close.
type groupCommitter[TTx any] struct {
	o   *Orchestrator[TTx]
	cfg GroupCommitConfig

	mu     sync.Mutex
	queue  []*pending[TTx]
	active int
}

// savepointName is the savepoint each command of a group commit runs after.
const savepointName = "eventfold_cmd"

func newGroupCommitter[TTx any](o *Orchestrator[TTx], cfg GroupCommitConfig) *groupCommitter[TTx] {
	return &groupCommitter[TTx]{o: o, cfg: cfg.withDefaults()}
}

// dispatch is the innermost Dispatcher in group-commit mode.
func (g *groupCommitter[TTx]) dispatch(ctx context.Context, cmd Command) (*Result, error) {
	h, key, cmd, err := g.o.prepare(cmd)
	if err != nil {
		return nil, err
	}
	if err := g.o.store.CheckWritable(ctx); err != nil {
		return nil, err // see Orchestrator.dispatch
	}
	p := &pending[TTx]{ctx: withCommand(ctx, cmd), h: h, cmd: cmd, key: key, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, p)
	// A committer slot is taken when none is running, or when a quarter
	// of a batch waits (see take).
	lead := g.active < g.cfg.Committers && (g.active == 0 || len(g.queue) >= g.minBatch())
	if lead {
		g.active++
	}
	g.mu.Unlock()
	if lead {
		// A free committer slot: this goroutine runs batches itself until
		// its own command is answered, so a lone command pays no hand-off
		// to another goroutine.
		g.lead(p)
	}
	// The caller waits for the shared commit even if its ctx ends: its
	// command may already be part of a transaction that is committing, and
	// an answer of "cancelled" could then be false.
	<-p.done
	if p.panicked != nil {
		// As in a lone Dispatch, a panic is the caller's: raising it in the
		// committer goroutine would kill the process and every other
		// caller's answer with it.
		if p.hookPanic != nil {
			g.o.cfg.Logger.ErrorContext(context.WithoutCancel(ctx), "orchestrator: observer panicked in a group committer; the command's own panic is raised instead",
				"command", p.cmd.Name, "command_id", p.cmd.Envelope.ID, "panic", fmt.Sprint(p.hookPanic.v))
		}
		panic(p.panicked.v)
	}
	if p.hookPanic != nil {
		// An Observer callback panicked in the committer: the command's
		// answer stands (it committed, or failed, as reported to the
		// observer), and the panic is this caller's, as in a lone Dispatch.
		panic(p.hookPanic.v)
	}
	return p.res, p.err
}

// observerPanicked records v, what an Observer callback a committer made
// for p's command panicked with, to be raised in p's caller's goroutine
// once p is answered. A command carries one such panic: a further one is
// logged at Error level with the configured Logger, never dropped. The
// committer's goroutine holds p until it closes p.done.
func (g *groupCommitter[TTx]) observerPanicked(p *pending[TTx], v any) {
	if p.hookPanic == nil {
		p.hookPanic = &panicValue{v}
		return
	}
	g.o.cfg.Logger.ErrorContext(context.WithoutCancel(p.ctx), "orchestrator: observer panicked again in a group committer; the first panic is raised in the caller",
		"command", p.cmd.Name, "command_id", p.cmd.Envelope.ID, "panic", fmt.Sprint(v))
}

// The Observer callbacks a committer makes outside a command's own code
// (an attempt's failure, a shared COMMIT's or a batched append's step,
// BatchCommitted) go through the methods below: a panic in them must not
// unwind the committer (in a committer goroutine it would kill the
// process; anywhere it would leave the transaction open and the batch
// half answered). They recover it into p.hookPanic and the batch goes on
// as if the callback had returned. Callbacks inside a command's execution
// (its handler, append and reducer steps, EventMetadata) panic as part of
// the command, as in a lone Dispatch: the command fails with the panic.

// attemptFailed tells the observer, if any, about a failed attempt of p.
func (g *groupCommitter[TTx]) attemptFailed(ctx context.Context, p *pending[TTx], attempt int, err error, retry bool) {
	if g.o.cfg.Observer == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			g.observerPanicked(p, v)
		}
	}()
	g.o.attemptFailed(ctx, p.cmd, attempt, err, retry)
}

// step starts a step of p's command for the observer, if any; the step's
// end recovers like the start.
func (g *groupCommitter[TTx]) step(ctx context.Context, p *pending[TTx], s Step) (sctx context.Context, end func(error)) {
	if g.o.cfg.Observer == nil {
		return withStep(ctx, s), noEnd
	}
	defer func() {
		if v := recover(); v != nil {
			g.observerPanicked(p, v)
			sctx, end = withStep(ctx, s), noEnd
		}
	}()
	sctx, oend := g.o.step(ctx, s)
	return sctx, func(err error) {
		defer func() {
			if v := recover(); v != nil {
				g.observerPanicked(p, v)
			}
		}()
		oend(err)
	}
}

// batchCommitted tells the observer, if any, that a batch of n commands
// committed. Its panic concerns no one command: it goes to first, the
// caller of the batch's first (longest queued) command.
func (g *groupCommitter[TTx]) batchCommitted(ctx context.Context, first *pending[TTx], n int) {
	if g.o.cfg.Observer == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			g.observerPanicked(first, v)
		}
	}()
	g.o.cfg.Observer.BatchCommitted(ctx, n)
}

// recoverInto records a panic of p's code as p's answer.
func recoverInto[TTx any](p *pending[TTx]) {
	if v := recover(); v != nil {
		p.res, p.err, p.panicked = nil, errPanicked, &panicValue{v}
	}
}

// runSolo dispatches p in transactions of its own (attempt rolls back
// before re-panicking).
func (g *groupCommitter[TTx]) runSolo(p *pending[TTx]) {
	defer recoverInto(p)
	p.res, p.err = g.o.run(p.ctx, p.h, p.cmd, p.key)
}

// execute runs p once inside the shared transaction; a panic becomes
// errPanicked (the transaction or savepoint is then rolled back like for
// any failure).
func (g *groupCommitter[TTx]) execute(ctx context.Context, tx TTx, p *pending[TTx]) (res *Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			p.panicked = &panicValue{v}
			res, err = nil, errPanicked
		}
	}()
	return g.o.execute(ctx, tx, p.h, p.cmd, p.key)
}

// afterCommit runs the AfterCommit hook for p.
func (g *groupCommitter[TTx]) afterCommit(p *pending[TTx]) {
	defer func() {
		if v := recover(); v != nil {
			p.panicked = &panicValue{v} // committed: the answer stays, the panic is raised too
		}
	}()
	g.o.cfg.AfterCommit(p.ctx, p.res.Events)
}

// lead runs batches in the caller's goroutine, holding a committer slot,
// until p is answered; then it hands the slot to a goroutine if commands
// are still queued, or gives it back.
func (g *groupCommitter[TTx]) lead(p *pending[TTx]) {
	for {
		g.mu.Lock()
		select {
		case <-p.done:
			if len(g.queue) > 0 && (g.active == 1 || len(g.queue) >= g.minBatch()) {
				g.mu.Unlock()
				go g.commitLoop() // the slot goes with it
				return
			}
			g.active--
			g.mu.Unlock()
			return
		default:
		}
		batch := g.take()
		if batch == nil {
			// p is in another committer's batch, or queued for one that
			// is running (see take): wait for it there.
			g.active--
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		g.runHolding(batch)
		g.letAnsweredRequeue()
	}
}

// letAnsweredRequeue yields the processor once after a batch was answered,
// before the next batch is taken, when there is one committer: the
// callers just answered are runnable, and a caller with more work
// dispatches it at once. Taken without yielding, the next batch holds only
// the commands that arrived during the last one, and the answered callers'
// next commands make the batch after it: on one writer (SQLite) the
// batches alternated between large and a few commands, each small batch
// paying a whole commit (BenchmarkGroupCommitBatchSize). With several
// committers an idle one takes those commands anyway; there the yield
// measured smaller batches, not larger (PostgreSQL and MariaDB, 16
// clients, 4 committers: 6.0 -> 4.8 and 5.4 commands per transaction on
// PostgreSQL, two interleaved runs).
func (g *groupCommitter[TTx]) letAnsweredRequeue() {
	if g.cfg.Committers == 1 {
		runtime.Gosched()
	}
}

// runHolding runs batch for a committer holding a slot. If a panic leaves
// runBatch (the Observer's, in the caller's goroutine that leads), the
// slot is not kept: it goes to a new committer when commands are queued,
// or is given back. Kept, it would stop every later lone command: while a
// committer runs, another starts only when minBatch commands wait.
func (g *groupCommitter[TTx]) runHolding(batch []*pending[TTx]) {
	ok := false
	defer func() {
		if ok {
			return
		}
		g.mu.Lock()
		if len(g.queue) > 0 {
			g.mu.Unlock()
			go g.commitLoop() // the slot goes with it
			return
		}
		g.active--
		g.mu.Unlock()
	}()
	g.runBatch(batch)
	ok = true
}

// minBatch is how many queued commands make a committer run a batch
// while another committer is running: a quarter of MaxBatch.
func (g *groupCommitter[TTx]) minBatch() int { return max(1, g.cfg.MaxBatch/4) }

// take removes the next batch from the queue, for a committer holding a
// slot (nil when it is empty). While another committer runs, it leaves
// fewer than minBatch commands queued for that one (nil): a transaction
// costs a few statements whatever its size, and busy committers that each
// took what had just arrived would split the queue into batches of one or
// two, each a whole transaction. The last committer running always takes
// what is queued, so nothing stays queued without a committer. The
// caller holds g.mu.
func (g *groupCommitter[TTx]) take() []*pending[TTx] {
	n := min(len(g.queue), g.cfg.MaxBatch)
	if n == 0 || (g.active > 1 && n < g.minBatch()) {
		return nil
	}
	batch := make([]*pending[TTx], n)
	copy(batch, g.queue)
	g.queue = g.queue[:copy(g.queue, g.queue[n:])]
	return batch
}

// commitLoop runs batches until the queue is empty.
func (g *groupCommitter[TTx]) commitLoop() {
	for {
		g.mu.Lock()
		batch := g.take()
		if batch == nil {
			g.active--
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		g.runHolding(batch)
		g.letAnsweredRequeue()
	}
}

// runBatch runs one batch and answers every command in it.
func (g *groupCommitter[TTx]) runBatch(batch []*pending[TTx]) {
	defer func() {
		for _, p := range batch {
			close(p.done)
		}
	}()
	var live []*pending[TTx]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.err = err // cancelled while queued: never started
			continue
		}
		live = append(live, p)
	}
	if len(live) == 1 {
		g.runSolo(live[0])
		return
	}
	if len(live) == 0 {
		return
	}
	committed, unknown := g.runShared(live)
	for _, p := range live {
		if unknown != nil && !p.solo && p.err == nil && p.panicked == nil {
			// In a transaction whose fate is unknown: running it again
			// could apply it twice.
			p.res, p.err = nil, &CommitError{Command: p.cmd.Name, CommandID: p.cmd.Envelope.ID, Err: unknown}
			continue
		}
		if unknown != nil {
			if p.solo {
				g.runSolo(p) // rolled back to its savepoint: not in the transaction
			}
			continue
		}
		if !committed || p.solo {
			// Not answered by the batch: a transaction of its own, with the
			// usual retries and backoff.
			g.runSolo(p)
			continue
		}
		if p.err == nil && !p.res.Duplicate && g.o.cfg.AfterCommit != nil && len(p.res.Events) > 0 {
			g.afterCommit(p)
		}
	}
}

// runShared runs the commands in one transaction and commits. It reports
// whether the transaction committed; if it did not, no command's answer
// from it may be used.
//
// It first runs the batch optimistically, without savepoints: a savepoint
// costs a round trip per command, as much as the append itself. Only when
// a command fails does it roll back and run the batch again with a
// savepoint per command, so that the failure stays the command's own.
//
// unknown is set when COMMIT failed and the commit marker could not be
// looked up: the commands that ran in the transaction may or may not be
// applied, and must not run again.
func (g *groupCommitter[TTx]) runShared(batch []*pending[TTx]) (committed bool, unknown error) {
	if g.cfg.Batched {
		return g.runBatched(batch)
	}
	if ok, failed, unknown := g.runOnce(batch, false); !failed {
		return ok, unknown
	}
	for _, p := range batch {
		p.res, p.err, p.solo, p.panicked = nil, nil, false, nil
	}
	ok, _, unknown := g.runOnce(batch, true)
	return ok, unknown
}

// runOnce runs the batch in one transaction. Without savepoints it stops
// at the first failing command, rolls back and reports failed.
func (g *groupCommitter[TTx]) runOnce(batch []*pending[TTx], savepoints bool) (committed, failed bool, unknown error) {
	drv := g.o.store.Driver()
	// One context for the shared transaction: no single caller's
	// cancellation may break the others' work.
	ctx := context.WithoutCancel(batch[0].ctx)
	tx, err := drv.Begin(ctx)
	if err != nil {
		return false, false, nil
	}
	ops := drv.OpsTx(tx)
	taken := 0
	limit := len(batch) * 2
	if m := ops.Capabilities().MaxSavepoints; m > 0 {
		limit = m
	}
	for _, p := range batch {
		pctx := context.WithoutCancel(p.ctx) // the caller's values, not its cancellation
		if !savepoints {
			res, err := g.execute(pctx, tx, p)
			if err != nil {
				_ = drv.Rollback(ctx, tx)
				return false, true, nil
			}
			res.Attempts = 1
			p.res = res
			continue
		}
		for attempt := 1; ; attempt++ {
			if taken >= limit {
				p.solo = true
				break
			}
			if err := ops.Savepoint(ctx, savepointName); err != nil {
				_ = drv.Rollback(ctx, tx)
				return false, false, nil
			}
			taken++
			res, err := g.execute(pctx, tx, p)
			if err == nil {
				res.Attempts = attempt
				p.res, p.err = res, nil
				break
			}
			if rerr := ops.RollbackToSavepoint(ctx, savepointName); rerr != nil {
				// The transaction is lost (a dooming error on SQL Server,
				// a broken connection): everybody goes solo.
				_ = drv.Rollback(ctx, tx)
				return false, false, nil
			}
			if g.o.cfg.Retryable(err) {
				// Either way the command runs again: here, or on its own.
				g.attemptFailed(pctx, p, attempt, err, true)
				// ErrStreamOrder (PostgreSQL): the batch's transaction id is
				// below the stream's last writer's; only a new transaction
				// cures that, so it goes solo at once.
				if attempt < 2 && attempt < g.o.cfg.MaxAttempts && !errors.Is(err, eventfold.ErrStreamOrder) {
					continue // once more, on the state the batch has now
				}
				p.solo = true // contended beyond the batch: retry with backoff
				break
			}
			p.res, p.err = nil, err
			break
		}
	}
	committed, unknown = g.commit(ctx, tx, batch)
	return committed, false, unknown
}

// commit writes the batch's commit marker and commits tx, resolving a
// failed COMMIT from the marker. It reports whether the transaction
// committed; unknown is set when that could not be found out. The
// commands of batch that are neither solo nor failed are the ones in it.
func (g *groupCommitter[TTx]) commit(ctx context.Context, tx TTx, batch []*pending[TTx]) (committed bool, unknown error) {
	drv := g.o.store.Driver()
	marker := ""
	var err error
	if g.o.markersOn() {
		// Queued with COMMIT when the driver can: a refused marker then
		// fails the COMMIT as the server's error, handled below.
		if marker, err = g.o.markCommit(ctx, tx, g.o.commitPipeline(tx)); err != nil {
			_ = drv.Rollback(ctx, tx)
			return false, nil
		}
	}
	endCommit := g.startCommit(batch)
	err = drv.Commit(ctx, tx)
	endCommit(err)
	if err != nil {
		_ = drv.Rollback(ctx, tx)
		if g.o.serverReported(err) || !g.o.markers.supported {
			// The server refused the COMMIT, or the engine runs in the
			// process (SQLite): it did not commit.
			g.o.cfg.Logger.WarnContext(ctx, "orchestrator: group commit failed; dispatching its commands one by one",
				"commands", len(batch), "error", fmt.Sprint(err))
			return false, nil
		}
		if marker == "" {
			// Markers turned off: no way to tell whether it committed, so
			// nothing may run again.
			g.o.cfg.Logger.WarnContext(ctx, "orchestrator: group commit failed; outcome unknown",
				"commands", len(batch), "error", fmt.Sprint(err))
			return false, err
		}
		committed, rerr := g.o.resolveCommit(ctx, marker)
		switch {
		case rerr != nil:
			g.o.cfg.Logger.WarnContext(ctx, "orchestrator: group commit failed and its commit marker could not be looked up; outcome unknown",
				"commands", len(batch), "marker", marker, "error", fmt.Sprint(err), "lookup_error", fmt.Sprint(rerr))
			return false, fmt.Errorf("%w: %w (looking up commit marker %s: %v)", ErrCommitOutcomeUnknown, err, marker, rerr)
		case !committed:
			g.o.cfg.Logger.WarnContext(ctx, "orchestrator: group commit failed and did not commit; dispatching its commands one by one",
				"commands", len(batch), "error", fmt.Sprint(err))
			return false, nil
		}
		g.o.cfg.Logger.WarnContext(ctx, "orchestrator: group COMMIT reported an error but the transaction committed (commit marker found)",
			"commands", len(batch), "error", fmt.Sprint(err))
	}
	g.o.committed(marker)
	n := 0
	for _, p := range batch {
		if !p.solo && p.err == nil {
			n++
		}
	}
	for _, p := range batch {
		if !p.solo && p.err == nil {
			p.res.BatchSize = n
		}
	}
	g.batchCommitted(ctx, batch[0], n)
	return true, nil
}

// startCommit tells the observer, if any, that the shared COMMIT starts,
// once per command in it (each in its own trace, with the batch's size),
// and returns what ends those steps.
func (g *groupCommitter[TTx]) startCommit(batch []*pending[TTx]) func(error) {
	if g.o.cfg.Observer == nil {
		return noEnd
	}
	n := 0
	for _, p := range batch {
		if !p.solo && p.err == nil {
			n++
		}
	}
	ends := make([]func(error), 0, n)
	for _, p := range batch {
		if !p.solo && p.err == nil {
			_, end := g.step(context.WithoutCancel(p.ctx), p, Step{Kind: "commit", Name: p.cmd.Name, Batch: n})
			ends = append(ends, end)
		}
	}
	return func(err error) {
		for _, end := range ends {
			end(err)
		}
	}
}
