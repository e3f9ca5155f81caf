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
