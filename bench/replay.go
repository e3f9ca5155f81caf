package bench

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver"
)

// ReplayResult is one replay measurement: rebuilding the dispatch
// workload's read model from a log of Events events.
type ReplayResult struct {
	Dialect         string  `json:"dialect"`
	Events          int64   `json:"events"`
	Seconds         float64 `json:"seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
	PeakRSSBytes    int64   `json:"peak_rss_bytes"`
}

func (r ReplayResult) String() string {
	return fmt.Sprintf("replay                 %-9s %7d events  %9.0f ev/s  %6.2f s  peak RSS %d MiB",
		r.Dialect, r.Events, r.EventsPerSecond, r.Seconds, r.PeakRSSBytes>>20)
}

// Replay fills a fresh log to each of the sizes (cumulatively) and times a
// full rebuild of the read model at each: the log is read page by page
// (ReadAllTx) and every event goes through the orchestrator's reducers
// (Orchestrator.Apply), a transaction per page of 1,000 events. Peak RSS
// per size shows whether memory stays flat as the log grows.
func Replay(ctx context.Context, dsn string, sizes []int64, progress func(string)) ([]ReplayResult, error) {
	d, err := sqldriver.DialectOf(dsn)
	if err != nil {
		return nil, err
	}
	sqls, err := sqlFor(d)
	if err != nil {
		return nil, err
	}
	drv, err := sqldriver.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer drv.Close()
	store := eventfold.New(drv, nil)
	if err := store.Migrate(ctx); err != nil {
		return nil, err
	}
	for _, stmt := range sqls.create {
		if _, err := drv.DB().ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("bench: create tables: %w", err)
		}
	}
	o := newOrchestrator(store, func(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	}, sqls, nil)
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
		resetPeakRSS()
		t0 := time.Now()
		if _, err := drv.DB().ExecContext(ctx, "DELETE FROM bench_accounts"); err != nil {
			return nil, err
		}
		// One transaction per page, as `esctl replay --commit-every 1000`
		// does: on PostgreSQL a single transaction that updates the same
		// rows again and again grows their version chains and slows down
		// quadratically.
		var n int64
		for from := start + 1; ; {
			var page []eventfold.Event
			err = store.InTx(ctx, func(tx *sql.Tx) error {
				var err error
				if page, err = store.ReadAllTx(ctx, tx, eventfold.ReadAllOptions{From: from, Limit: 1000}); err != nil {
					return err
				}
				for _, ev := range page {
					if err := o.Apply(ctx, tx, ev); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("bench: replay: %w", err)
			}
			n += int64(len(page))
			if len(page) < 1000 {
				break
			}
			from = page[len(page)-1].GlobalPosition + 1
		}
		el := time.Since(t0)
		if n != size {
			return nil, fmt.Errorf("bench: replay read %d events, the log has %d", n, size)
		}
		out = append(out, ReplayResult{Dialect: string(d), Events: n, Seconds: el.Seconds(),
			EventsPerSecond: float64(n) / el.Seconds(), PeakRSSBytes: peakRSS()})
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
	deadline := time.Now().Add(time.Minute)
	for {
		h, err := store.Head(ctx)
		if err != nil || h >= pos {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: the log is complete only up to %d after a minute, want %d", h, pos)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
