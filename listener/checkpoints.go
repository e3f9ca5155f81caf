package listener

import (
	"context"
	"fmt"
	"time"

	"github.com/eventfold/eventfold"
)

// CheckpointInfo describes one durable subscription as stored.
type CheckpointInfo struct {
	// Name is the subscription's name.
	Name string `json:"name"`
	// Position is the global position of the last event handled (0: none).
	Position int64 `json:"position"`
	// UpdatedAt is when the checkpoint last moved.
	UpdatedAt time.Time `json:"updated_at"`
	// Head is the store's complete-up-to position when this was read.
	Head int64 `json:"head"`
	// Lag is Head - Position (never negative). It is a distance in position
	// space: on PostgreSQL positions are sparse, so use it as "behind or
	// not" and for trends, not as an event count.
	Lag int64 `json:"lag"`
	// HeldBack is how far, in position space, the log's committed events
	// reach beyond max(Head, Position): on PostgreSQL, what a running
	// transaction holds back from every reader (Lag stays 0 then). It is
	// readable once that transaction ends; 0 when nothing is held back.
	HeldBack int64 `json:"held_back"`
	// Owner is the process holding the subscription's lease ("" if none).
	Owner string `json:"owner,omitempty"`
}

// Checkpoints lists every durable subscription with its lag behind the head.
func Checkpoints(ctx context.Context, store eventfold.Log) ([]CheckpointInfo, error) {
	so, err := readOps(store)
	if err != nil {
		return nil, err
	}
	head, err := store.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("listener: checkpoints: %w", err)
	}
	last, err := store.Ops().LastPosition(ctx)
	if err != nil {
		return nil, fmt.Errorf("listener: checkpoints: %w", store.SchemaError(ctx, err))
	}
	rows, err := so.ListCheckpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("listener: %w", err)
	}
	var out []CheckpointInfo
	for _, r := range rows {
		out = append(out, CheckpointInfo{Name: r.Name, Position: r.Position, UpdatedAt: r.UpdatedAt, Head: head,
			Lag: max(head-r.Position, 0), HeldBack: max(last-max(head, r.Position), 0)})
	}
	for i := range out {
		if out[i].Owner, err = so.LeaseOwner(ctx, out[i].Name); err != nil {
			return nil, fmt.Errorf("listener: %w", err)
		}
	}
	return out, nil
}

// Checkpoint returns a subscription's stored checkpoint; found is false when
// the subscription has never run.
func Checkpoint(ctx context.Context, store eventfold.Log, name string) (pos int64, found bool, err error) {
	if err := validateName(name); err != nil {
		return 0, false, err
	}
	so, err := readOps(store)
	if err != nil {
		return 0, false, err
	}
	pos, found, err = so.GetCheckpoint(ctx, name)
	if err != nil {
		return 0, false, fmt.Errorf("listener: %w", err)
	}
	return pos, found, nil
}

// Lag returns how far subscription name is behind the head, in position
// space (see CheckpointInfo.Lag); 0 means caught up.
func Lag(ctx context.Context, store eventfold.Log, name string) (int64, error) {
	pos, _, err := Checkpoint(ctx, store, name)
	if err != nil {
		return 0, err
	}
	head, err := store.Head(ctx)
	if err != nil {
		return 0, fmt.Errorf("listener: lag of %q: %w", name, err)
	}
	return max(head-pos, 0), nil
}

// SetCheckpoint moves a subscription's checkpoint to pos (0 replays from the
// beginning), creating it if needed. Do it while the subscription is
// stopped: a running instance notices (its compare-and-set fails), stops
// driving and restarts from the new checkpoint, but the batch it was
// handling may still run.
func SetCheckpoint(ctx context.Context, store eventfold.Log, name string, pos int64) error {
	if err := validateName(name); err != nil {
		return err
	}
	if pos < 0 {
		return &eventfold.ValidationError{Field: "checkpoint position", Reason: fmt.Sprintf("%d is negative", pos)}
	}
	err := writeOps(ctx, store, func(so subscriptionOps) error { return so.SetCheckpoint(ctx, name, pos) })
	if err != nil {
		return fmt.Errorf("listener: %w", err)
	}
	return nil
}

// DeleteCheckpoint forgets a subscription's checkpoint; it starts again from
// its Options.StartAt the next time it runs.
func DeleteCheckpoint(ctx context.Context, store eventfold.Log, name string) error {
	if err := validateName(name); err != nil {
		return err
	}
	err := writeOps(ctx, store, func(so subscriptionOps) error { return so.DeleteCheckpoint(ctx, name) })
	if err != nil {
		return fmt.Errorf("listener: %w", err)
	}
	return nil
}

// MaxNameLength bounds subscription names (bytes).
const MaxNameLength = eventfold.MaxIdentifierLength

// validateName applies eventfold's identifier rules (see
// eventfold.ValidateIdentifier) to a subscription name, before any SQL runs:
// a name the database would refuse would otherwise make Run retry forever,
// and one it would mangle would share or lose a checkpoint.
func validateName(name string) error {
	return eventfold.ValidateIdentifier("subscription name", name, MaxNameLength)
}
