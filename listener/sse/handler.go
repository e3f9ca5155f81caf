package sse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/httperr"
	"github.com/eventfold/eventfold/listener"
)

// Authorizer decides what one connection may see. It runs once per
// connection, with the filter parsed from the query (which it may narrow,
// e.g. to the caller's own streams). It returns the per-event check (nil:
// every event that passes the filter), or an error to refuse the connection:
// an *HTTPError picks the status, any other error gives 403 Forbidden.
type Authorizer func(r *http.Request, f *listener.Filter) (allow func(eventfold.Event) bool, err error)

// HTTPError is an error with an HTTP status, for Authorizer; its Code
// (optional: "" derives one from the status) goes into the body. It is an
// alias of the one error body type that orchestrator/httpapi shares (there
// httpapi.Error): every refusal is written as {"error": Message, "code": Code}.
type HTTPError = httperr.Error

// Config configures a Handler. The zero value is usable: every field says
// its default.
type Config struct {
	// Authorize checks each connection and each event. Defaults to nil:
	// every client may see every event. Set it for anything reachable by
	// untrusted clients.
	Authorize Authorizer
	// Heartbeat is the interval of keep-alive comments on idle
	// connections. They carry nothing but the comment: no SSE id, since
	// the client's cursor is the log head, which moves with events the
	// client may not see (on MySQL and SQLite positions are dense, so it
	// would count them). A client's Last-Event-ID is therefore always the
	// last event it received, and a client with a narrow filter rescans
	// the log from there when it reconnects. Defaults to 15s.
	Heartbeat time.Duration
	// Buffer is how many recent events the shared ring keeps. Clients
	// further behind read from the database. Defaults to 4096.
	Buffer int
	// WriteTimeout bounds one write to a client; a client that does not
	// take its data in time is disconnected (it will reconnect and resume).
	// Defaults to 10s.
	WriteTimeout time.Duration
	// MaxClients caps concurrent connections: beyond it a client gets 503
	// with Retry-After: 5. Each connection holds a goroutine, a socket and
	// its place in the fan-out, so there is always a cap unless asked for
	// none. Defaults to DefaultMaxClients (0); negative: no cap.
	MaxClients int
	// MaxCatchUp caps how many clients read from the database at once
	// (resuming from far back, or fallen out of the ring). Defaults to 4.
	MaxCatchUp int
	// Retry is the reconnection delay advised to browsers. Defaults to 2s.
	Retry time.Duration
	// Tail configures the shared tailer (poll interval, wake-up signal,
	// batch size); its Filter and StartAt are ignored.
	Tail listener.Options
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Observer, when set, is told about every client and every write of
	// events (see package otelfold). Defaults to nil.
	Observer Observer
}

// Handler is an http.Handler streaming events as Server-Sent Events. Call
// Run to start its shared tailer; until then it answers 503.
type Handler struct {
	store   eventfold.Log
	cfg     Config
	sig     *listener.Signal
	catch   chan struct{}
	ready   atomic.Bool
	running atomic.Bool
	nconns  atomic.Int64

	mu      sync.RWMutex
	ring    []eventfold.Event
	floor   int64 // every event after floor, up to through, is in ring
	through int64 // the tailer has read the log up to here
}

// DefaultMaxClients is Config.MaxClients when it is 0: enough for a
// service's dashboards and browser tabs, small enough that a flood of
// connections is refused before it exhausts file descriptors (commonly
// 1024 soft-limited) or the fan-out's time. Set MaxClients for more.
const DefaultMaxClients = 512

// New returns a Handler streaming store's events.
func New(store eventfold.Log, cfg *Config) *Handler {
	h := &Handler{store: store, sig: listener.NewSignal()}
	if cfg != nil {
		h.cfg = *cfg
	}
	c := &h.cfg
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.Buffer <= 0 {
		c.Buffer = 4096
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.MaxCatchUp <= 0 {
		c.MaxCatchUp = 4
	}
	if c.Retry <= 0 {
		c.Retry = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Tail.Logger == nil {
		c.Tail.Logger = c.Logger
	}
	h.catch = make(chan struct{}, c.MaxCatchUp)
	return h
}

// Clients returns the number of connected clients.
func (h *Handler) Clients() int { return int(h.nconns.Load()) }

// Run follows the log from the current head until ctx ends, feeding every
// client; it returns nil then, and the connected clients' streams end (their
// browsers reconnect, and get 503 until Run runs again). Only one Run at a
// time: a second one returns an error at once.
func (h *Handler) Run(ctx context.Context) error {
	if !h.running.CompareAndSwap(false, true) {
		return errors.New("sse: Run is already running for this handler")
	}
	defer h.running.Store(false)
	var head int64
	for fails := 1; ; fails++ {
		var err error
		if head, err = h.store.Head(ctx); err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		h.cfg.Logger.Warn("sse: reading the head failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Duration(min(fails, 50)) * 100 * time.Millisecond):
		}
	}
	h.mu.Lock()
	h.floor, h.through = head, head
	h.mu.Unlock()
	h.ready.Store(true)
	defer func() {
		h.ready.Store(false)
		h.sig.Broadcast() // wake the clients, which see they must stop
	}()
	opts := h.cfg.Tail
	opts.Filter = listener.Filter{}
	return listener.Tail(ctx, h.store, head, &opts, func(_ context.Context, b listener.Batch) error {
		h.mu.Lock()
		h.ring = append(h.ring, b.Events...)
		if over := len(h.ring) - h.cfg.Buffer; over > 0 {
			h.floor = h.ring[over-1].GlobalPosition
			// Copy rather than reslice, so the dropped events are freed.
			h.ring = append(make([]eventfold.Event, 0, h.cfg.Buffer+h.cfg.Buffer/4), h.ring[over:]...)
		}
		h.through = b.Through
		h.mu.Unlock()
		h.sig.Broadcast()
		return nil
	})
}

// ServeHTTP streams events to one client until it goes away.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httperr.Write(w, &HTTPError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "method not allowed"})
		return
	}
	if !h.ready.Load() {
		w.Header().Set("Retry-After", "1")
		httperr.Write(w, &HTTPError{Status: http.StatusServiceUnavailable, Code: "not_running", Message: "event stream not running"})
		return
	}
	filter, cursor, hasCursor, err := parseRequest(r)
	if err != nil {
		httperr.Write(w, &HTTPError{Status: http.StatusBadRequest, Code: "bad_request", Message: err.Error()})
		return
	}
	allow := func(eventfold.Event) bool { return true }
	if h.cfg.Authorize != nil {
		a, err := h.cfg.Authorize(r, &filter)
		if err != nil {
			he := &HTTPError{Status: http.StatusForbidden, Code: "forbidden", Message: "forbidden"}
			errors.As(err, &he)
			httperr.Write(w, he)
			return
		}
		if a != nil {
			allow = a
		}
	}
	if n := h.nconns.Add(1); h.cfg.MaxClients > 0 && n > int64(h.cfg.MaxClients) {
		h.nconns.Add(-1)
		w.Header().Set("Retry-After", "5")
		httperr.Write(w, &HTTPError{Status: http.StatusServiceUnavailable, Code: "too_many_clients", Message: "too many event stream clients"})
		return
	}
	defer h.nconns.Add(-1)
	h.mu.RLock()
	through, floor := h.through, h.floor
	h.mu.RUnlock()
	if !hasCursor {
		cursor = through
	} else if cursor < floor {
		// Resuming from before the ring: if that part of the log was
		// archived, say so now with a status. Once a 200 has gone out the
		// stream could only end, and the browser would reconnect with the
		// same Last-Event-ID every Retry, for ever, never told why; a
		// non-200 answer makes EventSource stop.
		if err := h.probe(r.Context(), cursor); err != nil {
			var ae *eventfold.ArchivedError
			if errors.As(err, &ae) {
				httperr.Write(w, &HTTPError{Status: http.StatusGone, Code: "archived", Message: fmt.Sprintf("the events after %d were archived and can no longer be streamed: resume from %d or later (?after=%d), or connect without Last-Event-ID to follow from the head",
					cursor, ae.ArchivedBefore-1, ae.ArchivedBefore-1)})
				return
			}
			if r.Context().Err() == nil {
				h.cfg.Logger.Warn("sse: resume check failed", "remote", r.RemoteAddr, "after", cursor, "err", err)
				w.Header().Set("Retry-After", "1")
				httperr.Write(w, &HTTPError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "event stream unavailable"})
			}
			return
		}
	}
	if hasCursor && cursor > through {
		// Beyond the ring's head, maybe beyond the log's: a position from
		// another database, or from this one before it was restored from
		// a backup or reloaded. Streamed as asked, the client waited with
		// a 200 and heartbeats for a position the log may never reach, and
		// every event up to it was skipped without a word. The log's head
		// (not the ring's, which may lag) decides; a non-200 answer makes
		// EventSource stop instead of resuming there for ever.
		head, err := h.head(r.Context())
		if err != nil {
			if r.Context().Err() == nil {
				h.cfg.Logger.Warn("sse: resume check failed", "remote", r.RemoteAddr, "after", cursor, "err", err)
				w.Header().Set("Retry-After", "1")
				httperr.Write(w, &HTTPError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "event stream unavailable"})
			}
			return
		}
		if cursor > head {
			// The head itself is not named: a client learns no more of the
			// log than its events (see Config.Heartbeat).
			httperr.Write(w, &HTTPError{Status: http.StatusConflict, Code: "beyond_head", Message: fmt.Sprintf("resume position %d is beyond the log's head: it comes from another log, or from this one before a restore; connect without Last-Event-ID to follow from the head", cursor)})
			return
		}
	}
	c := &client{h: h, w: w, rc: http.NewResponseController(w), filter: filter, allow: allow, cursor: cursor}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	// No position here either: without a resume position the cursor is
	// the log head.
	var gone func(error)
	if h.cfg.Observer != nil {
		gone = h.cfg.Observer.Connected(r)
	}
	err = c.write(fmt.Appendf(nil, "retry: %d\n: connected\n\n", h.cfg.Retry.Milliseconds()))
	if err == nil {
		err = c.serve(r.Context())
	}
	if gone != nil {
		if errors.Is(err, context.Canceled) {
			gone(nil) // the client left
		} else {
			// A failed write: the server drops the client (the request's
			// ctx may be cancelled by now too, because of that failure).
			gone(err)
		}
	}
	if err != nil && r.Context().Err() == nil {
		h.cfg.Logger.Info("sse: client dropped", "remote", r.RemoteAddr, "err", err)
	}
}

// probe reads one event after cursor from the database, under the
// catch-up limit, to learn whether resuming there is possible.
func (h *Handler) probe(ctx context.Context, cursor int64) error {
	select {
	case h.catch <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-h.catch }()
	_, err := h.store.ReadAll(ctx, eventfold.ReadAllOptions{From: cursor + 1, Limit: 1})
	return err
}

// head reads the log's head, under the catch-up limit.
func (h *Handler) head(ctx context.Context) (int64, error) {
	select {
	case h.catch <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-h.catch }()
	return h.store.Head(ctx)
}

// MaxFilterValues is how many stream, prefix and type values one
// connection's query may name in all; more is 400 Bad Request.
const MaxFilterValues = 256

// parseRequest reads the filter and the resume position: Last-Event-ID
// first, then ?after=.
func parseRequest(r *http.Request) (f listener.Filter, cursor int64, has bool, err error) {
	// Not r.URL.Query(), which drops what it cannot parse: a bad escape
	// or more than net/url's 10,000 parameters left no filter at all, and
	// the client that asked for a few streams got every event.
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return f, 0, false, fmt.Errorf("bad query: %v", err)
	}
	f.Streams = multi(q["stream"])
	f.StreamPrefixes = multi(q["prefix"])
	f.Types = multi(q["type"])
	// Matching is linear in the filter: 100,000 stream ids in a 1 MB query
	// cost 0.5 ms per event per client, 2 s to scan the ring on connect,
	// for anyone who can open a connection.
	if n := len(f.Streams) + len(f.StreamPrefixes) + len(f.Types); n > MaxFilterValues {
		return f, 0, false, fmt.Errorf("%d stream, prefix and type values: at most %d", n, MaxFilterValues)
	}
	raw := r.Header.Get("Last-Event-ID")
	if raw == "" {
		raw = q.Get("after")
	}
	if raw == "" {
		return f, 0, false, nil
	}
	cursor, err = strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
	if err != nil || cursor < 0 {
		return f, 0, false, fmt.Errorf("bad resume position %q: want a global position >= 0", raw)
	}
	return f, cursor, true, nil
}

func multi(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// client is one connection's state: its cursor (the last position it has
// passed, sent or not; never shown to the client, see Config.Heartbeat)
// and its checks.
type client struct {
	h      *Handler
	w      http.ResponseWriter
	rc     *http.ResponseController
	filter listener.Filter
	allow  func(eventfold.Event) bool
	cursor int64
	buf    []byte
}

const pageSize = 256

func (c *client) serve(ctx context.Context) error {
	hb := time.NewTicker(c.h.cfg.Heartbeat)
	defer hb.Stop()
	for {
		wake := c.h.sig.Wait()
		evs, through, fromRing, err := c.next(ctx)
		if err != nil {
			return err
		}
		if err := c.send(ctx, evs, through); err != nil {
			return err
		}
		if len(evs) > 0 || !fromRing {
			continue // more may be waiting
		}
		if !c.h.ready.Load() {
			return nil // Run stopped: no more events will come
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-hb.C:
			if err := c.heartbeat(); err != nil {
				return err
			}
		}
	}
}

// next returns the events after the cursor: from the ring when it covers
// the cursor, else from the database. through is how far they reach.
func (c *client) next(ctx context.Context) (evs []eventfold.Event, through int64, fromRing bool, err error) {
	h := c.h
	h.mu.RLock()
	if c.cursor >= h.floor {
		i := sort.Search(len(h.ring), func(i int) bool { return h.ring[i].GlobalPosition > c.cursor })
		j := min(i+pageSize, len(h.ring))
		evs = append(evs, h.ring[i:j]...)
		through = max(c.cursor, h.through)
		if j < len(h.ring) {
			through = h.ring[j-1].GlobalPosition
		}
		h.mu.RUnlock()
		return evs, through, true, nil
	}
	h.mu.RUnlock()
	// Behind the ring: read from the database, a few clients at a time.
	select {
	case h.catch <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, false, ctx.Err()
	}
	defer func() { <-h.catch }()
	evs, err = h.store.ReadAll(ctx, eventfold.ReadAllOptions{From: c.cursor + 1, Limit: pageSize})
	if err != nil {
		return nil, 0, false, fmt.Errorf("catch up from %d: %w", c.cursor+1, err)
	}
	if len(evs) == 0 {
		// The ring's floor is a position the tailer read, so the database
		// has it; an empty read means it is momentarily behind. Retry soon.
		select {
		case <-ctx.Done():
			return nil, 0, false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		return nil, c.cursor, false, nil
	}
	return evs, evs[len(evs)-1].GlobalPosition, false, nil
}

// send writes the events the client may see and moves its cursor to
// through.
func (c *client) send(ctx context.Context, evs []eventfold.Event, through int64) error {
	c.buf = c.buf[:0]
	obs := c.h.cfg.Observer
	var sent []eventfold.Event
	for _, ev := range evs {
		if !c.filter.Match(ev) || !c.allow(ev) {
			continue
		}
		if obs != nil {
			sent = append(sent, ev)
		}
		body, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode event %d: %w", ev.GlobalPosition, err)
		}
		c.buf = fmt.Appendf(c.buf, "id: %d\ndata: %s\n\n", ev.GlobalPosition, body)
	}
	c.cursor = max(c.cursor, through)
	if len(c.buf) == 0 {
		return nil
	}
	if obs == nil {
		return c.write(c.buf)
	}
	end := obs.StartSend(ctx, sent)
	err := c.write(c.buf)
	end(err)
	return err
}

// heartbeat keeps the connection alive. It reveals nothing: the same bytes
// whatever the log did (see Config.Heartbeat).
func (c *client) heartbeat() error {
	return c.write([]byte(": heartbeat\n\n"))
}

func (c *client) write(b []byte) error {
	_ = c.rc.SetWriteDeadline(time.Now().Add(c.h.cfg.WriteTimeout))
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	return c.rc.Flush()
}
