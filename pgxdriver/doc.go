// Package pgxdriver connects an eventfold Store to PostgreSQL through pgx v5
// and a *pgxpool.Pool. Transactions are pgx.Tx, so appends, reducers and
// the caller's own sqlc queries share one transaction with no casts:
//
//	pool, err := pgxpool.New(ctx, "postgres://app@db/app")
//	if err != nil { ... }
//	defer pool.Close()
//	store := eventfold.New(pgxdriver.New(pool), nil)
//	if err := store.Migrate(ctx); err != nil { ... }
//	err = store.InTx(ctx, func(tx pgx.Tx) error {
//		_, err := store.AppendTx(ctx, tx, "account-42", eventfold.NoStream, eventfold.EventData{
//			Type: "AccountOpened", Data: []byte(`{"owner":"Ada"}`),
//		})
//		return err // plus: update read models with tx
//	})
//
// Use package sqldriver instead when the application works with
// database/sql.
package pgxdriver
