package bench

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/pgxdriver"
	"github.com/eventfold/eventfold/sqldriver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The hot paths as Go benchmarks, one client, per dialect available:
// go test -run XXX -bench . ./bench (with EVENTFOLD_*_DSN set for servers).
// BenchmarkRaw is the baseline of the same run: compare ratios, not
// absolute numbers.

func benchDialects() []eventfold.Dialect {
	return testdb.WithoutSQLServer()
}

func setupStore(b *testing.B, d eventfold.Dialect) (*eventfold.Store[*sql.Tx], dialectSQL, string) {
	dsn := testdb.DSN(b, d)
	drv, err := sqldriver.Open(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { drv.Close() })
	store := eventfold.New(drv, nil)
	sqls, err := sqlFor(d)
	if err != nil {
		b.Fatal(err)
	}
	for _, stmt := range sqls.create {
		if _, err := store.Driver().DB().Exec(stmt); err != nil {
			b.Fatal(err)
		}
	}
	return store, sqls, dsn
}

func BenchmarkAppend(b *testing.B) {
	for _, d := range benchDialects() {
		b.Run(string(d), func(b *testing.B) {
			store, _, _ := setupStore(b, d)
			ev := eventfold.EventData{Type: "Deposited", Data: []byte(`{"amount":1}`)}
			loop(b, func(ctx context.Context, _, i int) error {
				_, err := store.Append(ctx, fmt.Sprintf("s-%d", i), eventfold.Any, ev)
				return err
			})
		})
	}
}

func BenchmarkDispatch(b *testing.B) {
	for _, d := range benchDialects() {
		b.Run(string(d), func(b *testing.B) {
			store, sqls, _ := setupStore(b, d)
			o := newOrchestrator(store, func(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
				_, err := tx.ExecContext(ctx, q, args...)
				return err
			}, sqls, &orchestrator.Config{})
			fn := dispatchOp(o, "b", 1, false, nil)
			loop(b, fn)
		})
	}
}

func BenchmarkRaw(b *testing.B) {
	for _, d := range benchDialects() {
		b.Run(string(d), func(b *testing.B) {
			_, sqls, dsn := setupStore(b, d)
			fn, closeFn, err := rawRunner(context.Background(), d, Config{DSN: dsn, Concurrency: 1, EventsPerCommand: 1}, sqls)
			if err != nil {
				b.Fatal(err)
			}
			defer closeFn()
			loop(b, fn)
		})
	}
}

// BenchmarkDispatchPgx is BenchmarkDispatch on PostgreSQL through pgx
// natively (transaction type pgx.Tx), as esctl bench measures it.
func BenchmarkDispatchPgx(b *testing.B) {
	_, sqls, dsn := setupStore(b, eventfold.Postgres)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	store := eventfold.New[pgx.Tx](pgxdriver.New(pool), nil)
	o := newOrchestrator(store, func(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
		_, err := tx.Exec(ctx, q, args...)
		return err
	}, sqls, &orchestrator.Config{})
	fn := dispatchOp(o, "p", 1, false, nil)
	loop(b, fn)
}

// BenchmarkRawSameSQLPgx is the raw-same-sql baseline on PostgreSQL, one
// client: eventfold's append function and the upsert, by hand with pgx.
// Compare with BenchmarkDispatchPgx: the difference is the framework.
func BenchmarkRawSameSQLPgx(b *testing.B) {
	_, sqls, dsn := setupStore(b, eventfold.Postgres)
	fn, closeFn, err := sameSQLRunner(context.Background(), eventfold.Postgres, Config{DSN: dsn, Concurrency: 1, EventsPerCommand: 1}, sqls)
	if err != nil {
		b.Fatal(err)
	}
	defer closeFn()
	loop(b, fn)
}

// loop runs fn once per benchmark iteration, one client.
func loop(b *testing.B, fn op) {
	ctx := context.Background()
	b.ReportAllocs()
	cpu := processCPU()
	for i := 0; b.Loop(); i++ {
		if err := fn(ctx, 0, i); err != nil {
			b.Fatal(err)
		}
	}
	// CPU time per command (the whole process: the database runs in it
	// on SQLite) survives a loaded machine better than ns/op.
	b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkGroupCommitBatchSize dispatches from 16 clients with group
// commit (GroupCommitConfig defaults, both modes) and reports the mean
// number of commands per transaction ("cmds/batch", as each command's
// Result.BatchSize saw it) and the CPU per command: a transaction's fixed
// cost (BEGIN, COMMIT, the WAL frames of the pages every command shares)
// is spread over the batch, so larger batches cost less per command.
func BenchmarkGroupCommitBatchSize(b *testing.B) {
	for _, d := range benchDialects() {
		for _, batched := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/batched=%v", d, batched), func(b *testing.B) {
				store, sqls, _ := setupStore(b, d)
				store.Driver().DB().SetMaxOpenConns(20)
				store.Driver().DB().SetMaxIdleConns(20)
				o := newOrchestrator(store, func(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
					_, err := tx.ExecContext(ctx, q, args...)
					return err
				}, sqls, &orchestrator.Config{GroupCommit: &orchestrator.GroupCommitConfig{Batched: batched}})
				var sum, n, worker atomic.Int64
				b.ReportAllocs()
				b.SetParallelism(8) // 16 clients on 2 cores
				cpu := processCPU()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					w := worker.Add(1)
					ctx := context.Background()
					for seq := 0; pb.Next(); seq++ {
						res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Deposit", Payload: deposit{
							Account: fmt.Sprintf("acct-g%v-%d-%d", batched, w, seq), Amount: 1, Events: 1}})
						if err != nil {
							b.Error(err)
							return
						}
						sum.Add(int64(res.BatchSize))
						n.Add(1)
					}
				})
				if n.Load() > 0 {
					b.ReportMetric(float64(sum.Load())/float64(n.Load()), "cmds/batch")
					b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(n.Load()), "cpu-µs/op")
				}
			})
		}
	}
}
