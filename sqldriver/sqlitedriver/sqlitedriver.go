// Package sqlitedriver registers SQLite (modernc.org/sqlite, pure Go) with
// package sqldriver. Import it for its side effect in a program that opens
// sqlite:// DSNs; a program that does not import it links no SQLite:
//
//	import _ "github.com/eventfold/eventfold/sqldriver/sqlitedriver"
//
//	d, err := sqldriver.Open(ctx, "sqlite://eventfold.db")
package sqlitedriver

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect"
	sqliteops "github.com/eventfold/eventfold/internal/dialect/sqlite"
	"github.com/eventfold/eventfold/sqldriver/internal/registry"
)

func init() {
	registry.Register(registry.Entry{
		Dialect:   eventfold.SQLite,
		Ops:       func(db dialect.DB) eventfold.Ops { return sqliteops.New(db) },
		Connector: connector,
	})
}

// connector opens sqlite://PATH with WAL, synchronous=NORMAL, a busy
// timeout, foreign keys, temporary storage in memory and BEGIN IMMEDIATE
// for every transaction.
//
// temp_store=MEMORY keeps statement journals in memory. A statement that
// writes several rows inside a transaction (group commit's multi-row
// INSERT of a batch's events, a batch reducer's multi-row upsert) copies
// every page it changes that the transaction had already changed into a
// statement journal, so that it can be undone alone; past 64 KiB SQLite
// spills that journal to a temporary file, and from then on writes it
// there, a pwrite per page and more, in every such statement. A batch of
// ~14 commands on distinct streams changes more pages than that
// (measured with strace, esctl bench --group-commit at 16 clients,
// batched: 0.56 system calls per command on the temporary file, beside
// 3.3 for the WAL; none with this setting).
// Temporary tables and indexes live in memory too; a DSN parameter
// _pragma=temp_store(DEFAULT) (or any other temp_store pragma) replaces
// this one. (The driver runs _pragma values sorted, not in DSN order, so
// the DSN's is not merely added after it.)
func connector(dsn string) (driver.Connector, error) {
	path, query, err := registry.SplitSQLite(dsn)
	if err != nil {
		return nil, err
	}
	params := url.Values{}
	params.Add("_pragma", "busy_timeout(10000)")
	params.Add("_pragma", "journal_mode(WAL)")
	params.Add("_pragma", "synchronous(NORMAL)")
	params.Add("_pragma", "foreign_keys(1)")
	params.Set("_txlock", "immediate")
	params.Set("_time_format", "sqlite")
	extra, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("sqlite DSN parameters: %v", err)
	}
	if !slices.ContainsFunc(extra["_pragma"], func(p string) bool {
		return strings.HasPrefix(strings.ToLower(strings.TrimSpace(p)), "temp_store")
	}) {
		params.Add("_pragma", "temp_store(MEMORY)")
	}
	for k, vs := range extra {
		for _, v := range vs {
			params.Add(k, v)
		}
	}
	return dsnConnector{drv: &sqlite.Driver{}, dsn: "file:" + registry.SQLiteURIPath.Replace(path) + "?" + params.Encode()}, nil
}

// dsnConnector adapts a driver without a connector of its own.
type dsnConnector struct {
	drv driver.Driver
	dsn string
}

// Connect opens a connection. Opening runs the pragmas, and switching a
// new file to WAL needs an exclusive lock that the busy timeout does not
// wait for: two processes opening a fresh file at once (two `esctl
// migrate up`) could fail with SQLITE_BUSY. It retries that, for up to
// the busy timeout.
func (c dsnConnector) Connect(ctx context.Context) (driver.Conn, error) {
	deadline := time.Now().Add(10 * time.Second)
	for wait := 2 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		conn, err := c.drv.Open(c.dsn)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return conn, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

func (c dsnConnector) Driver() driver.Driver { return c.drv }
