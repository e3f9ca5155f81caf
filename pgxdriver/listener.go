package pgxdriver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventfold/eventfold/internal/backoff"
	"github.com/eventfold/eventfold/internal/contract"
)

// Broadcaster is what a Listener wakes: listener.Signal implements it.
type Broadcaster interface {
	Broadcast()
}

// Announcer is a Broadcaster that can also be told the position a
// notification carries (listener.Signal implements it): a notification
// whose payload is a position (a listener.Notifier's) is passed on with
// Announce, so followers whose read stops short of it know the rest is
// held back by a running transaction and read again soon, without asking
// the database. An empty payload (the notify trigger's) and a
// (re)connection are passed on with Broadcast.
type Announcer interface {
	Broadcaster
	Announce(pos int64)
}

// Listener LISTENs for eventfold notifications on a dedicated PostgreSQL
// connection and broadcasts a Signal (a listener.Signal) for each one. It
// lives in the driver package because LISTEN is PostgreSQL's and needs a
// pgx connection of its own: programs that do not use PostgreSQL do not
// link pgx through package listener. It opens its own
// connection (never one from a pool: a pooled connection would be handed to
// others with the LISTEN still on it, and PgBouncer in transaction mode
// cannot keep a LISTEN at all; point ConnString at PostgreSQL directly).
//
// Each (re)connection also broadcasts, after LISTEN succeeded: whatever
// committed while it was away is then caught up by the followers' next read.
// That is the "listen first, then catch up" order that loses nothing.
type Listener struct {
	// ConnString is a pgx connection string (postgres://...). The pool
	// parameters of the DSN the program opens its pool with (pgxpool's
	// pool_max_conns and other pool_ ones, sqldriver.Open's max_open_conns)
	// are ignored: the Listener has one connection of its own.
	ConnString string
	// Channel defaults to listener.DefaultChannel ("eventfold_events").
	Channel string
	// Signal is broadcast on every notification and every (re)connection
	// (announced, when it is an Announcer and the notification carries a
	// position); nil broadcasts nothing.
	Signal Broadcaster
	// RetryMin and RetryMax bound the reconnection backoff. Defaults 100ms
	// and 10s.
	RetryMin, RetryMax time.Duration
	// Logger receives connection errors. Defaults to slog.Default().
	Logger *slog.Logger

	pid       atomic.Uint32
	connected atomic.Bool
	received  atomic.Uint64
	lastPos   atomic.Int64
}

// Connected reports whether the LISTEN connection is up.
func (l *Listener) Connected() bool { return l.connected.Load() }

// BackendPID returns the server process id of the LISTEN connection (0 when
// disconnected); useful to find it in pg_stat_activity.
func (l *Listener) BackendPID() uint32 { return l.pid.Load() }

// Received returns how many notifications arrived.
func (l *Listener) Received() uint64 { return l.received.Load() }

// LastPosition returns the highest position hint received (0: none).
func (l *Listener) LastPosition() int64 { return l.lastPos.Load() }

// Run listens until ctx ends, reconnecting with backoff, and returns nil
// then. It returns an error at once only for a connection string that
// cannot be parsed.
func (l *Listener) Run(ctx context.Context) error {
	cfg, err := listenConfig(l.ConnString)
	if err != nil {
		return fmt.Errorf("pgxdriver: LISTEN connection string: %w", err)
	}
	channel := l.Channel
	if channel == "" {
		channel = contract.DefaultChannel
	}
	logger := l.Logger
	if logger == nil {
		logger = slog.Default()
	}
	minD, maxD := l.RetryMin, l.RetryMax
	if minD <= 0 {
		minD = 100 * time.Millisecond
	}
	if maxD < minD {
		maxD = max(10*time.Second, minD)
	}
	fails := 0
	for ctx.Err() == nil {
		err := l.listenOnce(ctx, cfg, channel, func() { fails = 0 })
		if ctx.Err() != nil {
			break
		}
		fails++
		logger.Warn("pgxdriver: LISTEN connection lost; reconnecting", "channel", channel, "attempt", fails, "err", err)
		// Followers keep polling meanwhile; wake them so a reconnection gap
		// never adds to the delay.
		l.broadcast()
		backoff.Sleep(ctx, backoff.Delay(fails, minD, maxD))
	}
	return nil
}

// sqldriverPoolParam is the pool parameter sqldriver.Open takes from an
// eventfold DSN (max_open_conns), which a program may also give the
// Listener; PostgreSQL would refuse it as a session parameter.
const sqldriverPoolParam = "max_open_conns"

// listenConfig parses the Listener's connection string as pgxpool does, so
// that the DSN the program opens its pool with (pool_max_conns=N and the
// other pool_ parameters, or sqldriver.Open's max_open_conns=N) serves for
// the LISTEN connection too: pgx.ParseConfig would send those parameters to
// PostgreSQL, which refuses every connection ("unrecognized configuration
// parameter"), and the Listener would reconnect for ever.
func listenConfig(connString string) (*pgx.ConnConfig, error) {
	pc, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	cfg := pc.ConnConfig
	delete(cfg.RuntimeParams, sqldriverPoolParam)
	return cfg, nil
}

func (l *Listener) broadcast() {
	if l.Signal != nil {
		l.Signal.Broadcast()
	}
}

func (l *Listener) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, channel string, connectedOK func()) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		l.connected.Store(false)
		l.pid.Store(0)
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return fmt.Errorf("LISTEN %s: %w", channel, err)
	}
	l.pid.Store(conn.PgConn().PID())
	l.connected.Store(true)
	connectedOK()
	l.broadcast() // listen first, then catch up
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return err
			}
			return fmt.Errorf("wait for notification: %w", err)
		}
		l.received.Add(1)
		p, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil || p <= 0 {
			l.broadcast()
			continue
		}
		if p > l.lastPos.Load() {
			l.lastPos.Store(p)
		}
		if a, ok := l.Signal.(Announcer); ok {
			a.Announce(p)
		} else {
			l.broadcast()
		}
	}
}
