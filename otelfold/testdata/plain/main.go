// Command plain is a service that uses eventfold without otelfold: the
// dependency test checks that it links no OpenTelemetry.
package main

import (
	"context"
	"database/sql"
	"net/http"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/listener/sse"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/orchestrator/httpapi"
	"github.com/eventfold/eventfold/sqldriver"
)

func main() {
	ctx := context.Background()
	drv, err := sqldriver.Open(ctx, "sqlite://plain.db")
	if err != nil {
		panic(err)
	}
	store := eventfold.New(drv, nil)
	o := orchestrator.New(store, nil)
	sub, _ := listener.New(store, "s", func(context.Context, eventfold.Event) error { return nil }, nil)
	go sub.Run(ctx)
	var _ *eventfold.Store[*sql.Tx] = store
	mux := http.NewServeMux()
	mux.Handle("POST /commands/{name}", httpapi.New(o, nil))
	mux.Handle("GET /events", sse.New(store, nil))
	_ = http.ListenAndServe("127.0.0.1:0", mux)
}
