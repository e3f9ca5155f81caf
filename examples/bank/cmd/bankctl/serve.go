package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/examples/bank"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/listener/sse"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/orchestrator/httpapi"
	"github.com/eventfold/eventfold/otelfold"
)

// serveCommand is `bankctl serve`: the bank's HTTP command endpoint and
// its Server-Sent Events stream, the push flow without writing Go.
var serveCommand = esctl.Command{
	Name:    "serve",
	Summary: "serve the bank over HTTP: POST /commands/{name}, GET /events (SSE)",
	Run:     runServe,
}

const serveHelp = `Usage: bankctl serve [--addr HOST:PORT]

Serves the bank application until interrupted:
  POST /commands/{name}   a command as JSON (OpenAccount, Deposit, Withdraw, Transfer);
                          Idempotency-Key makes a retry safe; answers with the events
  GET  /events            every committed event as Server-Sent Events; a client resumes
                          after the last id it saw with the Last-Event-ID header
Each commit wakes the stream at once (an in-process signal; on PostgreSQL also
pg_notify for other processes). No authentication: for trying it out on localhost.
With the global --metrics-addr (or EVENTFOLD_METRICS_ADDR) it serves Prometheus
metrics at http://ADDR/metrics, on that address of their own, and traces every
request; OTEL_EXPORTER_OTLP_ENDPOINT sends traces and metrics to a collector.

Flags:
  --addr HOST:PORT   where to listen (default 127.0.0.1:8080)
  --dsn DSN          database (overrides the global --dsn)

Example:
  bankctl --dsn sqlite://bank.db migrate up
  bankctl --dsn sqlite://bank.db serve --addr 127.0.0.1:8080
  bankctl --dsn sqlite://bank.db --metrics-addr 127.0.0.1:9464 serve
`

// httpTimeouts are the HTTP server's limits against slow or idle clients.
type httpTimeouts struct {
	ReadHeader, Read, Idle time.Duration
}

// serveTimeouts: tests shorten them.
var serveTimeouts = httpTimeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Idle: 2 * time.Minute}

func runServe(ctx context.Context, env *esctl.Env, args []string) error {
	fs := flag.NewFlagSet("bankctl serve", flag.ContinueOnError)
	fs.Usage = func() {}
	fs.SetOutput(nopWriter{})
	addr := fs.String("addr", "127.0.0.1:8080", "")
	dsn := fs.String("dsn", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(env.Stdout, serveHelp)
			return flag.ErrHelp
		}
		return &esctl.UsageError{Msg: fmt.Sprintf("serve: %v (see 'bankctl serve --help')", err)}
	}
	if fs.NArg() > 0 {
		return &esctl.UsageError{Msg: fmt.Sprintf("serve: unexpected argument %q", fs.Arg(0))}
	}
	if *dsn != "" {
		env.DSN = *dsn
	}
	store, err := env.Open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The wake-up wiring: after each commit the notifier feeds sig (this
	// process's stream wakes at once) and, on PostgreSQL, pg_notify.
	sig := listener.NewSignal()
	notifier := listener.NewNotifier(store, &listener.NotifierOptions{Signal: sig})
	go func() { _ = notifier.Run(ctx) }()
	ocfg := &orchestrator.Config{AfterCommit: notifier.AfterCommit}
	scfg := &sse.Config{Heartbeat: 15 * time.Second, Tail: listener.Options{Wakeup: sig}}
	wrap := func(h http.Handler) http.Handler { return h }
	if tel := env.Telemetry(); tel != nil {
		// --metrics-addr or OTEL_*: trace and measure everything; the
		// global flag serves /metrics on its own address.
		ocfg.Observer, scfg.Observer, wrap = tel.Inst, tel.Inst, tel.Inst.HTTP
		if reg, err := otelfold.ObserveLag(tel.Inst, store); err == nil {
			defer func() { _ = reg.Unregister() }()
		}
		if reg, err := tel.Inst.ObserveNotifier(notifier); err == nil {
			defer func() { _ = reg.Unregister() }()
		}
	}
	app, err := bank.New(store, ocfg)
	if err != nil {
		return err
	}
	events := sse.New(store, scfg)
	go func() { _ = events.Run(ctx) }()

	mux := http.NewServeMux()
	mux.Handle("POST /commands/{name}", wrap(httpapi.New(app.Orchestrator, nil)))
	mux.Handle("GET /events", wrap(events))

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("serve: listen on %s: %w", *addr, err)
	}
	// Slow or idle clients (slowloris) cannot hold connections: headers
	// and body must arrive within the read timeouts, an idle keep-alive
	// connection is closed. The read timeout does not cut the SSE streams
	// (net/http lifts the read deadline once the handler of a request
	// without a body runs); a WriteTimeout would, so there is none: the
	// stream bounds each write itself (sse.Config.WriteTimeout). Command
	// bodies are capped by httpapi (Config.MaxBodyBytes, 1 MiB), headers
	// here.
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: serveTimeouts.ReadHeader,
		ReadTimeout:       serveTimeouts.Read,
		IdleTimeout:       serveTimeouts.Idle,
		MaxHeaderBytes:    64 << 10,
	}
	fmt.Fprintf(env.Stderr, "bankctl: serving http://%s (POST /commands/{name}, GET /events); Ctrl-C stops\n", ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx) // SSE streams end when ctx does
	return nil
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
