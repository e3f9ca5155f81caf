package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/eventfold/eventfold/internal/backoff"
	"github.com/eventfold/eventfold/internal/contract"

	"github.com/google/uuid"
)

// ErrCommitOutcomeUnknown is matched (through a *CommitError) when COMMIT
// failed and the orchestrator could not find out afterwards whether the
// transaction committed (the database stayed unreachable while it looked
// its commit marker up). Nothing was retried: the command may or may not
// have been applied. Re-dispatch with the same command id to find out.
var ErrCommitOutcomeUnknown = errors.New("orchestrator: commit outcome unknown")

// errNotCommitted wraps a failed COMMIT after the commit marker proved that
// the transaction did not commit, so running the command again is safe
// (IsRetryable says yes).
var errNotCommitted = errors.New("orchestrator: COMMIT failed and the transaction did not commit")

// markerState is the orchestrator's commit-marker bookkeeping.
type markerState struct {
	supported bool         // the dialect has markers (it is not SQLite)
	on        bool         // supported and not turned off
	lastPrune atomic.Int64 // unix nanoseconds of the last prune started
}

// markersOn tells whether transactions get commit markers.
func (o *Orchestrator[TTx]) markersOn() bool { return o.markers.on }

// newMarker returns a fresh marker id.
func newMarker() (string, error) {
	id, err := uuid.NewV7() // time-ordered: pruning deletes a key range
	if err != nil {
		return "", fmt.Errorf("orchestrator: generate commit marker: %w", err)
	}
	return id.String(), nil
}

// writeMarker writes a commit marker inside tx and returns its id.
func (o *Orchestrator[TTx]) writeMarker(ctx context.Context, tx TTx) (string, error) {
	m := o.store.Driver().OpsTx(tx)
	id, err := newMarker()
	if err != nil {
		return "", err
	}
	if err := m.WriteCommitMarker(ctx, id); err != nil {
		return "", fmt.Errorf("orchestrator: %w (is migration 00009 applied? run migrate up)", o.classify(err))
	}
	return id, nil
}

// markCommit gives tx a commit marker: queued to go with COMMIT when the
// driver can (Capabilities.CommitPipeline), written now otherwise. A
// queued marker the server refuses fails the COMMIT with a
// *contract.QueuedWriteError, and nothing commits.
func (o *Orchestrator[TTx]) markCommit(ctx context.Context, tx TTx, pipe contract.CommitPipeline) (string, error) {
	if pipe == nil {
		return o.writeMarker(ctx, tx)
	}
	id, err := newMarker()
	if err != nil {
		return "", err
	}
	if err := pipe.QueueCommitMarker(ctx, id); err != nil {
		return "", fmt.Errorf("orchestrator: %w", err)
	}
	return id, nil
}

// commitPipeline returns tx's commit pipeline, nil when the driver has
// none.
func (o *Orchestrator[TTx]) commitPipeline(tx TTx) contract.CommitPipeline {
	ops := o.store.Driver().OpsTx(tx)
	if !ops.Capabilities().CommitPipeline {
		return nil
	}
	pipe, _ := ops.(contract.CommitPipeline)
	return pipe
}

// resolveCommit finds out, after COMMIT failed, whether the transaction
// that wrote marker committed. It claims the marker on a fresh connection
// of the pool, retrying for up to Config.ResolveTimeout while the database
// is unreachable; err is non-nil only when it never got an answer.
func (o *Orchestrator[TTx]) resolveCommit(ctx context.Context, marker string) (committed bool, err error) {
	m := o.store.Driver().Ops()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.cfg.ResolveTimeout)
	defer cancel()
	wait := 10 * time.Millisecond
	for {
		committed, err = m.ClaimCommitMarker(ctx, marker)
		if err == nil {
			return committed, nil
		}
		if !backoff.Sleep(ctx, wait) {
			return false, err
		}
		wait = min(2*wait, time.Second)
	}
}

// markerPruneEvery is how often one orchestrator deletes old markers.
const markerPruneEvery = time.Minute

// maybePruneMarkers deletes markers older than Config.CommitMarkerRetention,
// at most once per markerPruneEvery, in a short-lived goroutine so that no
// caller waits for it. Markers are only needed until a failed COMMIT is
// resolved (seconds), so any orchestrator may prune everybody's.
func (o *Orchestrator[TTx]) maybePruneMarkers() {
	now := time.Now()
	last := o.markers.lastPrune.Load()
	if now.UnixNano()-last < int64(markerPruneEvery) || !o.markers.lastPrune.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := o.PruneCommitMarkers(ctx, now.Add(-o.cfg.CommitMarkerRetention)); err != nil {
			o.cfg.Logger.WarnContext(ctx, "orchestrator: prune commit markers", "error", fmt.Sprint(err))
		}
	}()
}

// PruneCommitMarkers deletes the commit markers recorded before before
// and returns how many. The orchestrator does this by itself about once a
// minute (Config.CommitMarkerRetention); call it to prune at another time.
// On SQLite, which needs no markers, it returns 0.
func (o *Orchestrator[TTx]) PruneCommitMarkers(ctx context.Context, before time.Time) (int64, error) {
	n, err := o.store.Ops().PruneCommitMarkers(ctx, before.UTC()) // refused on a newer schema
	if err != nil {
		return 0, fmt.Errorf("orchestrator: prune commit markers recorded before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}
