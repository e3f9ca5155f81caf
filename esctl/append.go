package esctl

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
)

func runAppend(ctx context.Context, env *Env, args []string) error {
	fs, dsn := env.newFlags("append", "--stream S --type T --data JSON [flags]",
		`Appends one event to a stream and prints it as recorded (one JSON line).
A stream not at --expected-version exits 3 and appends nothing.`,
		`  esctl append --stream account-42 --type MoneyDeposited --data '{"amount":100}' \
      --metadata '{"correlation_id":"c-1"}' --expected-version 3`)
	stream := fs.String("stream", "", "stream id (required)")
	typ := fs.String("type", "", "event type (required)")
	data := fs.String("data", "", "event payload, JSON (required)")
	meta := fs.String("metadata", "", "event metadata, a JSON object")
	id := fs.String("id", "", "event id, a UUID (default: a new time-ordered UUID)")
	ev := fs.String("expected-version", "any", "any, no-stream, exists or the stream's current version N")
	if err := env.parse(fs, dsn, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	switch {
	case *stream == "":
		return usagef("append: --stream is required")
	case *typ == "":
		return usagef("append: --type is required")
	case *data == "":
		return usagef("append: --data is required (use '{}' or 'null' for no payload)")
	}
	if err := checkJSON("--data", *data); err != nil {
		return err
	}
	if *meta != "" {
		if err := checkJSON("--metadata", *meta); err != nil {
			return err
		}
		if b := bytes.TrimSpace([]byte(*meta)); b[0] != '{' {
			return usagef("append: --metadata must be a JSON object, got %s", abbreviate(*meta))
		}
	}
	expected, err := eventfold.ParseExpectedVersion(*ev)
	if err != nil {
		return usagef("append: --expected-version %q: want any, no-stream, exists or a version number >= 0", *ev)
	}
	store, err := env.openWritable(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	evs, err := store.Append(ctx, *stream, expected, eventfold.EventData{
		ID: *id, Type: *typ, Data: json.RawMessage(*data), Metadata: json.RawMessage(*meta),
	})
	if err != nil {
		return err
	}
	if ops := store.Driver().Ops(); ops.Capabilities().Notify {
		// Wake listeners (esctl tail, subscriptions with a pgxdriver.Listener) at
		// once; a hint only, so a failure is not the append's.
		pos := strconv.FormatInt(evs[len(evs)-1].GlobalPosition, 10)
		_ = ops.Notify(ctx, listener.DefaultChannel, pos)
	}
	w := newEventWriter(env.Stdout)
	for _, e := range evs {
		if err := w.write(e); err != nil {
			return err
		}
	}
	return nil
}

// checkJSON reports invalid JSON as a usage error saying where it broke.
func checkJSON(flagName, s string) error {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return usagef("append: %s is not valid JSON (%v): %s", flagName, err, abbreviate(s))
	}
	return nil
}

func abbreviate(s string) string {
	const max = 60
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
