package orchestrator

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/eventfold/eventfold"
)

// IsRetryable reports whether running the whole command again may succeed:
// a wrong expected version (the handler decided on stale state), a
// transient conflict (eventfold.ErrTransient), a concurrent duplicate of
// the command id, or a serialization failure, deadlock or lock timeout
// raised by PostgreSQL or MySQL inside a handler's or reducer's own query
// (which the store never saw, so it is classified here from the driver's
// error code). On SQL Server the dialect classifies such errors itself
// (the orchestrator passes handler and reducer errors through it, see
// classify), so they arrive here as eventfold.ErrTransient.
//
// Connection failures are not retried: the transaction's fate may be
// unknown. Re-dispatch with the same command id to be safe. A failed
// COMMIT whose commit marker proved that nothing was committed is retried.
func IsRetryable(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, eventfold.ErrWrongExpectedVersion),
		errors.Is(err, eventfold.ErrTransient),
		errors.Is(err, errDuplicateInFlight),
		errors.Is(err, errNotCommitted):
		return true
	}
	// PostgreSQL (pgx, directly or through database/sql).
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		switch pg.SQLState() {
		case "40001", // serialization_failure
			"40P01", // deadlock_detected
			"55P03": // lock_not_available
			return true
		}
	}
	// MySQL / MariaDB.
	var my *gomysql.MySQLError
	if errors.As(err, &my) {
		switch my.Number {
		case 1213, // ER_LOCK_DEADLOCK
			1205: // ER_LOCK_WAIT_TIMEOUT
			return true
		}
	}
	return false
}

// errorClassifier is implemented by the Ops of a dialect that marks
// database errors a retry may cure with eventfold.ErrTransient itself
// (SQL Server's), so that no error number of it lives here.
type errorClassifier interface {
	ClassifyError(err error) error
}

// classify passes an error from a handler or reducer (which may come from
// their own queries on the transaction) through the dialect's classifier,
// when the dialect has one.
func (o *Orchestrator[TTx]) classify(err error) error {
	if c, ok := o.store.Driver().Ops().(errorClassifier); ok {
		return c.ClassifyError(err)
	}
	return err
}

// serverReported tells whether err is an error the database server sent
// (SQLSTATE, MySQL error number, SQL Server error number), as opposed to a
// lost connection. A COMMIT the server answered with an error did not
// commit: only the other kind leaves its outcome unknown.
func serverReported(err error) bool {
	var pg interface{ SQLState() string }
	var my *gomysql.MySQLError
	var ms interface{ SQLErrorNumber() int32 }
	return errors.As(err, &pg) || errors.As(err, &my) || errors.As(err, &ms)
}

// backoff returns the wait before attempt n+1 (n >= 1): BaseBackoff
// doubled per attempt, capped at MaxBackoff, drawn from [d/2, d].
func (c Config) backoff(n int) time.Duration {
	d := c.BaseBackoff
	for i := 1; i < n && d < c.MaxBackoff; i++ {
		d *= 2
	}
	if d > c.MaxBackoff {
		d = c.MaxBackoff
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
