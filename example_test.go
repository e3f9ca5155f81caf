package eventfold_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver"
	_ "github.com/eventfold/eventfold/sqldriver/sqlitedriver" // links SQLite, and only SQLite
)

// Appending with an expected version, and what a conflict looks like.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "eventfold-example")
	defer os.RemoveAll(dir)

	drv, err := sqldriver.Open(ctx, "sqlite://"+filepath.Join(dir, "events.db"))
	if err != nil {
		panic(err)
	}
	store := eventfold.New(drv, nil)
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		panic(err)
	}

	opened, err := store.Append(ctx, "account-42", eventfold.NoStream,
		eventfold.EventData{Type: "AccountOpened", Data: []byte(`{"owner":"ada"}`)},
		eventfold.EventData{Type: "MoneyDeposited", Data: []byte(`{"amount":100}`)},
	)
	if err != nil {
		panic(err)
	}
	fmt.Println("appended versions", opened[0].StreamVersion, opened[1].StreamVersion)

	// A writer that still believes the stream is at version 1 is refused.
	_, err = store.Append(ctx, "account-42", eventfold.Exact(1),
		eventfold.EventData{Type: "MoneyWithdrawn", Data: []byte(`{"amount":50}`)})
	var wev *eventfold.WrongExpectedVersionError
	if errors.As(err, &wev) {
		fmt.Printf("conflict on %s: expected %s, actual %d\n", wev.StreamID, wev.Expected, wev.Actual)
	}

	events, _ := store.ReadStream(ctx, "account-42", eventfold.ReadStreamOptions{})
	for _, e := range events {
		fmt.Println(e.StreamVersion, e.Type, string(e.Data))
	}
	// Output:
	// appended versions 1 2
	// conflict on account-42: expected 1, actual 2
	// 1 AccountOpened {"owner":"ada"}
	// 2 MoneyDeposited {"amount":100}
}

// Reading the whole log as a subscriber does: from the last position seen,
// plus one. ReadAll never passes an event that may still commit.
func ExampleStore_ReadAll() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "eventfold-example")
	defer os.RemoveAll(dir)
	drv, _ := sqldriver.Open(ctx, "sqlite://"+filepath.Join(dir, "events.db"))
	store := eventfold.New(drv, nil)
	defer store.Close()
	_ = store.Migrate(ctx)

	for _, stream := range []string{"cart-1", "cart-2", "cart-1"} {
		_, _ = store.Append(ctx, stream, eventfold.Any, eventfold.EventData{Type: "ItemAdded", Data: []byte(`{}`)})
	}
	var next int64
	for {
		page, err := store.ReadAll(ctx, eventfold.ReadAllOptions{From: next, Limit: 2})
		if err != nil || len(page) == 0 {
			break
		}
		for _, e := range page {
			fmt.Println(e.StreamID, e.StreamVersion)
		}
		next = page[len(page)-1].GlobalPosition + 1
	}
	// Output:
	// cart-1 1
	// cart-2 1
	// cart-1 2
}
