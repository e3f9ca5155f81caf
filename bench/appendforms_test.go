package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	sqliteops "github.com/eventfold/eventfold/internal/dialect/sqlite"
)

// BenchmarkSQLiteAppendForms compares, on SQLite with every statement
// prepared (a pool of one connection), transactions of one append and the
// read model's upsert written four ways: "returning" is the library's
// append statement (version, position and check in one INSERT ... RETURNING),
// "select+insert" reads version and position first and inserts them given,
// "insert-only" inserts with position and version given (no read: what
// the append cannot go below), "raw" is raw's INSERT into its own table.
// Measured 2026-12-02 (5,000 transactions, 3 runs, load average 9-10), CPU
// per transaction: 190-195, 184-188, 179-191, 135-145 µs.
func BenchmarkSQLiteAppendForms(b *testing.B) {
	ctx := context.Background()
	sel := `SELECT coalesce((SELECT max(stream_version) FROM eventfold_events WHERE stream_id = ?1),
(SELECT version FROM eventfold_streams WHERE stream_id = ?1), 0), max(coalesce((SELECT max(global_position) FROM eventfold_events), 0),
coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'eventfold_events'), 0)) + 1`
	ins := `INSERT INTO eventfold_events (global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	for _, form := range []string{"returning", "select+insert", "insert-only", "raw"} {
		b.Run(form, func(b *testing.B) {
			dsn := "sqlite://" + filepath.Join(b.TempDir(), "f.db")
			fx, err := prepare(ctx, dsn, 1)
			if err != nil {
				b.Fatal(err)
			}
			defer fx.drv.Close()
			db := fx.drv.DB()
			q1 := sqliteops.AppendStatement(1, eventfold.Any)
			switch form {
			case "select+insert":
				q1 = sel
			case "raw":
				q1 = fx.sqls.rawInsert
			}
			// Prepared on the pool: Tx.StmtContext reuses them on the
			// transaction's connection (one prepared on a sql.Conn it
			// would prepare again every time).
			st1, err := db.PrepareContext(ctx, q1)
			if err != nil {
				b.Fatal(err)
			}
			st2, err := db.PrepareContext(ctx, ins)
			if err != nil {
				b.Fatal(err)
			}
			up, err := db.PrepareContext(ctx, fx.sqls.upsert)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu := processCPU()
			for i := 0; b.Loop(); i++ {
				acct := fmt.Sprintf("acct-%d", i)
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				at := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
				switch form {
				case "returning":
					rows, err := tx.StmtContext(ctx, st1).QueryContext(ctx, acct, int64(eventfold.Any), at, newID(), "Deposited", `{"amount":1}`, "{}")
					if err != nil {
						b.Fatal(err)
					}
					n := 0
					for rows.Next() {
						n++
					}
					if err := rows.Close(); err != nil || n != 1 {
						b.Fatalf("append: %d rows, %v", n, err)
					}
				case "select+insert":
					var p, v int64
					if err := tx.StmtContext(ctx, st1).QueryRowContext(ctx, acct).Scan(&v, &p); err != nil {
						b.Fatal(err)
					}
					if _, err := tx.StmtContext(ctx, st2).ExecContext(ctx, p, acct, v+1, newID(), "Deposited", `{"amount":1}`, "{}", at); err != nil {
						b.Fatal(err)
					}
				case "insert-only":
					if _, err := tx.StmtContext(ctx, st2).ExecContext(ctx, i+1, acct, 1, newID(), "Deposited", `{"amount":1}`, "{}", at); err != nil {
						b.Fatal(err)
					}
				case "raw":
					if _, err := tx.StmtContext(ctx, st1).ExecContext(ctx, acct, 1, `{"amount":1}`); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := tx.StmtContext(ctx, up).ExecContext(ctx, acct, 1); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
