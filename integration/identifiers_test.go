package integration

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// identifierPairs differ only in a way some comparison ignores: padding,
// case, Unicode normalisation, an invisible character. Every table must
// keep the two apart, byte for byte, on every dialect.
var identifierPairs = []struct{ name, a, b string }{
	{"trailing space", "id-X", "id-X "},
	{"trailing spaces", "id-X", "id-X   "},
	{"case", "id-x", "id-X"},
	{"normalisation NFC-NFD", "id-\u00c5", "id-A\u030a"},
	{"zero-width space", "id-X", "id-\u200bX"},
	{"byte-order mark", "id-X", "\ufeffid-X"},
	{"leading space", "id-X", " id-X"},
}

// The dialect operations the conformance test drives, below the Go
// validation (which refuses some of these identifiers before any SQL), so
// that the schema itself is what is tested: what a DBA's SQL, or a future
// caller that skips validation, meets.
type (
	commandTable interface {
		LookupCommand(ctx context.Context, scope, id string) (commandType, payloadHash string, refs []byte, found bool, err error)
		RecordCommand(ctx context.Context, scope, id, commandType, payloadHash string, refs []byte) (duplicate bool, err error)
	}
	checkpointTable interface {
		GetCheckpoint(ctx context.Context, name string) (pos int64, found bool, err error)
		SetCheckpoint(ctx context.Context, name string, pos int64) error
		ListCheckpoints(ctx context.Context) ([]contract.CheckpointRow, error)
	}
	leaseTable interface {
		AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
		LeaseOwner(ctx context.Context, name string) (string, error)
		ReleaseLease(ctx context.Context, name, owner string) error
	}
)

// TestIdentifiersByteExact runs identifier pairs through every table of
// every dialect: streams and events (stream id, event type), commands
// (command id), checkpoints (subscription name) and leases (name, owner).
// Two identifiers that differ in any byte must never share a row.
func TestIdentifiersByteExact(t *testing.T) {
	testdb.EachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		identifierPairsSuite(t, testdb.SQLStore(t, d))
	})
	// The columns without an explicit collation (event type, lease owner,
	// command type) take the database's default: a linguistic (ICU) one
	// must still compare byte for byte. PostgreSQL only allows
	// deterministic collations as a database default, and a deterministic
	// collation calls two strings equal only when their bytes are.
	t.Run("postgres-icu-default-collation", func(t *testing.T) {
		t.Parallel()
		identifierPairsSuite(t, postgresICUStore(t))
	})
}

func identifierPairsSuite(t *testing.T, s *eventfold.Store[*sql.Tx]) {
	for i, p := range identifierPairs {
		t.Run(p.name, func(t *testing.T) {
			a, b := fmt.Sprintf("%d%s", i, p.a), fmt.Sprintf("%d%s", i, p.b)
			t.Run("streams", func(t *testing.T) { streamsByteExact(t, s, a, b) })
			t.Run("event types", func(t *testing.T) { typesByteExact(t, s, "types-"+a, a, b) })
			t.Run("commands", func(t *testing.T) { commandsByteExact(t, s, a, b) })
			t.Run("checkpoints", func(t *testing.T) { checkpointsByteExact(t, s, a, b) })
			t.Run("lease owners", func(t *testing.T) { leaseOwnersByteExact(t, s, "lease-"+a, a, b) })
			t.Run("lease names", func(t *testing.T) { leaseNamesByteExact(t, s, a, b) })
		})
	}
}

// postgresICUStore returns a store on a fresh, migrated PostgreSQL database
// whose default collation is ICU's en-US (dropped when the test ends).
func postgresICUStore(t *testing.T) *eventfold.Store[*sql.Tx] {
	ctx := context.Background()
	server := testdb.ServerDSN(t, eventfold.Postgres)
	admin, err := sqldriver.Open(ctx, server)
	require.NoError(t, err)
	defer admin.Close()
	name := "eftest_icu_" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
	_, err = admin.DB().ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
	if err != nil {
		t.Skipf("no ICU collation on this server: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sqldriver.Open(ctx, server)
		if err == nil {
			_, err = admin.DB().ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			admin.Close()
		}
		if err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(server)
	require.NoError(t, err)
	u.Path = "/" + name
	drv, err := sqldriver.Open(ctx, u.String())
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	var provider string
	require.NoError(t, drv.DB().QueryRowContext(ctx, "SELECT datlocprovider FROM pg_database WHERE datname = current_database()").Scan(&provider))
	require.Equal(t, "i", provider, "the database's default collation is not ICU's")
	s := eventfold.New(drv, nil)
	require.NoError(t, s.Migrate(ctx))
	return s
}

// opsAppend appends one event through the dialect, without Go validation.
func opsAppend(t *testing.T, s *eventfold.Store[*sql.Tx], stream, typ string, exp eventfold.ExpectedVersion) ([]eventfold.Event, error) {
	t.Helper()
	var out []eventfold.Event
	err := s.InTx(context.Background(), func(tx *sql.Tx) error {
		var err error
		out, err = s.Driver().OpsTx(tx).Append(context.Background(), stream, exp, []eventfold.EventData{
			{ID: uuid.NewString(), Type: typ, Data: json.RawMessage(`{}`), Metadata: json.RawMessage(`{}`)},
		})
		return err
	})
	return out, err
}

func streamsByteExact(t *testing.T, s *eventfold.Store[*sql.Tx], a, b string) {
	ctx := context.Background()
	// b is new: NoStream must hold for it although a exists.
	_, err := opsAppend(t, s, a, "T", eventfold.NoStream)
	require.NoError(t, err)
	evs, err := opsAppend(t, s, b, "T", eventfold.NoStream)
	require.NoError(t, err, "stream %q taken for the existing stream %q", b, a)
	require.Equal(t, b, evs[0].StreamID)
	require.EqualValues(t, 1, evs[0].StreamVersion)
	for _, id := range []string{a, b} {
		got, err := s.Driver().Ops().ReadStream(ctx, id, 1, 10, false)
		require.NoError(t, err)
		require.Len(t, got, 1, "stream %q", id)
		require.Equal(t, id, got[0].StreamID)
		v, err := s.Driver().Ops().StreamVersion(ctx, id)
		require.NoError(t, err)
		require.EqualValues(t, 1, v, "version of %q", id)
	}
}

func typesByteExact(t *testing.T, s *eventfold.Store[*sql.Tx], stream, a, b string) {
	ctx := context.Background()
	_, err := opsAppend(t, s, stream, a, eventfold.Any)
	require.NoError(t, err)
	_, err = opsAppend(t, s, stream, b, eventfold.Any)
	require.NoError(t, err)
	got, err := s.Driver().Ops().ReadStream(ctx, stream, 1, 10, false)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, []string{a, b}, []string{got[0].Type, got[1].Type}, "types as read back")
}

func commandsByteExact(t *testing.T, s *eventfold.Store[*sql.Tx], a, b string) {
	ctx := context.Background()
	rec, ok := s.Driver().Ops().(commandTable)
	require.True(t, ok, "the %s dialect has no command records with the expected methods", s.Dialect())
	record := func(id, refs string) bool {
		var dup bool
		require.NoError(t, s.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			dup, err = s.Driver().OpsTx(tx).(commandTable).RecordCommand(ctx, "", id, "Pay", "", []byte(refs))
			return err
		}))
		return dup
	}
	require.False(t, record(a, `[{"s":"a","v":1}]`))
	require.False(t, record(b, `[{"s":"b","v":1}]`), "command %q reported as a duplicate of %q", b, a)
	for id, want := range map[string]string{a: `[{"s":"a","v":1}]`, b: `[{"s":"b","v":1}]`} {
		_, _, refs, found, err := rec.LookupCommand(ctx, "", id)
		require.NoError(t, err)
		require.True(t, found, "command %q", id)
		require.JSONEq(t, want, string(refs), "command %q", id)
	}
}

func checkpointsByteExact(t *testing.T, s *eventfold.Store[*sql.Tx], a, b string) {
	ctx := context.Background()
	cp, ok := s.Driver().Ops().(checkpointTable)
	require.True(t, ok, "the %s dialect has no checkpoints with the expected methods", s.Dialect())
	set := func(name string, pos int64) {
		require.NoError(t, s.InTx(ctx, func(tx *sql.Tx) error {
			return s.Driver().OpsTx(tx).(checkpointTable).SetCheckpoint(ctx, name, pos)
		}))
	}
	set(a, 45)
	pos, found, err := cp.GetCheckpoint(ctx, b)
	require.NoError(t, err)
	require.False(t, found, "subscription %q sees the checkpoint of %q (at %d)", b, a, pos)
	set(b, 7)
	for name, want := range map[string]int64{a: 45, b: 7} {
		pos, found, err := cp.GetCheckpoint(ctx, name)
		require.NoError(t, err)
		require.True(t, found, "checkpoint %q", name)
		require.Equal(t, want, pos, "checkpoint %q", name)
	}
	names := map[string]bool{}
	rows, err := cp.ListCheckpoints(ctx)
	require.NoError(t, err)
	for _, r := range rows {
		names[r.Name] = true
	}
	require.True(t, names[a] && names[b], "listed: %q", names)
}

// leaseOps returns the lease operations and a helper to acquire a lease in
// a transaction of its own.
func leaseOps(t *testing.T, s *eventfold.Store[*sql.Tx]) (leaseTable, func(fn func(l leaseTable) error), func(name, owner string) bool) {
	ctx := context.Background()
	ls, ok := s.Driver().Ops().(leaseTable)
	require.True(t, ok, "the %s dialect has no leases with the expected methods", s.Dialect())
	inTx := func(fn func(l leaseTable) error) {
		require.NoError(t, s.InTx(ctx, func(tx *sql.Tx) error { return fn(s.Driver().OpsTx(tx).(leaseTable)) }))
	}
	acquire := func(name, owner string) (held bool) {
		inTx(func(l leaseTable) (err error) { held, err = l.AcquireLease(ctx, name, owner, time.Minute); return err })
		return held
	}
	return ls, inTx, acquire
}

// leaseOwnersByteExact: owner b must not renew, release or be taken for
// owner a's lease.
func leaseOwnersByteExact(t *testing.T, s *eventfold.Store[*sql.Tx], name, a, b string) {
	ctx := context.Background()
	ls, inTx, acquire := leaseOps(t, s)
	require.True(t, acquire(name, a))
	require.False(t, acquire(name, b), "owner %q took the lease that %q holds", b, a)
	inTx(func(l leaseTable) error { return l.ReleaseLease(ctx, name, b) })
	owner, err := ls.LeaseOwner(ctx, name)
	require.NoError(t, err)
	require.Equal(t, a, owner, "owner %q released the lease of %q", b, a)
}

// leaseNamesByteExact: leases a and b are two leases.
func leaseNamesByteExact(t *testing.T, s *eventfold.Store[*sql.Tx], a, b string) {
	ctx := context.Background()
	ls, _, acquire := leaseOps(t, s)
	require.True(t, acquire(a, "owner-1"))
	require.True(t, acquire(b, "owner-2"), "lease %q is held as %q", b, a)
	for n, want := range map[string]string{a: "owner-1", b: "owner-2"} {
		owner, err := ls.LeaseOwner(ctx, n)
		require.NoError(t, err)
		require.Equal(t, want, owner, "lease %q", n)
	}
}
