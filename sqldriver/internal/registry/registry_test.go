package registry

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

// TestRegisterTwicePanics: two packages registering one dialect is a
// programming error that must show at start-up, not a silent override.
func TestRegisterTwicePanics(t *testing.T) {
	const d = eventfold.Dialect("registry-test")
	Register(Entry{Dialect: d})
	t.Cleanup(func() {
		mu.Lock()
		delete(entries, d)
		mu.Unlock()
	})
	_, ok := Lookup(d)
	require.True(t, ok)
	require.Panics(t, func() { Register(Entry{Dialect: d}) })
	_, ok = Lookup("registry-test-none")
	require.False(t, ok)
}

// TestSplitSQLite: the path and parameters of a sqlite:// DSN; "file:" is
// dropped; no path is invalid input.
func TestSplitSQLite(t *testing.T) {
	path, query, err := SplitSQLite("sqlite://file:data/app.db?_pragma=x&mode=ro")
	require.NoError(t, err)
	require.Equal(t, "data/app.db", path)
	require.Equal(t, "_pragma=x&mode=ro", query)
	for _, dsn := range []string{"sqlite://", "sqlite://?mode=memory", "sqlite://file:"} {
		_, _, err = SplitSQLite(dsn)
		require.ErrorIs(t, err, eventfold.ErrInvalidInput, dsn)
	}
}

// TestSQLitePragmaSet: a DSN's own pragma is recognised in every form
// modernc accepts, and a pragma whose name merely starts the same is not.
func TestSQLitePragmaSet(t *testing.T) {
	for _, c := range []struct {
		query string
		want  bool
	}{
		{"", false},
		{"_pragma=wal_autocheckpoint(10)", true},
		{"_pragma=WAL_AUTOCHECKPOINT%3D0", true},
		{"_pragma=%20wal_autocheckpoint", true},
		{"_pragma=busy_timeout(5)&_pragma=wal_autocheckpoint(0)", true},
		{"_pragma=wal_autocheckpointx(1)", false},
		{"wal_autocheckpoint=1", false},
		{"_pragma=temp_store(MEMORY)", false},
		{"%zz", false},
	} {
		if got := SQLitePragmaSet(c.query, "wal_autocheckpoint"); got != c.want {
			t.Errorf("SQLitePragmaSet(%q) = %v, want %v", c.query, got, c.want)
		}
	}
}
