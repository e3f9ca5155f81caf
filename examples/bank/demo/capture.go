package demo

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"
	"sync"

	"github.com/eventfold/eventfold/orchestrator"
)

// recorder remembers the statements a database connection runs, so that
// the demo can show them. It sits between database/sql and the real
// driver (a driver.Connector wrapper), so it sees exactly what is sent,
// including BEGIN, COMMIT and ROLLBACK.
type recorder struct {
	mu    sync.Mutex
	on    bool
	begin string // how this dialect's BEGIN reads
	stmts []statement
}

type statement struct {
	step string // which part of the dispatch ran it (orchestrator.Step)
	sql  string
	args []driver.NamedValue
}

func (r *recorder) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on, r.stmts = true, nil
}

func (r *recorder) stop() []statement {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	return r.stmts
}

func (r *recorder) add(ctx context.Context, query string, args []driver.NamedValue) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.on {
		return
	}
	step := ""
	{
		if s, ok := orchestrator.StepFrom(ctx); ok {
			step = s.Kind
			switch s.Kind {
			case "reducer":
				step = fmt.Sprintf("reducer %s (%s)", s.Name, s.EventType)
			case "append":
				step = "append " + s.EventType
			case "lookup", "record":
				step = "idempotency " + s.Kind
			}
		}
	}
	r.stmts = append(r.stmts, statement{step: step, sql: query, args: args})
}

type connector struct {
	inner driver.Connector
	rec   *recorder
}

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	inner, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &conn{Conn: inner, rec: c.rec}, nil
}

func (c *connector) Driver() driver.Driver { return c.inner.Driver() }

// conn forwards to the real connection and records what it runs. When the
// real connection lacks a fast path, driver.ErrSkip sends database/sql to
// the next one (prepare, then execute), which is recorded as well.
type conn struct {
	driver.Conn
	rec *recorder
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var tx driver.Tx
	var err error
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = c.Conn.Begin() //nolint:staticcheck // fallback for old drivers
	}
	if err != nil {
		return nil, err
	}
	begin := c.rec.begin
	if opts.Isolation != 0 {
		begin += "  -- isolation: " + isolationName(opts.Isolation)
	}
	c.rec.add(context.Background(), begin, nil)
	return &txRec{Tx: tx, rec: c.rec}, nil
}

func isolationName(l driver.IsolationLevel) string {
	names := map[driver.IsolationLevel]string{1: "READ UNCOMMITTED", 2: "READ COMMITTED", 4: "REPEATABLE READ", 6: "SERIALIZABLE"}
	if n, ok := names[l]; ok {
		return n
	}
	return fmt.Sprint(int(l))
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	res, err := e.ExecContext(ctx, query, args)
	if err != driver.ErrSkip { // ErrSkip: database/sql prepares instead, recorded there
		c.rec.add(ctx, query, args)
	}
	return res, err
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, query, args)
	if err != driver.ErrSkip {
		c.rec.add(ctx, query, args)
	}
	return rows, err
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var st driver.Stmt
	var err error
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.Conn.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &stmt{Stmt: st, rec: c.rec, query: query}, nil
}

// CheckNamedValue lets the real driver accept its own argument types
// (pgx's pgtype values, for one).
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (c *conn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *conn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *conn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

type stmt struct {
	driver.Stmt
	rec   *recorder
	query string
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.rec.add(ctx, s.query, args)
	if e, ok := s.Stmt.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	return nil, fmt.Errorf("demo: driver statement lacks ExecContext")
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.rec.add(ctx, s.query, args)
	if q, ok := s.Stmt.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	return nil, fmt.Errorf("demo: driver statement lacks QueryContext")
}

func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := s.Stmt.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

type txRec struct {
	driver.Tx
	rec *recorder
}

func (t *txRec) Commit() error {
	t.rec.add(context.Background(), "COMMIT", nil)
	return t.Tx.Commit()
}

func (t *txRec) Rollback() error {
	t.rec.add(context.Background(), "ROLLBACK", nil)
	return t.Tx.Rollback()
}

// oneLine squeezes a statement onto one line for printing.
func oneLine(q string) string {
	var lines []string
	for _, l := range strings.Split(q, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "--") {
			continue
		}
		lines = append(lines, l)
	}
	return strings.Join(strings.Fields(strings.Join(lines, " ")), " ")
}
