package eventfold_test

import (
	"context"
	"database/sql"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestInTxRollsBackOnEveryWayOut: InTx gives its transaction back on an
// error, on a panic (which reaches the caller unchanged) and on
// runtime.Goexit (t.FailNow inside fn), on every dialect. Before, Goexit
// passed the deferred rollback (recover() returns nil and the error stays
// nil), so the transaction stayed open: on SQLite the one writer slot was
// never given back and the next write waited for ever.
func TestInTxRollsBackOnEveryWayOut(t *testing.T) {
	testdb.EachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		store := testdb.SQLStore(t, d)
		ctx := context.Background()
		write := func(tx *sql.Tx) error {
			_, err := store.AppendTx(ctx, tx, "intx", eventfold.Any, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
			return err
		}
		boom := errors.New("boom")
		require.ErrorIs(t, store.InTx(ctx, func(tx *sql.Tx) error {
			require.NoError(t, write(tx))
			return boom
		}), boom)
		require.PanicsWithValue(t, "kaboom", func() {
			_ = store.InTx(ctx, func(tx *sql.Tx) error {
				require.NoError(t, write(tx))
				panic("kaboom")
			})
		})
		exited := make(chan struct{})
		go func() {
			defer close(exited)
			_ = store.InTx(ctx, func(tx *sql.Tx) error {
				if err := write(tx); err != nil {
					return err
				}
				runtime.Goexit()
				return nil
			})
		}()
		<-exited

		// Nothing of the three committed, and the next write is not held up.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := store.Append(wctx, "intx-after", eventfold.NoStream, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
			done <- err
		}()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("the write after InTx's Goexit is still waiting: the transaction was never rolled back")
		}
		evs, err := store.ReadStream(ctx, "intx", eventfold.ReadStreamOptions{})
		require.NoError(t, err)
		require.Empty(t, evs)
	})
}
