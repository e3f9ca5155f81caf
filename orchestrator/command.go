package orchestrator

import (
	"context"
	"encoding/json"

	"github.com/eventfold/eventfold"
)

// Command is what Dispatch takes.
type Command struct {
	// Name selects the handler, e.g. "Deposit".
	Name string
	// Payload is the command value handed to the handler. It must be of the
	// type the handler was registered with, or a json.RawMessage, which is
	// decoded into that type (as DispatchJSON does).
	Payload any
	// Envelope carries the command's id, correlation id and caller metadata.
	Envelope Envelope
}

// Envelope carries what travels with a command besides its payload.
type Envelope struct {
	// ID identifies the command and makes it idempotent: a second dispatch
	// with the same ID, in the same Scope, of the same command name with the
	// same payload runs nothing and returns the first one's events. The
	// same ID in the same Scope with another name or payload is refused
	// with *IdempotencyKeyReusedError. It becomes every event's causation
	// id. Optional: without it the command gets a fresh UUID (for causation
	// only) and is not recorded. At most 200 bytes.
	ID string
	// Scope is the key space of ID: the caller the ID belongs to (tenant,
	// user or account, as authenticated by whoever builds the envelope).
	// IDs in different scopes are different commands, so one caller can
	// neither replay nor block another's; "" is one shared scope. Config.
	// Scope, when set, overrides it for every dispatch. At most 200 bytes
	// of UTF-8.
	Scope string
	// CorrelationID ties together everything caused by one user action.
	// Defaults to the command's ID.
	CorrelationID string
	// Metadata is caller metadata (user, request id, client ...) copied into
	// every event's metadata. Values must marshal to JSON.
	Metadata map[string]any
}

// Emit is one event a handler wants appended.
type Emit struct {
	// Stream is the stream to append to.
	Stream string
	// Expected is the stream version the handler based its decision on.
	// Every Emit is its own append, so a second event on the same stream
	// expects the first's version + 1 (or Any). The zero value is
	// eventfold.Exact(0), i.e. "no stream yet".
	Expected eventfold.ExpectedVersion
	// Type names the event, e.g. "MoneyDeposited".
	Type string
	// Data is the payload; it is marshalled to JSON (a json.RawMessage or
	// []byte that holds JSON is used as is).
	Data any
	// Metadata is added to the event's metadata, over the command's.
	Metadata map[string]any
	// ID is the event id; optional (a UUIDv7 is generated).
	ID string
}

// Result is what a successful dispatch returns.
type Result struct {
	// CommandID is the envelope's ID, or the UUID generated for a command
	// that had none.
	CommandID string
	// Events are the committed events, in the order the handler emitted
	// them, with their global positions, stream versions and ids.
	Events []eventfold.Event
	// Duplicate is true when the command ID had been dispatched before:
	// nothing ran, Events are the first dispatch's.
	Duplicate bool
	// Attempts is how many times the command ran (1 without conflicts).
	Attempts int
	// BatchSize is how many commands committed in the same transaction as
	// this one: 1 for a lone dispatch, more under group commit.
	BatchSize int
}

type ctxKey struct{}

// CommandFrom returns the command being dispatched, for handlers, reducers
// and middleware that need its envelope (e.g. the user id for an
// authorisation check).
func CommandFrom(ctx context.Context) (Command, bool) {
	c, ok := ctx.Value(ctxKey{}).(Command)
	return c, ok
}

func withCommand(ctx context.Context, c Command) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

func marshalData(v any) (json.RawMessage, error) {
	switch d := v.(type) {
	case json.RawMessage:
		return d, nil
	case []byte:
		return json.RawMessage(d), nil
	}
	return json.Marshal(v)
}
