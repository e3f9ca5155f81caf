package orchestrator_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/examples/bank"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
)

// bundle is what each test works with: a fresh migrated database with the
// bank example's read models and an App over it.
type bundle struct {
	ctx   context.Context
	store *eventfold.Store[*sql.Tx]
	app   *bank.App
	o     *orchestrator.Orchestrator[*sql.Tx]
}

func setup(t *testing.T, d eventfold.Dialect, cfg *orchestrator.Config) *bundle {
	t.Helper()
	ctx := context.Background()
	store := testdb.SQLStore(t, d)
	if err := bank.Migrate(ctx, store.Driver().DB(), d); err != nil {
		t.Fatalf("bank migrations: %v", err)
	}
	if cfg == nil {
		cfg = &orchestrator.Config{MaxAttempts: 200, BaseBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	}
	app, err := bank.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{ctx: ctx, store: store, app: app, o: app.Orchestrator}
}

// forEachDialect runs fn per dialect the bank example supports.
func forEachDialect(t *testing.T, fn func(t *testing.T, d eventfold.Dialect)) {
	for _, d := range []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres, eventfold.MySQL} {
		t.Run(string(d), func(t *testing.T) { fn(t, d) })
	}
}

func (b *bundle) mustDispatch(t *testing.T, id string, cmd any) *orchestrator.Result {
	t.Helper()
	res, err := b.app.Dispatch(b.ctx, id, cmd)
	if err != nil {
		t.Fatalf("dispatch %T: %v", cmd, err)
	}
	return res
}

func (b *bundle) open(t *testing.T, id, number string) {
	t.Helper()
	b.mustDispatch(t, "", bank.OpenAccount{AccountID: id, Owner: "Owner of " + id, Number: number})
}

func (b *bundle) balance(t *testing.T, id string) int64 {
	t.Helper()
	acc, found, err := b.app.Account(b.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("account %q not in the read model", id)
	}
	return acc.Balance
}

// snapshot is what "nothing was stored" is checked against.
type snapshot struct {
	head     int64
	versions map[string]int64
	accounts []bank.Account
	lines    map[string]int
}

func (b *bundle) snapshot(t *testing.T, accounts ...string) snapshot {
	t.Helper()
	s := snapshot{versions: map[string]int64{}, lines: map[string]int{}}
	var err error
	if s.head, err = b.store.LastPosition(b.ctx); err != nil {
		t.Fatal(err)
	}
	if s.accounts, err = b.app.Accounts(b.ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := range accounts {
		if s.versions[a], err = b.store.StreamVersion(b.ctx, bank.StreamID(a)); err != nil {
			t.Fatal(err)
		}
		st, err := b.app.Statement(b.ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		s.lines[a] = len(st)
	}
	return s
}

func (s snapshot) mustEqual(t *testing.T, other snapshot) {
	t.Helper()
	if s.head != other.head {
		t.Errorf("log head moved: %d -> %d", s.head, other.head)
	}
	for a, v := range s.versions {
		if other.versions[a] != v {
			t.Errorf("stream of %s moved: version %d -> %d", a, v, other.versions[a])
		}
		if other.lines[a] != s.lines[a] {
			t.Errorf("statement of %s changed: %d -> %d lines", a, s.lines[a], other.lines[a])
		}
	}
	if len(s.accounts) != len(other.accounts) {
		t.Fatalf("read model has %d accounts, had %d", len(other.accounts), len(s.accounts))
	}
	for i := range s.accounts {
		if s.accounts[i] != other.accounts[i] {
			t.Errorf("read model changed: %+v -> %+v", s.accounts[i], other.accounts[i])
		}
	}
}
