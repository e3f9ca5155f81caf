package natsrelay_test

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/relay/natsrelay"
)

// The relay process: publishes the log to the JetStream stream EVENTS under
// "bank.<category>.<type>.p<k>", three partitions. Run it in every instance
// of a service: one drives, the others stand by (lease).
func ExampleRelay() {
	var store *eventfold.Store[*sql.Tx] // your store
	ctx := context.Background()
	nc, err := nats.Connect("nats://127.0.0.1:4222", nats.MaxReconnects(-1))
	if err != nil {
		panic(err)
	}
	r, err := natsrelay.New(store, nc, natsrelay.Options{
		Stream: "EVENTS", SubjectPrefix: "bank", CreateStream: true,
		Subject: natsrelay.PartitionedSubject(3),
	})
	if err != nil {
		panic(err)
	}
	_ = r.Run(ctx) // until ctx ends
}

// A consumer for partition k, anywhere: every event of a stream comes in
// order, each acked after the handler returned nil.
func ExampleConsume() {
	ctx := context.Background()
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		panic(err)
	}
	k := 0
	err = natsrelay.Consume(ctx, nc, natsrelay.ConsumerOptions{
		Stream: "EVENTS", Durable: fmt.Sprintf("emails-p%d", k),
		FilterSubjects: []string{natsrelay.PartitionFilter("bank", k)},
	}, func(ctx context.Context, ev eventfold.Event) error {
		fmt.Println(ev.StreamID, ev.StreamVersion, ev.Type)
		return nil
	})
	if err != nil {
		panic(err)
	}
}
