package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

// freshLogCases each get a database of their own: they look at the whole log.
func freshLogCases[TTx any]() []storeCase[TTx] {
	return []storeCase[TTx]{
		{"read-all", func(t *testing.T, s *eventfold.Store[TTx]) {
			ctx := context.Background()
			h, err := s.Head(ctx)
			require.NoError(t, err)
			require.Zero(t, h, "empty log head")
			require.Empty(t, readAllFrom(t, s, 0), "empty log read")
			var appended []eventfold.Event
			for i := range 5 {
				appended = append(appended, mustAppend(t, s, fmt.Sprintf("s-%d", i%2), eventfold.Any, ev("E", `1`), ev("F", `2`))...)
			}
			waitVisible(t, s, appended[len(appended)-1].GlobalPosition)
			all := readAllFrom(t, s, 0)
			require.Equal(t, positions(appended), positions(all), "read all")
			head, err := s.Head(ctx)
			require.NoError(t, err)
			require.Equal(t, appended[len(appended)-1].GlobalPosition, head)
			page, err := s.ReadAll(ctx, eventfold.ReadAllOptions{From: appended[3].GlobalPosition, Limit: 4})
			require.NoError(t, err)
			require.Equal(t, positions(appended[3:7]), positions(page), "from the 4th, limit 4")
			page, _ = s.ReadAll(ctx, eventfold.ReadAllOptions{From: head + 1})
			require.Empty(t, page, "read past the head")
		}},
		{"out-of-order-commits", func(t *testing.T, s *eventfold.Store[TTx]) {
			outOfOrder(t, s)
		}},
		{"concurrent-writers-tailing-reader", func(t *testing.T, s *eventfold.Store[TTx]) {
			tailUnderLoad(t, s, 8, 40)
		}},
		{"archived-reads-say-so", func(t *testing.T, s *eventfold.Store[TTx]) {
			archivedReads(t, s)
		}},
	}
}

// tailer reads the log the way a subscriber does: from the last position
// it saw plus one, checking it never sees a position twice or out of order.
type tailer[TTx any] struct {
	s    *eventfold.Store[TTx]
	next int64
	seen []eventfold.Event
}

func (r *tailer[TTx]) poll(t *testing.T) {
	t.Helper()
	for _, e := range readAllFrom(t, r.s, r.next) {
		if len(r.seen) > 0 && e.GlobalPosition <= r.seen[len(r.seen)-1].GlobalPosition {
			t.Errorf("reader saw position %d after %d", e.GlobalPosition, r.seen[len(r.seen)-1].GlobalPosition)
		}
		r.seen = append(r.seen, e)
		r.next = e.GlobalPosition + 1
	}
}

// pollUntil is poll with a deadline: it reports false (having read
// nothing) when the read was still waiting at the deadline.
func (r *tailer[TTx]) pollUntil(t *testing.T, deadline time.Time) bool {
	t.Helper()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	evs, err := r.s.ReadAll(ctx, eventfold.ReadAllOptions{From: r.next, Limit: 500})
	if errors.Is(err, context.DeadlineExceeded) || (err != nil && ctx.Err() != nil) {
		return false
	}
	if err != nil {
		t.Fatalf("read all from %d: %v", r.next, err)
	}
	for _, e := range evs {
		if len(r.seen) > 0 && e.GlobalPosition <= r.seen[len(r.seen)-1].GlobalPosition {
			t.Errorf("reader saw position %d after %d", e.GlobalPosition, r.seen[len(r.seen)-1].GlobalPosition)
		}
		r.seen = append(r.seen, e)
		r.next = e.GlobalPosition + 1
	}
	return true
}

// outOfOrder holds one transaction open while later ones commit, and rolls
// one back: a reader continuing from its last position must end up with
// exactly the committed events, in order.
func outOfOrder[TTx any](t *testing.T, s *eventfold.Store[TTx]) {
	ctx := context.Background()
	d := s.Driver()
	r := &tailer[TTx]{s: s}
	var maxPos atomic.Int64
	note := func(evs []eventfold.Event) {
		for _, e := range evs {
			for cur := maxPos.Load(); e.GlobalPosition > cur && !maxPos.CompareAndSwap(cur, e.GlobalPosition); cur = maxPos.Load() {
			}
		}
	}
	note(mustAppend(t, s, "before", eventfold.Any, ev("Before", `0`)))
	waitVisible(t, s, maxPos.Load())
	r.poll(t)

	for round, commitHeld := range []bool{true, false} {
		held, err := d.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		heldEvents, err := s.AppendTx(ctx, held, fmt.Sprintf("held-%d", round), eventfold.Any, ev("Held", `1`))
		if err != nil {
			t.Fatal(err)
		}
		// Later writers: on PostgreSQL they commit at once; on MySQL and SQL
		// Server they queue on the position counter, on SQLite on the single
		// writer. Either way the reader must not pass the held event.
		var wg sync.WaitGroup
		var later atomic.Int64
		for i := range 3 {
			wg.Go(func() {
				evs, err := s.Append(ctx, fmt.Sprintf("later-%d-%d", round, i), eventfold.Any, ev("Later", `2`))
				if err != nil {
					t.Errorf("later append: %v", err)
				}
				note(evs)
				later.Add(1)
			})
		}
		deadline := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(deadline) {
			// A locking reader (SQL Server's ReadAll) waits for the held
			// append to end, which this goroutine would never reach
			// without a deadline: waiting is correct, passing is not.
			if !r.pollUntil(t, deadline) {
				t.Logf("round %d: the reader waits for the held append (a locking read)", round)
				break
			}
			for _, e := range r.seen {
				if e.StreamID == heldEvents[0].StreamID {
					t.Fatalf("reader saw the uncommitted held event")
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("round %d: %d later appends committed while the first was held", round, later.Load())
		if commitHeld {
			err = d.Commit(ctx, held)
			note(heldEvents)
		} else {
			err = d.Rollback(ctx, held)
		}
		if err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		waitVisible(t, s, maxPos.Load())
		r.poll(t)
	}
	all := readAllFrom(t, s, 0)
	if !reflect.DeepEqual(positions(r.seen), positions(all)) {
		t.Fatalf("tailing reader saw %v, the log holds %v", positions(r.seen), positions(all))
	}
	counts := map[string]int{}
	for _, e := range all {
		counts[e.Type]++
	}
	if want := map[string]int{"Before": 1, "Held": 1, "Later": 6}; !reflect.DeepEqual(counts, want) {
		t.Fatalf("log holds %v, want %v", counts, want)
	}
}

// tailUnderLoad runs writers that commit or roll back at random while a
// reader tails the log; the reader must see exactly the committed events.
func tailUnderLoad[TTx any](t *testing.T, s *eventfold.Store[TTx], writers, txPerWriter int) {
	ctx := context.Background()
	d := s.Driver()
	var committed sync.Map // event id -> struct{}
	var maxPos atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for i := range txPerWriter {
				tx, err := d.Begin(ctx)
				if err != nil {
					t.Errorf("begin: %v", err)
					return
				}
				evs, err := s.AppendTx(ctx, tx, fmt.Sprintf("w%d-%d", w, rng.IntN(3)), eventfold.Any, ev("Load", `{"w":1}`), ev("Load", `{"w":2}`))
				if err != nil {
					_ = d.Rollback(ctx, tx)
					if !isTransient(err) {
						t.Errorf("append: %v", err)
					}
					continue
				}
				if rng.IntN(4) == 0 {
					time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
				}
				if rng.IntN(5) == 0 || i%17 == 0 {
					_ = d.Rollback(ctx, tx)
					continue
				}
				if err := d.Commit(ctx, tx); err != nil {
					t.Errorf("commit: %v", err)
					continue
				}
				for _, e := range evs {
					committed.Store(e.ID, struct{}{})
					for cur := maxPos.Load(); e.GlobalPosition > cur && !maxPos.CompareAndSwap(cur, e.GlobalPosition); cur = maxPos.Load() {
					}
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	r := &tailer[TTx]{s: s}
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(5 * time.Millisecond):
		}
		r.poll(t)
	}
	waitVisible(t, s, maxPos.Load())
	r.poll(t)
	want := 0
	committed.Range(func(_, _ any) bool { want++; return true })
	if len(r.seen) != want {
		t.Fatalf("reader saw %d events, writers committed %d", len(r.seen), want)
	}
	for _, e := range r.seen {
		if _, ok := committed.Load(e.ID); !ok {
			t.Fatalf("reader saw event %s that was never committed", e.ID)
		}
	}
	if !reflect.DeepEqual(positions(r.seen), positions(readAllFrom(t, s, 0))) {
		t.Fatalf("reader's sequence differs from the final log")
	}
}

// archiver is what esctl archive uses of a dialect's Ops.
type archiver interface {
	SetArchivedBefore(ctx context.Context, pos int64) error
	DeleteEventRange(ctx context.Context, from, through int64) (int64, error)
}

// archivedReads archives the oldest events the way esctl archive does
// (raise the watermark, delete the prefix) and checks that every read
// reaching into them fails with ErrArchived instead of returning less.
func archivedReads[TTx any](t *testing.T, s *eventfold.Store[TTx]) {
	ctx := context.Background()
	a := mustAppend(t, s, "arch-a", eventfold.NoStream, ev("A", `1`), ev("A", `2`), ev("A", `3`))
	b := mustAppend(t, s, "arch-b", eventfold.NoStream, ev("B", `1`))
	c := mustAppend(t, s, "arch-a", eventfold.Exact(3), ev("A", `4`))
	waitVisible(t, s, c[0].GlobalPosition)
	ar, ok := s.Driver().Ops().(archiver)
	require.True(t, ok, "%T has no archive operations", s.Driver().Ops())
	// Archive everything below b[0]: versions 1-3 of arch-a.
	require.NoError(t, ar.SetArchivedBefore(ctx, b[0].GlobalPosition))
	n, err := ar.DeleteEventRange(ctx, a[0].GlobalPosition, a[2].GlobalPosition)
	require.NoError(t, err, "delete archived range")
	require.EqualValues(t, 3, n, "delete archived range")
	wantArchived := func(what string, err error) {
		t.Helper()
		require.ErrorIs(t, err, eventfold.ErrArchived, what)
		var ae *eventfold.ArchivedError
		require.ErrorAs(t, err, &ae, what)
		require.Equal(t, b[0].GlobalPosition, ae.ArchivedBefore, what)
	}
	_, err = s.ReadAll(ctx, eventfold.ReadAllOptions{From: 0})
	wantArchived("read all from 0", err)
	_, err = s.ReadStream(ctx, "arch-a", eventfold.ReadStreamOptions{})
	wantArchived("read arch-a forward from 1", err)
	_, err = s.ReadStream(ctx, "arch-a", eventfold.ReadStreamOptions{Backward: true})
	wantArchived("read arch-a backward from the end", err)
	_, err = s.ReadStream(ctx, "arch-a", eventfold.ReadStreamOptions{Backward: true, From: 2})
	wantArchived("read arch-a backward from 2", err)
	// What is still hot reads fine.
	rest := readAllFrom(t, s, b[0].GlobalPosition)
	require.Equal(t, []int64{b[0].GlobalPosition, c[0].GlobalPosition}, positions(rest), "hot log")
	require.Equal(t, []int64{4}, versions(readStream(t, s, "arch-a", eventfold.ReadStreamOptions{From: 4})), "arch-a from 4")
	require.Equal(t, []int64{4}, versions(readStream(t, s, "arch-a", eventfold.ReadStreamOptions{Backward: true, Limit: 1})), "arch-a backward limit 1")
	require.Empty(t, readStream(t, s, "arch-a", eventfold.ReadStreamOptions{From: 9}), "past the end")
	require.Equal(t, []int64{1}, versions(readStream(t, s, "arch-b", eventfold.ReadStreamOptions{})), "arch-b")
	// New appends go on from the stream's version.
	e := mustAppend(t, s, "arch-a", eventfold.Exact(4), ev("A", `5`))
	require.EqualValues(t, 5, e[0].StreamVersion, "append after archiving")
}
