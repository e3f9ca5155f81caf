package orchestrator_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
)

// An Observer callback that panics inside a group committer: the batch is
// queued behind a Gate command on the only committer, so that when the
// gate's caller is answered the batch runs in a committer goroutine
// (commitLoop), where a panic that escapes kills the test binary.

// obsPanic is what hookObserver panics with.
type obsPanic struct{ hook, target string }

// obsClaim emits to stream "claim-"+Key expecting it new: the second claim
// of a key in a batch conflicts (a retryable error).
type obsClaim struct {
	Key string `json:"key"`
	Tag string `json:"tag"`
}

// hookObserver panics in one callback (hook), for the command whose
// counter or claim tag is target; hook "batch" panics in BatchCommitted
// of a batch of several commands.
type hookObserver struct {
	hooks  map[string]bool
	target string
}

func obsTarget(ctx context.Context) string {
	cmd, ok := orchestrator.CommandFrom(ctx)
	if !ok {
		return ""
	}
	switch p := cmd.Payload.(type) {
	case gcAdd:
		return p.Counter
	case obsClaim:
		return p.Tag
	}
	return ""
}

func (o *hookObserver) StartDispatch(ctx context.Context, _ orchestrator.Command) (context.Context, func(*orchestrator.Result, error)) {
	return ctx, func(*orchestrator.Result, error) {}
}

func (o *hookObserver) StartStep(ctx context.Context, s orchestrator.Step) (context.Context, func(error)) {
	mine := obsTarget(ctx) == o.target
	switch {
	case mine && s.Kind == "commit" && s.Batch > 1 && o.hooks["commit-start"]:
		panic(obsPanic{"commit-start", o.target})
	case mine && s.Kind == "commit" && s.Batch > 1 && o.hooks["commit-end"]:
		return ctx, func(error) { panic(obsPanic{"commit-end", o.target}) }
	case s.Kind == "append" && s.Name == "s-"+o.target && o.hooks["append"]:
		panic(obsPanic{"append", o.target})
	}
	return ctx, func(error) {}
}

func (o *hookObserver) AttemptFailed(ctx context.Context, cmd orchestrator.Command, _ int, _ error, _ bool) {
	if c, ok := cmd.Payload.(obsClaim); ok && c.Tag == o.target && o.hooks["attempt"] {
		panic(obsPanic{"attempt", o.target})
	}
}

func (o *hookObserver) BatchCommitted(_ context.Context, n int) {
	if n > 1 && o.hooks["batch"] {
		panic(obsPanic{"batch", "first"})
	}
}

func (*hookObserver) EventMetadata(context.Context, map[string]any) {}

func always(bool) bool            { return true }
func never(bool) bool             { return false }
func ifBatched(batched bool) bool { return batched }

// lockedBuffer is a log sink for several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestGroupCommitObserverPanics: an Observer callback that panics in a
// group committer (BatchCommitted, the shared COMMIT's step start or end,
// a batched append step, AttemptFailed) must not crash the process: the
// batch's commands keep their true answers, the panic is raised in one
// caller's goroutine (the command's the callback was made for;
// BatchCommitted's goes to the batch's first command), and the committer
// goes on serving.
func TestGroupCommitObserverPanics(t *testing.T) {
	cases := []struct {
		hooks  []string
		target string // whose caller panics ("c0": the batch's first)
		// committed: whether target's command is in the database after;
		// in the default mode an append step runs inside the command, and
		// its panic fails the command, as in a lone Dispatch.
		committed func(batched bool) bool
		// logged: a second panic for target is logged (a batched round
		// rolled back for claim2's conflict runs c2's append step again).
		logged func(batched bool) bool
	}{
		{hooks: []string{"batch"}, target: "c0", committed: always, logged: never},
		{hooks: []string{"commit-start"}, target: "c2", committed: always, logged: never},
		{hooks: []string{"commit-end"}, target: "c2", committed: always, logged: never},
		{hooks: []string{"append"}, target: "c2", committed: ifBatched, logged: ifBatched},
		// AttemptFailed panics at every failed attempt of claim2: the batch's
		// and its solo attempts'; the caller gets its solo attempt's panic
		// (a panic of its own dispatch), the batch's is logged.
		{hooks: []string{"attempt"}, target: "claim2", committed: never, logged: always},
		{hooks: []string{"commit-end", "batch"}, target: "c0", committed: always, logged: always},
	}
	for _, d := range testdb.Dialects() {
		for _, batched := range []bool{false, true} {
			for _, tc := range cases {
				name := fmt.Sprintf("%s/batched=%v/%s", d, batched, strings.Join(tc.hooks, "+"))
				t.Run(name, func(t *testing.T) {
					hooks := map[string]bool{}
					for _, h := range tc.hooks {
						hooks[h] = true
					}
					logs := &lockedBuffer{}
					store := testdb.SQLStore(t, d)
					b := &gcBundle{store: store, d: d, release: make(chan struct{}), started: make(chan struct{}, 1)}
					b.o = orchestrator.New(store, &orchestrator.Config{
						Observer:    &hookObserver{hooks: hooks, target: tc.target},
						Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError})),
						MaxAttempts: 2, BaseBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
						GroupCommit: &orchestrator.GroupCommitConfig{Committers: 1, Batched: batched},
					})
					orchestrator.Handle(b.o, "Gate", func(ctx context.Context, tx *sql.Tx, _ gcGate) ([]orchestrator.Emit, error) {
						b.started <- struct{}{}
						<-b.release
						return []orchestrator.Emit{{Stream: "gate", Expected: eventfold.Any, Type: "Gated", Data: struct{}{}}}, nil
					})
					orchestrator.Handle(b.o, "Add", func(ctx context.Context, tx *sql.Tx, c gcAdd) ([]orchestrator.Emit, error) {
						return []orchestrator.Emit{{Stream: "s-" + c.Counter, Expected: eventfold.Any, Type: "Added", Data: gcAdded{}}}, nil
					})
					orchestrator.Handle(b.o, "Claim", func(ctx context.Context, tx *sql.Tx, c obsClaim) ([]orchestrator.Emit, error) {
						return []orchestrator.Emit{{Stream: "claim-" + c.Key, Expected: eventfold.NoStream, Type: "Claimed", Data: struct{}{}}}, nil
					})
					cmds := []orchestrator.Command{
						{Name: "Add", Payload: gcAdd{Counter: "c0"}},
						{Name: "Add", Payload: gcAdd{Counter: "c1"}},
						{Name: "Add", Payload: gcAdd{Counter: "c2"}},
						{Name: "Claim", Payload: obsClaim{Key: "k", Tag: "claim1"}},
						{Name: "Claim", Payload: obsClaim{Key: "k", Tag: "claim2"}},
						{Name: "Add", Payload: gcAdd{Counter: "c3"}},
					}
					tags := []string{"c0", "c1", "c2", "claim1", "claim2", "c3"}
					out := b.batchInOrder(t, cmds)
					ctx := context.Background()
					for i, r := range out {
						tag := tags[i]
						if tag == tc.target {
							p, ok := r.panicked.(obsPanic)
							if !ok {
								t.Fatalf("%s: caller got (%v, %v, panic %v), want the observer's panic", tag, r.res, r.err, r.panicked)
							}
							if want := tc.hooks[0]; p.hook != want {
								t.Errorf("%s: panicked with %+v, want hook %s's", tag, p, want)
							}
							continue
						}
						if r.panicked != nil {
							t.Fatalf("%s: caller panicked with %v; only %s's should", tag, r.panicked, tc.target)
						}
						if tag == "claim2" {
							// Claims the key claim1 holds: a conflict, retried
							// until MaxAttempts.
							if !errors.Is(r.err, eventfold.ErrWrongExpectedVersion) {
								t.Errorf("claim2: %v, want ErrWrongExpectedVersion", r.err)
							}
							continue
						}
						if r.err != nil {
							t.Fatalf("%s: %v", tag, r.err)
						}
						if len(r.res.Events) != 1 {
							t.Fatalf("%s: %d events in the answer, want 1", tag, len(r.res.Events))
						}
					}
					// The database agrees with the answers; the target's
					// command committed unless its own step panicked.
					for _, tag := range []string{"c0", "c1", "c2", "c3"} {
						evs, err := store.ReadStream(ctx, "s-"+tag, eventfold.ReadStreamOptions{})
						if err != nil {
							t.Fatal(err)
						}
						want := 1
						if tag == tc.target && !tc.committed(batched) {
							want = 0
						}
						if len(evs) != want {
							t.Errorf("stream s-%s holds %d events, want %d", tag, len(evs), want)
						}
					}
					if evs, err := store.ReadStream(ctx, "claim-k", eventfold.ReadStreamOptions{}); err != nil || len(evs) != 1 {
						t.Errorf("claim-k: %d events (%v), want 1", len(evs), err)
					}
					if got := strings.Contains(logs.String(), "observer panicked"); got != tc.logged(batched) {
						t.Errorf("second panic logged: %v, want %v; log:\n%s", got, tc.logged(batched), logs.String())
					}
					// No committer slot was lost: a lone command and a batch
					// after the panic are answered.
					done := make(chan error, 1)
					go func() {
						_, err := b.o.Dispatch(ctx, orchestrator.Command{Name: "Add", Payload: gcAdd{Counter: "lone"}})
						done <- err
					}()
					select {
					case err := <-done:
						if err != nil {
							t.Fatal(err)
						}
					case <-time.After(20 * time.Second):
						t.Fatalf("a lone command after the panic is not answered in 20 s (queued: %d)", orchestrator.QueuedForTest(b.o))
					}
				})
			}
		}
	}
}
