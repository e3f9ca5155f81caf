package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/orchestrator"
)

// deposit is the benchmark's command: Events deposits into one account.
type deposit struct {
	Account string `json:"account"`
	Amount  int    `json:"amount"`
	Events  int    `json:"events"`
}

// deposited is the benchmark's event.
type deposited struct {
	Amount int `json:"amount"`
}

// txExec runs a statement in a transaction of the driver's type.
type txExec[TTx any] func(ctx context.Context, tx TTx, query string, args ...any) error

// newOrchestrator wires the dispatch workload: the handler emits the
// deposits, the reducer upserts the account row for each event.
func newOrchestrator[TTx any](store *eventfold.Store[TTx], exec txExec[TTx], sqls dialectSQL, cfg *orchestrator.Config, opts ...orchestrator.ReducerOption) *orchestrator.Orchestrator[TTx] {
	o := orchestrator.New(store, cfg)
	orchestrator.Handle(o, "Deposit", func(ctx context.Context, tx TTx, cmd deposit) ([]orchestrator.Emit, error) {
		emits := make([]orchestrator.Emit, cmd.Events)
		for i := range emits {
			emits[i] = orchestrator.Emit{Stream: cmd.Account, Expected: eventfold.Any, Type: "Deposited", Data: deposited{Amount: cmd.Amount}}
		}
		return emits, nil
	})
	if cfg != nil && cfg.GroupCommit != nil && cfg.GroupCommit.Batched {
		// Batched group commit hands a batch reducer every command's
		// events at once: one multi-row upsert per batch.
		orchestrator.ReduceBatch(o, "Deposited", func(ctx context.Context, tx TTx, evs []eventfold.Event) error {
			q, args, err := upsertSums(sqls, evs)
			if err != nil {
				return err
			}
			return exec(ctx, tx, q, args...)
		}, opts...)
		return o
	}
	orchestrator.Reduce(o, "Deposited", func(ctx context.Context, tx TTx, ev eventfold.Event, d deposited) error {
		return exec(ctx, tx, sqls.upsert, ev.StreamID, d.Amount)
	}, opts...)
	return o
}

// upsertSums sums Deposited events per account and returns the multi-row
// upsert that applies them (one row per account: PostgreSQL refuses an
// ON CONFLICT that would touch one row twice).
func upsertSums(sqls dialectSQL, evs []eventfold.Event) (string, []any, error) {
	type sum struct{ amount, count int64 }
	sums := make(map[string]*sum, len(evs))
	order := make([]string, 0, len(evs))
	for _, ev := range evs {
		var d deposited
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return "", nil, err
		}
		s, ok := sums[ev.StreamID]
		if !ok {
			s = &sum{}
			sums[ev.StreamID] = s
			order = append(order, ev.StreamID)
		}
		s.amount += int64(d.Amount)
		s.count++
	}
	args := make([]any, 0, 3*len(order))
	for _, id := range order {
		args = append(args, id, sums[id].amount, sums[id].count)
	}
	return sqls.upsertMany(len(order)), args, nil
}

// dispatchOp dispatches one Deposit per call into a fresh account, as the
// pgbench script does; with commandIDs each command carries a fresh id, so
// that the orchestrator looks it up and records it (idempotent dispatch).
// batches (may be nil) adds up each answer's BatchSize.
func dispatchOp[TTx any](o *orchestrator.Orchestrator[TTx], run string, events int, commandIDs bool, batches *atomic.Int64) op {
	return func(ctx context.Context, w, seq int) error {
		cmd := orchestrator.Command{Name: "Deposit", Payload: deposit{
			Account: fmt.Sprintf("acct-%s-%d-%d", run, w, seq), Amount: 1 + seq%1000, Events: events,
		}}
		if commandIDs {
			cmd.Envelope.ID = fmt.Sprintf("cmd-%s-%d-%d", run, w, seq)
		}
		res, err := o.Dispatch(ctx, cmd)
		if err == nil && batches != nil {
			batches.Add(int64(res.BatchSize))
		}
		return err
	}
}

// reducerOpts returns the reducer options of the workloads' read model:
// WithDeferredWrites when deferred.
func reducerOpts(deferred bool) []orchestrator.ReducerOption {
	if deferred {
		return []orchestrator.ReducerOption{orchestrator.WithDeferredWrites()}
	}
	return nil
}
