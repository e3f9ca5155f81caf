package natsrelay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventfold/eventfold"
)

// ErrConsumerGone is returned by Consume when its durable consumer stops
// delivering while its context is live: an operator deleted it (or its
// stream). Calling Consume again creates the durable anew, which delivers
// the stream from its first message.
var ErrConsumerGone = errors.New("natsrelay: the durable consumer stopped delivering")

// ConsumerOptions configures Consume.
type ConsumerOptions struct {
	// Stream is the JetStream stream the relay publishes to. Required.
	Stream string
	// Durable names the durable consumer (created or updated by Consume).
	// Required: it is where JetStream keeps this consumer's progress.
	Durable string
	// FilterSubjects selects the subjects consumed; none means all. For
	// competing consumers use one durable per partition with
	// PartitionFilter (see Consume).
	FilterSubjects []string
	// MaxAckPending is how many messages may be delivered and not yet
	// acked. Defaults to 1, which keeps per-stream order even when a
	// message is redelivered (after a crash or an expired AckWait) and
	// when several processes pull from the same durable. A larger value is
	// faster but a redelivery can then arrive after later messages.
	MaxAckPending int
	// AckWait is how long JetStream waits for an ack before redelivering.
	// Defaults to 30s; Consume extends it every third of AckWait while
	// the handler runs or waits to retry.
	AckWait time.Duration
	// RetryMin and RetryMax bound the backoff between handler retries.
	// Defaults 100ms and 30s.
	RetryMin, RetryMax time.Duration
	// Logger receives retried errors. Defaults to slog.Default().
	Logger *slog.Logger
}

// ConsumerHandler handles one event. An error retries the same event after
// a backoff, in this process, without negative ack (which would let later
// events of the same partition overtake it). A crash between handling and
// the ack redelivers the event: make handlers idempotent (the event id and
// the stream version are good keys).
type ConsumerHandler func(ctx context.Context, ev eventfold.Event) error

// Consume runs a durable JetStream consumer on a relay's stream and hands
// each message to h as an eventfold.Event, acking it (and waiting for the
// server's confirmation) only after h returned nil. It returns nil when ctx
// ends, or an error for bad options, a consumer it cannot create, or a
// durable deleted under it (ErrConsumerGone).
//
// # Competing consumers
//
// Publish with PartitionedSubject(n) and run one durable per partition k
// (Durable "orders-p<k>", FilterSubjects {PartitionFilter(prefix, k)}):
// every event of a stream lands in one partition, each partition is
// consumed in stream-sequence order, so per-stream order holds while n
// processes share the load. With the default MaxAckPending of 1, several
// processes may pull from the same partition's durable for failover
// without breaking order.
func Consume(ctx context.Context, nc *nats.Conn, o ConsumerOptions, h ConsumerHandler) error {
	if nc == nil || h == nil {
		return &eventfold.ValidationError{Field: "consumer", Reason: "NATS connection and handler are required"}
	}
	if o.Stream == "" || !validStreamName(o.Stream) {
		return &eventfold.ValidationError{Field: "JetStream stream name", Reason: fmt.Sprintf("%q is empty or invalid", o.Stream)}
	}
	if o.Durable == "" || !validStreamName(o.Durable) {
		return &eventfold.ValidationError{Field: "durable consumer name", Reason: fmt.Sprintf("%q is empty or invalid", o.Durable)}
	}
	if o.MaxAckPending <= 0 {
		o.MaxAckPending = 1
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(30*time.Second, o.RetryMin)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("natsrelay: %w", err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       o.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       o.AckWait,
		MaxAckPending: o.MaxAckPending,
	}
	if len(o.FilterSubjects) == 1 {
		cfg.FilterSubject = o.FilterSubjects[0]
	} else {
		cfg.FilterSubjects = o.FilterSubjects
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, o.Stream, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("natsrelay: consumer %q on stream %q: %w", o.Durable, o.Stream, err)
	}
	// Short pulls with heartbeats: a durable deleted under us is noticed
	// in seconds (the iterator reports missed heartbeats, and Consume asks
	// the server), not after the default 30s pull.
	it, err := cons.Messages(jetstream.PullMaxMessages(max(o.MaxAckPending, 1)),
		jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return fmt.Errorf("natsrelay: consumer %q: %w", o.Durable, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The iterator ends by itself when the durable (or its stream)
			// is deleted: that is no stop request. Recreating the durable
			// would redeliver the whole stream, so report it instead.
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
				errors.Is(err, jetstream.ErrConsumerNotFound) || consumerGone(ctx, cons) {
				return fmt.Errorf("%w: %q on stream %q (deleted?): %w", ErrConsumerGone, o.Durable, o.Stream, err)
			}
			o.Logger.Warn("natsrelay: consumer: next message failed", "durable", o.Durable, "err", err)
			// A lasting error (the consumer was deleted, the server is
			// gone) must not spin.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(o.RetryMin):
			}
			continue
		}
		if err := deliver(ctx, msg, &o, h); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, errAckLost) {
				// Often the first sign of a deleted durable: the
				// iterator may only notice after missed heartbeats.
				if consumerGone(ctx, cons) {
					return fmt.Errorf("%w: %q on stream %q (deleted?): %w", ErrConsumerGone, o.Durable, o.Stream, err)
				}
				continue
			}
			return err
		}
	}
}

// errAckLost is deliver's answer when the ack did not go through.
var errAckLost = errors.New("natsrelay: ack failed")

// consumerGone asks the server whether the durable still exists (the pull
// iterator does not always learn of its deletion: it may only miss
// heartbeats). A failed question (server away) is not an answer.
func consumerGone(ctx context.Context, cons jetstream.Consumer) bool {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := cons.Info(ictx)
	return errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound)
}

// deliver hands one message to h, retrying until it succeeds or ctx ends,
// then acks it.
func deliver(ctx context.Context, msg jetstream.Msg, o *ConsumerOptions, h ConsumerHandler) error {
	ev, err := DecodeEvent(msg.Headers(), msg.Data())
	if err != nil {
		// Not an event a relay published: it can never be handled, and
		// redelivering it would block its partition for ever.
		o.Logger.Error("natsrelay: consumer: terminating a message that is not a relayed event", "subject", msg.Subject(), "err", err)
		return msg.Term()
	}
	// Keep JetStream from redelivering it (to another process on the same
	// durable, which would handle it too and go on to the next events)
	// while the handler runs and while it waits to retry, however long:
	// one InProgress per AckWait is not enough when a call or a backoff
	// outlasts AckWait.
	keep := keepInProgress(msg, o.AckWait)
	defer keep()
	for attempt := 1; ; attempt++ {
		err := callConsumer(ctx, h, ev)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		o.Logger.Warn("natsrelay: consumer: handler failed; retrying", "durable", o.Durable, "position", ev.GlobalPosition, "attempt", attempt, "err", err)
		d := min(o.RetryMin<<min(attempt-1, 20), o.RetryMax)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	keep()
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := msg.DoubleAck(actx)
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			return nil
		}
		if attempt >= 3 || ctx.Err() != nil {
			// JetStream will redeliver it: the handler sees it again.
			o.Logger.Warn("natsrelay: consumer: ack failed; the event will be redelivered", "position", ev.GlobalPosition, "err", err)
			return fmt.Errorf("%w: %w", errAckLost, err)
		}
	}
}

// keepInProgress tells JetStream every third of ackWait that msg is still
// being worked on, until the returned func is called (which waits for the
// last one to finish; calling it again does nothing).
func keepInProgress(msg jetstream.Msg, ackWait time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(max(ackWait/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
		})
	}
}

func callConsumer(ctx context.Context, h ConsumerHandler, ev eventfold.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return h(ctx, ev)
}
