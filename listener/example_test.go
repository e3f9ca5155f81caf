package listener_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/sqldriver"
)

// A durable at-least-once subscription on SQLite, woken at once by an
// in-process Notifier (which would also send pg_notify on PostgreSQL).
func Example() {
	dir, _ := os.MkdirTemp("", "eventfold-example")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	drv, err := sqldriver.Open(ctx, "sqlite://"+filepath.Join(dir, "app.db"))
	if err != nil {
		panic(err)
	}
	defer drv.Close()
	store := eventfold.New(drv, nil)
	if err := store.Migrate(ctx); err != nil {
		panic(err)
	}

	sig := listener.NewSignal()
	notifier := listener.NewNotifier(store, &listener.NotifierOptions{Signal: sig})
	go notifier.Run(ctx) // orchestrator.Config{AfterCommit: notifier.AfterCommit}

	done := make(chan struct{})
	sub, err := listener.New(store, "welcome-emails", func(ctx context.Context, ev eventfold.Event) error {
		fmt.Printf("send welcome email for %s (%s)\n", ev.StreamID, ev.Type)
		if ev.StreamID == "user-2" {
			close(done)
		}
		return nil
	}, &listener.Options{
		Wakeup: sig,
		Filter: listener.Filter{StreamPrefixes: []string{"user-"}, Types: []string{"UserRegistered"}},
	})
	if err != nil {
		panic(err)
	}
	stopped := make(chan error)
	go func() { stopped <- sub.Run(ctx) }()

	for _, id := range []string{"user-1", "order-9", "user-2"} {
		evs, err := store.Append(ctx, id, eventfold.NoStream, eventfold.EventData{Type: "UserRegistered", Data: []byte(`{}`)})
		if err != nil {
			panic(err)
		}
		notifier.NotifyEvents(evs)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		fmt.Println("timed out")
	}
	cancel()
	fmt.Println("stopped:", <-stopped)
	lag, _ := listener.Lag(context.Background(), store, "welcome-emails")
	fmt.Println("lag:", lag)
	// Output:
	// send welcome email for user-1 (UserRegistered)
	// send welcome email for user-2 (UserRegistered)
	// stopped: <nil>
	// lag: 0
}
