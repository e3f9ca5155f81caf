package esctl

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	neturl "net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/pgxdriver"
	"github.com/eventfold/eventfold/relay/natsrelay"
	"github.com/eventfold/eventfold/sqldriver"
)

// natsRelayPrefix starts the subscription name of every relay esctl runs
// (natsrelay's default name); stats lists those as relays.
const natsRelayPrefix = "nats-relay:"

func runRelay(ctx context.Context, env *Env, args []string) error {
	switch {
	case len(args) > 0 && args[0] == "nats":
		args = args[1:]
	case len(args) > 0 && (args[0] == "--help" || args[0] == "-help" || args[0] == "-h"):
		// relay --help shows the help of its only relay.
	default:
		return usagef("relay: the only relay is 'nats' (usage: %s relay nats --url URL --stream NAME --subject-prefix P)", env.Program)
	}
	fs, dsn := env.newFlags("relay nats", "--url URL --stream NAME --subject-prefix P [flags]",
		`Relays the committed log to a NATS JetStream stream, exactly once and in order:
subjects "<prefix>.<stream category>.<event type>" (with --partitions N, a last
token "p<k>" from a hash of the stream id, for one consumer per partition),
Nats-Msg-Id = event id, headers Eventfold-Position, -Stream-Id, -Stream-Version,
-Event-Id, -Event-Type, -Recorded-At, -Correlation-Id, -Causation-Id, traceparent.
Resumes after the later of its checkpoint and the stream's last message; only one
process runs a relay name at a time (others stand by). Prints progress and lag to
stderr every --every; stops cleanly on SIGINT (finishes the batch in flight).`,
		`  esctl relay nats --url nats://127.0.0.1:4222 --stream EVENTS --subject-prefix bank
  esctl stats   # shows the relay's lag`)
	url := fs.String("url", nats.DefaultURL, "NATS server URL(s), comma-separated")
	stream := fs.String("stream", "", "JetStream stream name (created with subjects <prefix>.> if missing)")
	prefix := fs.String("subject-prefix", "eventfold", "first subject token(s)")
	name := fs.String("name", "", "relay name for its checkpoint and lease (default nats-relay:<stream>)")
	partitions := fs.Int("partitions", 0, "add a partition token p0..p(N-1) to each subject (0: none)")
	batch := fs.Int("batch", 1000, "events per batch")
	inFlight := fs.Int("in-flight", natsrelay.DefaultInFlight, "batches published and awaiting JetStream's acks while the next is read (1: wait for each batch's acks)")
	memory := fs.Bool("memory", false, "create the stream in memory rather than on file")
	every := fs.Duration("every", 2*time.Second, "progress interval")
	poll := fs.Duration("poll", 200*time.Millisecond, "how often to look for new events when idle (PostgreSQL also wakes on NOTIFY)")
	if err := env.parse(fs, dsn, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	switch {
	case *stream == "":
		return usagef("relay nats: --stream is required")
	case *partitions < 0:
		return usagef("relay nats: --partitions %d is negative", *partitions)
	case *batch <= 0:
		return usagef("relay nats: --batch %d must be positive", *batch)
	case *inFlight <= 0:
		return usagef("relay nats: --in-flight %d must be positive", *inFlight)
	case *every <= 0 || *poll <= 0:
		return usagef("relay nats: --every and --poll must be positive")
	}
	if *name == "" {
		*name = natsRelayPrefix + *stream
	}
	if err := checkNATSURLs(*url); err != nil {
		return err
	}
	store, err := env.openWritable(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	logger := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	closed := make(chan struct{})
	var connErr atomic.Pointer[string] // the last failed (re)connect, for progress lines
	nc, err := nats.Connect(*url, nats.Name("esctl relay "+*name), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250*time.Millisecond),
		// Refused credentials are retried like an unreachable server (the
		// progress lines say so): by default nats.go closes the connection
		// for good after the same auth error twice, and the relay would
		// then wait for ever on a closed connection.
		nats.IgnoreAuthErrorAbort(),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				e := firstLine(scrubURLs(err.Error(), *url))
				connErr.Store(&e)
			}
		}))
	if err != nil {
		// nats.go's parse errors quote the URL, password included.
		return fmt.Errorf("relay nats: connect to %s: %s (in a user name or password, percent-encode @ as %%40, : as %%3A, , as %%2C and %% as %%25)",
			redactURLs(*url), scrubURLs(err.Error(), *url))
	}
	defer nc.Close()
	o := natsrelay.Options{Stream: *stream, SubjectPrefix: *prefix, Name: *name, CreateStream: true, InFlight: *inFlight,
		Listener: listener.Options{BatchSize: *batch, PollInterval: *poll, Logger: logger}}
	if *memory {
		o.StreamConfig.Storage = jetstream.MemoryStorage
	}
	if *partitions > 0 {
		o.Subject = natsrelay.PartitionedSubject(*partitions)
	}
	if store.Dialect() == eventfold.Postgres {
		sig := listener.NewSignal()
		lctx, stop := context.WithCancel(ctx)
		defer stop()
		// The LISTEN connection is pgx's own: without Open's max_open_conns,
		// which PostgreSQL refuses as an unknown setting.
		conn, err := sqldriver.DriverDSN(env.DSN)
		if err != nil {
			return err
		}
		pl := &pgxdriver.Listener{ConnString: conn, Signal: sig, Logger: logger}
		go func() { _ = pl.Run(lctx) }()
		o.Listener.Wakeup = sig
	}
	r, err := natsrelay.New(store, nc, o)
	if err != nil {
		return err
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	fmt.Fprintf(env.Stderr, "relaying to stream %s on %s as %q (subjects %s.>, batches of %d, %d in flight); Ctrl-C stops\n", *stream, redactURLs(*url), *name, *prefix, *batch, *inFlight)
	t := time.NewTicker(*every)
	defer t.Stop()
	last, lastAt := uint64(0), time.Now()
	report := func(stopped bool) {
		st := r.Stats()
		lag := relayLag(store, *name)
		rate := float64(st.Published-last) / time.Since(lastAt).Seconds()
		last, lastAt = st.Published, time.Now()
		state := "relaying"
		switch {
		case stopped:
			state = "stopped"
		case !nc.IsConnected():
			// Wrong URL, server down, refused credentials: say so rather
			// than "relaying" with a timeout as the only clue.
			state = "not connected to NATS at " + redactURLs(*url)
			if e := connErr.Load(); e != nil {
				state += " (" + *e + ")"
			}
			state += ", retrying"
		case !st.Subscription.Holding:
			state = "standing by (another process holds the lease)"
		case st.Subscription.CaughtUp:
			state = "caught up"
		}
		fmt.Fprintf(env.Stderr, "%s: published %d (%.0f/s), skipped %d already in the stream, position %d, stream sequence %d, lag %s\n",
			state, st.Published, rate, st.Skipped, st.StreamPosition, st.StreamSequence, lag)
		if st.Subscription.LastError != "" && time.Since(st.Subscription.LastErrorAt) < *every {
			fmt.Fprintf(env.Stderr, "  last error: %s\n", firstLine(st.Subscription.LastError))
		}
	}
	for {
		select {
		case <-closed:
			// Nothing reopens a closed connection: stop rather than
			// relay nothing for ever.
			cancelRun()
			err := <-done
			report(true)
			why := "no reason given"
			if e := connErr.Load(); e != nil {
				why = *e
			}
			return errors.Join(fmt.Errorf("relay nats: the NATS connection closed for good (%s); checkpoint saved", why), err)
		case err := <-done:
			report(true)
			if err != nil {
				return err
			}
			fmt.Fprintln(env.Stderr, "relay stopped; checkpoint saved, lease released")
			return nil
		case <-t.C:
			report(false)
		}
	}
}

// relayLag is the number of events after a relay's checkpoint, or "?" when
// it cannot be read.
func relayLag(store *eventfold.Store[*sql.Tx], name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pos, _, err := listener.Checkpoint(ctx, store, name)
	if err != nil {
		return "?"
	}
	n, err := store.Driver().Ops().StatsEventsAfter(ctx, pos)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%d events", n)
}

// redactURLs hides the passwords (and tokens) of a comma-separated list of
// NATS URLs, for output.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		u, err := neturl.Parse(strings.TrimSpace(p))
		switch {
		case err != nil:
			parts[i] = "(unparsable URL)"
		default:
			if u.User != nil {
				u.User = neturl.User("xxxxx") // a token alone is a secret too
			}
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// checkNATSURLs parses the URLs the way nats.Connect will, and refuses a
// malformed one without echoing it: Go's parse errors quote the URL, and
// even their detail ("invalid port \":w0rd\" after host") can hold part of
// a password that was not percent-encoded.
func checkNATSURLs(list string) error {
	for i, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		u := p
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		if _, err := neturl.Parse(u); err != nil {
			detail := ""
			var ue *neturl.Error
			if !strings.Contains(p, "@") && errors.As(err, &ue) {
				detail = " (" + ue.Err.Error() + ")"
			}
			return usagef("relay nats: --url: URL %d of the list is not a valid URL%s; in a user name or password, percent-encode @ as %%40, : as %%3A, , as %%2C and %% as %%25", i+1, detail)
		}
	}
	return nil
}

// scrubURLs replaces every URL of a comma-separated list, as typed or
// quoted, by its redacted form in s.
func scrubURLs(s, list string) string {
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		r := redactURLs(p)
		s = strings.ReplaceAll(s, strconv.Quote(p), strconv.Quote(r))
		s = strings.ReplaceAll(s, p, r)
	}
	return s
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
