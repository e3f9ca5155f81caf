package bench

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/orchestrator"
)

// ReplayResult is one replay measurement: rebuilding the dispatch
// workload's read model from a log of Events events.
type ReplayResult struct {
	// Reducer is "per-event" (a statement per event, Orchestrator.Apply's
	// way) or "batch" (ReduceBatch: one multi-row upsert per page).
	Reducer         string  `json:"reducer"`
	Dialect         string  `json:"dialect"`
	Events          int64   `json:"events"`
	Seconds         float64 `json:"seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
	PeakRSSBytes    int64   `json:"peak_rss_bytes"`
}

func (r ReplayResult) String() string {
	return fmt.Sprintf("replay %-20s %-9s %7d events  %9.0f ev/s  %6.2f s  peak RSS %d MiB",
		r.Reducer, r.Dialect, r.Events, r.EventsPerSecond, r.Seconds, r.PeakRSSBytes>>20)
}

// Replay fills a fresh log to each of the sizes (cumulatively) and times a
// full rebuild of the read model at each: the log is read page by page
// (ReadAllTx) and every event goes through the orchestrator's reducers
// (Orchestrator.Apply), a transaction per page of 1,000 events. Peak RSS
// per size shows whether memory stays flat as the log grows.
func Replay(ctx context.Context, dsn string, sizes []int64, progress func(string)) ([]ReplayResult, error) {
	fx, err := prepare(ctx, dsn, 4)
	if err != nil {
		return nil, err
	}
	defer fx.drv.Close()
	d, sqls, drv, store := fx.dialect, fx.sqls, fx.drv, fx.store
	exec := func(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	}
	reducers := []struct {
		name string
		o    *orchestrator.Orchestrator[*sql.Tx]
	}{
		{"per-event", newOrchestrator(store, exec, sqls, nil)},
		{"batch", newBatchOrchestrator(store, exec, sqls)},
	}
	// Replay only this run's events: the database may hold earlier runs'.
	start, err := store.LastPosition(ctx)
	if err != nil {
		return nil, err
	}
	run := fmt.Sprintf("r%d", time.Now().UnixNano()%1e9)
	var have int64
	var out []ReplayResult
	for _, size := range sizes {
		if progress != nil {
			progress(fmt.Sprintf("replay: appending up to %d events", size))
		}
		if err := fill(ctx, store, run, have, size); err != nil {
			return nil, err
		}
		have = size
		last, err := store.LastPosition(ctx)
		if err != nil {
			return nil, err
		}
		if err := waitHead(ctx, store, last); err != nil {
			return nil, err
		}
		var first [3]int64
		for i, r := range reducers {
			res, err := replayOnce(ctx, store, drv.DB(), r.o, start)
			if err != nil {
				return nil, err
			}
			if res.Events != size {
				return nil, fmt.Errorf("bench: replay read %d events, the log has %d", res.Events, size)
			}
			// Both reducers must rebuild the same read model: one version
			// per event, the same balances.
			var got [3]int64
			err = drv.DB().QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(SUM(balance), 0), COALESCE(SUM(version), 0) FROM bench_accounts").Scan(&got[0], &got[1], &got[2])
			if err != nil {
				return nil, err
			}
			if got[2] != size || (i > 0 && got != first) {
				return nil, fmt.Errorf("bench: the %s replay built accounts/balance/versions %v, want versions %d and %v", r.name, got, size, first)
			}
			first = got
			res.Reducer, res.Dialect = r.name, string(d)
			out = append(out, res)
		}
	}
	return out, nil
}

// fill appends events have+1..want, 500 to an append, over 1,000 streams.
func fill(ctx context.Context, store *eventfold.Store[*sql.Tx], run string, have, want int64) error {
	const perAppend = 500
	batch := make([]eventfold.EventData, 0, perAppend)
	for i := have; i < want; {
		batch = batch[:0]
		for ; i < want && len(batch) < perAppend; i++ {
			batch = append(batch, eventfold.EventData{Type: "Deposited", Data: []byte(`{"amount":1}`)})
		}
		if _, err := store.Append(ctx, fmt.Sprintf("acct-%s-%d", run, i%1000), eventfold.Any, batch...); err != nil {
			return fmt.Errorf("bench: fill the log: %w", err)
		}
	}
	return nil
}

// waitHead waits until readers may see position pos (PostgreSQL's horizon
// trails running transactions).
func waitHead(ctx context.Context, store *eventfold.Store[*sql.Tx], pos int64) error {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if h, err := store.WaitHead(wctx, pos); err != nil {
		return fmt.Errorf("bench: the log is complete only up to %d, want %d: %w", h, pos, err)
	}
	return nil
}

// replayOnce empties the read model and rebuilds it from the events after
// position start, one transaction per page of 1,000 events (as `esctl
// replay --commit-every 1000`): on PostgreSQL a single transaction that
// updates the same rows again and again grows their version chains and
// slows down quadratically.
func replayOnce(ctx context.Context, store *eventfold.Store[*sql.Tx], db *sql.DB, o *orchestrator.Orchestrator[*sql.Tx], start int64) (ReplayResult, error) {
	resetPeakRSS()
	t0 := time.Now()
	if _, err := db.ExecContext(ctx, "DELETE FROM bench_accounts"); err != nil {
		return ReplayResult{}, err
	}
	var n int64
	for from := start + 1; ; {
		var page []eventfold.Event
		err := store.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			if page, err = store.ReadAllTx(ctx, tx, eventfold.ReadAllOptions{From: from, Limit: 1000}); err != nil {
				return err
			}
			return o.ApplyAll(ctx, tx, page)
		})
		if err != nil {
			return ReplayResult{}, fmt.Errorf("bench: replay: %w", err)
		}
		n += int64(len(page))
		if len(page) < 1000 {
			break
		}
		from = page[len(page)-1].GlobalPosition + 1
	}
	el := time.Since(t0)
	return ReplayResult{Events: n, Seconds: el.Seconds(), EventsPerSecond: float64(n) / el.Seconds(), PeakRSSBytes: peakRSS()}, nil
}

// newBatchOrchestrator registers the read model as a batch reducer: each
// run of Deposited events becomes one multi-row upsert, one row per account.
func newBatchOrchestrator(store *eventfold.Store[*sql.Tx], exec txExec[*sql.Tx], sqls dialectSQL) *orchestrator.Orchestrator[*sql.Tx] {
	o := orchestrator.New(store, nil)
	orchestrator.ReduceBatch(o, "Deposited", func(ctx context.Context, tx *sql.Tx, evs []eventfold.Event) error {
		q, args, err := upsertSums(sqls, evs)
		if err != nil {
			return err
		}
		return exec(ctx, tx, q, args...)
	})
	return o
}
