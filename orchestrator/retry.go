package orchestrator

import (
	"errors"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/backoff"
)

// IsRetryable reports whether running the whole command again may succeed:
// a wrong expected version (the handler decided on stale state), a
// transient conflict (eventfold.ErrTransient: a serialization failure,
// deadlock, lock timeout, or a connection refused because too many are
// open), a concurrent duplicate of the command id, or
// a failed COMMIT whose commit marker proved that nothing was committed.
// Which database errors are transient is the dialect's knowledge: the
// orchestrator passes the errors of handlers, reducers and COMMIT through
// the dialect's classifier (see classify), so they arrive here matching
// eventfold.ErrTransient. A raw driver error that never went through a
// dispatch is not classified here.
//
// Connection failures are not retried: the transaction's fate may be
// unknown. Re-dispatch with the same command id to be safe.
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
	return false
}

// classify passes an error from a handler, a reducer or COMMIT (which may
// come from their own queries on the transaction) through the dialect's
// classifier, which marks the ones a retry may cure with
// eventfold.ErrTransient.
func (o *Orchestrator[TTx]) classify(err error) error {
	return o.store.Driver().Ops().ClassifyError(err)
}

// serverReported tells whether err is an error the database server sent,
// as opposed to a lost connection. A COMMIT the server answered with an
// error did not commit: only the other kind leaves its outcome unknown.
func (o *Orchestrator[TTx]) serverReported(err error) bool {
	return o.store.Driver().Ops().ServerReported(err)
}

// backoff returns the wait before attempt n+1 (n >= 1): BaseBackoff
// doubled per attempt, capped at MaxBackoff, with jitter.
func (c Config) backoff(n int) time.Duration {
	return backoff.Delay(n, c.BaseBackoff, c.MaxBackoff)
}
