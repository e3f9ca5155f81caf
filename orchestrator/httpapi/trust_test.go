package httpapi_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/orchestrator/httpapi"
	"github.com/eventfold/eventfold/sqldriver"
)

// The trust tests serve a wallet app over a real database: "Deposit" lets
// the authenticated user (header X-User, standing in for real
// authentication) deposit into their own wallet only, and checks that the
// wallet exists in a read-model table.

type deposit struct {
	Wallet string `json:"wallet"`
	Amount int64  `json:"amount"`
}

type walletServer struct {
	url   string
	dsn   string
	store *eventfold.Store[*sql.Tx]
	logMu sync.Mutex
	log   bytes.Buffer
}

func (s *walletServer) logged() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func newWalletServer(t *testing.T, d eventfold.Dialect) *walletServer {
	t.Helper()
	ctx := context.Background()
	dsn := testdb.DSN(t, d)
	drv, err := sqldriver.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	store := eventfold.New(drv, nil)
	_, err = drv.DB().ExecContext(ctx, `CREATE TABLE rm_wallets (id VARCHAR(50) PRIMARY KEY)`)
	require.NoError(t, err)
	_, err = drv.DB().ExecContext(ctx, `INSERT INTO rm_wallets (id) VALUES ('alice'), ('bob')`)
	require.NoError(t, err)

	o := orchestrator.New(store, &orchestrator.Config{MaxAttempts: 3})
	q := "SELECT count(*) FROM rm_wallets WHERE id = ?"
	if d == eventfold.Postgres {
		q = "SELECT count(*) FROM rm_wallets WHERE id = $1"
	}
	orchestrator.Handle(o, "Deposit", func(ctx context.Context, tx *sql.Tx, c deposit) ([]orchestrator.Emit, error) {
		cmd, _ := orchestrator.CommandFrom(ctx)
		if cmd.Envelope.Metadata["user"] != c.Wallet {
			return nil, orchestrator.Reject(errors.New("you may only deposit into your own wallet"))
		}
		if c.Amount <= 0 {
			return nil, orchestrator.Reject(fmt.Errorf("amount must be positive, got %d", c.Amount))
		}
		var n int
		if err := tx.QueryRowContext(ctx, q, c.Wallet).Scan(&n); err != nil {
			return nil, fmt.Errorf("read wallet %q: %w", c.Wallet, err)
		}
		if n == 0 {
			return nil, orchestrator.Reject(fmt.Errorf("no wallet %q", c.Wallet))
		}
		return []orchestrator.Emit{{Stream: "wallet-" + c.Wallet, Expected: eventfold.Any, Type: "Deposited", Data: c}}, nil
	})
	s := &walletServer{dsn: dsn, store: store}
	h := httpapi.New(o, &httpapi.Config{
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&s.logMu, &s.log}, nil)),
		Envelope: func(r *http.Request) (orchestrator.Envelope, error) {
			env, _ := httpapi.DefaultEnvelope(r)
			user := r.Header.Get("X-User")
			env.Metadata = map[string]any{"user": user}
			env.Scope = user // keys belong to the authenticated caller
			return env, nil
		},
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/commands/Deposit"
	return s
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (s *walletServer) post(t *testing.T, user, key, body string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-User", user)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	require.NoError(t, json.Unmarshal(raw, &a.body), "%s", raw)
	return a
}

func trustDialects(t *testing.T, fn func(t *testing.T, d eventfold.Dialect)) {
	for _, d := range []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres, eventfold.MySQL} {
		t.Run(string(d), func(t *testing.T) { fn(t, d) })
	}
}

// TestIdempotencyKeyOverHTTP: the reproduction. Before the fix Bob
// reusing Alice's key got 200 with Alice's event, Alice reusing her key
// with another amount got the old result, and an amount the handler
// refuses got 200.
func TestIdempotencyKeyOverHTTP(t *testing.T) {
	trustDialects(t, func(t *testing.T, d eventfold.Dialect) {
		s := newWalletServer(t, d)
		a := s.post(t, "alice", "k1", `{"wallet":"alice","amount":10}`)
		require.Equal(t, http.StatusCreated, a.status, a.raw)
		aliceEvent := a.body["events"].([]any)[0].(map[string]any)["id"]

		a = s.post(t, "alice", "k1", `{"wallet":"alice","amount":10}`)
		require.Equal(t, http.StatusOK, a.status, a.raw)
		require.Equal(t, true, a.body["duplicate"])

		// Bob's "k1" is his own command: it runs, on his wallet.
		a = s.post(t, "bob", "k1", `{"wallet":"bob","amount":7}`)
		require.Equal(t, http.StatusCreated, a.status, a.raw)
		require.NotContains(t, a.raw, "alice")
		require.NotEqual(t, aliceEvent, a.body["events"].([]any)[0].(map[string]any)["id"])
		// Bob sending Alice's exact request: his command runs and is refused.
		a = s.post(t, "bob", "k9", `{"wallet":"alice","amount":10}`)
		require.Equal(t, http.StatusUnprocessableEntity, a.status, a.raw)
		require.Equal(t, "rejected", a.body["code"])

		for _, body := range []string{`{"wallet":"alice","amount":11}`, `{"wallet":"alice","amount":-5}`} {
			a = s.post(t, "alice", "k1", body)
			require.Equal(t, http.StatusUnprocessableEntity, a.status, a.raw)
			require.Equal(t, "idempotency_key_reused", a.body["code"])
			require.Contains(t, a.body["error"], "already used for a different request")
			require.Nil(t, a.body["events"])
		}
		// Streams, not ReadAll: on PostgreSQL other sessions' transactions
		// may hold the gap-free horizon back.
		for _, w := range []string{"alice", "bob"} {
			evs, err := s.store.ReadStream(context.Background(), "wallet-"+w, eventfold.ReadStreamOptions{})
			require.NoError(t, err)
			require.Len(t, evs, 1, "one deposit into %s's wallet, nothing else", w)
		}
	})
}

// TestInternalErrorIsNotShown: a database failure inside a handler (the
// read-model table renamed away) is 500 "internal error" with a request
// id, logged in full under that id; before the fix it was 422 with the
// driver's message. A rejection stays 422 with its message.
func TestInternalErrorIsNotShown(t *testing.T) {
	trustDialects(t, func(t *testing.T, d eventfold.Dialect) {
		s := newWalletServer(t, d)
		a := s.post(t, "carol", "", `{"wallet":"carol","amount":1}`)
		require.Equal(t, http.StatusUnprocessableEntity, a.status, a.raw)
		require.Equal(t, map[string]any{"code": "rejected", "error": `no wallet "carol"`}, a.body)

		_, err := s.store.Driver().DB().Exec(`ALTER TABLE rm_wallets RENAME TO rm_wallets_moved`)
		require.NoError(t, err)
		a = s.post(t, "alice", "k-db", `{"wallet":"alice","amount":1}`)
		require.Equal(t, http.StatusInternalServerError, a.status, a.raw)
		id, _ := a.body["request_id"].(string)
		require.Len(t, id, 16)
		require.Equal(t, map[string]any{"code": "internal", "error": "internal error", "request_id": id}, a.body)
		require.Equal(t, id, a.header.Get("X-Request-ID"))
		require.NotContains(t, a.raw, "rm_wallets")
		log := s.logged()
		require.Contains(t, log, "request_id="+id)
		require.Contains(t, log, "rm_wallets", "the log has the database's own message")
		require.Contains(t, log, "level=ERROR")
	})
}

// TestArchivedCommandOverHTTP: re-sending the key of a command whose
// events were archived is 410 with a clear message (it was 500).
func TestArchivedCommandOverHTTP(t *testing.T) {
	trustDialects(t, func(t *testing.T, d eventfold.Dialect) {
		s := newWalletServer(t, d)
		require.Equal(t, http.StatusCreated, s.post(t, "alice", "old", `{"wallet":"alice","amount":1}`).status)
		a := s.post(t, "alice", "new", `{"wallet":"alice","amount":2}`)
		require.Equal(t, http.StatusCreated, a.status)
		head := int64(a.body["events"].([]any)[0].(map[string]any)["global_position"].(float64))
		_, err := s.store.WaitHead(context.Background(), head)
		require.NoError(t, err)
		var out, errOut bytes.Buffer
		code := esctl.Main(context.Background(), []string{"--dsn", s.dsn, "archive", "--before", fmt.Sprint(head), "--to", filepath.Join(t.TempDir(), "a.jsonl.gz")}, &out, &errOut, esctl.Options{})
		require.Zero(t, code, "%s%s", out.String(), errOut.String())

		a = s.post(t, "alice", "old", `{"wallet":"alice","amount":1}`)
		require.Equal(t, http.StatusGone, a.status, a.raw)
		require.Equal(t, "archived", a.body["code"])
		require.Contains(t, a.body["error"], "the events of this command were archived")
		// The command did not run again; the other key still replays.
		a = s.post(t, "alice", "new", `{"wallet":"alice","amount":2}`)
		require.Equal(t, http.StatusOK, a.status, a.raw)
		require.Equal(t, true, a.body["duplicate"])
	})
}
