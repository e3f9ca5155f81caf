package mssql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

// batchRecorder is a database/sql driver that accepts every statement and
// records it: goose runs the SQL Server migrations against it, so the
// batches checked below are exactly the ones goose's own parser would send
// to a server (no SQL Server runs on this project's machines).
type batchRecorder struct {
	mu      sync.Mutex
	batches []string
}

func (r *batchRecorder) Connect(context.Context) (driver.Conn, error) { return recConn{r}, nil }
func (r *batchRecorder) Driver() driver.Driver                        { return nil }

type recConn struct{ r *batchRecorder }

func (c recConn) Prepare(string) (driver.Stmt, error) { return nil, driver.ErrSkip }
func (c recConn) Close() error                        { return nil }
func (c recConn) Begin() (driver.Tx, error)           { return recTx{}, nil }
func (c recConn) ExecContext(_ context.Context, q string, _ []driver.NamedValue) (driver.Result, error) {
	c.r.mu.Lock()
	c.r.batches = append(c.r.batches, q)
	c.r.mu.Unlock()
	return driver.RowsAffected(0), nil
}

type recTx struct{}

func (recTx) Commit() error   { return nil }
func (recTx) Rollback() error { return nil }

// gooseBatches returns, per migration version, the batches goose sends for
// its Up and its Down part.
func gooseBatches(t *testing.T) (up, down map[int64][]string) {
	t.Helper()
	fsys, err := eventfold.MigrationsFS(eventfold.SQLServer)
	require.NoError(t, err)
	rec := &batchRecorder{}
	db := sql.OpenDB(rec)
	t.Cleanup(func() { db.Close() })
	p, err := goose.NewProvider(goose.DialectMSSQL, db, fsys,
		goose.WithDisableGlobalRegistry(true), goose.WithDisableVersioning(true))
	require.NoError(t, err)
	up, down = map[int64][]string{}, map[int64][]string{}
	ctx := context.Background()
	for _, src := range p.ListSources() {
		for _, dir := range []bool{true, false} {
			rec.batches = nil
			_, err := p.ApplyVersion(ctx, src.Version, dir)
			require.NoError(t, err, "goose cannot run %s", src.Path)
			require.NotEmpty(t, rec.batches, "%s sends nothing", src.Path)
			if dir {
				up[src.Version] = rec.batches
			} else {
				down[src.Version] = rec.batches
			}
		}
	}
	return up, down
}

// TestGooseParsesEveryMigration: goose's own parser splits every SQL
// Server migration into batches a server accepts: CREATE/ALTER PROCEDURE
// and CREATE SCHEMA open their batch, no GO separator is sent, and every
// procedure body is balanced. The hand-written splitter of the other tests
// agrees with goose on every file.
func TestGooseParsesEveryMigration(t *testing.T) {
	t.Parallel()
	up, down := gooseBatches(t)
	require.GreaterOrEqual(t, len(up), 5)
	fsys, err := eventfold.MigrationsFS(eventfold.SQLServer)
	require.NoError(t, err)
	files, err := fs.Glob(fsys, "*.sql")
	require.NoError(t, err)
	require.Len(t, files, len(up))
	for _, name := range files {
		text, err := fs.ReadFile(fsys, name)
		require.NoError(t, err)
		// The version is the file name's number: versions may have gaps
		// (another dialect's feature may own a number this one skips).
		v, err := strconv.ParseInt(name[:strings.IndexByte(name, '_')], 10, 64)
		require.NoError(t, err, name)
		mine := splitGoose(t, string(text))
		require.Len(t, mine.up, len(up[v]), "%s: batches in Up", name)
		require.Len(t, mine.down, len(down[v]), "%s: batches in Down", name)
	}
	for _, set := range []map[int64][]string{up, down} {
		for v, batches := range set {
			for _, b := range batches {
				code := strings.ToUpper(strings.TrimSpace(tsqlCode(b)))
				require.NotRegexp(t, `(?m)^\s*GO\s*$`, code, "version %d sends GO", v)
				for _, kw := range []string{"CREATE PROCEDURE", "ALTER PROCEDURE", "CREATE SCHEMA"} {
					if strings.Contains(code, kw) {
						require.True(t, strings.HasPrefix(code, kw), "version %d: %s must open its batch:\n%.300s", v, kw, code)
						if kw != "CREATE SCHEMA" {
							checkProcedure(t, b)
						}
					}
				}
			}
		}
	}
}

// procedureBatches returns the CREATE/ALTER PROCEDURE batches in order.
func procedureBatches(batches []string) []string {
	var out []string
	for _, b := range batches {
		code := strings.ToUpper(strings.TrimSpace(tsqlCode(b)))
		if strings.HasPrefix(code, "CREATE PROCEDURE") || strings.HasPrefix(code, "ALTER PROCEDURE") {
			out = append(out, b)
		}
	}
	return out
}

// TestMigration5 checks what 00005 must do, on the batches goose sends.
func TestMigration5(t *testing.T) {
	t.Parallel()
	up, down := gooseBatches(t)
	u5, d5 := up[5], down[5]

	t.Run("compatibility level guard comes first", func(t *testing.T) {
		first := tsqlCode(u5[0])
		require.Contains(t, first, "compatibility_level")
		require.Contains(t, first, "< 130")
		require.Regexp(t, `THROW 50000, N''`, first) // the message is a literal
		require.Contains(t, u5[0], "ALTER DATABASE CURRENT SET COMPATIBILITY_LEVEL = 130")
	})

	t.Run("identifiers byte-exact", func(t *testing.T) {
		all := strings.Join(u5, "\n")
		for _, col := range []string{"events ALTER COLUMN event_type", "commands ALTER COLUMN command_type"} {
			require.Regexp(t, regexp.QuoteMeta(col)+` NVARCHAR\(200\) COLLATE Latin1_General_100_BIN2 NOT NULL`, all)
		}
		// Every identifier column refuses a trailing space.
		for table, cols := range map[string][]string{
			"streams": {"stream_id"}, "events": {"stream_id", "event_type"}, "commands": {"command_id"},
			"checkpoints": {"name"}, "leases": {"name", "owner"},
		} {
			for _, col := range cols {
				re := `ALTER TABLE eventfold\.` + table + ` WITH NOCHECK ADD CONSTRAINT ck_` + table + `_` + col + `_exact\s+CHECK \((DATALENGTH\(` + col + `\) > 0 AND )?DATALENGTH\(` + col + `\) = DATALENGTH\(RTRIM\(` + col + `\)\)\)`
				require.Regexp(t, re, all, "%s.%s", table, col)
				requireHas(t, strings.Join(d5, "\n"), "DROP CONSTRAINT ck_"+table+"_"+col+"_exact")
			}
		}
	})

	t.Run("one JSON value in data", func(t *testing.T) {
		requireHas(t, strings.Join(u5, "\n"), `CHECK (ISJSON(N'[' + data + N']') = 1 AND ISJSON(N'{"v":' + data + N'}') = 1)`)
	})

	t.Run("no lock escalation", func(t *testing.T) {
		all := strings.Join(u5, "\n")
		requireHas(t, all, "ALTER TABLE eventfold.events SET (LOCK_ESCALATION = DISABLE)")
		requireHas(t, all, "ALTER TABLE eventfold.commands SET (LOCK_ESCALATION = DISABLE)")
	})

	t.Run("procedure", func(t *testing.T) {
		procs := procedureBatches(u5)
		require.Len(t, procs, 1)
		proc := procs[0]
		checkProcedure(t, proc)
		code := tsqlCode(proc)
		// Stricter DBA-path checks.
		require.Contains(t, code, "DATALENGTH(event_id_text) = 72")
		require.Contains(t, code, "LIKE @uuid")
		require.Contains(t, code, "type_type <> 1")
		require.Contains(t, code, "DATALENGTH(RTRIM(event_type)) <> DATALENGTH(event_type)")
		require.Contains(t, code, "HAVING COUNT(*) > 1")
		require.NotContains(t, code, "TOP (1) j.[value]", "duplicate keys are refused, not picked at random")
	})

	t.Run("down restores 00001's procedure", func(t *testing.T) {
		orig := procedureBatches(up[1])
		back := procedureBatches(d5)
		require.Len(t, orig, 1)
		require.Len(t, back, 1)
		require.Equal(t, strings.Replace(orig[0], "CREATE PROCEDURE", "ALTER PROCEDURE", 1), back[0])
	})
}

// TestProceduresAreAtomicOutsideATransaction (issue 16): every version of
// append_events opens its own transaction, when the caller has none,
// before it locks or writes any table, and commits it only at the end; a
// bare EXEC is as atomic as one inside BEGIN/COMMIT.
func TestProceduresAreAtomicOutsideATransaction(t *testing.T) {
	t.Parallel()
	up, _ := gooseBatches(t)
	for _, v := range []int64{1, 5} {
		procs := procedureBatches(up[v])
		require.Len(t, procs, 1, "version %d", v)
		code := tsqlCode(procs[0])
		begin := strings.Index(code, "IF @@TRANCOUNT = 0\n    BEGIN\n        BEGIN TRANSACTION;")
		require.Positive(t, begin, "version %d: opens its own transaction", v)
		for _, table := range []string{"eventfold.streams", "eventfold.position", "eventfold.events"} {
			require.Greater(t, strings.Index(code, table), begin, "version %d: %s is touched before the transaction opens", v, table)
		}
		commit := strings.LastIndex(code, "IF @own_tran = 1\n        COMMIT TRANSACTION;")
		require.Greater(t, commit, strings.LastIndex(code, "eventfold.events"), "version %d: commits after the last write", v)
		require.Contains(t, code, "SET XACT_ABORT ON;", "version %d", v)
	}
}

// requireHas is require.Contains without printing a whole migration.
func requireHas(t *testing.T, text, want string) {
	t.Helper()
	require.True(t, strings.Contains(text, want), "missing: %s", want)
}
