package orchestrator_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/examples/bank"
	"github.com/eventfold/eventfold/orchestrator"
)

func TestCommitPath(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		b := setup(t, d, nil)
		b.o.Use() // Use with nothing keeps the chain working
		open := b.mustDispatch(t, "", bank.OpenAccount{AccountID: "alice", Owner: "Alice", Number: "NL-1"})
		if len(open.Events) != 1 || open.Events[0].StreamVersion != 1 || open.Events[0].Type != bank.EventAccountOpened {
			t.Fatalf("open: %+v", open.Events)
		}
		b.open(t, "bob", "NL-2")
		dep := b.mustDispatch(t, "", bank.Deposit{AccountID: "alice", Amount: 100})
		ev := dep.Events[0]
		if ev.StreamID != "account-alice" || ev.StreamVersion != 2 || ev.ID == "" || ev.GlobalPosition <= open.Events[0].GlobalPosition || dep.Attempts != 1 || dep.Duplicate {
			t.Fatalf("deposit result: %+v", dep)
		}
		// The returned events are the recorded ones.
		logged, err := b.store.ReadStream(b.ctx, "account-alice", eventfold.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(logged) != 2 || logged[1].ID != ev.ID || logged[1].GlobalPosition != ev.GlobalPosition {
			t.Fatalf("log %+v, result %+v", logged, ev)
		}
		// A multi-event command: two streams, one transaction.
		tr := b.mustDispatch(t, "", bank.Transfer{TransferID: "t1", From: "alice", To: "bob", Amount: 30})
		if len(tr.Events) != 2 || tr.Events[0].StreamID != "account-alice" || tr.Events[1].StreamID != "account-bob" ||
			tr.Events[0].StreamVersion != 3 || tr.Events[1].StreamVersion != 2 {
			t.Fatalf("transfer events: %+v", tr.Events)
		}
		if tr.Events[1].GlobalPosition <= tr.Events[0].GlobalPosition {
			t.Fatalf("positions not increasing within a command: %+v", tr.Events)
		}
		if got := b.balance(t, "alice"); got != 70 {
			t.Errorf("alice balance %d, want 70", got)
		}
		if got := b.balance(t, "bob"); got != 30 {
			t.Errorf("bob balance %d, want 30", got)
		}
		st, err := b.app.Statement(b.ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if len(st) != 1 || st[0].Amount != 30 || st[0].Counterparty != "alice" || st[0].GlobalPosition != tr.Events[1].GlobalPosition {
			t.Errorf("bob statement %+v", st)
		}
	})
}

func TestAfterCommit(t *testing.T) {
	var mu sync.Mutex
	var got []eventfold.Event
	cfg := &orchestrator.Config{AfterCommit: func(_ context.Context, evs []eventfold.Event) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, evs...)
	}}
	b := setup(t, eventfold.SQLite, cfg)
	b.open(t, "alice", "NL-1")
	res := b.mustDispatch(t, "dep-1", bank.Deposit{AccountID: "alice", Amount: 5})
	b.mustDispatch(t, "dep-1", bank.Deposit{AccountID: "alice", Amount: 5}) // duplicate: no hook
	_, _ = b.app.Dispatch(b.ctx, "", bank.Withdraw{AccountID: "alice", Amount: 500})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[1].ID != res.Events[0].ID {
		t.Fatalf("AfterCommit saw %+v", got)
	}
}

func TestRollbackOnHandlerError(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		b := setup(t, d, nil)
		b.open(t, "alice", "NL-1")
		b.open(t, "bob", "NL-2")
		b.mustDispatch(t, "", bank.Deposit{AccountID: "alice", Amount: 50})
		before := b.snapshot(t, "alice", "bob")

		for _, cmd := range []any{
			bank.Withdraw{AccountID: "alice", Amount: 51},
			bank.Transfer{From: "alice", To: "bob", Amount: 80},
		} {
			_, err := b.app.Dispatch(b.ctx, "rejected-"+fmt.Sprint(cmd), cmd)
			if !errors.Is(err, bank.ErrInsufficientFunds) {
				t.Fatalf("%T: want ErrInsufficientFunds, got %v", cmd, err)
			}
			var he *orchestrator.HandlerError
			if !errors.As(err, &he) || !strings.HasPrefix(he.Command, strings.TrimPrefix(fmt.Sprintf("%T", cmd), "bank.")) {
				t.Fatalf("want *HandlerError naming the command, got %#v", err)
			}
		}
		_, err := b.app.Dispatch(b.ctx, "", bank.Deposit{AccountID: "nobody", Amount: 1})
		if !errors.Is(err, bank.ErrNoAccount) {
			t.Fatalf("want ErrNoAccount, got %v", err)
		}
		b.snapshot(t, "alice", "bob").mustEqual(t, before)

		// A rejected command's id is not recorded: once funds arrive the
		// same id succeeds.
		b.mustDispatch(t, "", bank.Deposit{AccountID: "alice", Amount: 1})
		res := b.mustDispatch(t, "rejected-"+fmt.Sprint(bank.Withdraw{AccountID: "alice", Amount: 51}), bank.Withdraw{AccountID: "alice", Amount: 51})
		if res.Duplicate || len(res.Events) != 1 {
			t.Fatalf("retry after rejection: %+v", res)
		}
	})
}

func TestRollbackOnReducerError(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		b := setup(t, d, nil)
		b.open(t, "alice", "NL-1")
		b.mustDispatch(t, "", bank.Deposit{AccountID: "alice", Amount: 50})
		before := b.snapshot(t, "alice", "carol")

		// The read model's UNIQUE account number fails the "balances" reducer.
		_, err := b.app.Dispatch(b.ctx, "open-carol", bank.OpenAccount{AccountID: "carol", Owner: "Carol", Number: "NL-1"})
		var re *orchestrator.ReducerError
		if !errors.As(err, &re) {
			t.Fatalf("want *ReducerError, got %v", err)
		}
		if re.Reducer != "balances" || re.EventType != bank.EventAccountOpened || re.StreamID != "account-carol" || re.StreamVersion != 1 || re.EventID == "" {
			t.Fatalf("reducer error does not say what failed: %+v", re)
		}
		b.snapshot(t, "alice", "carol").mustEqual(t, before)

		// A reducer that fails after other reducers already wrote: their
		// writes roll back too.
		orchestrator.Reduce(b.o, bank.EventMoneyDeposited, func(_ context.Context, _ *sql.Tx, _ eventfold.Event, e bank.MoneyDeposited) error {
			if e.Amount == 13 {
				return errors.New("unlucky amount")
			}
			return nil
		}, orchestrator.WithName("superstition"))
		_, err = b.app.Dispatch(b.ctx, "", bank.Deposit{AccountID: "alice", Amount: 13})
		if !errors.As(err, &re) || re.Reducer != "superstition" || re.StreamVersion != 3 || !strings.Contains(err.Error(), "unlucky amount") {
			t.Fatalf("want superstition's *ReducerError, got %v", err)
		}
		b.snapshot(t, "alice", "carol").mustEqual(t, before)
		if got := b.balance(t, "alice"); got != 50 {
			t.Fatalf("balance %d after rolled-back deposit, want 50", got)
		}
		// And the same id opens carol once the number is free.
		res := b.mustDispatch(t, "open-carol", bank.OpenAccount{AccountID: "carol", Owner: "Carol", Number: "NL-3"})
		if res.Duplicate {
			t.Fatal("a rolled-back command id was recorded")
		}
	})
}

func TestRetryOnConflict(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		b := setup(t, d, nil)
		b.open(t, "alice", "NL-1")
		const workers, perWorker = 16, 4
		var wg sync.WaitGroup
		var mu sync.Mutex
		maxAttempts := 0
		errs := make(chan error, workers*perWorker)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perWorker; i++ {
					res, err := b.app.Dispatch(b.ctx, "", bank.Deposit{AccountID: "alice", Amount: int64(w*perWorker + i + 1)})
					if err != nil {
						errs <- err
						continue
					}
					mu.Lock()
					maxAttempts = max(maxAttempts, res.Attempts)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent deposit: %v", err)
		}
		n := workers * perWorker
		want := int64(n * (n + 1) / 2) // serial result: 1 + 2 + ... + n
		if got := b.balance(t, "alice"); got != want {
			t.Errorf("balance %d, want %d (lost update?)", got, want)
		}
		evs, err := b.store.ReadStream(b.ctx, "account-alice", eventfold.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != n+1 {
			t.Fatalf("%d events, want %d", len(evs), n+1)
		}
		for i, e := range evs {
			if e.StreamVersion != int64(i+1) {
				t.Fatalf("versions not dense: event %d has version %d", i, e.StreamVersion)
			}
		}
		st, _ := b.app.Statement(b.ctx, "alice")
		if len(st) != n {
			t.Errorf("statement has %d lines, want %d", len(st), n)
		}
		t.Logf("%s: max attempts of one command: %d", d, maxAttempts)
		if d != eventfold.SQLite && maxAttempts < 2 {
			t.Errorf("16 concurrent writers on one stream never conflicted: the retry path was not exercised")
		}
	})
}

func TestRetriesExhaustedStayTyped(t *testing.T) {
	b := setup(t, eventfold.SQLite, &orchestrator.Config{MaxAttempts: 3})
	runs := 0
	orchestrator.HandleAny(b.o, "Stale", func(_ context.Context, _ *sql.Tx, _ orchestrator.Command) ([]orchestrator.Emit, error) {
		runs++
		return []orchestrator.Emit{{Stream: "s", Expected: eventfold.Exact(7), Type: "T", Data: map[string]int{}}}, nil
	})
	_, err := b.o.Dispatch(b.ctx, orchestrator.Command{Name: "Stale"})
	var rex *orchestrator.RetriesExhaustedError
	var wev *eventfold.WrongExpectedVersionError
	var ae *orchestrator.AppendError
	if !errors.As(err, &rex) || rex.Attempts != 3 || !errors.As(err, &wev) || !errors.As(err, &ae) || !errors.Is(err, eventfold.ErrWrongExpectedVersion) {
		t.Fatalf("want typed exhausted-retries error, got %v", err)
	}
	if runs != 3 || wev.StreamID != "s" || ae.Stream != "s" {
		t.Fatalf("runs %d, %+v", runs, wev)
	}
}

func TestIdempotentRedelivery(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		b := setup(t, d, nil)
		b.open(t, "alice", "NL-1")
		var mu sync.Mutex
		handled := 0
		b.o.Use(func(next orchestrator.Dispatcher) orchestrator.Dispatcher { return next })
		orchestrator.ReduceEvent(b.o, "", func(context.Context, *sql.Tx, eventfold.Event) error {
			mu.Lock()
			handled++
			mu.Unlock()
			return nil
		}, orchestrator.WithName("counter"))

		first := b.mustDispatch(t, "deposit-42", bank.Deposit{AccountID: "alice", Amount: 42})
		before := b.snapshot(t, "alice")
		handledBefore := handled
		again := b.mustDispatch(t, "deposit-42", bank.Deposit{AccountID: "alice", Amount: 42})
		b.snapshot(t, "alice").mustEqual(t, before)
		if handled != handledBefore {
			t.Errorf("reducers ran for a duplicate")
		}
		if !again.Duplicate || first.Duplicate || len(again.Events) != 1 || again.Events[0].ID != first.Events[0].ID ||
			again.Events[0].GlobalPosition != first.Events[0].GlobalPosition || again.CommandID != "deposit-42" {
			t.Fatalf("redelivery: first %+v, again %+v", first, again)
		}
		if !again.Events[0].RecordedAt.Equal(first.Events[0].RecordedAt) && again.Events[0].RecordedAt.Sub(first.Events[0].RecordedAt).Abs() > 1e6 {
			t.Errorf("recorded_at differs: %v vs %v", first.Events[0].RecordedAt, again.Events[0].RecordedAt)
		}
		// A multi-event command replays all of its events, in order.
		b.open(t, "bob", "NL-2")
		tr := b.mustDispatch(t, "transfer-1", bank.Transfer{From: "alice", To: "bob", Amount: 2})
		tr2 := b.mustDispatch(t, "transfer-1", bank.Transfer{From: "alice", To: "bob", Amount: 2})
		if len(tr2.Events) != 2 || tr2.Events[0].ID != tr.Events[0].ID || tr2.Events[1].ID != tr.Events[1].ID {
			t.Fatalf("transfer replay %+v, want %+v", tr2.Events, tr.Events)
		}
		// The payload is compared: the same id with another amount is a
		// reused key, refused, not a replay (TestIdempotencyKeyScope).
		_, err := b.app.Dispatch(b.ctx, "deposit-42", bank.Deposit{AccountID: "alice", Amount: 1000})
		if !errors.Is(err, orchestrator.ErrIdempotencyKeyReused) {
			t.Fatalf("deposit-42 with another amount: %v, want ErrIdempotencyKeyReused", err)
		}

		// Concurrent duplicates: all succeed, one applies. (Losing attempts
		// may run reducers before they roll back, so only the database is
		// checked.)
		var wg sync.WaitGroup
		results := make([]*orchestrator.Result, 8)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := b.app.Dispatch(b.ctx, "deposit-concurrent", bank.Deposit{AccountID: "alice", Amount: 7})
				if err != nil {
					t.Errorf("concurrent duplicate: %v", err)
					return
				}
				results[i] = res
			}()
		}
		wg.Wait()
		fresh := 0
		for _, r := range results {
			if r == nil {
				continue
			}
			if !r.Duplicate {
				fresh++
			}
			if r.Events[0].ID != results[0].Events[0].ID {
				t.Errorf("different events for one command id: %s vs %s", r.Events[0].ID, results[0].Events[0].ID)
			}
		}
		if fresh != 1 {
			t.Errorf("%d dispatches applied the command, want 1", fresh)
		}
		if got := b.balance(t, "alice"); got != 42-2+7 {
			t.Errorf("balance %d, want %d", got, 42-2+7)
		}
		if v, _ := b.store.StreamVersion(b.ctx, "account-alice"); v != 4 {
			t.Errorf("alice stream version %d, want 4 (open, deposit, transfer, deposit)", v)
		}
		if st, _ := b.app.Statement(b.ctx, "alice"); len(st) != 3 {
			t.Errorf("alice statement has %d lines, want 3", len(st))
		}
	})
}

func TestMiddlewareOrder(t *testing.T) {
	b := setup(t, eventfold.SQLite, nil)
	var trace []string
	mw := func(name string) orchestrator.Middleware {
		return func(next orchestrator.Dispatcher) orchestrator.Dispatcher {
			return func(ctx context.Context, cmd orchestrator.Command) (*orchestrator.Result, error) {
				trace = append(trace, name+">")
				res, err := next(ctx, cmd)
				trace = append(trace, "<"+name)
				return res, err
			}
		}
	}
	b.o.Use(mw("a"), mw("b"))
	b.o.Use(mw("c"))
	orchestrator.HandleAny(b.o, "Noop", func(ctx context.Context, _ *sql.Tx, c orchestrator.Command) ([]orchestrator.Emit, error) {
		trace = append(trace, "handler")
		return nil, nil
	})
	if _, err := b.o.Dispatch(b.ctx, orchestrator.Command{Name: "Noop"}); err != nil {
		t.Fatal(err)
	}
	// bank.New installed ValidateCommands first: it is the outermost.
	want := "a> b> c> handler <c <b <a"
	if got := strings.Join(trace, " "); got != want {
		t.Fatalf("order %q, want %q", got, want)
	}

	// A middleware refusing a command: nothing runs.
	trace = nil
	denied := errors.New("not allowed")
	b.o.Use(orchestrator.Before(func(_ context.Context, c orchestrator.Command) error {
		if c.Envelope.Metadata["user"] != "admin" {
			return denied
		}
		return nil
	}))
	if _, err := b.o.Dispatch(b.ctx, orchestrator.Command{Name: "Noop"}); !errors.Is(err, denied) {
		t.Fatalf("want denied, got %v", err)
	}
	if strings.Contains(strings.Join(trace, " "), "handler") {
		t.Fatalf("handler ran for a refused command: %v", trace)
	}
	// Validation middleware (installed by bank.New) refuses bad payloads.
	_, err := b.app.Dispatch(b.ctx, "", bank.Deposit{AccountID: "x", Amount: -5})
	if !errors.Is(err, orchestrator.ErrInvalidCommand) || !errors.Is(err, bank.ErrInvalidAmount) {
		t.Fatalf("want ErrInvalidCommand wrapping ErrInvalidAmount, got %v", err)
	}
}

func TestMetadataFlow(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		b := setup(t, d, nil)
		b.open(t, "alice", "NL-1")
		b.open(t, "bob", "NL-2")
		b.mustDispatch(t, "", bank.Deposit{AccountID: "alice", Amount: 10})
		res, err := b.o.Dispatch(b.ctx, orchestrator.Command{
			Name:    bank.CommandTransfer,
			Payload: bank.Transfer{From: "alice", To: "bob", Amount: 3},
			Envelope: orchestrator.Envelope{
				ID: "cmd-1", CorrelationID: "corr-1",
				Metadata: map[string]any{"user": "u-7", "request_id": "req-9", "causation_id": "forged"},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		logged, err := b.store.ReadStream(b.ctx, "account-bob", eventfold.ReadStreamOptions{From: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range append(res.Events, logged...) {
			var md map[string]any
			if err := json.Unmarshal(ev.Metadata, &md); err != nil {
				t.Fatal(err)
			}
			if md["causation_id"] != "cmd-1" || md["correlation_id"] != "corr-1" || md["user"] != "u-7" || md["request_id"] != "req-9" || md["command"] != "Transfer" {
				t.Errorf("metadata of %s: %s", ev.Type, ev.Metadata)
			}
		}
		// Without a correlation id the command id is the correlation id;
		// without a command id one is generated (and returned).
		res = b.mustDispatch(t, "", bank.Deposit{AccountID: "alice", Amount: 1})
		var md map[string]any
		_ = json.Unmarshal(res.Events[0].Metadata, &md)
		if res.CommandID == "" || md["causation_id"] != res.CommandID || md["correlation_id"] != res.CommandID {
			t.Errorf("generated id %q, metadata %s", res.CommandID, res.Events[0].Metadata)
		}
	})
}

func TestDispatchJSON(t *testing.T) {
	b := setup(t, eventfold.SQLite, nil)
	env := orchestrator.Envelope{ID: "json-1"}
	res, err := b.o.DispatchJSON(b.ctx, bank.CommandOpenAccount, json.RawMessage(`{"account_id":"alice","owner":"Alice","number":"NL-1"}`), env)
	if err != nil || len(res.Events) != 1 {
		t.Fatalf("%v %+v", err, res)
	}
	_, err = b.o.DispatchJSON(b.ctx, bank.CommandDeposit, json.RawMessage(`{"account_id":"alice","amont":5}`), orchestrator.Envelope{})
	if !errors.Is(err, orchestrator.ErrInvalidCommand) || !strings.Contains(err.Error(), "amont") {
		t.Fatalf("unknown field: want ErrInvalidCommand, got %v", err)
	}
	_, err = b.o.DispatchJSON(b.ctx, "Rob", json.RawMessage(`{}`), orchestrator.Envelope{})
	if !errors.Is(err, orchestrator.ErrUnknownCommand) {
		t.Fatalf("want ErrUnknownCommand, got %v", err)
	}
	if got := b.o.Commands()[bank.CommandDeposit]; got == nil || got.Name() != "Deposit" {
		t.Fatalf("Commands() lists %v", got)
	}
}

func TestLoggingMiddleware(t *testing.T) {
	b := setup(t, eventfold.SQLite, nil)
	var buf strings.Builder
	b.o.Use(orchestrator.Logging(slog.New(slog.NewTextHandler(&buf, nil))))
	b.open(t, "alice", "NL-1")
	_, _ = b.app.Dispatch(b.ctx, "w-1", bank.Withdraw{AccountID: "alice", Amount: 5})
	out := buf.String()
	if !strings.Contains(out, `level=INFO msg="command dispatched" command=OpenAccount`) || !strings.Contains(out, "events=1 attempts=1 duplicate=false") {
		t.Errorf("success not logged: %s", out)
	}
	if !strings.Contains(out, `level=INFO msg="command failed" command=Withdraw`) || !strings.Contains(out, "command_id=w-1") || !strings.Contains(out, "insufficient funds") {
		t.Errorf("rejection not logged: %s", out)
	}
}
