// Package demo is the main job of eventfold's README, run by `esctl demo`:
// a bank ledger on a real database that shows, for each write, the SQL the
// database runs (BEGIN ... COMMIT or ROLLBACK), a rejected command and a
// failing reducer with proof that nothing was stored, and then reads the
// data back from the event log and from the read model.
package demo

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/examples/bank"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/sqldriver"
)

// Run runs the demo on the database dsn names (an eventfold DSN:
// sqlite://PATH, postgres://..., mysql://...) and writes the story to w.
// It applies eventfold's and the bank's migrations first. On a database
// that already holds demo accounts it uses fresh account ids.
func Run(ctx context.Context, w io.Writer, dsn string) error {
	rec := &recorder{}
	db, d, err := openRecorded(dsn, rec)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("demo: connect to %s: %w", sqldriver.Redact(dsn), err)
	}
	drv, err := sqldriver.New(db, d)
	if err != nil {
		return err
	}
	store := eventfold.New(drv, nil)
	if err := store.Migrate(ctx); err != nil {
		return err
	}
	if err := bank.Migrate(ctx, db, d); err != nil {
		return err
	}
	// The push wiring: after each commit the notifier wakes the live
	// subscriber below through sig (and, on PostgreSQL, other processes).
	sig := listener.NewSignal()
	notifier := listener.NewNotifier(store, &listener.NotifierOptions{Signal: sig})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = notifier.Run(ctx) }()
	app, err := bank.New(store, &orchestrator.Config{AfterCommit: notifier.AfterCommit})
	if err != nil {
		return err
	}
	r := &run{ctx: ctx, w: w, rec: rec, store: store, app: app, pushed: make(chan eventfold.Event, 64)}
	// A live subscriber, started before the first command: it receives each
	// committed event (never a rolled-back one) as the commit wakes it.
	head, err := store.Head(ctx) // fixed now: the subscriber must not start after the first commit
	if err != nil {
		return err
	}
	// The subscriber reads through a connection pool of its own, so that its
	// reads do not appear among the commands' SQL.
	subDrv, err := sqldriver.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer subDrv.Close()
	subStore := eventfold.New(subDrv, nil)
	tailDone := make(chan struct{})
	go func() {
		defer close(tailDone)
		_ = listener.Tail(ctx, subStore, head, &listener.Options{Wakeup: sig, PollInterval: time.Second},
			func(_ context.Context, b listener.Batch) error {
				for _, e := range b.Events {
					r.pushed <- e
				}
				return nil
			})
	}()
	err = r.story(dsn, d)
	cancel()
	<-tailDone
	return err
}

type run struct {
	ctx   context.Context
	w     io.Writer
	rec   *recorder
	store *eventfold.Store[*sql.Tx]
	app   *bank.App
	n     int
	// suffix keeps account ids fresh on a database used before.
	suffix string
	// pushed receives what the live subscriber got.
	pushed chan eventfold.Event
	// explained: the expected-version codes were explained once.
	explained bool
}

func (r *run) printf(format string, args ...any) { fmt.Fprintf(r.w, format, args...) }

func (r *run) acct(name string) string { return name + r.suffix }

func (r *run) story(dsn string, d eventfold.Dialect) error {
	if accs, err := r.app.Accounts(r.ctx); err != nil {
		return err
	} else if len(accs) > 0 {
		b := make([]byte, 2)
		_, _ = rand.Read(b)
		r.suffix = "-" + hex.EncodeToString(b)
	}
	alice, bob, carol := r.acct("alice"), r.acct("bob"), r.acct("carol")

	r.printf("eventfold demo: a bank ledger, \"Redux for the backend\"\n")
	r.printf("database: %s (%s); migrations applied (eventfold_goose_version, bank_goose_version)\n", sqldriver.Redact(dsn), d)
	r.printf("a live subscriber is listening: it will receive every committed event (see the end)\n\n")
	r.printf("Every write is one command, dispatched in ONE transaction:\n")
	r.printf("  BEGIN -> handler (validates against the read model) -> append events -> reducers (update read models) -> COMMIT\n")
	r.printf("Any error rolls everything back. Below each command: the SQL the database ran, in order.\n")

	if _, err := r.dispatch("Open two accounts (1/2)", "open-"+alice, bank.CommandOpenAccount,
		bank.OpenAccount{AccountID: alice, Owner: "Alice", Number: "NL01-" + alice}); err != nil {
		return err
	}
	if _, err := r.dispatch("Open two accounts (2/2)", "open-"+bob, bank.CommandOpenAccount,
		bank.OpenAccount{AccountID: bob, Owner: "Bob", Number: "NL01-" + bob}); err != nil {
		return err
	}
	if _, err := r.dispatch("Deposit 100.00 into alice", "deposit-1-"+alice, bank.CommandDeposit,
		bank.Deposit{AccountID: alice, Amount: 10000}); err != nil {
		return err
	}
	if _, err := r.dispatch("Transfer 30.00 alice -> bob: one command, two events on two streams", "transfer-1-"+alice, bank.CommandTransfer,
		bank.Transfer{TransferID: "tr-1", From: alice, To: bob, Amount: 3000}); err != nil {
		return err
	}

	// Rejected by the handler.
	before, err := r.proof(bob, carol)
	if err != nil {
		return err
	}
	_, err = r.dispatch("Withdraw 500.00 from bob: the handler refuses (insufficient funds)", "withdraw-1-"+bob, bank.CommandWithdraw,
		bank.Withdraw{AccountID: bob, Amount: 50000})
	if !errors.Is(err, bank.ErrInsufficientFunds) {
		return fmt.Errorf("demo: expected insufficient funds, got %v", err)
	}
	if err := r.proveUnchanged(before, bob); err != nil {
		return err
	}

	// Rejected by a reducer.
	_, err = r.dispatch("Open carol with alice's account number: the handler accepts, the reducer fails", "open-"+carol, bank.CommandOpenAccount,
		bank.OpenAccount{AccountID: carol, Owner: "Carol", Number: "NL01-" + alice})
	var re *orchestrator.ReducerError
	if !errors.As(err, &re) {
		return fmt.Errorf("demo: expected a reducer error, got %v", err)
	}
	r.printf("   (account numbers are unique across accounts, i.e. across streams: only the read model's\n")
	r.printf("    UNIQUE constraint enforces that without races, and its failure takes the event down with it)\n")
	if err := r.proveUnchanged(before, carol); err != nil {
		return err
	}

	// Redelivery.
	res, err := r.dispatch("The client resends the deposit (same command id): nothing runs twice", "deposit-1-"+alice, bank.CommandDeposit,
		bank.Deposit{AccountID: alice, Amount: 10000})
	if err != nil {
		return err
	}
	if !res.Duplicate {
		return fmt.Errorf("demo: the resent deposit was applied again")
	}

	if err := r.retrieve(alice, bob); err != nil {
		return err
	}
	return r.showPushed(dsn, alice, bob)
}

// showPushed prints what the live subscriber received: the committed
// events of this run, in log order, and nothing that rolled back.
func (r *run) showPushed(dsn, alice, bob string) error {
	want := 0
	evs, err := r.store.ReadAll(r.ctx, eventfold.ReadAllOptions{})
	if err != nil {
		return err
	}
	for _, e := range evs {
		if r.mine(e, alice, bob) {
			want++
		}
	}
	r.printf("\n== Push: what the live subscriber received (listener.Tail, woken by each commit)\n")
	timeout := time.After(10 * time.Second)
	for got := 0; got < want; {
		select {
		case e := <-r.pushed:
			if !r.mine(e, alice, bob) {
				continue
			}
			got++
			r.printf("  position %-16d %-22s v%d  %s\n", e.GlobalPosition, e.StreamID, e.StreamVersion, e.Type)
		case <-timeout:
			return fmt.Errorf("demo: the live subscriber received %d of %d events", got, want)
		}
	}
	r.printf("  (the rejected withdrawal and carol's failed opening never reached it: they rolled back)\n")
	r.printf("\nThe database stays; look inside with\n  esctl --dsn %s read --all\n  esctl --dsn %s stats\n", sqldriver.Redact(dsn), sqldriver.Redact(dsn))
	return nil
}

// mine tells this run's events from earlier runs' on a reused database.
func (r *run) mine(e eventfold.Event, alice, bob string) bool {
	return e.StreamID == bank.StreamID(alice) || e.StreamID == bank.StreamID(bob)
}

// dispatch runs one command and prints the SQL and the outcome.
func (r *run) dispatch(title, id, name string, payload any) (*orchestrator.Result, error) {
	r.n++
	r.printf("\n== %d. %s\n", r.n, title)
	js, _ := json.Marshal(payload)
	r.printf("command  %s %s  (command id %q)\n", name, js, id)
	r.rec.start()
	res, err := r.app.Orchestrator.Dispatch(r.ctx, orchestrator.Command{
		Name: name, Payload: payload,
		Envelope: orchestrator.Envelope{ID: id, Metadata: map[string]any{"user": "demo"}},
	})
	stmts := r.rec.stop()
	r.printf("SQL:\n")
	for i, s := range stmts {
		label := s.step
		if label == "" {
			label = "orchestrator"
		}
		sql := oneLine(s.sql)
		if !strings.HasPrefix(label, "append") { // the lines that matter are never cut
			sql = clip(sql, 96)
		}
		r.printf("  %2d  %-36s %s%s\n", i+1, label, sql, renderArgs(s))
		if strings.HasPrefix(label, "append") && !r.explained {
			r.explained = true
			r.printf("      %-36s (expected version: -2 no stream yet, -1 any, -3 the stream must exist, n exactly version n)\n", "")
		}
	}
	switch {
	case err != nil:
		r.printf("result   ROLLED BACK: %v\n", err)
	case res.Duplicate:
		r.printf("result   DUPLICATE: command id already committed; returned its %d event(s), appended nothing\n", len(res.Events))
		r.printEvents(res.Events)
	default:
		r.printf("result   COMMITTED %d event(s) (attempts: %d):\n", len(res.Events), res.Attempts)
		r.printEvents(res.Events)
	}
	return res, err
}

func (r *run) printEvents(evs []eventfold.Event) {
	for _, e := range evs {
		r.printf("         position %d  %s v%d  %s %s\n", e.GlobalPosition, e.StreamID, e.StreamVersion, e.Type, e.Data)
	}
}

// state is what "nothing was stored" is checked against.
type state struct {
	head     int64
	versions map[string]int64
	accounts []bank.Account
}

func (r *run) proof(accounts ...string) (state, error) {
	s := state{versions: map[string]int64{}}
	var err error
	if s.head, err = r.store.LastPosition(r.ctx); err != nil { // every commit, not just what readers may see yet
		return s, err
	}
	for _, a := range accounts {
		if s.versions[a], err = r.store.StreamVersion(r.ctx, bank.StreamID(a)); err != nil {
			return s, err
		}
	}
	all, err := r.app.Accounts(r.ctx)
	for _, a := range all {
		if r.suffix == "" || strings.HasSuffix(a.AccountID, r.suffix) { // not earlier runs' accounts
			s.accounts = append(s.accounts, a)
		}
	}
	return s, err
}

func (r *run) proveUnchanged(before state, accounts ...string) error {
	after, err := r.proof(accounts...)
	if err != nil {
		return err
	}
	same := after.head == before.head && fmt.Sprint(after.accounts) == fmt.Sprint(before.accounts)
	var vs []string
	for _, a := range accounts {
		same = same && after.versions[a] == before.versions[a]
		if after.versions[a] == 0 {
			vs = append(vs, fmt.Sprintf("no stream %s", bank.StreamID(a)))
		} else {
			vs = append(vs, fmt.Sprintf("stream %s still at version %d", bank.StreamID(a), after.versions[a]))
		}
	}
	r.printf("proof    last log position still %d; %s; read model still %d accounts, unchanged\n",
		after.head, strings.Join(vs, ", "), len(after.accounts))
	if !same {
		return fmt.Errorf("demo: a rolled-back command left traces: before %+v, after %+v", before, after)
	}
	return nil
}

// waitComplete waits (a few seconds at most) until readers may see every
// committed event. On PostgreSQL a writing transaction elsewhere in the
// cluster holds the gap-free read horizon back for its duration.
func (r *run) waitComplete() error {
	last, err := r.store.LastPosition(r.ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	head, err := r.store.WaitHead(ctx, last)
	if errors.Is(err, context.DeadlineExceeded) && r.ctx.Err() == nil {
		r.printf("  (the log is complete only up to position %d of %d: a long transaction elsewhere holds readers back; they lag, they lose nothing)\n", head, last)
		return nil
	}
	return err
}

// retrieve reads the data back: the log, then the read models.
func (r *run) retrieve(alice, bob string) error {
	r.printf("\n== Reading back\n")
	r.printf("The event log (store.ReadAll from position 0), the source of truth:\n")
	if err := r.waitComplete(); err != nil {
		return err
	}
	evs, err := r.store.ReadAll(r.ctx, eventfold.ReadAllOptions{})
	if err != nil {
		return err
	}
	r.printf("  %-16s %-22s %3s  %-17s %-44s %s\n", "position", "stream", "ver", "type", "data", "metadata (causation / correlation / user)")
	for _, e := range evs {
		if r.suffix != "" && !strings.HasSuffix(e.StreamID, r.suffix) {
			continue // events of earlier demo runs
		}
		var md struct {
			Causation   string `json:"causation_id"`
			Correlation string `json:"correlation_id"`
			User        string `json:"user"`
		}
		_ = json.Unmarshal(e.Metadata, &md)
		r.printf("  %-16d %-22s %3d  %-17s %-44s %s / %s / %s\n", e.GlobalPosition, e.StreamID, e.StreamVersion, e.Type, clip(string(e.Data), 44), md.Causation, md.Correlation, md.User)
	}
	r.printf("\nRead model \"balances\" (table bank_accounts, sqlc query ListAccounts):\n")
	accs, err := r.app.Accounts(r.ctx)
	if err != nil {
		return err
	}
	r.printf("  %-14s %-8s %-20s %10s %8s\n", "account", "owner", "number", "balance", "version")
	for _, a := range accs {
		if a.AccountID != alice && a.AccountID != bob {
			continue
		}
		r.printf("  %-14s %-8s %-20s %10s %8d\n", a.AccountID, a.Owner, a.Number, money(a.Balance), a.Version)
	}
	for _, id := range []string{alice, bob} {
		st, err := r.app.Statement(r.ctx, id)
		if err != nil {
			return err
		}
		r.printf("\nRead model \"statement\" of %s (table bank_ledger, sqlc query ListLedger):\n", id)
		for _, e := range st {
			r.printf("  v%-3d %-17s %10s %s\n", e.Version, e.Kind, money(e.Amount), e.Counterparty)
		}
	}
	return nil
}

func money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func renderArgs(s statement) string {
	if len(s.args) == 0 {
		return ""
	}
	parts := make([]string, len(s.args))
	for i, a := range s.args {
		v := a.Value
		if valuer, ok := v.(driver.Valuer); ok {
			if plain, err := valuer.Value(); err == nil {
				v = plain
			}
		}
		switch v := v.(type) {
		case [][]byte:
			items := make([]string, len(v))
			for j, b := range v {
				items[j] = string(b)
			}
			parts[i] = clip(fmt.Sprint(items), 24)
		case string:
			parts[i] = fmt.Sprintf("%q", clip(v, 24))
		case []byte:
			parts[i] = clip(string(v), 24)
		case nil:
			parts[i] = "NULL"
		default:
			parts[i] = clip(fmt.Sprint(v), 24)
		}
	}
	return "  <- " + clip(strings.Join(parts, ", "), 90)
}
