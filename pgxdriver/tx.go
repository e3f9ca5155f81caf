package pgxdriver

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/dialect/postgres"
)

// beginOptions are the options of every transaction Begin starts.
var beginOptions = pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadWrite}

// beginSQL is what pgx sends for beginOptions.
const beginSQL = "begin isolation level read committed read write"

// tx is the pgx.Tx that Driver.Begin returns. It holds a pool connection
// but sends BEGIN only with the transaction's first statement, in the same
// network write (a pgx batch: one pipeline, one Sync), so that a
// transaction costs one round trip fewer. Writes queued with
// QueueBeforeCommit go in the same pipeline as COMMIT. A failed BEGIN is
// reported by the first statement as "pgxdriver: begin: ...".
//
// Everything a pgx.Tx offers works: Begin (a savepoint), Conn, CopyFrom
// and LargeObjects first send BEGIN on their own.
type tx struct {
	c      *pgxpool.Conn
	begun  bool   // BEGIN was sent
	closed bool   // committed or rolled back
	real   pgx.Tx // a pgx transaction object on c, made on demand (see materialise)

	queued []queuedWrite

	// deferred are writes of reducers registered WithDeferredWrites
	// (see deferTx), sent before the next statement of the transaction or
	// with COMMIT; flushErr is the mapped error of one that failed, which
	// Commit returns (the transaction is aborted: nothing commits).
	deferred []queuedWrite
	flushErr error
	// flushUnsent: flushErr's write was refused before anything was sent
	// (pgx could not encode it), so the transaction is not aborted.
	flushUnsent bool
	// nested is set once a savepoint was taken through pgx's Begin: writes
	// are no longer deferred, since pgx's savepoint rolls back on the
	// connection, out of this type's sight.
	nested bool
}

type queuedWrite struct {
	sql     string
	args    []any
	onError func(error) error
}

var (
	_ pgx.Tx               = (*tx)(nil)
	_ postgres.CommitQueue = (*tx)(nil)
	_ postgres.DeferQueue  = (*tx)(nil)
)

func beginError(err error) error { return fmt.Errorf("pgxdriver: begin: %w", err) }

// ensureBegun sends BEGIN on its own, for the operations that cannot carry
// it in a pipeline.
func (t *tx) ensureBegun(ctx context.Context) error {
	if t.begun {
		return nil
	}
	ptx, err := t.c.Conn().BeginTx(ctx, beginOptions)
	if err != nil {
		return beginError(err)
	}
	t.begun, t.real = true, ptx
	return nil
}

// materialise returns a pgx transaction object on the connection, for
// nested transactions (pgx's savepoints) and large objects, which pgx only
// builds on its own transaction type. When BEGIN went out in a pipeline,
// pgx's BeginTx sends a second BEGIN, which PostgreSQL answers with a
// warning and no change.
func (t *tx) materialise(ctx context.Context) (pgx.Tx, error) {
	if t.real != nil {
		return t.real, nil
	}
	if err := t.ensureBegun(ctx); err != nil {
		return nil, err
	}
	if t.real == nil {
		ptx, err := t.c.Conn().BeginTx(ctx, beginOptions)
		if err != nil {
			return nil, err
		}
		t.real = ptx
	}
	return t.real, nil
}

// withBegin returns a batch of BEGIN followed by b's queries.
func withBegin(b *pgx.Batch) *pgx.Batch {
	nb := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(b.QueuedQueries)+1)}
	nb.Queue(beginSQL)
	nb.QueuedQueries = append(nb.QueuedQueries, b.QueuedQueries...)
	return nb
}

// sendFirst sends BEGIN and the queries of b in one pipeline and reads
// BEGIN's result; the caller reads the rest and closes the results.
func (t *tx) sendFirst(ctx context.Context, b *pgx.Batch) (pgx.BatchResults, error) {
	br := t.c.Conn().SendBatch(ctx, withBegin(b))
	t.begun = true
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		var pe pgx.ErrPreprocessingBatch
		if !errors.As(err, &pe) {
			pc := t.c.Conn().PgConn()
			if pc.IsClosed() || pc.TxStatus() != 'I' {
				return nil, beginError(err)
			}
			// The connection is still idle outside a transaction: pgx
			// refused the batch before sending it (a context already
			// done, an argument the exec mode cannot encode). BEGIN did
			// not go out, so the next statement must send it, and the
			// error is the statement's (or the context's), not BEGIN's.
			t.begun = false
			return nil, err
		}
		// pgx prepares and encodes every statement before it sends any:
		// nothing ran, and the error is a statement's, reported as
		// Conn.Exec would report it (a batch's as pgx reports it).
		t.begun = false
		switch {
		case pe.SQL() == beginSQL:
			return nil, beginError(pe.Unwrap())
		case len(b.QueuedQueries) == 1:
			return nil, pe.Unwrap()
		}
		return nil, err
	}
	return br, nil
}

// Begin starts a nested transaction (a savepoint), as pgx's does.
func (t *tx) Begin(ctx context.Context) (pgx.Tx, error) {
	if t.closed {
		return nil, pgx.ErrTxClosed
	}
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	t.nested = true
	ptx, err := t.materialise(ctx)
	if err != nil {
		return nil, err
	}
	return ptx.Begin(ctx)
}

// Exec runs a statement; the first one of the transaction carries BEGIN.
// A first statement without arguments is sent after a BEGIN of its own:
// pgx sends it in the simple protocol, which allows several statements in
// one string, and a pipeline would not.
func (t *tx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.closed {
		return pgconn.CommandTag{}, pgx.ErrTxClosed
	}
	if err := t.flush(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	if t.begun || len(args) == 0 {
		if err := t.ensureBegun(ctx); err != nil {
			return pgconn.CommandTag{}, err
		}
		return t.c.Exec(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	br, err := t.sendFirst(ctx, b)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// Query runs a query; the first statement of the transaction carries BEGIN.
func (t *tx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if t.closed {
		return nil, pgx.ErrTxClosed
	}
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	if t.begun {
		return t.c.Query(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	br, err := t.sendFirst(ctx, b)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// QueryRow runs a query expected to return at most one row.
func (t *tx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	return &row{rows: rows, err: err}
}

// SendBatch sends b; the first statement of the transaction carries BEGIN.
func (t *tx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if t.closed {
		return pgx.FailedBatchResults(b, pgx.ErrTxClosed)
	}
	if err := t.flush(ctx); err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	if t.begun {
		return t.c.SendBatch(ctx, b)
	}
	br, err := t.sendFirst(ctx, b)
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return br
}

// CopyFrom runs COPY FROM after a BEGIN of its own.
func (t *tx) CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error) {
	if t.closed {
		return 0, pgx.ErrTxClosed
	}
	if err := t.flush(ctx); err != nil {
		return 0, err
	}
	if err := t.ensureBegun(ctx); err != nil {
		return 0, err
	}
	return t.c.CopyFrom(ctx, tableName, columnNames, rowSrc)
}

// LargeObjects returns pgx's large objects in this transaction (BEGIN is
// sent first, without a context: it cannot be cancelled).
func (t *tx) LargeObjects() pgx.LargeObjects {
	_ = t.flush(context.Background()) // a failure stays in flushErr for Commit
	t.nested = true
	ptx, err := t.materialise(context.Background())
	if err != nil {
		// pgx.LargeObjects cannot carry an error: this one panics on use,
		// as pgx's own does on a nil transaction. BEGIN only fails on a
		// broken connection.
		return pgx.LargeObjects{}
	}
	return ptx.LargeObjects()
}

// Prepare prepares a statement on the transaction's connection.
func (t *tx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if t.closed {
		return nil, pgx.ErrTxClosed
	}
	return t.c.Conn().Prepare(ctx, name, sql)
}

// Conn returns the transaction's connection, after sending BEGIN (without
// a context) so that what runs on it is inside the transaction.
func (t *tx) Conn() *pgx.Conn {
	// A failed flush stays in flushErr, which Commit returns.
	_ = t.flush(context.Background())
	t.nested = true // what runs on the connection is out of sight
	_ = t.ensureBegun(context.Background())
	return t.c.Conn()
}

// QueueBeforeCommit implements postgres.CommitQueue: the statement is sent
// with COMMIT, in one pipeline; when it fails, nothing commits and Commit
// returns a *contract.QueuedWriteError holding onError's mapping.
func (t *tx) QueueBeforeCommit(sql string, args []any, onError func(error) error) {
	t.queued = append(t.queued, queuedWrite{sql: sql, args: args, onError: onError})
}

// release returns the connection to the pool (which discards it when it
// is not idle).
func (t *tx) release() {
	t.closed = true
	t.queued, t.deferred = nil, nil
	if t.c != nil {
		t.c.Release()
		t.c = nil
	}
}

// Commit sends the queued writes and COMMIT in one pipeline (with BEGIN
// too when nothing was sent yet). A transaction that sent nothing and
// queued nothing commits without a round trip.
func (t *tx) Commit(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	defer t.release()
	if t.flushErr != nil && (t.flushUnsent || t.c.Conn().PgConn().TxStatus() == 'E') {
		// A deferred write failed before COMMIT and the transaction is
		// still aborted (no ROLLBACK TO SAVEPOINT since): COMMIT is not
		// sent, the write's error is the answer.
		t.abandon(ctx)
		return t.flushErr
	}
	if len(t.queued) == 0 && len(t.deferred) == 0 {
		if !t.begun {
			return nil
		}
		tag, err := t.c.Exec(ctx, "commit")
		return t.commitResult(ctx, tag, err)
	}
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(t.deferred)+len(t.queued)+2)}
	first := !t.begun
	if first {
		b.Queue(beginSQL)
	}
	for _, q := range t.deferred {
		b.Queue(q.sql, q.args...)
	}
	for _, q := range t.queued {
		b.Queue(q.sql, q.args...)
	}
	b.Queue("commit")
	br := t.c.Conn().SendBatch(ctx, b)
	t.begun = true
	if first {
		if _, err := br.Exec(); err != nil {
			return t.queuedFailed(ctx, br, -1, err)
		}
	}
	for i := range t.deferred {
		if _, err := br.Exec(); err != nil {
			return t.deferredFailed(ctx, br, i, err)
		}
	}
	for i := range t.queued {
		if _, err := br.Exec(); err != nil {
			return t.queuedFailed(ctx, br, i, err)
		}
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return t.commitResult(ctx, tag, err)
}

// deferredFailed ends a transaction whose COMMIT pipeline failed at the
// deferred write i, and returns a *contract.QueuedWriteError with Index -1
// holding the write's onError mapping.
func (t *tx) deferredFailed(ctx context.Context, br pgx.BatchResults, i int, err error) error {
	_ = br.Close()
	t.abandon(ctx)
	var pe pgx.ErrPreprocessingBatch
	if errors.As(err, &pe) {
		err = pe.Unwrap()
		i = whichWrite(t.deferred, pe.SQL(), i)
	}
	return &contract.QueuedWriteError{Index: -1, Err: t.deferred[i].onError(err)}
}

// whichWrite returns the index of the write whose SQL is sql, def when
// none is (pgx names the statement it could not prepare or encode).
func whichWrite(ws []queuedWrite, sql string, def int) int {
	for j, w := range ws {
		if w.sql == sql {
			return j
		}
	}
	return def
}

// queueDeferred queues a deferred write (see deferTx).
func (t *tx) queueDeferred(sql string, args []any, onError func(error) error) {
	t.deferred = append(t.deferred, queuedWrite{sql: sql, args: args, onError: onError})
}

// flush sends the deferred writes now, in one pipeline (with BEGIN when
// nothing was sent yet), ahead of a statement that must see them. A write
// that fails aborts the transaction: its onError mapping is returned, and
// kept for Commit, which returns it (and rolls back) while the
// transaction is still aborted. Later statements go to the server, which
// refuses them in an aborted transaction, except ROLLBACK TO SAVEPOINT.
func (t *tx) flush(ctx context.Context) error {
	if len(t.deferred) == 0 {
		return nil
	}
	ws := t.deferred
	t.deferred = nil
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(ws)+1)}
	for _, w := range ws {
		b.Queue(w.sql, w.args...)
	}
	fail := func(i int, err error) error {
		var pe pgx.ErrPreprocessingBatch
		unsent := errors.As(err, &pe)
		if unsent {
			err = pe.Unwrap()
			i = whichWrite(ws, pe.SQL(), i)
		}
		mapped := ws[i].onError(err)
		if t.flushErr == nil {
			// The first failure is the one to report: the later ones are
			// "transaction aborted" of the same.
			t.flushErr, t.flushUnsent = mapped, unsent
		}
		return mapped
	}
	var br pgx.BatchResults
	if t.begun {
		br = t.c.SendBatch(ctx, b)
	} else {
		var err error
		if br, err = t.sendFirst(ctx, b); err != nil {
			return fail(0, err)
		}
	}
	for i := range ws {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fail(i, err)
		}
	}
	if err := br.Close(); err != nil {
		return fail(len(ws)-1, err)
	}
	return nil
}

// DiscardDeferred implements postgres.DeferQueue: ROLLBACK TO SAVEPOINT
// is about to undo whatever is deferred (every savepoint was set by a
// statement, which sent the deferred writes before it), including a
// failed one.
func (t *tx) DiscardDeferred() {
	t.deferred, t.flushErr, t.flushUnsent = nil, nil, false
}

// queuedFailed ends a transaction whose COMMIT pipeline failed before
// COMMIT, at the queued write i (-1: BEGIN), and returns the error: a
// *contract.QueuedWriteError for a queued write.
func (t *tx) queuedFailed(ctx context.Context, br pgx.BatchResults, i int, err error) error {
	_ = br.Close()
	t.abandon(ctx)
	var pe pgx.ErrPreprocessingBatch
	if errors.As(err, &pe) {
		// Refused before anything was sent: the error names the statement.
		err = pe.Unwrap()
		i = -2
		for j, q := range t.queued {
			if q.sql == pe.SQL() {
				i = j
				break
			}
		}
		if i == -2 {
			if pe.SQL() == beginSQL {
				return beginError(err)
			}
			return pe
		}
	}
	if i < 0 {
		return beginError(err)
	}
	return &contract.QueuedWriteError{Index: i, Err: t.queued[i].onError(err)}
}

// commitResult maps COMMIT's reply as pgx does.
func (t *tx) commitResult(ctx context.Context, tag pgconn.CommandTag, err error) error {
	if err != nil {
		if t.c.Conn().PgConn().TxStatus() != 'I' {
			_ = t.c.Conn().Close(ctx) // the error at hand says enough
		}
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// abandon ends a transaction whose COMMIT pipeline failed before COMMIT:
// a rollback when the connection still works, closing it otherwise.
func (t *tx) abandon(ctx context.Context) {
	pc := t.c.Conn().PgConn()
	if pc.IsClosed() || pc.TxStatus() == 'I' {
		return
	}
	if _, err := t.c.Exec(context.WithoutCancel(ctx), "rollback"); err != nil {
		_ = t.c.Conn().Close(ctx)
	}
}

// Rollback rolls the transaction back; a transaction that sent nothing
// ends without a round trip.
func (t *tx) Rollback(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	defer t.release()
	if !t.begun {
		return nil
	}
	if _, err := t.c.Exec(ctx, "rollback"); err != nil {
		_ = t.c.Conn().Close(ctx) // the connection's state is unknown
		return err
	}
	return nil
}

// batchRows are the rows of a transaction's first query, which came in a
// batch with BEGIN: closing them closes the batch.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = r.br.Close()
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// row is QueryRow's result, with pgx's QueryRow semantics.
type row struct {
	rows pgx.Rows
	err  error
}

func (r *row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	rows := r.rows
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// deferTx is the pgx.Tx a reducer registered with deferred writes gets
// (Driver.DeferWrites): Exec queues the statement and returns at once; it
// is sent before the transaction's next statement of any kind (a Query, a
// SendBatch, another reducer's Exec, a SAVEPOINT: read-your-writes holds)
// or with COMMIT, in one pipeline. Everything else is the transaction's.
//
// A deferred Exec returns the command tag "DEFERRED", whose RowsAffected
// is 0: rows affected are not known before the statement runs.
type deferTx struct {
	*tx
	onError func(error) error
}

// deferredTag is the command tag of a deferred Exec.
var deferredTag = pgconn.NewCommandTag("DEFERRED")

// Exec queues the statement. A statement without arguments runs at once:
// pgx sends it in the simple protocol, which allows several statements in
// one string, and a pipeline would not. So does every statement once a
// savepoint was taken through Begin.
func (d deferTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	t := d.tx
	if t.closed {
		return pgconn.CommandTag{}, pgx.ErrTxClosed
	}
	if t.nested || len(args) == 0 {
		return t.Exec(ctx, sql, args...)
	}
	t.queueDeferred(sql, args, d.onError)
	return deferredTag, nil
}

// txOf returns the pgxdriver transaction behind t, nil when t is not one.
func txOf(t pgx.Tx) *tx {
	switch v := t.(type) {
	case *tx:
		return v
	case deferTx:
		return v.tx
	}
	return nil
}
