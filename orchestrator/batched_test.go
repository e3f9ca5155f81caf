package orchestrator_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
)

// gcNote is a command of the batched-mode tests: one "Noted" event on
// stream "note-<Stream>", reduced by a batch reducer into gc_notes.
type gcNote struct {
	Stream string `json:"stream"`
	Text   string `json:"text,omitempty"`
}

// noteApp registers "Note" on b: its handler reports how many notes the
// read model held when it ran, its batch reducer records every call.
type noteApp struct {
	mu    sync.Mutex
	calls [][]string // per batch-reducer call: the streams of its events
	seen  map[string]int64
}

func setupNotes(t *testing.T, b *gcBundle) *noteApp {
	t.Helper()
	if _, err := b.store.Driver().DB().Exec("CREATE TABLE gc_notes (id VARCHAR(100) PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	n := &noteApp{seen: map[string]int64{}}
	d := b.d
	orchestrator.Handle(b.o, "Note", func(ctx context.Context, tx *sql.Tx, c gcNote) ([]orchestrator.Emit, error) {
		var k int64
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM gc_notes").Scan(&k); err != nil {
			return nil, err
		}
		n.mu.Lock()
		n.seen[c.Stream] = k
		n.mu.Unlock()
		return []orchestrator.Emit{{Stream: "note-" + c.Stream, Expected: eventfold.NoStream, Type: "Noted", Data: c}}, nil
	})
	orchestrator.ReduceBatch(b.o, "Noted", func(ctx context.Context, tx *sql.Tx, evs []eventfold.Event) error {
		var streams []string
		for _, ev := range evs {
			streams = append(streams, ev.StreamID)
			if _, err := tx.ExecContext(ctx, "INSERT INTO gc_notes (id) VALUES ("+ph(d, 1)+")", ev.StreamID); err != nil {
				return err
			}
		}
		n.mu.Lock()
		n.calls = append(n.calls, streams)
		n.mu.Unlock()
		return nil
	})
	return n
}

// TestGroupCommitBatchedOneAppendOneReduce: a batch of ten commands on
// ten streams runs its batch reducer once, with all ten events in command
// order, and every handler sees the read model as it was when the batch
// started (the documented price of batched mode). In the savepoint mode
// the reducer runs once per command and each handler sees the notes of the
// commands before it.
func TestGroupCommitBatchedOneAppendOneReduce(t *testing.T) {
	for _, d := range testdb.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			b := setupGCMode(t, d, 1, true)
			n := setupNotes(t, b)
			var cmds []orchestrator.Command
			var want []string
			for i := range 10 {
				s := fmt.Sprintf("s%d", i)
				cmds = append(cmds, orchestrator.Command{Name: "Note", Payload: gcNote{Stream: s}})
				want = append(want, "note-"+s)
			}
			out := b.batchInOrder(t, cmds)
			for i, o := range out {
				require.NoError(t, o.err, "command %d", i)
				require.Equal(t, 10, o.res.BatchSize, "command %d", i)
				require.Len(t, o.res.Events, 1)
				require.Equal(t, want[i], o.res.Events[0].StreamID)
				if i > 0 {
					require.Less(t, out[i-1].res.Events[0].GlobalPosition, o.res.Events[0].GlobalPosition, "positions follow the batch's order")
				}
			}
			require.Equal(t, [][]string{want}, n.calls, "one batch-reducer call for the whole batch")
			for i := range 10 {
				require.Zero(t, n.seen[fmt.Sprintf("s%d", i)], "handler %d sees the read model as of the batch start", i)
			}
			var k int
			require.NoError(t, b.store.Driver().DB().QueryRow("SELECT COUNT(*) FROM gc_notes").Scan(&k))
			require.Equal(t, 10, k)
		})
	}
}

// TestGroupCommitBatchedFailures: in one batch, a command appending to a
// stream that exists (wrong expected version, retried on its own and then
// refused by its handler's NoStream for good), a batch reducer failure
// that names one command, and commands with ids (one twice, one reusing a
// key): each failure is its command's alone, the others commit together.
func TestGroupCommitBatchedFailures(t *testing.T) {
	for _, d := range testdb.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			b := setupGCMode(t, d, 1, true)
			setupNotes(t, b)
			ctx := context.Background()
			// "note-taken" exists already: a Note on it fails with a wrong
			// expected version on every attempt.
			_, err := b.o.Dispatch(ctx, orchestrator.Command{Name: "Note", Payload: gcNote{Stream: "taken"}})
			require.NoError(t, err)
			orchestrator.ReduceBatch(b.o, "Noted", func(ctx context.Context, tx *sql.Tx, evs []eventfold.Event) error {
				for _, ev := range evs {
					if ev.StreamID == "note-bad" {
						return errors.New("batched test: reducer refused")
					}
				}
				return nil
			})
			id := func(s string) orchestrator.Envelope { return orchestrator.Envelope{ID: s} }
			out := b.batchInOrder(t, []orchestrator.Command{
				{Name: "Note", Payload: gcNote{Stream: "a"}, Envelope: id("cmd-a")},
				{Name: "Note", Payload: gcNote{Stream: "taken"}},
				{Name: "Note", Payload: gcNote{Stream: "a"}, Envelope: id("cmd-a")},
				{Name: "Note", Payload: gcNote{Stream: "bad"}},
				{Name: "Note", Payload: gcNote{Stream: "b"}, Envelope: id("cmd-a")},
				{Name: "Add", Payload: gcAdd{Counter: "z"}},
				{Name: "Note", Payload: gcNote{Stream: "c"}, Envelope: id("cmd-c")},
			})
			require.NoError(t, out[0].err)
			require.False(t, out[0].res.Duplicate)
			var wev *eventfold.WrongExpectedVersionError
			require.ErrorAs(t, out[1].err, &wev, "the existing stream")
			require.NoError(t, out[2].err)
			require.True(t, out[2].res.Duplicate, "the same id and payload again: a replay")
			require.Equal(t, out[0].res.Events[0].ID, out[2].res.Events[0].ID)
			var re *orchestrator.ReducerError
			require.ErrorAs(t, out[3].err, &re)
			require.Equal(t, "Note", re.Command)
			var reused *orchestrator.IdempotencyKeyReusedError
			require.ErrorAs(t, out[4].err, &reused, "the same id with another payload")
			require.NoError(t, out[5].err)
			require.NoError(t, out[6].err)
			for _, i := range []int{0, 2, 5, 6} {
				require.Equal(t, 4, out[i].res.BatchSize, "command %d", i)
			}
			for stream, want := range map[string]int64{"note-a": 1, "note-taken": 1, "note-bad": 0, "note-b": 0, "counter-z": 1, "note-c": 1} {
				v, err := b.store.StreamVersion(ctx, stream)
				require.NoError(t, err)
				require.Equal(t, want, v, "stream %s", stream)
			}
			require.Equal(t, int64(1), b.count(t, "z"))
			// The ids were recorded in the shared transaction.
			res, err := b.o.Dispatch(ctx, orchestrator.Command{Name: "Note", Payload: gcNote{Stream: "c"}, Envelope: id("cmd-c")})
			require.NoError(t, err)
			require.True(t, res.Duplicate)
			require.Equal(t, out[6].res.Events[0].ID, res.Events[0].ID)
		})
	}
}

// TestGroupCommitBatchedHandlerSeesEarlierWrites: a handler that fails
// because the read-model row an earlier command of its segment creates is
// not there yet (a "renote" of a stream the batch creates) runs again once
// the segment is applied, and succeeds, as in the savepoint mode.
func TestGroupCommitBatchedHandlerSeesEarlierWrites(t *testing.T) {
	for _, d := range testdb.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			b := setupGCMode(t, d, 1, true)
			setupNotes(t, b)
			orchestrator.Handle(b.o, "Renote", func(ctx context.Context, tx *sql.Tx, c gcNote) ([]orchestrator.Emit, error) {
				var k int
				if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM gc_notes WHERE id = "+ph(d, 1), "note-"+c.Stream).Scan(&k); err != nil {
					return nil, err
				}
				if k == 0 {
					return nil, fmt.Errorf("no note %s", c.Stream)
				}
				return []orchestrator.Emit{{Stream: "note-" + c.Stream, Expected: eventfold.Exact(1), Type: "Renoted", Data: c}}, nil
			})
			out := b.batchInOrder(t, []orchestrator.Command{
				{Name: "Note", Payload: gcNote{Stream: "s1"}},
				{Name: "Note", Payload: gcNote{Stream: "s2"}},
				{Name: "Renote", Payload: gcNote{Stream: "s1"}},
				{Name: "Renote", Payload: gcNote{Stream: "missing"}},
			})
			for i := range 3 {
				require.NoError(t, out[i].err, "command %d", i)
				require.Equal(t, 3, out[i].res.BatchSize, "command %d", i)
			}
			require.Equal(t, int64(2), out[2].res.Events[0].StreamVersion)
			var he *orchestrator.HandlerError
			require.ErrorAs(t, out[3].err, &he, "a renote of a stream nobody created fails for good")
		})
	}
}
