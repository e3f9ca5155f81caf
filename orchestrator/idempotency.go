package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/eventfold/eventfold"
)

// commandRecorder is the dialect extension that stores idempotency records
// (table eventfold.commands / eventfold_commands, migration
// 00002_commands). Every dialect's Ops implements it.
type commandRecorder interface {
	// LookupCommand returns the recorded event references of command id.
	LookupCommand(ctx context.Context, id string) (refs []byte, found bool, err error)
	// RecordCommand records command id with its event references. It
	// reports duplicate (and no error) when the id is already recorded,
	// typically by a concurrent dispatch that committed first.
	RecordCommand(ctx context.Context, id, commandType string, refs []byte) (duplicate bool, err error)
	// PruneCommands deletes records older than before; it returns how many.
	PruneCommands(ctx context.Context, before time.Time) (int64, error)
}

// eventRef points at one recorded event. Stream and version (rather than
// the global position) are what every dialect reads back cheaply and
// exactly.
type eventRef struct {
	Stream  string `json:"s"`
	Version int64  `json:"v"`
}

func encodeRefs(events []eventfold.Event) ([]byte, error) {
	refs := make([]eventRef, len(events))
	for i, e := range events {
		refs[i] = eventRef{Stream: e.StreamID, Version: e.StreamVersion}
	}
	b, err := json.Marshal(refs)
	if err != nil {
		return nil, fmt.Errorf("orchestrator: encode command record: %w", err)
	}
	return b, nil
}

func (o *Orchestrator[TTx]) recorder(tx TTx) (commandRecorder, error) {
	rec, ok := o.store.Driver().OpsTx(tx).(commandRecorder)
	if !ok {
		return nil, fmt.Errorf("orchestrator: the %s dialect does not implement idempotency records; dispatch without Envelope.ID", o.store.Dialect())
	}
	return rec, nil
}

// readBack reads the events a record points at, in recorded order;
// consecutive versions of one stream are read in one go.
func (o *Orchestrator[TTx]) readBack(ctx context.Context, tx TTx, raw []byte) ([]eventfold.Event, error) {
	var refs []eventRef
	if err := json.Unmarshal(raw, &refs); err != nil {
		return nil, fmt.Errorf("decode command record: %w", err)
	}
	out := make([]eventfold.Event, 0, len(refs))
	for i := 0; i < len(refs); {
		j := i + 1
		for j < len(refs) && refs[j].Stream == refs[i].Stream && refs[j].Version == refs[j-1].Version+1 {
			j++
		}
		evs, err := o.store.ReadStreamTx(ctx, tx, refs[i].Stream, eventfold.ReadStreamOptions{From: refs[i].Version, Limit: j - i})
		if err != nil {
			return nil, err
		}
		if len(evs) != j-i {
			return nil, fmt.Errorf("stream %q versions %d..%d: found %d events", refs[i].Stream, refs[i].Version, refs[j-1].Version, len(evs))
		}
		out = append(out, evs...)
		i = j
	}
	return out, nil
}

// ForgetCommands deletes the idempotency records of commands recorded
// before the given time and returns how many it deleted. Afterwards those
// command ids can be dispatched (and applied) again, so keep records longer
// than any client may retry a request.
func (o *Orchestrator[TTx]) ForgetCommands(ctx context.Context, before time.Time) (int64, error) {
	rec, ok := o.store.Driver().Ops().(commandRecorder)
	if !ok {
		return 0, fmt.Errorf("orchestrator: the %s dialect does not implement idempotency records", o.store.Dialect())
	}
	n, err := rec.PruneCommands(ctx, before.UTC())
	if err != nil {
		return 0, fmt.Errorf("orchestrator: forget commands recorded before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}
