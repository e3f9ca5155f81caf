package main

import (
	"bytes"
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/examples/bank"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestAttack5BalanceOverflow: deposits (and a transfer) that would carry a
// balance past the largest int64 are rejected, and nothing is written.
// Before the fix the second deposit was committed (201 over HTTP) and its
// reducer's "balance + amount" overflowed: SQLite stored the balance as the
// REAL 9.22337203685478e+18 and every later command on the account failed
// with a scan error (500); PostgreSQL and MariaDB refused the reducer's
// UPDATE (bigint out of range), a 500 rather than a rejection.
func TestAttack5BalanceOverflow(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		dsn := testdb.EmptyDSN(t, d)
		var out bytes.Buffer
		require.Zero(t, esctl.Main(ctx, []string{"--dsn", dsn, "migrate", "up"}, &out, &out, options()), out.String())
		drv, err := sqldriver.Open(ctx, dsn)
		require.NoError(t, err)
		defer drv.Close()
		store := eventfold.New(drv, nil)
		app, err := bank.New(store, nil)
		require.NoError(t, err)
		for _, id := range []string{"rich", "other"} {
			_, err = app.Dispatch(ctx, "", bank.OpenAccount{AccountID: id, Owner: id, Number: id})
			require.NoError(t, err)
		}
		_, err = app.Dispatch(ctx, "", bank.Deposit{AccountID: "rich", Amount: math.MaxInt64})
		require.NoError(t, err)
		_, err = app.Dispatch(ctx, "", bank.Deposit{AccountID: "other", Amount: 10})
		require.NoError(t, err)

		_, err = app.Dispatch(ctx, "", bank.Deposit{AccountID: "rich", Amount: 1})
		require.ErrorIs(t, err, bank.ErrBalanceTooLarge)
		require.ErrorIs(t, err, orchestrator.ErrRejected, "a rejection (422 over HTTP), not a database failure")
		_, err = app.Dispatch(ctx, "", bank.Transfer{From: "other", To: "rich", Amount: 5})
		require.ErrorIs(t, err, bank.ErrBalanceTooLarge)

		acc, found, err := app.Account(ctx, "rich")
		require.NoError(t, err, "the balance still reads as an int64")
		require.True(t, found)
		require.Equal(t, int64(math.MaxInt64), acc.Balance)
		require.Equal(t, int64(2), acc.Version, "nothing was appended")
		other, _, err := app.Account(ctx, "other")
		require.NoError(t, err)
		require.Equal(t, int64(10), other.Balance)
		// The account still works.
		_, err = app.Dispatch(ctx, "", bank.Withdraw{AccountID: "rich", Amount: 7})
		require.NoError(t, err)
		_, err = app.Dispatch(ctx, "", bank.Transfer{From: "other", To: "rich", Amount: 5})
		require.NoError(t, err)
		acc, _, err = app.Account(ctx, "rich")
		require.NoError(t, err)
		require.Equal(t, int64(math.MaxInt64-2), acc.Balance)
	})
}
