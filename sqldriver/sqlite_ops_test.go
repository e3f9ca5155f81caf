package sqldriver_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestSQLiteOpsAppendOutsideTxIsAtomic: Driver.Ops() runs outside any
// transaction; an Append there must still be all or nothing, as on the
// other dialects. A duplicate id in the second event used to leave the
// stream's version advanced with no events behind it.
func TestSQLiteOpsAppendOutsideTxIsAtomic(t *testing.T) {
	ctx := context.Background()
	d, err := sqldriver.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "ef.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	store := eventfold.New(d, nil)
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := store.Append(ctx, "s", eventfold.NoStream, eventfold.EventData{Type: "T", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	events := []eventfold.EventData{
		{ID: uuid.NewString(), Type: "T", Data: json.RawMessage(`{}`), Metadata: json.RawMessage(`{}`)},
		{ID: first[0].ID, Type: "T", Data: json.RawMessage(`{}`), Metadata: json.RawMessage(`{}`)},
	}
	if _, err := d.Ops().Append(ctx, "s", eventfold.Exact(1), events); !errors.Is(err, eventfold.ErrDuplicateEventID) {
		t.Fatalf("append with a duplicate id: %v", err)
	}
	if v, err := store.StreamVersion(ctx, "s"); err != nil || v != 1 {
		t.Fatalf("stream version after a failed append: %d, %v; want 1", v, err)
	}
	if evs, err := store.ReadStream(ctx, "s", eventfold.ReadStreamOptions{}); err != nil || len(evs) != 1 {
		t.Fatalf("stream after a failed append: %d events, %v; want 1", len(evs), err)
	}
}
