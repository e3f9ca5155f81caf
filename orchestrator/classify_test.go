package orchestrator_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	mssql "github.com/microsoft/go-mssqldb"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestSQLServerHandlerErrorsClassifiedByDialect: an error a handler's own
// query raises on SQL Server reaches the retry decision through the
// dialect's classifier, not through error numbers in the orchestrator.
// Before, a snapshot conflict (3960) or an Azure SQL "database not
// available" (40613) from a handler was not retried.
//
// No SQL Server runs here: the driver speaks the SQL Server dialect over a
// SQLite database. Only transactions are opened (the handler emits
// nothing), so no T-SQL is ever sent; the handler returns the error
// go-mssqldb would.
func TestSQLServerHandlerErrorsClassifiedByDialect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	lite, err := sqldriver.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "x.db"))
	require.NoError(t, err)
	t.Cleanup(func() { lite.Close() })
	drv, err := sqldriver.New(lite.DB(), eventfold.SQLServer)
	require.NoError(t, err)
	store := eventfold.New(drv, nil)

	for _, n := range []int32{1205, 3960, 40613, 49920} {
		o := orchestrator.New(store, &orchestrator.Config{MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
		calls := 0
		orchestrator.Handle(o, "Touch", func(ctx context.Context, tx *sql.Tx, _ struct{}) ([]orchestrator.Emit, error) {
			calls++
			if calls == 1 {
				return nil, mssql.Error{Number: n, Class: 13, Message: "constructed"}
			}
			return nil, nil
		})
		res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Touch", Payload: struct{}{}})
		require.NoError(t, err, "error %d", n)
		require.Equal(t, 2, res.Attempts, "error %d", n)
	}

	// A permanent error is returned as is, once, with the driver's error
	// reachable.
	o := orchestrator.New(store, &orchestrator.Config{MaxAttempts: 3, BaseBackoff: time.Millisecond})
	calls := 0
	orchestrator.Handle(o, "Touch", func(ctx context.Context, tx *sql.Tx, _ struct{}) ([]orchestrator.Emit, error) {
		calls++
		return nil, mssql.Error{Number: 547, Class: 16, Message: "constraint conflict"}
	})
	_, err = o.Dispatch(ctx, orchestrator.Command{Name: "Touch", Payload: struct{}{}})
	var he *orchestrator.HandlerError
	require.ErrorAs(t, err, &he)
	var me mssql.Error
	require.ErrorAs(t, err, &me)
	require.EqualValues(t, 547, me.Number)
	require.NotErrorIs(t, err, eventfold.ErrTransient)
	require.Equal(t, 1, calls)
}

// TestHandlerErrorsClassifiedByEveryDialect: a transient error a handler's
// own query raises reaches the retry decision through its dialect's
// classifier on every dialect, so the orchestrator names no error code.
// Before, the orchestrator kept its own list, which had drifted: MariaDB's
// 1020 (ER_CHECKREAD, a snapshot-isolation conflict) was transient to the
// dialect but not retried when a handler's query raised it.
//
// As above, the dialects run over a SQLite database; only transactions are
// opened, and the handler returns the error the driver would.
func TestHandlerErrorsClassifiedByEveryDialect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	lite, err := sqldriver.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "x.db"))
	require.NoError(t, err)
	t.Cleanup(func() { lite.Close() })
	cases := []struct {
		dialect   eventfold.Dialect
		transient []error
		permanent error
	}{
		{eventfold.MySQL,
			[]error{&gomysql.MySQLError{Number: 1020, Message: "Record has changed since last read"}, &gomysql.MySQLError{Number: 1205}, &gomysql.MySQLError{Number: 1213}},
			&gomysql.MySQLError{Number: 1452, Message: "foreign key"}},
		{eventfold.Postgres,
			[]error{&pgconn.PgError{Code: "40001"}, &pgconn.PgError{Code: "40P01"}, &pgconn.PgError{Code: "55P03"}},
			&pgconn.PgError{Code: "23503", Message: "foreign key"}},
	}
	for _, c := range cases {
		drv, err := sqldriver.New(lite.DB(), c.dialect)
		require.NoError(t, err)
		store := eventfold.New(drv, nil)
		for _, terr := range c.transient {
			o := orchestrator.New(store, &orchestrator.Config{MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
			calls := 0
			orchestrator.Handle(o, "Touch", func(ctx context.Context, tx *sql.Tx, _ struct{}) ([]orchestrator.Emit, error) {
				calls++
				if calls == 1 {
					return nil, terr
				}
				return nil, nil
			})
			res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Touch", Payload: struct{}{}})
			require.NoError(t, err, "%s: %v", c.dialect, terr)
			require.Equal(t, 2, res.Attempts, "%s: %v", c.dialect, terr)
		}
		o := orchestrator.New(store, &orchestrator.Config{MaxAttempts: 3, BaseBackoff: time.Millisecond})
		calls := 0
		orchestrator.Handle(o, "Touch", func(ctx context.Context, tx *sql.Tx, _ struct{}) ([]orchestrator.Emit, error) {
			calls++
			return nil, c.permanent
		})
		_, err = o.Dispatch(ctx, orchestrator.Command{Name: "Touch", Payload: struct{}{}})
		require.ErrorIs(t, err, c.permanent, "%s: the driver's error stays reachable", c.dialect)
		require.NotErrorIs(t, err, eventfold.ErrTransient, c.dialect)
		require.Equal(t, 1, calls, c.dialect)
	}
}
