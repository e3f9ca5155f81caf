// Package natsrelay relays the committed event log to a NATS JetStream
// stream, and hands the events of such a stream back to applications as
// eventfold.Event values (Consume). It is a package of its own so that
// programs that do not relay link no NATS code.
//
// # How the relay guarantees exactly once, in order
//
// The relay is a durable listener subscription (listener.NewPipeline) named
// Options.Name: it reads the log gap-free from its checkpoint, and only one
// process drives a relay name at a time (the listener's lease). Each batch
// is published asynchronously, every message with Nats-Msg-Id = event id
// and the header Nats-Expected-Last-Sequence = the stream sequence the
// previous message is to get. While a batch's acknowledgements are pending
// the relay reads and publishes the next ones (Options.InFlight batches at
// most), and the checkpoint moves past a batch only once JetStream acked all
// of it and every batch before it. A message that did not land fails every
// later one (their expected sequences no longer match), and after any
// failure the relay waits for everything in flight, drops its outcome,
// re-reads the stream's last message and resumes after it.
//
// The expected-last-sequence chain is what keeps order and rules out
// duplicates and gaps, independently of JetStream's duplicate window: a
// message lost on a cut connection makes every later one of its batch fail
// instead of landing after the gap, and a second relay instance (a lease
// that expired while a process hung) cannot append behind the first one's
// back. After any publish error, and whenever a relay starts driving, it
// re-reads the stream's last message: its Eventfold-Position header tells
// how far the stream already is, and events up to there are skipped, so the
// relay resumes after max(checkpoint, last position in the stream), however
// long it was down.
//
// The stream therefore belongs to the relay: nothing else may publish to it
// (the relay refuses to run after a last message without its headers), and
// its retention should keep at least the last message (the default limits
// retention does; with work-queue retention an emptied stream can only
// resume from the checkpoint).
package natsrelay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
)

// ErrForeignMessage is returned by Run when the stream's last message was
// not published by a relay (it has no position header): the relay cannot
// tell where it stands and will not guess.
var ErrForeignMessage = errors.New("natsrelay: the stream's last message was not published by an eventfold relay")

// Options configures a Relay.
type Options struct {
	// Stream is the JetStream stream to publish to. Required.
	Stream string
	// SubjectPrefix is the first token(s) of every subject. Defaults to
	// "eventfold".
	SubjectPrefix string
	// Subject maps an event to its subject. Defaults to DefaultSubject
	// ("<prefix>.<category>.<type>"); see PartitionedSubject for competing
	// consumers. A subject it returns that is invalid or not under the
	// prefix stops Run with an error matching eventfold.ErrInvalidInput:
	// the relay never skips an event.
	Subject SubjectFunc
	// Name names the relay's checkpoint and lease. Defaults to
	// "nats-relay:" + Stream.
	Name string
	// CreateStream, when the stream does not exist, creates it with
	// subjects "<prefix>.>" and file storage (StreamConfig overrides).
	CreateStream bool
	// StreamConfig is used by CreateStream; Name and Subjects are filled in
	// when empty.
	StreamConfig jetstream.StreamConfig
	// AckTimeout bounds the wait for JetStream's acknowledgement of a
	// publish. Defaults to 10s.
	AckTimeout time.Duration
	// InFlight is how many batches may await JetStream's acknowledgements
	// while the relay reads and publishes the next one. Defaults to
	// DefaultInFlight; 1 publishes a batch only after the previous one was
	// acked.
	InFlight int
	// Acked, when set, is called with the events of each batch right after
	// JetStream acknowledged all of them (before the checkpoint moves), on
	// the relay's goroutine: keep it short. For metrics.
	Acked func(evs []eventfold.Event)
	// Listener configures the subscription (batch size, poll interval,
	// wake-up signal, lease TTL, retry backoff, logger). BatchSize defaults
	// to 1000 here. Its Filter selects the events relayed.
	Listener listener.Options
}

// DefaultInFlight is Options.InFlight's default.
const DefaultInFlight = 3

// Stats is a snapshot of a relay's progress in this process.
type Stats struct {
	// Subscription is the underlying subscription's state (lease, position
	// checkpointed, failures).
	Subscription listener.Stats `json:"subscription"`
	// Published counts the events JetStream acked from this process.
	Published uint64 `json:"published"`
	// Skipped counts events found already in the stream when resuming.
	Skipped uint64 `json:"skipped"`
	// StreamPosition is the position of the last event known to be in the
	// stream, StreamSequence its stream sequence.
	StreamPosition int64  `json:"stream_position"`
	StreamSequence uint64 `json:"stream_sequence"`
	// Resyncs counts how often the relay re-read the stream's last message.
	Resyncs uint64 `json:"resyncs"`
}

// Relay publishes the committed log to a JetStream stream. Create it with
// New and call Run.
type Relay[TTx any] struct {
	store  *eventfold.Store[TTx]
	nc     *nats.Conn
	js     jetstream.JetStream
	o      Options
	sub    *listener.Subscription[TTx]
	logger *slog.Logger

	// Only the subscription's goroutine touches these while Run runs; mu
	// guards the ones Stats reads. lastSeq/lastPos: the last message known
	// to be in the stream (acked, or read at a sync); pubSeq/pubPos: the
	// last one published, acked or not.
	mu       sync.Mutex
	synced   bool
	lastSeq  uint64
	lastPos  int64
	pubSeq   uint64
	pubPos   int64
	subjects map[string]struct{}
	stats    Stats
	fatal    error
	cancel   context.CancelCauseFunc

	running atomic.Bool
}

// New returns a relay from store to the JetStream stream opts.Stream over
// nc. Invalid options fail with an error matching eventfold.ErrInvalidInput.
func New[TTx any](store *eventfold.Store[TTx], nc *nats.Conn, opts Options) (*Relay[TTx], error) {
	if nc == nil {
		return nil, &eventfold.ValidationError{Field: "NATS connection", Reason: "is nil"}
	}
	if opts.Stream == "" || !validStreamName(opts.Stream) {
		return nil, &eventfold.ValidationError{Field: "JetStream stream name", Reason: fmt.Sprintf("%q is empty or contains white space, '.', '*', '>', '/' or '\\'", opts.Stream)}
	}
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = "eventfold"
	}
	if err := ValidatePrefix(opts.SubjectPrefix); err != nil {
		return nil, err
	}
	if opts.Subject == nil {
		opts.Subject = DefaultSubject
	}
	if opts.Name == "" {
		opts.Name = "nats-relay:" + opts.Stream
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 10 * time.Second
	}
	if opts.Listener.BatchSize <= 0 {
		opts.Listener.BatchSize = 1000
	}
	if opts.InFlight <= 0 {
		opts.InFlight = DefaultInFlight
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(opts.AckTimeout),
		jetstream.WithPublishAsyncMaxPending(maxPending(opts.InFlight, opts.Listener.BatchSize)))
	if err != nil {
		return nil, fmt.Errorf("natsrelay: %w", err)
	}
	r := &Relay[TTx]{store: store, nc: nc, js: js, o: opts, logger: opts.Listener.Logger, subjects: map[string]struct{}{}}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	r.sub, err = listener.NewPipeline(store, opts.Name, r.publish, opts.InFlight, &opts.Listener)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// maxPending is the client's limit of unacknowledged messages: the batches
// in flight and the one being published, saturating at math.MaxInt for a
// huge InFlight (a product that overflowed would be refused by the client,
// or wrap to a small limit). inFlight and batch are at least 1.
func maxPending(inFlight, batch int) int {
	if inFlight >= math.MaxInt/batch-1 {
		return math.MaxInt
	}
	return (inFlight + 1) * batch
}

func validStreamName(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == '.' || r == '*' || r == '>' || r == '/' || r == '\\' || r == 0x7f {
			return false
		}
	}
	return true
}

// Name returns the relay's checkpoint and lease name.
func (r *Relay[TTx]) Name() string { return r.o.Name }

// Stats returns a snapshot of this relay's counters.
func (r *Relay[TTx]) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Subscription = r.sub.Stats()
	s.StreamPosition, s.StreamSequence = r.lastPos, r.lastSeq
	return s
}

// Lag returns how far the relay's stored checkpoint is behind the log's
// head, in position space (see listener.CheckpointInfo.Lag).
func (r *Relay[TTx]) Lag(ctx context.Context) (int64, error) { return r.sub.Lag(ctx) }

// Run relays until ctx ends, then finishes the batch in flight (bounded by
// AckTimeout), saves its checkpoint, releases its lease and returns nil.
// While another process holds the relay's lease it stands by. NATS and
// database errors are logged and retried with backoff. It returns an error
// only for what a retry cannot cure (and listener.ErrAlreadyRunning when
// this Relay value is already running): a subject the Subject function got
// wrong, ErrForeignMessage, an event whose message NATS cannot take (over
// the server's max_payload) or whose stream id or type a header cannot
// carry (both match eventfold.ErrInvalidInput), or archived events.
func (r *Relay[TTx]) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return listener.ErrAlreadyRunning
	}
	defer r.running.Store(false)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.mu.Lock()
	r.cancel, r.fatal, r.synced = cancel, nil, false
	r.mu.Unlock()
	err := r.sub.Run(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fatal != nil {
		return r.fatal
	}
	return err
}

// stop ends Run with a fatal error.
func (r *Relay[TTx]) stop(err error) error {
	r.mu.Lock()
	r.fatal = err
	r.mu.Unlock()
	r.cancel(err)
	return err
}

// publish publishes one batch asynchronously and returns the wait that
// checks its acknowledgements. The subscription (listener.NewPipeline)
// calls it for the next batches while earlier ones are pending, calls the
// waits in order, and after any error waits for all of them before it
// calls publish again: so every call here and every wait run on the
// subscription's goroutine, one at a time, and a publish after an error
// always starts unsynced with nothing in flight.
func (r *Relay[TTx]) publish(ctx context.Context, b listener.Batch) (func() error, error) {
	// A stale view (another instance published while this one stood by)
	// is caught by the expected-last-sequence check, which fails and
	// brings us back here unsynced.
	if !r.synced {
		if err := r.sync(ctx); err != nil {
			return nil, err
		}
	}
	evs := b.Events
	skip := 0
	for skip < len(evs) && evs[skip].GlobalPosition <= r.pubPos {
		skip++
	}
	if skip > 0 {
		r.mu.Lock()
		r.stats.Skipped += uint64(skip)
		r.mu.Unlock()
	}
	evs = evs[skip:]
	if len(evs) == 0 {
		return nil, nil
	}
	msgs := make([]*nats.Msg, len(evs))
	for i, ev := range evs {
		subj, err := r.subject(ev)
		if err != nil {
			return nil, r.stop(fmt.Errorf("natsrelay: subject of the event at position %d (%s in stream %q): %w", ev.GlobalPosition, ev.Type, ev.StreamID, err))
		}
		msgs[i] = message(subj, ev)
		if err := checkMessage(msgs[i], ev, r.o.Stream, r.nc.MaxPayload()); err != nil {
			return nil, r.stop(err)
		}
	}
	// Each message expects the sequence the previous one gets: base is
	// the sequence the last message published (not necessarily acked yet)
	// is to get.
	base := r.pubSeq
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for i, m := range msgs {
		f, err := r.js.PublishMsgAsync(m,
			jetstream.WithExpectStream(r.o.Stream),
			jetstream.WithExpectLastSequence(base+uint64(i)))
		if err != nil {
			// The stream may hold part of what is in flight: re-read its
			// last message before publishing again, once the messages
			// already sent have settled.
			r.synced = false
			perr := fmt.Errorf("natsrelay: publish of position %d: %w", evs[i].GlobalPosition, err)
			return nil, errors.Join(perr, r.settle(evs[:i], futures, base))
		}
		futures = append(futures, f)
	}
	r.pubSeq, r.pubPos = base+uint64(len(msgs)), evs[len(evs)-1].GlobalPosition
	return func() error { return r.settle(evs, futures, base) }, nil
}

// settle waits for the acknowledgements of evs, published as sequences
// base+1, base+2...: each must be a new message of the stream at exactly
// that sequence. Any failure leaves the relay unsynced.
func (r *Relay[TTx]) settle(evs []eventfold.Event, futures []jetstream.PubAckFuture, base uint64) error {
	// Wait for the acks even when ctx has ended: a clean stop then saves
	// the progress of the batches in flight. The client's own ack timeout
	// (AckTimeout) fails a future before this timer fires.
	wait := time.NewTimer(r.o.AckTimeout + time.Second)
	defer wait.Stop()
	acked := 0
	var err error
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			want := base + uint64(i) + 1
			if ack.Duplicate || ack.Sequence != want || ack.Stream != r.o.Stream {
				err = fmt.Errorf("natsrelay: position %d acked as stream %q sequence %d (duplicate %v), expected %q sequence %d",
					evs[i].GlobalPosition, ack.Stream, ack.Sequence, ack.Duplicate, r.o.Stream, want)
			}
		case ferr := <-f.Err():
			err = fmt.Errorf("natsrelay: publish of position %d: %w", evs[i].GlobalPosition, ferr)
		case <-wait.C:
			err = fmt.Errorf("natsrelay: no acknowledgement for position %d within %s", evs[i].GlobalPosition, r.o.AckTimeout)
		}
		if err != nil {
			break
		}
		acked++
	}
	if acked > 0 {
		r.mu.Lock()
		// A later batch may have been acked before an earlier one failed
		// (its outcome is then dropped): never move backwards.
		if seq := base + uint64(acked); seq > r.lastSeq {
			r.lastSeq, r.lastPos = seq, evs[acked-1].GlobalPosition
		}
		r.stats.Published += uint64(acked)
		r.mu.Unlock()
	}
	if err != nil || acked < len(evs) {
		r.synced = false
		return err
	}
	if r.o.Acked != nil {
		r.o.Acked(evs)
	}
	return nil
}

// subject returns the subject of ev, validated (subjects already seen are
// remembered: most logs use few).
func (r *Relay[TTx]) subject(ev eventfold.Event) (string, error) {
	subj, err := r.o.Subject(r.o.SubjectPrefix, ev)
	if err != nil {
		return "", err
	}
	if _, ok := r.subjects[subj]; ok {
		return subj, nil
	}
	if err := ValidateSubject(r.o.SubjectPrefix, subj); err != nil {
		return "", err
	}
	if len(r.subjects) >= maxSubjects {
		clear(r.subjects)
	}
	r.subjects[subj] = struct{}{}
	return subj, nil
}

// maxSubjects bounds the relay's memory of valid subjects.
const maxSubjects = 4096

// sync reads where the stream stands: its last sequence, and the position
// header of its last message.
func (r *Relay[TTx]) sync(ctx context.Context) error {
	st, err := r.js.Stream(ctx, r.o.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) && r.o.CreateStream {
		cfg := r.o.StreamConfig
		if cfg.Name == "" {
			cfg.Name = r.o.Stream
		}
		if len(cfg.Subjects) == 0 {
			cfg.Subjects = []string{r.o.SubjectPrefix + ".>"}
		}
		st, err = r.js.CreateStream(ctx, cfg)
	}
	if err != nil {
		return fmt.Errorf("natsrelay: stream %q: %w", r.o.Stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("natsrelay: stream %q: %w", r.o.Stream, err)
	}
	seq, pos := info.State.LastSeq, int64(0)
	if seq > 0 {
		m, err := st.GetMsg(ctx, seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// Deleted or purged: only the checkpoint tells where we are.
			r.logger.Warn("natsrelay: the stream's last message is gone; resuming from the checkpoint", "stream", r.o.Stream, "sequence", seq)
		case err != nil:
			return fmt.Errorf("natsrelay: stream %q: last message: %w", r.o.Stream, err)
		default:
			p, ok := positionOf(m.Header)
			if !ok {
				return r.stop(fmt.Errorf("%w (stream %q, sequence %d, subject %q)", ErrForeignMessage, r.o.Stream, seq, m.Subject))
			}
			pos = p
		}
	}
	r.mu.Lock()
	r.lastSeq, r.lastPos, r.synced = seq, pos, true
	r.pubSeq, r.pubPos = seq, pos
	r.stats.Resyncs++
	r.mu.Unlock()
	return nil
}
