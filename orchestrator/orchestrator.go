package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"sync"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
)

// Orchestrator dispatches commands over one Store. Register handlers,
// reducers and middleware first (Handle, Reduce, Use), then dispatch from
// any number of goroutines; registration is safe at any time but is meant
// for start-up.
type Orchestrator[TTx any] struct {
	store *eventfold.Store[TTx]
	cfg   Config

	mu       sync.RWMutex
	handlers map[string]*handlerEntry[TTx]
	reducers map[string][]*reducerEntry[TTx] // by event type
	all      []*reducerEntry[TTx]            // run for every event type
	mws      []Middleware
	chain    Dispatcher
	group    *groupCommitter[TTx] // nil unless Config.GroupCommit is set
	markers  markerState
	// deferrer is the driver's WriteDeferrer (pgxdriver), nil elsewhere:
	// WithDeferredWrites is then a no-op.
	deferrer contract.WriteDeferrer[TTx]
}

// innermost returns the Dispatcher the middleware wraps: the group
// committer when group commit is on, else a transaction per command.
func (o *Orchestrator[TTx]) innermost() Dispatcher {
	if o.group != nil {
		return o.group.dispatch
	}
	return o.dispatch
}

type handlerEntry[TTx any] struct {
	name string
	typ  reflect.Type // nil for untyped handlers (payload passed as is)
	// decode turns JSON into the handler's payload type.
	decode func(raw json.RawMessage, strict bool) (any, error)
	run    func(ctx context.Context, tx TTx, payload any) ([]Emit, error)
}

type reducerEntry[TTx any] struct {
	name string
	// deferred: WithDeferredWrites (effective only when o.deferrer is set).
	deferred bool
	run      func(ctx context.Context, tx TTx, ev eventfold.Event) error
	// batch, when set, takes a run of consecutive events of its type at
	// once (ReduceBatch); run is then unused.
	batch func(ctx context.Context, tx TTx, evs []eventfold.Event) error
}

// New returns an Orchestrator over store. cfg may be nil.
func New[TTx any](store *eventfold.Store[TTx], cfg *Config) *Orchestrator[TTx] {
	if cfg == nil {
		cfg = &Config{}
	}
	o := &Orchestrator[TTx]{
		store:    store,
		cfg:      cfg.withDefaults(),
		handlers: map[string]*handlerEntry[TTx]{},
		reducers: map[string][]*reducerEntry[TTx]{},
	}
	caps := store.Driver().Ops().Capabilities()
	o.markers.supported = caps.CommitMarkers
	o.markers.on = o.markers.supported && !o.cfg.NoCommitMarkers
	o.deferrer, _ = any(store.Driver()).(contract.WriteDeferrer[TTx])
	if o.cfg.GroupCommit != nil {
		gc := *o.cfg.GroupCommit
		if gc.Committers <= 0 && caps.SingleWriter {
			gc.Committers = 1
		}
		o.group = newGroupCommitter(o, gc)
	}
	o.chain = o.innermost()
	return o
}

// Store returns the store the orchestrator appends to.
func (o *Orchestrator[TTx]) Store() *eventfold.Store[TTx] { return o.store }

// Handle registers the handler for command name. The handler runs inside
// the dispatch transaction: it may read (and lock) read-model rows through
// tx to validate the command, and returns the events to append, or an
// error, which rolls everything back. A handler may run more than once for
// one dispatch (retries re-run it on fresh state), so it must not have side
// effects outside tx. Registering a name twice, or a name that
// eventfold.ValidateIdentifier refuses, panics.
func Handle[TTx, C any](o *Orchestrator[TTx], name string, fn func(ctx context.Context, tx TTx, cmd C) ([]Emit, error)) {
	typ := reflect.TypeFor[C]()
	o.addHandler(&handlerEntry[TTx]{
		name: name,
		typ:  typ,
		decode: func(raw json.RawMessage, strict bool) (any, error) {
			var c C
			if err := decodeJSON(raw, &c, strict); err != nil {
				return nil, err
			}
			return c, nil
		},
		run: func(ctx context.Context, tx TTx, payload any) ([]Emit, error) {
			c, ok := payload.(C)
			if !ok {
				return nil, fmt.Errorf("%w: command %q wants a %v payload, got %T", ErrInvalidCommand, name, typ, payload)
			}
			return fn(ctx, tx, c)
		},
	})
}

// HandleAny registers an untyped handler: it receives the payload as given
// to Dispatch (a json.RawMessage when dispatched from JSON).
func HandleAny[TTx any](o *Orchestrator[TTx], name string, fn func(ctx context.Context, tx TTx, cmd Command) ([]Emit, error)) {
	o.addHandler(&handlerEntry[TTx]{
		name:   name,
		decode: func(raw json.RawMessage, _ bool) (any, error) { return raw, nil },
		run: func(ctx context.Context, tx TTx, payload any) ([]Emit, error) {
			c, _ := CommandFrom(ctx)
			c.Payload = payload
			return fn(ctx, tx, c)
		},
	})
}

func (o *Orchestrator[TTx]) addHandler(h *handlerEntry[TTx]) {
	// The name is stored (command records, event metadata), so it follows
	// the identifier rules; a bad one is a programming error.
	if err := eventfold.ValidateIdentifier("command name", h.name, 0); err != nil {
		panic("orchestrator: Handle: " + err.Error())
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, dup := o.handlers[h.name]; dup {
		panic(fmt.Sprintf("orchestrator: command %q registered twice", h.name))
	}
	o.handlers[h.name] = h
}

// ReducerOption adjusts a reducer registration.
type ReducerOption func(*reducerOptions)

type reducerOptions struct {
	name     string
	deferred bool
}

// WithName names a reducer in errors and logs (defaults to the Go function
// name), e.g. "balances" or "statement".
func WithName(name string) ReducerOption {
	return func(r *reducerOptions) { r.name = name }
}

// WithDeferredWrites lets the reducer's writes travel with the
// transaction's next statement or its COMMIT instead of costing a round
// trip each (PostgreSQL through pgxdriver; elsewhere, and on a pgx.Tx
// that pgxdriver's Begin did not make, it is a no-op: every statement
// runs at once, as without it).
//
// The reducer's tx.Exec with arguments queues the statement and returns
// at once. What it cannot do is report on the statement:
//
//   - the command tag is "DEFERRED" and RowsAffected is 0, so a reducer
//     that reads rows affected (sqlc :execrows or :execresult, an
//     optimistic "UPDATE ... WHERE version = $n" checking that one row
//     changed) must not use this option;
//   - an error (a constraint, a serialization failure) comes back later:
//     from the next statement the transaction runs (the reducer's own
//     Query/QueryRow/SendBatch/CopyFrom, a later reducer's, the store's),
//     or from COMMIT. Either way the dispatch fails with a *ReducerError
//     naming this reducer and event, retried as the same error would be
//     without the option, and nothing of the command is stored;
//   - the arguments are encoded when the statement is sent: do not
//     modify them (a reused []byte) after Exec returns.
//
// Reads see the queued writes: every other statement on the transaction
// sends them first. An Exec without arguments runs at once (pgx sends it
// in the simple protocol, which allows several statements), and so does
// every statement after the reducer takes a savepoint with tx.Begin, uses
// tx.Conn() or tx.LargeObjects(). With group commit, a command's deferred
// writes are sent at the end of its reducers (before its idempotency
// record and the next command), so that a failing one is blamed on its
// command alone; DispatchTx, Apply and ApplyAll send them before they
// return. Only a Dispatch without group commit lets them go with COMMIT.
func WithDeferredWrites() ReducerOption {
	return func(r *reducerOptions) { r.deferred = true }
}

// newReducer returns a reducer entry with opts applied.
func newReducer[TTx any](fn any, opts []ReducerOption) *reducerEntry[TTx] {
	var r reducerOptions
	for _, opt := range opts {
		opt(&r)
	}
	e := &reducerEntry[TTx]{name: r.name, deferred: r.deferred}
	if e.name == "" {
		e.name = "reducer"
		if f := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()); f != nil {
			e.name = f.Name()
		}
	}
	return e
}

// Reduce registers a reducer for events of type eventType; the event's
// data is decoded from JSON into E. Any number of reducers may be
// registered per type (one per read model, say); they run in registration
// order, in the dispatch transaction, before the commit. An error rolls the
// whole command back, events included.
func Reduce[TTx, E any](o *Orchestrator[TTx], eventType string, fn func(ctx context.Context, tx TTx, ev eventfold.Event, data E) error, opts ...ReducerOption) {
	e := newReducer[TTx](fn, opts)
	e.run = func(ctx context.Context, tx TTx, ev eventfold.Event) error {
		var data E
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			return fmt.Errorf("decode %s data: %w", ev.Type, err)
		}
		return fn(ctx, tx, ev, data)
	}
	o.addReducer(eventType, e)
}

// ReduceEvent registers an untyped reducer for events of type eventType,
// or, when eventType is "", for every event.
func ReduceEvent[TTx any](o *Orchestrator[TTx], eventType string, fn func(ctx context.Context, tx TTx, ev eventfold.Event) error, opts ...ReducerOption) {
	e := newReducer[TTx](fn, opts)
	e.run = fn
	o.addReducer(eventType, e)
}

// ReduceBatch registers a reducer that receives runs of consecutive events
// of eventType at once, so that it can update its read model with one
// statement per run (a multi-row upsert) instead of one per event. A
// dispatch hands it the command's run of such events; a replay
// (Orchestrator.ApplyAll) whole pages of them, which is what makes
// rebuilding a read model fast where every statement is a network round
// trip.
//
// Order: reducers of an event type run in registration order. When a type
// has a batch reducer, each reducer gets the whole run before the next
// reducer starts (rather than event by event): read models must not depend
// on seeing each other's state between two events of one run.
func ReduceBatch[TTx any](o *Orchestrator[TTx], eventType string, fn func(ctx context.Context, tx TTx, evs []eventfold.Event) error, opts ...ReducerOption) {
	e := newReducer[TTx](fn, opts)
	e.batch = fn
	o.addReducer(eventType, e)
}

func (o *Orchestrator[TTx]) addReducer(eventType string, r *reducerEntry[TTx]) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if eventType == "" {
		o.all = append(o.all, r)
		return
	}
	o.reducers[eventType] = append(o.reducers[eventType], r)
}

// reducersFor returns the reducers for one event type, type-specific ones
// first, then the catch-all ones.
func (o *Orchestrator[TTx]) reducersFor(eventType string) []*reducerEntry[TTx] {
	o.mu.RLock()
	defer o.mu.RUnlock()
	rs := o.reducers[eventType]
	if len(o.all) == 0 {
		return rs
	}
	out := make([]*reducerEntry[TTx], 0, len(rs)+len(o.all))
	return append(append(out, rs...), o.all...)
}

func (o *Orchestrator[TTx]) handler(name string) (*handlerEntry[TTx], bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	h, ok := o.handlers[name]
	return h, ok
}

// Commands lists the registered command names with their payload types
// (nil for untyped handlers), e.g. for an HTTP layer's documentation.
func (o *Orchestrator[TTx]) Commands() map[string]reflect.Type {
	o.mu.RLock()
	defer o.mu.RUnlock()
	out := make(map[string]reflect.Type, len(o.handlers))
	for n, h := range o.handlers {
		out[n] = h.typ
	}
	return out
}
