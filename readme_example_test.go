package eventfold_test

// The Go snippets of README.md ("In Go", "Subscriptions and push") are the
// regions between "README:begin" and "README:end" below, compiled and run
// here; TestREADMESnippets keeps the README identical to them.

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/listener/sse"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/orchestrator/httpapi"
	"github.com/eventfold/eventfold/otelfold"
	"github.com/eventfold/eventfold/sqldriver"
	_ "github.com/eventfold/eventfold/sqldriver/sqlitedriver" // links SQLite, and only SQLite
)

// README:begin accounts
type OpenAccount struct {
	Account string `json:"account"`
	Balance int64  `json:"balance"`
}
type Withdraw struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}
type AccountOpened struct {
	Balance int64 `json:"balance"`
}
type MoneyWithdrawn struct {
	Amount int64 `json:"amount"`
}

var ErrInsufficientFunds = errors.New("insufficient funds")

// registerAccounts registers the account commands and reducers. Every reducer
// stores the stream version it applied; handlers expect exactly that version.
func registerAccounts(o *orchestrator.Orchestrator[*sql.Tx]) {
	orchestrator.Handle(o, "OpenAccount", func(ctx context.Context, tx *sql.Tx, c OpenAccount) ([]orchestrator.Emit, error) {
		return []orchestrator.Emit{{Stream: "account-" + c.Account, Expected: eventfold.NoStream, // refused if it exists
			Type: "AccountOpened", Data: AccountOpened{Balance: c.Balance}}}, nil
	})
	orchestrator.Handle(o, "Withdraw", func(ctx context.Context, tx *sql.Tx, c Withdraw) ([]orchestrator.Emit, error) {
		stream := "account-" + c.Account // the same id for the stream and its read-model row
		var balance, version int64       // with sqlc: q.GetAccount(ctx, tx, stream), same transaction
		err := tx.QueryRowContext(ctx, `SELECT balance, version FROM accounts WHERE id = ?`, stream).Scan(&balance, &version)
		if err != nil {
			return nil, err // sql.ErrNoRows: no such account
		}
		if balance < c.Amount {
			return nil, ErrInsufficientFunds // rolls back; errors.Is works on the result
		}
		return []orchestrator.Emit{{Stream: stream, Expected: eventfold.Exact(version),
			Type: "MoneyWithdrawn", Data: MoneyWithdrawn{Amount: c.Amount}}}, nil
	})
	orchestrator.Reduce(o, "AccountOpened", func(ctx context.Context, tx *sql.Tx, ev eventfold.Event, d AccountOpened) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO accounts (id, balance, version) VALUES (?, ?, ?)`,
			ev.StreamID, d.Balance, ev.StreamVersion)
		return err
	})
	orchestrator.Reduce(o, "MoneyWithdrawn", func(ctx context.Context, tx *sql.Tx, ev eventfold.Event, d MoneyWithdrawn) error {
		_, err := tx.ExecContext(ctx, `UPDATE accounts SET balance = balance - ?, version = ? WHERE id = ?`,
			d.Amount, ev.StreamVersion, ev.StreamID)
		return err
	})
}

// README:end

// openAccountsStore opens a migrated SQLite store with the accounts table
// in dir, as the first README snippet does.
func inGo(ctx context.Context, dir string) error {
	// README:begin in-go
	drv, err := sqldriver.Open(ctx, "sqlite://"+filepath.Join(dir, "app.db")) // or pgxdriver.New(pool): tx is a pgx.Tx
	if err != nil {
		return err
	}
	store := eventfold.New(drv, nil)
	defer store.Close()
	if err := store.Migrate(ctx); err != nil { // goose, own version table
		return err
	}
	// Your read model: in an application, your own goose migrations applied with
	// eventfold.MigrateApp (under eventfold's migration lock; see examples/bank).
	_, err = drv.DB().ExecContext(ctx, `CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL, version INTEGER NOT NULL)`)
	if err != nil {
		return err
	}

	o := orchestrator.New(store, nil)
	registerAccounts(o)
	_, err = o.Dispatch(ctx, orchestrator.Command{Name: "OpenAccount", Payload: OpenAccount{Account: "42", Balance: 100}})
	if err != nil {
		return err
	}
	for _, id := range []string{"withdraw-1", "withdraw-2", "withdraw-2", "withdraw-3"} {
		res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Withdraw", Payload: Withdraw{Account: "42", Amount: 40},
			Envelope: orchestrator.Envelope{ID: id}}) // the same ID again: the same events, nothing re-run
		switch {
		case errors.Is(err, ErrInsufficientFunds):
			fmt.Println(id, "refused:", ErrInsufficientFunds)
		case err != nil:
			return err
		default:
			fmt.Println(id, "version", res.Events[0].StreamVersion, "duplicate", res.Duplicate)
		}
	}
	// README:end
	return nil
}

// The README's "In Go" snippet: the second withdrawal succeeds (the reducer
// advanced the version the handler expects), a repeated id is a duplicate,
// the third withdrawal is refused.
func Example_inGo() {
	dir, _ := os.MkdirTemp("", "eventfold-readme")
	defer os.RemoveAll(dir)
	if err := inGo(context.Background(), dir); err != nil {
		fmt.Println("error:", err)
	}
	// Output:
	// withdraw-1 version 2 duplicate false
	// withdraw-2 version 3 duplicate false
	// withdraw-2 version 3 duplicate true
	// withdraw-3 refused: insufficient funds
}

// push runs the README's "Subscriptions and push" snippet on store and
// returns the HTTP handler it builds.
func push(ctx context.Context, store *eventfold.Store[*sql.Tx], welcome func(eventfold.Event) error) (http.Handler, error) {
	// README:begin push
	// The wake-up wiring: after each commit the notifier wakes this process's
	// readers through sig (and, on PostgreSQL, other processes with pg_notify).
	sig := listener.NewSignal()
	notifier := listener.NewNotifier(store, &listener.NotifierOptions{Signal: sig})
	go notifier.Run(ctx)
	o := orchestrator.New(store, &orchestrator.Config{AfterCommit: notifier.AfterCommit})
	registerAccounts(o)

	// Durable, at-least-once, one process at a time (lease), checkpoint in the database:
	sub, err := listener.New(store, "welcome-emails", func(ctx context.Context, ev eventfold.Event) error {
		return welcome(ev)
	}, &listener.Options{Wakeup: sig, Filter: listener.Filter{StreamPrefixes: []string{"account-"}, Types: []string{"AccountOpened"}}})
	if err != nil {
		return nil, err
	}
	go sub.Run(ctx)

	// Exactly-once for read models in the same database: handler writes + checkpoint in one transaction.
	proj, err := listener.NewTx(store, "opened-count", func(ctx context.Context, tx *sql.Tx, ev eventfold.Event) error {
		return nil // write your table with tx
	}, &listener.Options{Wakeup: sig})
	if err != nil {
		return nil, err
	}
	go proj.Run(ctx)

	events := sse.New(store, &sse.Config{Tail: listener.Options{Wakeup: sig}}) // Server-Sent Events, Last-Event-ID resume
	go events.Run(ctx)                                                         // the one shared tail that feeds every browser
	mux := http.NewServeMux()
	mux.Handle("GET /events", events)
	mux.Handle("POST /commands/{name}", httpapi.New(o, nil)) // POST a command as JSON, get its events
	// README:end
	return mux, nil
}

// The README's "Subscriptions and push" snippet: a command POSTed over HTTP
// reaches the subscriber and the SSE stream.
func Example_push() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, _ := os.MkdirTemp("", "eventfold-readme")
	defer os.RemoveAll(dir)
	drv, err := sqldriver.Open(ctx, "sqlite://"+filepath.Join(dir, "app.db"))
	if err != nil {
		panic(err)
	}
	store := eventfold.New(drv, nil)
	defer store.Close()
	defer time.Sleep(100 * time.Millisecond) // let the goroutines see ctx end before the store closes
	defer cancel()
	if err := store.Migrate(ctx); err != nil {
		panic(err)
	}
	if _, err := drv.DB().ExecContext(ctx, `CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL, version INTEGER NOT NULL)`); err != nil {
		panic(err)
	}
	welcomed := make(chan string, 1)
	mux, err := push(ctx, store, func(ev eventfold.Event) error { welcomed <- ev.StreamID; return nil })
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var stream *http.Response
	for { // 503 until the shared tail has started
		stream, err = http.Get(srv.URL + "/events")
		if err != nil {
			panic(err)
		}
		if stream.StatusCode == http.StatusOK {
			break
		}
		stream.Body.Close()
		time.Sleep(10 * time.Millisecond)
	}
	defer stream.Body.Close()
	resp, err := http.Post(srv.URL+"/commands/OpenAccount", "application/json", strings.NewReader(`{"account":"7","balance":5}`))
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println("POST:", resp.Status)
	select {
	case id := <-welcomed:
		fmt.Println("subscriber:", id)
	case <-time.After(10 * time.Second):
		fmt.Println("subscriber: nothing")
	}
	lines := bufio.NewScanner(stream.Body)
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "data: ") {
			fmt.Println("sse:", strings.Contains(lines.Text(), `"stream_id":"account-7"`))
			break
		}
	}
	// Output:
	// POST: 201 Created
	// subscriber: account-7
	// sse: true
}

// observe runs the README's "Observability" snippet: the push wiring of
// the previous snippet, instrumented.
func observe(ctx context.Context, store *eventfold.Store[*sql.Tx], welcome func(eventfold.Event) error) (http.Handler, error) {
	// README:begin otel
	// After your SDK setup (otel.SetTracerProvider, otel.SetMeterProvider):
	inst, err := otelfold.New(nil) // implements the Observer of orchestrator, listener and sse
	if err != nil {
		return nil, err
	}
	o := orchestrator.New(store, &orchestrator.Config{Observer: inst})
	registerAccounts(o)
	sub, err := listener.New(store, "welcome-emails", func(ctx context.Context, ev eventfold.Event) error {
		return welcome(ev) // ctx continues the trace of the command that appended ev
	}, &listener.Options{Observer: inst})
	if err != nil {
		return nil, err
	}
	go sub.Run(ctx)
	events := sse.New(store, &sse.Config{Observer: inst})
	go events.Run(ctx)
	if _, err := otelfold.ObserveLag(inst, store); err != nil { // the subscription lag gauge
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /events", inst.HTTP(events))
	mux.Handle("POST /commands/{name}", inst.HTTP(httpapi.New(o, nil))) // continues the client's traceparent
	// README:end
	return mux, nil
}

// The README's "Observability" snippet and its example trace: a POST, its
// dispatch with its steps, and the subscriber's span, in one trace.
func Example_observability() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, _ := os.MkdirTemp("", "eventfold-readme")
	defer os.RemoveAll(dir)
	drv, err := sqldriver.Open(ctx, "sqlite://"+filepath.Join(dir, "app.db"))
	if err != nil {
		panic(err)
	}
	store := eventfold.New(drv, nil)
	defer store.Close()
	defer time.Sleep(100 * time.Millisecond)
	defer cancel()
	if err := store.Migrate(ctx); err != nil {
		panic(err)
	}
	if _, err := drv.DB().ExecContext(ctx, `CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL, version INTEGER NOT NULL)`); err != nil {
		panic(err)
	}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(ctx)
	otel.SetTracerProvider(tp)
	defer otel.SetTracerProvider(tracenoop.NewTracerProvider())
	welcomed := make(chan struct{}, 1)
	mux, err := observe(ctx, store, func(eventfold.Event) error { welcomed <- struct{}{}; return nil })
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/commands/OpenAccount", "application/json", strings.NewReader(`{"account":"7","balance":5}`))
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	<-welcomed
	for len(spans.Ended()) < 7 {
		time.Sleep(10 * time.Millisecond)
	}
	printTrace(spans.Ended())
	// Output:
	// POST /commands/{name}  http.response.status_code=201
	//   dispatch OpenAccount  eventfold.dispatch.outcome=committed eventfold.dispatch.attempts=1 eventfold.dispatch.batch_size=1 eventfold.event.count=1
	//     handle OpenAccount
	//     append  eventfold.stream=account-7 eventfold.event.type=AccountOpened eventfold.event.count=1 eventfold.expected_version=no-stream
	//       process welcome-emails  eventfold.stream=account-7 eventfold.event.type=AccountOpened
	//     reduce github.com/eventfold/eventfold_test.registerAccounts.func3  eventfold.event.type=AccountOpened eventfold.event.count=1
	//     commit  eventfold.dispatch.batch_size=1
}

// printTrace prints spans as a tree, children in start order, with a few
// attributes.
func printTrace(spans []sdktrace.ReadOnlySpan) {
	show := map[string]bool{"http.response.status_code": true, "eventfold.dispatch.outcome": true, "eventfold.dispatch.attempts": true,
		"eventfold.dispatch.batch_size": true, "eventfold.stream": true, "eventfold.event.count": true, "eventfold.expected_version": true, "eventfold.event.type": true}
	children := map[oteltrace.SpanID][]sdktrace.ReadOnlySpan{}
	ids := map[oteltrace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext().SpanID()] = true
	}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if p := s.Parent().SpanID(); ids[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		line := strings.Repeat("  ", depth) + s.Name()
		var kv []string
		for _, a := range s.Attributes() {
			if show[string(a.Key)] {
				kv = append(kv, string(a.Key)+"="+a.Value.String())
			}
		}
		if len(kv) > 0 {
			line += "  " + strings.Join(kv, " ")
		}
		fmt.Println(line)
		kids := children[s.SpanContext().SpanID()]
		sort.Slice(kids, func(i, j int) bool { return kids[i].StartTime().Before(kids[j].StartTime()) })
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
}
