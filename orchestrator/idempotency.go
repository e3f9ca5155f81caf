package orchestrator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
)

// MaxScopeLength bounds an idempotency scope (Envelope.Scope or what
// Config.Scope returns), in bytes.
const MaxScopeLength = 200

// commandRecorder is the part of the store/dialect contract behind
// idempotency records (migrations 00002_commands and 00007_command_scope).
type commandRecorder = contract.Commands

// commandKey is what identifies a command with an id: the id lives in the
// envelope; the scope picks the key space, and the payload hash tells a
// retry of the same request from a reuse of its key.
type commandKey struct {
	scope       string
	payloadHash string
}

// commandKey works out cmd's scope (Config.Scope over Envelope.Scope, which
// it then holds, so handlers see the scope in force) and hashes its payload.
func (o *Orchestrator[TTx]) commandKey(cmd Command) (*commandKey, Command, error) {
	if o.cfg.Scope != nil {
		cmd.Envelope.Scope = o.cfg.Scope(cmd.Envelope)
	}
	scope := cmd.Envelope.Scope
	switch {
	case len(scope) > MaxScopeLength:
		return nil, cmd, fmt.Errorf("%w: %w", ErrInvalidCommand, &eventfold.ValidationError{Field: "command scope", Reason: fmt.Sprintf("%d bytes long, the limit is %d", len(scope), MaxScopeLength)})
	case !utf8.ValidString(scope) || strings.ContainsRune(scope, 0):
		return nil, cmd, fmt.Errorf("%w: %w", ErrInvalidCommand, &eventfold.ValidationError{Field: "command scope", Reason: "not valid UTF-8 text without NUL"})
	}
	hash, err := payloadHash(cmd.Payload)
	if err != nil {
		return nil, cmd, fmt.Errorf("%w: command %q: the payload of a command with an id must marshal to JSON (it is hashed to recognise a retry): %v", ErrInvalidCommand, cmd.Name, err)
	}
	return &commandKey{scope: scope, payloadHash: hash}, cmd, nil
}

// payloadHash is the hex SHA-256 of the payload's canonical JSON: a typed
// payload as encoding/json marshals it (struct fields in declaration
// order, map keys sorted), raw JSON decoded and marshalled again, so that
// whitespace and key order do not make a retry look like another request.
func payloadHash(payload any) (string, error) {
	var raw []byte
	switch p := payload.(type) {
	case json.RawMessage:
		raw = p
	case []byte:
		raw = p
	}
	var canonical []byte
	if raw != nil {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // 12345678901234567890 stays itself, not a float
		var v any
		if err := dec.Decode(&v); err != nil {
			return "", err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return "", err
		}
		canonical = b
	} else {
		b, err := json.Marshal(payload)
		if err != nil {
			return "", err
		}
		canonical = b
	}
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:]), nil
}

// check compares a dispatch with the record found under its id and scope.
// A record made before migration 00007 has no payload hash; only its
// command name can be checked.
func (k *commandKey) check(name, recordedName, recordedHash, id string) error {
	if recordedName != name {
		return &IdempotencyKeyReusedError{CommandID: id, Scope: k.scope, Command: name, RecordedCommand: recordedName}
	}
	if recordedHash != "" && recordedHash != k.payloadHash {
		return &IdempotencyKeyReusedError{CommandID: id, Scope: k.scope, Command: name, RecordedCommand: recordedName, PayloadDiffers: true}
	}
	return nil
}

// eventRef points at one recorded event. Stream and version (rather than
// the global position) are what every dialect reads back cheaply and
// exactly.
type eventRef struct {
	Stream  string `json:"s"`
	Version int64  `json:"v"`
}

func encodeRefs(events []eventfold.Event) ([]byte, error) {
	refs := make([]eventRef, len(events))
	for i, e := range events {
		refs[i] = eventRef{Stream: e.StreamID, Version: e.StreamVersion}
	}
	b, err := json.Marshal(refs)
	if err != nil {
		return nil, fmt.Errorf("orchestrator: encode command record: %w", err)
	}
	return b, nil
}

func (o *Orchestrator[TTx]) recorder(tx TTx) (commandRecorder, error) {
	return o.store.Driver().OpsTx(tx), nil
}

// readBack reads the events a record points at, in recorded order;
// consecutive versions of one stream are read in one go.
func (o *Orchestrator[TTx]) readBack(ctx context.Context, tx TTx, raw []byte) ([]eventfold.Event, error) {
	var refs []eventRef
	if err := json.Unmarshal(raw, &refs); err != nil {
		return nil, fmt.Errorf("decode command record: %w", err)
	}
	out := make([]eventfold.Event, 0, len(refs))
	for i := 0; i < len(refs); {
		j := i + 1
		for j < len(refs) && refs[j].Stream == refs[i].Stream && refs[j].Version == refs[j-1].Version+1 {
			j++
		}
		evs, err := o.store.ReadStreamTx(ctx, tx, refs[i].Stream, eventfold.ReadStreamOptions{From: refs[i].Version, Limit: j - i})
		if err != nil {
			return nil, err
		}
		if len(evs) != j-i {
			return nil, fmt.Errorf("stream %q versions %d..%d: found %d events", refs[i].Stream, refs[i].Version, refs[j-1].Version, len(evs))
		}
		out = append(out, evs...)
		i = j
	}
	return out, nil
}

// ForgetCommands deletes the idempotency records of commands recorded
// before the given time and returns how many it deleted. Afterwards those
// command ids can be dispatched (and applied) again, so keep records longer
// than any client may retry a request.
func (o *Orchestrator[TTx]) ForgetCommands(ctx context.Context, before time.Time) (int64, error) {
	n, err := o.store.Ops().PruneCommands(ctx, before.UTC()) // refused on a newer schema
	if err != nil {
		return 0, fmt.Errorf("orchestrator: forget commands recorded before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}
