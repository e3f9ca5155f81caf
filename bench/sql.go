package bench

import (
	"fmt"
	"strings"

	"github.com/eventfold/eventfold"
)

// dialectSQL is the benchmark's own SQL in one dialect: the read-model
// table the reducer upserts, and the raw baseline's event table, shaped
// like ../shared/bench/pg_schema.sql so that --raw, the pgbench ceiling and
// eventfold run the same statements.
type dialectSQL struct {
	create []string
	upsert string // args: account id, amount
	// upsertMany upserts n rows at once, args per row: account id, amount
	// sum, event count (the batch reducer of the replay workload).
	upsertMany func(n int) string
	rawInsert  string // args: stream id, version, data JSON
}

func sqlFor(d eventfold.Dialect) (dialectSQL, error) {
	switch d {
	case eventfold.Postgres:
		return dialectSQL{
			create: []string{
				`CREATE TABLE IF NOT EXISTS bench_accounts (id text PRIMARY KEY, balance bigint NOT NULL, version int NOT NULL)`,
				`CREATE TABLE IF NOT EXISTS bench_raw_events (
					global_position bigserial PRIMARY KEY, stream_id text NOT NULL, version int NOT NULL,
					type text NOT NULL, data jsonb NOT NULL, metadata jsonb NOT NULL DEFAULT '{}',
					recorded_at timestamptz NOT NULL DEFAULT now(), UNIQUE (stream_id, version))`,
			},
			upsert: `INSERT INTO bench_accounts (id, balance, version) VALUES ($1, $2, 1) ON CONFLICT (id) DO UPDATE SET balance = bench_accounts.balance + EXCLUDED.balance, version = bench_accounts.version + 1`,
			upsertMany: func(n int) string {
				return "INSERT INTO bench_accounts (id, balance, version) VALUES " + rows(n, true) +
					" ON CONFLICT (id) DO UPDATE SET balance = bench_accounts.balance + EXCLUDED.balance, version = bench_accounts.version + EXCLUDED.version"
			},
			rawInsert: `INSERT INTO bench_raw_events (stream_id, version, type, data) VALUES ($1, $2, 'Deposited', $3)`,
		}, nil
	case eventfold.MySQL:
		return dialectSQL{
			create: []string{
				`CREATE TABLE IF NOT EXISTS bench_accounts (id VARCHAR(200) PRIMARY KEY, balance BIGINT NOT NULL, version INT NOT NULL) ENGINE=InnoDB`,
				`CREATE TABLE IF NOT EXISTS bench_raw_events (
					global_position BIGINT AUTO_INCREMENT PRIMARY KEY, stream_id VARCHAR(200) NOT NULL, version INT NOT NULL,
					type VARCHAR(200) NOT NULL, data JSON NOT NULL, metadata JSON NOT NULL DEFAULT ('{}'),
					recorded_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), UNIQUE (stream_id, version)) ENGINE=InnoDB`,
			},
			upsert: `INSERT INTO bench_accounts (id, balance, version) VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance), version = version + 1`,
			upsertMany: func(n int) string {
				return "INSERT INTO bench_accounts (id, balance, version) VALUES " + rows(n, false) +
					" ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance), version = version + VALUES(version)"
			},
			rawInsert: `INSERT INTO bench_raw_events (stream_id, version, type, data) VALUES (?, ?, 'Deposited', ?)`,
		}, nil
	case eventfold.SQLite:
		return dialectSQL{
			create: []string{
				`CREATE TABLE IF NOT EXISTS bench_accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL, version INTEGER NOT NULL)`,
				`CREATE TABLE IF NOT EXISTS bench_raw_events (
					global_position INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, version INTEGER NOT NULL,
					type TEXT NOT NULL, data TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}',
					recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), UNIQUE (stream_id, version))`,
			},
			upsert: `INSERT INTO bench_accounts (id, balance, version) VALUES (?, ?, 1) ON CONFLICT (id) DO UPDATE SET balance = balance + excluded.balance, version = version + 1`,
			upsertMany: func(n int) string {
				return "INSERT INTO bench_accounts (id, balance, version) VALUES " + rows(n, false) +
					" ON CONFLICT (id) DO UPDATE SET balance = balance + excluded.balance, version = version + excluded.version"
			},
			rawInsert: `INSERT INTO bench_raw_events (stream_id, version, type, data) VALUES (?, ?, 'Deposited', ?)`,
		}, nil
	}
	return dialectSQL{}, fmt.Errorf("bench: %s is not supported by the harness (PostgreSQL, MySQL/MariaDB and SQLite are)", d)
}

// rows renders n "(a, b, c)" placeholder rows, numbered ($1...) or not (?).
func rows(n int, numbered bool) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		if numbered {
			fmt.Fprintf(&b, "($%d, $%d, $%d)", 3*i+1, 3*i+2, 3*i+3)
		} else {
			b.WriteString("(?, ?, ?)")
		}
	}
	return b.String()
}
