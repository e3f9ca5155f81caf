package esctl

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// Attacks on restore with archive files that were written by hand (the
// checksum is only a SHA-256 of the lines, so anyone who can write a file
// can make it "intact", and the store id is printed in every archive).

// forgeArchive rewrites the archive at src into dst with header h and
// events evs, with a matching trailer.
func forgeArchive(t *testing.T, dst string, h archiveHeader, evs []eventfold.Event) {
	t.Helper()
	w, err := createArchive(dst, h)
	require.NoError(t, err)
	for _, e := range evs {
		require.NoError(t, w.add(e))
	}
	_, err = w.close()
	require.NoError(t, err)
	require.NoError(t, w.commit())
}

// readArchive returns an archive's header and events.
func readArchive(t *testing.T, path string) (archiveHeader, []eventfold.Event) {
	t.Helper()
	r, err := openArchive(path)
	require.NoError(t, err)
	defer r.close()
	var evs []eventfold.Event
	for {
		e, err := r.next()
		if err == io.EOF {
			return r.header, evs
		}
		require.NoError(t, err)
		evs = append(evs, e)
	}
}

// TestRestoreNeverInsertsAboveTheWatermark: an archive holds only positions
// below the archive watermark; every position at or above it is live log,
// which readers and subscriptions may already have passed. An archive whose
// header claims a wider range and that carries an event the live log does
// not hold (a forged file, or one edited by hand) must be refused, and must
// leave the log, the stream versions and the archive watermark as they
// were: on main it was inserted into the live log (a subscription past it
// never saw it) and the stream's version jumped to the forged one.
func TestRestoreNeverInsertsAboveTheWatermark(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		evs := archiveFixture(t, dsn, 5)
		file := filepath.Join(t.TempDir(), "a.jsonl.gz")
		cut := evs[3].GlobalPosition
		mustRun(t, dsn, "archive", "--before", jsonInt(cut), "--to", file)
		h, archived := readArchive(t, file)
		require.Len(t, archived, 3)

		last := evs[4].GlobalPosition
		forged := archived[0]
		forged.ID = uuid.NewString()
		forged.GlobalPosition = last + 7
		forged.StreamVersion = 50
		h.Before = last + 100
		bad := filepath.Join(t.TempDir(), "forged.jsonl.gz")
		forgeArchive(t, bad, h, append(append([]eventfold.Event{}, archived...), forged))

		// --batch 1: the read-back of each batch then sees only that batch.
		r := run(t, Options{}, dsn, "restore", "--from", bad, "--batch", "1")
		require.NotEqual(t, 0, r.code, "stdout %q stderr %q", r.stdout, r.stderr)
		require.Contains(t, r.stderr, "watermark")

		store := openStore(t, dsn)
		ctx := context.Background()
		got, err := store.ReadAll(ctx, eventfold.ReadAllOptions{From: cut})
		require.NoError(t, err)
		require.Len(t, got, 2, "the live log is what it was")
		v, err := store.StreamVersion(ctx, forged.StreamID)
		require.NoError(t, err)
		require.Less(t, v, int64(50), "the stream's version is not the forged one")
		var st Stats
		require.NoError(t, json.Unmarshal([]byte(mustRun(t, dsn, "stats", "--json")), &st))
		require.Equal(t, cut, st.ArchivedBefore, "the watermark did not move")

		// The genuine archive still restores (the batches below the
		// watermark that the refused run committed are skipped).
		require.Contains(t, mustRun(t, dsn, "restore", "--from", file), "3 already present")
		all, err := store.ReadAll(ctx, eventfold.ReadAllOptions{})
		require.NoError(t, err)
		require.Len(t, all, 5)
		require.Equal(t, evs[4].ID, all[4].ID)
		// And a second run of it, whose range is now above the watermark but
		// whose events are all present, is harmless.
		require.Contains(t, mustRun(t, dsn, "restore", "--from", file), "restored 0 events (3 already present)")
		// --force is the operator's word that the file continues this log.
		r = run(t, Options{}, dsn, "restore", "--from", bad, "--batch", "1", "--force")
		require.Equal(t, 0, r.code, "stderr %q", r.stderr)
	})
}

// TestRestoreValidatesEvents: an archived event that no log can hold (a
// position or version below 1, no id) is refused before any SQL runs (exit
// 2, nothing written); before the fix MariaDB stored an event without a
// type, and a version 0 failed with a raw CHECK violation (exit 1) on
// PostgreSQL and SQLite. An event
// the append path would refuse but SQL appends can store (a type ending in
// a space, a NUL escape in its data where the database takes it) is
// restored as archived: a genuine archive always goes back.
func TestRestoreValidatesEvents(t *testing.T) {
	cases := map[string]func(e *eventfold.Event){
		"version zero":  func(e *eventfold.Event) { e.StreamVersion = 0 },
		"version minus": func(e *eventfold.Event) { e.StreamVersion = -4 },
		"no event id":   func(e *eventfold.Event) { e.ID = "" },
		"no stream id":  func(e *eventfold.Event) { e.StreamID = "" },
		"no type":       func(e *eventfold.Event) { e.Type = "" },
	}
	forDialects(t, func(t *testing.T, dsn string) {
		evs := archiveFixture(t, dsn, 3)
		file := filepath.Join(t.TempDir(), "a.jsonl.gz")
		mustRun(t, dsn, "archive", "--before", jsonInt(evs[2].GlobalPosition), "--to", file)
		h, archived := readArchive(t, file)
		h.From = 0
		for name, mutate := range cases {
			bad := append([]eventfold.Event{}, archived...)
			mutate(&bad[0])
			path := filepath.Join(t.TempDir(), "bad.jsonl.gz")
			forgeArchive(t, path, h, bad)
			r := run(t, Options{}, dsn, "restore", "--from", path)
			require.Equal(t, ExitUsage, r.code, "%s: stdout %q stderr %q", name, r.stdout, r.stderr)
			require.Contains(t, r.stderr, "archive line 2", name)
			_, err := openStore(t, dsn).ReadAll(context.Background(), eventfold.ReadAllOptions{From: archived[0].GlobalPosition})
			require.ErrorIs(t, err, eventfold.ErrArchived, "%s: nothing was restored", name)
		}

		odd := append([]eventfold.Event{}, archived...)
		odd[1].Type = "Moved "
		if !strings.HasPrefix(dsn, "postgres") {
			odd[1].Data = json.RawMessage(`{"a":"\u0000"}`)
		}
		path := filepath.Join(t.TempDir(), "odd.jsonl.gz")
		forgeArchive(t, path, h, odd)
		require.Contains(t, mustRun(t, dsn, "restore", "--from", path), "restored 2 events")
		got, err := openStore(t, dsn).ReadAll(context.Background(), eventfold.ReadAllOptions{From: archived[0].GlobalPosition, Limit: 2})
		require.NoError(t, err)
		require.Equal(t, "Moved ", got[1].Type)
	})
}

// TestRestoreNamesATruncatedFile: a file cut inside the gzip footer (the
// trailer line is there, the stream's last bytes are not) is refused as
// truncated; before, the message said "data after the trailer".
func TestRestoreNamesATruncatedFile(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.SQLite)
	archiveFixture(t, dsn, 3)
	file := filepath.Join(t.TempDir(), "a.gz")
	mustRun(t, dsn, "archive", "--before", "3", "--to", file)
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file+".cut", b[:len(b)-8], 0o600))
	r := run(t, Options{}, dsn, "restore", "--from", file+".cut")
	require.Equal(t, ExitError, r.code)
	require.Contains(t, r.stderr, "archive is truncated")
	require.NotContains(t, r.stderr, "data after the trailer")
}
