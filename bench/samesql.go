package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect/postgres"
	sqliteops "github.com/eventfold/eventfold/internal/dialect/sqlite"
)

// sameSQLRunner is the second baseline: by hand, on the bare driver, the
// statements eventfold itself runs for a dispatch of the workload: the
// append (PostgreSQL statement, MySQL procedure, SQLite statements) with
// expected version "any", then the reducer's upsert, in one transaction.
// What dispatch adds on top of it is the Go framework.
func sameSQLRunner(ctx context.Context, d eventfold.Dialect, cfg Config, sqls dialectSQL) (op, func(), error) {
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + "s"
	n := cfg.EventsPerCommand
	data := func(seq int) string { return fmt.Sprintf(`{"amount":%d}`, 1+seq%1000) }
	if d == eventfold.Postgres {
		pool, err := pgxpool.New(ctx, withPoolSize(cfg.DSN, cfg.Concurrency+4))
		if err != nil {
			return nil, nil, fmt.Errorf("bench: raw-same-sql: connect: %w", err)
		}
		// Since 00015 the library sends this statement, not the function.
		appendSQL := postgres.AppendStatement()
		return func(ctx context.Context, w, seq int) error {
			account := fmt.Sprintf("acct-%s-%d-%d", run, w, seq)
			ids, types, datas, metas := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			for i := range n {
				ids[i], types[i], datas[i], metas[i] = newID(), "Deposited", data(seq), "{}"
			}
			tx, err := pool.Begin(ctx)
			if err != nil {
				return err
			}
			defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // a no-op after Commit
			rows, err := tx.Query(ctx, appendSQL, account, int64(-1), ids, types, datas, metas)
			if err != nil {
				return err
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for range n {
				if _, err := tx.Exec(ctx, sqls.upsert, account, 1+seq%1000); err != nil {
					return err
				}
			}
			return tx.Commit(ctx)
		}, pool.Close, nil
	}
	drv, err := openSized(ctx, cfg.DSN, cfg.Concurrency+4)
	if err != nil {
		return nil, nil, err
	}
	db := drv.DB()
	var txOpts *sql.TxOptions
	var appendFn func(ctx context.Context, tx *sql.Tx, account string, seq int) error
	switch d {
	case eventfold.MySQL:
		// READ COMMITTED, as the library's: sqldriver.Open's connections
		// are READ COMMITTED already, so BEGIN sets no level.
		appendFn = func(ctx context.Context, tx *sql.Tx, account string, seq int) error {
			if n == 1 { // what the library runs for one event (migration 00015)
				rows, err := tx.QueryContext(ctx, "CALL eventfold_append_one(?, -1, ?, 'Deposited', ?, '{}')", account, newID(), data(seq))
				if err != nil {
					return err
				}
				for rows.Next() {
				}
				if err := rows.Close(); err != nil {
					return err
				}
				return rows.Err()
			}
			type ev struct {
				ID       string          `json:"id"`
				Type     string          `json:"type"`
				Data     json.RawMessage `json:"data"`
				Metadata json.RawMessage `json:"metadata"`
			}
			evs := make([]ev, n)
			for i := range evs {
				evs[i] = ev{newID(), "Deposited", json.RawMessage(data(seq)), json.RawMessage(`{}`)}
			}
			b, _ := json.Marshal([]any{map[string]any{"s": account, "x": -1, "e": evs}})
			rows, err := tx.QueryContext(ctx, "CALL eventfold_append_batch(?)", string(b))
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			if err := rows.Close(); err != nil {
				return err
			}
			return rows.Err()
		}
	case eventfold.SQLite:
		// The one INSERT per append that internal/dialect/sqlite runs
		// (the version from the stream's events, the position above the
		// floor, the check in its WHERE clause; "any" checks nothing),
		// recorded_at from Go.
		q := sqliteops.AppendStatement(n, eventfold.Any)
		appendFn = func(ctx context.Context, tx *sql.Tx, account string, seq int) error {
			args := []any{account, int64(eventfold.Any), time.Now().UTC().Format("2006-01-02T15:04:05.000Z")}
			for range n {
				args = append(args, newID(), "Deposited", data(seq), "{}")
			}
			rows, err := tx.QueryContext(ctx, q, args...)
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			if err := rows.Close(); err != nil {
				return err
			}
			return rows.Err()
		}
	default:
		drv.Close()
		return nil, nil, fmt.Errorf("bench: raw-same-sql is not written for %s", d)
	}
	return func(ctx context.Context, w, seq int) error {
		account := fmt.Sprintf("acct-%s-%d-%d", run, w, seq)
		tx, err := db.BeginTx(ctx, txOpts)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }() // a no-op after Commit
		if err := appendFn(ctx, tx, account, seq); err != nil {
			return err
		}
		for range n {
			if _, err := tx.ExecContext(ctx, sqls.upsert, account, 1+seq%1000); err != nil {
				return err
			}
		}
		return tx.Commit()
	}, func() { drv.Close() }, nil
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }
