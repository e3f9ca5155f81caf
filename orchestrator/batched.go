package orchestrator

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
)

// Batched group commit (GroupCommitConfig.Batched): the commands of a
// batch run in segments. Within a segment every handler runs first, on the
// state the segment started from; then one AppendManyTx appends every
// command's events, the reducers run over all of them (grouped into runs
// of one event type), and the idempotency records are written. A command
// whose events go to a stream an earlier command of the segment writes
// (or whose id an earlier one carries) closes the segment: the segment is
// flushed and the command's handler runs again on the state it left, so a
// handler always sees the stream versions, and the read model, of every
// command before it that wrote to its streams.
//
// A command whose handler fails while earlier commands of its segment
// wait to be flushed may have failed on the state before their writes
// (say, a deposit to an account the segment opens): the batch runs again
// with the segment flushed before it, and only a failure then is its own.
//
// Nothing takes a savepoint. When a command fails (its handler, its
// append, its reducer or its idempotency record), the transaction is
// rolled back, the command is answered with its error (or dispatched on its
// own afterwards when the error is retryable) and the batch runs again
// without it. A failure that names no single command (a batch reducer over
// several commands' events failed), or more than maxBatchedRounds failures,
// hands what is left of the batch to the savepoint mode.

// maxBatchedRounds bounds how often a batch is rolled back and run again
// without a failed command before the savepoint mode takes over.
const maxBatchedRounds = 4

// staged is one command of a segment: its handler ran, its appends wait.
type staged[TTx any] struct {
	p   *pending[TTx]
	ctx context.Context // p.ctx without its cancellation
	// appends are the command's appends, consecutive emits to one stream
	// that expect Any merged as in a lone dispatch; emitAt is the index of
	// each append's first Emit.
	appends []eventfold.StreamAppend
	emitAt  []int
	emits   []Emit
	events  []eventfold.Event
}

// segment is the stream-disjoint run of commands that is flushed at once.
type segment[TTx any] struct {
	cmds    []*staged[TTx]
	streams map[string]struct{}
	keys    map[commandKeyID]struct{}
	// pipe, when the driver has one, takes the idempotency records to be
	// sent with COMMIT; queued holds the keys of the records queued so
	// far in the transaction (every segment's).
	pipe   contract.CommitPipeline
	queued map[commandKeyID]struct{}
}

// commandKeyID is a command's idempotency key.
type commandKeyID struct{ scope, id string }

func (s *segment[TTx]) reset() {
	s.cmds = s.cmds[:0]
	clear(s.streams)
	clear(s.keys)
}

// overlaps tells whether st writes a stream an earlier command of the
// segment writes.
func (s *segment[TTx]) overlaps(st *staged[TTx]) bool {
	for _, a := range st.appends {
		if _, ok := s.streams[a.StreamID]; ok {
			return true
		}
	}
	return false
}

func (s *segment[TTx]) add(st *staged[TTx]) {
	s.cmds = append(s.cmds, st)
	for _, a := range st.appends {
		s.streams[a.StreamID] = struct{}{}
	}
	if k := st.p.key; k != nil {
		s.keys[commandKeyID{k.scope, st.p.cmd.Envelope.ID}] = struct{}{}
	}
}

// batchFailure is why a batched run was rolled back: p failed with err
// (p nil: no single command is to blame), or, with replan set, replan's
// handler failed after other commands of its segment ran theirs: it may
// have failed on the state before their writes (an account the segment
// opens), so the batch runs again with the segment flushed before it.
type batchFailure[TTx any] struct {
	p      *pending[TTx]
	err    error
	replan *pending[TTx]
}

// runBatched runs the batch in batched mode and commits; it reports like
// runShared.
func (g *groupCommitter[TTx]) runBatched(batch []*pending[TTx]) (committed bool, unknown error) {
	remaining := batch
	flushBefore := map[*pending[TTx]]bool{}
	for round := 1; ; {
		ok, fail, unknown := g.runBatchedOnce(remaining, flushBefore)
		if fail == nil {
			return ok, unknown
		}
		if fail.replan != nil {
			// Bounded by the batch's size: each command at most once.
			flushBefore[fail.replan] = true
			for _, p := range remaining {
				p.res, p.err, p.solo, p.panicked = nil, nil, false, nil
			}
			continue
		}
		round++
		rest := make([]*pending[TTx], 0, len(remaining))
		for _, p := range remaining {
			if p != fail.p {
				p.res, p.err, p.solo, p.panicked = nil, nil, false, nil
				rest = append(rest, p)
			}
		}
		remaining = rest
		if len(remaining) == 0 {
			return true, nil // every command was answered by a failure of its own
		}
		if fail.p == nil || round > maxBatchedRounds {
			g.o.cfg.Logger.DebugContext(context.WithoutCancel(remaining[0].ctx), "orchestrator: batched group commit falls back to isolating each command",
				"commands", len(remaining), "round", round, "error", fmt.Sprint(fail.err))
			ok, _, unknown := g.runOnce(remaining, true)
			return ok, unknown
		}
	}
}

// runBatchedOnce runs the batch in one transaction and commits. On a
// failure it rolls back and returns it, having answered the command to
// blame (p.err, p.panicked, or p.solo for a retryable error).
func (g *groupCommitter[TTx]) runBatchedOnce(batch []*pending[TTx], flushBefore map[*pending[TTx]]bool) (committed bool, fail *batchFailure[TTx], unknown error) {
	drv := g.o.store.Driver()
	ctx := context.WithoutCancel(batch[0].ctx)
	tx, err := drv.Begin(ctx)
	if err != nil {
		return false, nil, nil
	}
	failed := func(f *batchFailure[TTx]) (bool, *batchFailure[TTx], error) {
		_ = drv.Rollback(ctx, tx)
		if p := f.p; p != nil {
			switch {
			case p.panicked != nil:
				p.res, p.err = nil, errPanicked
			case g.o.cfg.Retryable(f.err):
				g.attemptFailed(context.WithoutCancel(p.ctx), p, 1, f.err, true)
				p.res, p.err, p.solo = nil, nil, true
			default:
				p.res, p.err = nil, f.err
			}
		}
		return false, f, nil
	}
	seg := &segment[TTx]{streams: map[string]struct{}{}, keys: map[commandKeyID]struct{}{},
		pipe: g.o.commitPipeline(tx), queued: map[commandKeyID]struct{}{}}
	for _, p := range batch {
		pctx := context.WithoutCancel(p.ctx)
		if flushBefore[p] {
			if f := g.flush(ctx, tx, seg); f != nil {
				return failed(f)
			}
		}
		if k := p.key; k != nil {
			kid := commandKeyID{k.scope, p.cmd.Envelope.ID}
			if _, ok := seg.keys[kid]; ok {
				// The same id earlier in the segment: its record must be
				// written before this command looks for it.
				if f := g.flush(ctx, tx, seg); f != nil {
					return failed(f)
				}
			}
			if _, ok := seg.queued[kid]; ok {
				// The same id earlier in the transaction, whose record
				// goes with COMMIT: this command's lookup could not find
				// it. It is dispatched on its own after the COMMIT, and
				// finds it there.
				p.solo = true
				continue
			}
		}
		st, f := g.stage(pctx, tx, p)
		if f != nil && f.p == p && len(seg.cmds) > 0 {
			// It ran before the segment's writes were applied; it fails
			// for good only if it fails after them too.
			_ = drv.Rollback(ctx, tx)
			return false, &batchFailure[TTx]{replan: p, err: f.err}, nil
		}
		if f != nil {
			return failed(f)
		}
		if st == nil {
			continue // answered without writing: a replay, or a reused key
		}
		if seg.overlaps(st) {
			// Its handler read the state before the segment's writes to its
			// streams: flush them, and run it again on what they left.
			if f := g.flush(ctx, tx, seg); f != nil {
				return failed(f)
			}
			if st, f = g.stage(pctx, tx, p); f != nil {
				return failed(f)
			}
			if st == nil {
				continue
			}
		}
		seg.add(st)
	}
	if f := g.flush(ctx, tx, seg); f != nil {
		return failed(f)
	}
	committed, unknown = g.commit(ctx, tx, batch)
	return committed, nil, unknown
}

// stage runs p's idempotency lookup and handler and builds its events.
// It returns nil (and no failure) when p is answered without writing
// anything: a replay of a recorded command, or a key reused with another
// command or payload.
func (g *groupCommitter[TTx]) stage(ctx context.Context, tx TTx, p *pending[TTx]) (st *staged[TTx], fail *batchFailure[TTx]) {
	o := g.o
	cmd, id := p.cmd, p.cmd.Envelope.ID
	defer func() {
		if v := recover(); v != nil {
			p.panicked = &panicValue{v}
			st, fail = nil, &batchFailure[TTx]{p: p, err: errPanicked}
		}
	}()
	if key := p.key; key != nil {
		rec := o.store.Driver().OpsTx(tx)
		lctx := withStep(ctx, Step{Kind: "lookup", Name: cmd.Name})
		name, hash, refs, found, err := rec.LookupCommand(lctx, key.scope, id)
		if err != nil {
			return nil, &batchFailure[TTx]{p: p, err: fmt.Errorf("orchestrator: command %q: look up command id %q: %w", cmd.Name, id, err)}
		}
		if found {
			if err := key.check(cmd.Name, name, hash, id); err != nil {
				p.res, p.err = nil, err // only read: nothing to roll back
				return nil, nil
			}
			evs, err := o.readBack(lctx, tx, refs)
			if errors.Is(err, eventfold.ErrArchived) {
				err = fmt.Errorf("orchestrator: command %q (id %s) was dispatched before: %w: %w", cmd.Name, id, ErrCommandArchived, err)
			} else if err != nil {
				err = fmt.Errorf("orchestrator: command %q (id %s) was dispatched before, but its events cannot be read back: %w", cmd.Name, id, err)
			}
			if err != nil {
				return nil, &batchFailure[TTx]{p: p, err: err}
			}
			p.res, p.err = &Result{CommandID: id, Events: evs, Duplicate: true, Attempts: 1}, nil
			return nil, nil
		}
	}
	hctx, endHandler := o.step(ctx, Step{Kind: "handler", Name: cmd.Name})
	emits, err := p.h.run(hctx, tx, cmd.Payload)
	endHandler(err)
	if err != nil {
		return nil, &batchFailure[TTx]{p: p, err: &HandlerError{Command: cmd.Name, CommandID: id, Err: o.classify(err)}}
	}
	st = &staged[TTx]{p: p, ctx: ctx, emits: emits}
	for i := 0; i < len(emits); {
		e, end := emits[i], i+1
		for end < len(emits) && emits[end].Stream == e.Stream && emits[end].Expected == eventfold.Any {
			end++
		}
		data := make([]eventfold.EventData, 0, end-i)
		for j := i; j < end; j++ {
			d, err := o.buildEvent(ctx, cmd, emits[j])
			if err != nil {
				return nil, &batchFailure[TTx]{p: p, err: &AppendError{Command: cmd.Name, Index: j, Stream: emits[j].Stream, EventType: emits[j].Type, Err: err}}
			}
			data = append(data, d)
		}
		st.appends = append(st.appends, eventfold.StreamAppend{StreamID: e.Stream, Expected: e.Expected, Events: data})
		st.emitAt = append(st.emitAt, i)
		i = end
	}
	return st, nil
}

// flush appends the segment's events in one call, runs the reducers over
// them, records the idempotency records, answers its commands and empties
// the segment.
func (g *groupCommitter[TTx]) flush(ctx context.Context, tx TTx, seg *segment[TTx]) *batchFailure[TTx] {
	if len(seg.cmds) == 0 {
		return nil
	}
	o := g.o
	var appends []eventfold.StreamAppend
	var owner []int // index in seg.cmds of each append's command
	var ends []func(error)
	for k, st := range seg.cmds {
		for i, a := range st.appends {
			appends = append(appends, a)
			owner = append(owner, k)
			if o.cfg.Observer != nil {
				e := st.emits[st.emitAt[i]]
				_, end := g.step(st.ctx, st.p, Step{Kind: "append", Name: a.StreamID, EventType: e.Type, Events: len(a.Events), Expected: a.Expected})
				ends = append(ends, end)
			}
		}
	}
	var results [][]eventfold.Event
	var err error
	if len(appends) > 0 {
		results, err = o.store.AppendManyTx(withStep(ctx, Step{Kind: "append", Events: len(appends)}), tx, appends)
	}
	for _, end := range ends {
		end(err)
	}
	if err != nil {
		var me *eventfold.AppendManyError
		if errors.As(err, &me) && me.Index >= 0 && me.Index < len(appends) {
			st := seg.cmds[owner[me.Index]]
			first := 0
			for i := range me.Index {
				if owner[i] == owner[me.Index] {
					first++
				}
			}
			e := st.emits[st.emitAt[first]]
			return &batchFailure[TTx]{p: st.p, err: &AppendError{Command: st.p.cmd.Name, Index: st.emitAt[first], Stream: e.Stream, EventType: e.Type, Err: me.Err}}
		}
		return &batchFailure[TTx]{err: err}
	}
	for i, evs := range results {
		st := seg.cmds[owner[i]]
		st.events = append(st.events, evs...)
	}
	if f := g.reduceSegment(ctx, tx, seg.cmds); f != nil {
		return f
	}
	for _, st := range seg.cmds {
		p := st.p
		if p.key != nil {
			refs, err := encodeRefs(st.events)
			if err != nil {
				return &batchFailure[TTx]{p: p, err: err}
			}
			id := p.cmd.Envelope.ID
			if seg.pipe != nil {
				// Sent with COMMIT; a record of the id that another
				// transaction committed first fails the COMMIT, and the
				// batch's commands are dispatched one by one.
				if err := seg.pipe.QueueRecordCommand(withStep(st.ctx, Step{Kind: "record", Name: p.cmd.Name}), p.key.scope, id, p.cmd.Name, p.key.payloadHash, refs); err != nil {
					return &batchFailure[TTx]{p: p, err: fmt.Errorf("orchestrator: command %q: record command id %q: %w", p.cmd.Name, id, err)}
				}
				seg.queued[commandKeyID{p.key.scope, id}] = struct{}{}
				if st.events == nil {
					st.events = []eventfold.Event{}
				}
				p.res, p.err = &Result{CommandID: id, Events: st.events, Attempts: 1}, nil
				continue
			}
			dup, err := o.store.Driver().OpsTx(tx).RecordCommand(withStep(st.ctx, Step{Kind: "record", Name: p.cmd.Name}), p.key.scope, id, p.cmd.Name, p.key.payloadHash, refs)
			if err != nil {
				return &batchFailure[TTx]{p: p, err: fmt.Errorf("orchestrator: command %q: record command id %q: %w", p.cmd.Name, id, err)}
			}
			if dup {
				return &batchFailure[TTx]{p: p, err: fmt.Errorf("orchestrator: command %q (id %s): %w", p.cmd.Name, id, errDuplicateInFlight)}
			}
		}
		if st.events == nil {
			st.events = []eventfold.Event{}
		}
		p.res, p.err = &Result{CommandID: p.cmd.Envelope.ID, Events: st.events, Attempts: 1}, nil
	}
	seg.reset()
	return nil
}

// reduceSegment runs the reducers over the segment's events. The events
// are merged into runs of one event type: each command's events keep
// their order (so every stream's do), and the run's type is the one at the
// head of the earliest command that has events left; a batch reducer gets a
// whole run in one call. A per-event reducer runs with its command's ctx;
// a batch reducer over several commands' events with a ctx that carries
// none (CommandFrom reports false).
func (g *groupCommitter[TTx]) reduceSegment(ctx context.Context, tx TTx, cmds []*staged[TTx]) (fail *batchFailure[TTx]) {
	o := g.o
	total := 0
	for _, st := range cmds {
		total += len(st.events)
	}
	if total == 0 {
		return nil
	}
	evs := make([]eventfold.Event, 0, total)
	owners := make([]int, 0, total)
	heads := make([]int, len(cmds))
	for len(evs) < total {
		typ := ""
		for k, st := range cmds {
			if heads[k] < len(st.events) {
				typ = st.events[heads[k]].Type
				break
			}
		}
		for k, st := range cmds {
			for heads[k] < len(st.events) && st.events[heads[k]].Type == typ {
				evs = append(evs, st.events[heads[k]])
				owners = append(owners, k)
				heads[k]++
			}
		}
	}
	// blame turns a reducer failure over evs[i:j] into the failure of the
	// one command those events belong to, if there is one.
	blame := func(i, j int, err error) *batchFailure[TTx] {
		for k := i + 1; k < j; k++ {
			if owners[k] != owners[i] {
				return &batchFailure[TTx]{err: err}
			}
		}
		p := cmds[owners[i]].p
		var re *ReducerError
		if errors.As(err, &re) {
			re.Command = p.cmd.Name
		}
		return &batchFailure[TTx]{p: p, err: err}
	}
	// blameDeferred blames a deferred write's failure (WithDeferredWrites)
	// on the reducer call that queued it, otherwise calls other.
	blameDeferred := func(err error, other func() *batchFailure[TTx]) *batchFailure[TTx] {
		var df *deferredFailure
		if !errors.As(err, &df) || len(df.evs) == 0 {
			return other()
		}
		for k := range evs {
			if evs[k].ID == df.evs[0].ID && evs[k].GlobalPosition == df.evs[0].GlobalPosition {
				return blame(k, min(k+len(df.evs), len(evs)), df.re)
			}
		}
		return &batchFailure[TTx]{err: df.re}
	}
	// run runs r over evs[i:j], turning a panic into a failure.
	run := func(rctx context.Context, r *reducerEntry[TTx], i, j int) (f *batchFailure[TTx]) {
		defer func() {
			if v := recover(); v != nil {
				f = blame(i, j, errPanicked)
				if f.p != nil {
					f.p.panicked = &panicValue{v}
				} else {
					// Nobody to hand the panic to: the savepoint mode runs
					// the commands one by one and raises it for its own.
					f.err = fmt.Errorf("orchestrator: batch reducer %s panicked: %v", r.name, v)
				}
			}
		}()
		if err := o.runReducer(rctx, tx, cmds[owners[i]].p.cmd.Name, r, evs[i:j]); err != nil {
			return blameDeferred(err, func() *batchFailure[TTx] { return blame(i, j, err) })
		}
		return nil
	}
	batchCtx := context.WithValue(ctx, ctxKey{}, nil)
	for i := 0; i < len(evs); {
		j := i + 1
		for j < len(evs) && evs[j].Type == evs[i].Type {
			j++
		}
		rs := o.reducersFor(evs[i].Type)
		if hasBatch(rs) {
			for _, r := range rs {
				if r.batch != nil {
					rctx := batchCtx
					if owners[i] == owners[j-1] {
						rctx = cmds[owners[i]].ctx
					}
					if f := run(rctx, r, i, j); f != nil {
						return f
					}
					continue
				}
				for k := i; k < j; k++ {
					if f := run(cmds[owners[k]].ctx, r, k, k+1); f != nil {
						return f
					}
				}
			}
		} else {
			for k := i; k < j; k++ {
				for _, r := range rs {
					if f := run(cmds[owners[k]].ctx, r, k, k+1); f != nil {
						return f
					}
				}
			}
		}
		i = j
	}
	// The segment's deferred writes go now, before its idempotency
	// records and the next segment, so that a failing one is blamed on its
	// command.
	if o.deferrer != nil {
		if err := o.deferrer.FlushDeferred(ctx, tx); err != nil {
			return blameDeferred(err, func() *batchFailure[TTx] { return &batchFailure[TTx]{err: err} })
		}
	}
	return nil
}
