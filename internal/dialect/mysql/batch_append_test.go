package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// sessionCounters reads the statement and temporary-table counters of the
// session tx runs on (SHOW SESSION STATUS counts the statements a
// procedure runs too).
func sessionCounters(t *testing.T, tx *sql.Tx) map[string]int64 {
	t.Helper()
	rows, err := tx.QueryContext(context.Background(),
		`SHOW SESSION STATUS WHERE Variable_name IN ('Com_insert', 'Com_insert_select', 'Com_set_option', 'Created_tmp_tables')`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k string
		var v int64
		require.NoError(t, rows.Scan(&k, &v))
		out[k] = v
	}
	require.NoError(t, rows.Err())
	return out
}

// smallBatch is what batched group commit sends: a few streams, one or
// two events each.
func smallBatch(prefix string) []contract.StreamAppend {
	return []contract.StreamAppend{
		{StreamID: prefix + "-a", Expected: eventfold.Any, Events: []eventfold.EventData{newEvent("A1"), newEvent("A2")}},
		{StreamID: prefix + "-b", Expected: eventfold.NoStream, Events: []eventfold.EventData{newEvent("B1")}},
		{StreamID: prefix + "-c", Expected: eventfold.Any, Events: []eventfold.EventData{newEvent("C1")}},
	}
}

// TestLibraryAppendStatements00017: since 00017 a small
// eventfold_append_batch inserts its events with single-row INSERT ...
// VALUES, never INSERT ... SELECT (a bulk insert, which holds the events
// table's AUTO-INC lock to the end of the statement in
// innodb_autoinc_lock_mode 1, so every other append waits for it) and
// builds no temporary table; on MariaDB neither library procedure runs SET
// TRANSACTION (which failed with 1568, caught, on every call) to find out
// that it runs inside a transaction. The same appends at 00016 are measured
// first: there they did both.
func TestLibraryAppendStatements00017(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := scratchDB(t)
	p, err := eventfold.NewMigrator(eventfold.MySQL, db)
	require.NoError(t, err)

	measure := func(prefix string, batch bool) map[string]int64 {
		tx := begin(t, db)
		before := sessionCounters(t, tx)
		if batch {
			got, err := mysqlops.New(tx).AppendMany(ctx, smallBatch(prefix))
			require.NoError(t, err)
			require.Len(t, got, 3)
		} else {
			_, err := mysqlops.New(tx).Append(ctx, prefix+"-one", eventfold.Any, []eventfold.EventData{newEvent("One")})
			require.NoError(t, err)
		}
		after := sessionCounters(t, tx)
		require.NoError(t, tx.Commit())
		delta := map[string]int64{}
		for k, v := range after {
			delta[k] = v - before[k]
		}
		return delta
	}

	_, err = p.UpTo(ctx, 16)
	require.NoError(t, err)
	old, oldOne := measure("at16", true), measure("at16", false)
	require.Positive(t, old["Com_insert_select"], "00016 inserts the batch with INSERT ... SELECT: %v", old)
	require.Positive(t, oldOne["Com_set_option"], "00016 asks with SET TRANSACTION: %v", oldOne)

	_, err = p.UpTo(ctx, 17)
	require.NoError(t, err)
	cur, one := measure("at17", true), measure("at17", false)
	require.Zero(t, cur["Com_insert_select"], "no INSERT ... SELECT for a small batch: %v", cur)
	require.Zero(t, cur["Created_tmp_tables"], "no temporary table for a small batch: %v", cur)
	// 3 stream rows (INSERT ... ON DUPLICATE KEY UPDATE) and 4 events.
	require.Equal(t, int64(7), cur["Com_insert"], "one INSERT per stream row and per event: %v", cur)
	var version string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT VERSION()`).Scan(&version))
	if strings.Contains(version, "MariaDB") {
		require.Zero(t, cur["Com_set_option"], "no SET TRANSACTION in a batch append on MariaDB: %v", cur)
		require.Zero(t, one["Com_set_option"], "no SET TRANSACTION in a one-event append on MariaDB: %v", one)
	}
}

// TestUpgradeTo00017KeepsData migrates to 00016, writes single and batch
// appends, applies 00017 and checks that the log reads back unchanged and
// that batch appends on either side of the 128-event line (single-row
// inserts below it, chunked INSERT ... SELECT above) return exactly what
// readers read, positions ascending in batch order, versions following on,
// and leave nothing behind when a duplicate event id refuses them. Down
// restores 00016's procedure, which appends on from there.
func TestUpgradeTo00017KeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := scratchDB(t)
	p, err := eventfold.NewMigrator(eventfold.MySQL, db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 16)
	require.NoError(t, err)

	ops := mysqlops.New(db)
	_, err = ops.Append(ctx, "konto-✓", eventfold.NoStream, []eventfold.EventData{newEvent("Eröffnet")})
	require.NoError(t, err)
	_, err = ops.AppendMany(ctx, smallBatch("vorher"))
	require.NoError(t, err)
	before, err := ops.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	require.Len(t, before, 5)

	_, err = p.UpTo(ctx, 17)
	require.NoError(t, err, "up from 00016 with data")
	after, err := ops.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, before, after, "the events read back as they were")

	top := before[len(before)-1].GlobalPosition
	for _, size := range []int{3, 128, 129, 300} {
		exotic := newEvent("Exotisch")
		exotic.Data = []byte(`{"k" : [1, 2.50, 1E3, true, null],  "s": "<&> \"q\" \u00e4 ✓", "o": {}}`)
		exotic.Metadata = []byte(`{"m": "ü", "n": []}`)
		scalar := newEvent("Skalar")
		scalar.Data = []byte(`"nur ein Text"`)
		null := newEvent("Null")
		null.Data = []byte(`null`)
		konto := fmt.Sprintf("konto-%d-✓", size)
		opened, err := ops.Append(ctx, konto, eventfold.NoStream, []eventfold.EventData{newEvent("Eröffnet")})
		require.NoError(t, err)
		top = opened[0].GlobalPosition
		many := make([]eventfold.EventData, size-3)
		for i := range many {
			many[i] = newEvent("Viele")
		}
		batch := []contract.StreamAppend{
			{StreamID: konto, Expected: eventfold.Exact(1), Events: []eventfold.EventData{exotic}},
			{StreamID: fmt.Sprintf("neu-%d", size), Expected: eventfold.NoStream, Events: append([]eventfold.EventData{scalar}, many...)},
			{StreamID: konto, Expected: eventfold.StreamExists, Events: []eventfold.EventData{null}},
		}
		tx := begin(t, db)
		got, err := mysqlops.New(tx).AppendMany(ctx, batch)
		require.NoError(t, err, "batch of %d", size)
		require.NoError(t, tx.Commit())
		read, err := ops.ReadAll(ctx, top+1, 1000)
		require.NoError(t, err)
		var flat []eventfold.Event
		for _, evs := range got {
			flat = append(flat, evs...)
		}
		require.Equal(t, read, flat, "batch of %d: the results are the events as recorded, in batch order", size)
		require.Equal(t, []int64{2, 3}, []int64{got[0][0].StreamVersion, got[2][0].StreamVersion})
		require.Equal(t, int64(size-2), got[1][len(got[1])-1].StreamVersion)
		require.Equal(t, `{"k":[1,2.50,1E3,true,null],"s":"<&> \"q\" \u00e4 ✓","o":{}}`, string(got[0][0].Data))
		require.Equal(t, `"nur ein Text"`, string(got[1][0].Data))
		require.Equal(t, `null`, string(got[2][0].Data))
		for i := 1; i < len(flat); i++ {
			require.Greater(t, flat[i].GlobalPosition, flat[i-1].GlobalPosition, "positions ascend in batch order")
		}
		top = flat[len(flat)-1].GlobalPosition

	}

	// A duplicate event id (the last event repeats the first's) refuses the
	// whole batch: nothing of it stays in the caller's transaction.
	first := newEvent("Erst")
	dup := first
	dup.Type = "Doppelt"
	tx := begin(t, db)
	_, err = mysqlops.New(tx).Append(ctx, "konto-✓", eventfold.Exact(1), []eventfold.EventData{newEvent("Vor")})
	require.NoError(t, err)
	_, err = mysqlops.New(tx).AppendMany(ctx, []contract.StreamAppend{
		{StreamID: "dup-a", Expected: eventfold.Any, Events: []eventfold.EventData{first}},
		{StreamID: "konto-✓", Expected: eventfold.Exact(2), Events: []eventfold.EventData{newEvent("X"), dup}},
	})
	var me *contract.AppendManyError
	require.True(t, errors.As(err, &me), "an AppendManyError: %v", err)
	require.Equal(t, 1, me.Index, "the duplicate is the second element's")
	require.ErrorIs(t, err, eventfold.ErrDuplicateEventID)
	require.NoError(t, tx.Commit())
	evs, err := ops.ReadStream(ctx, "konto-✓", 0, 100, false)
	require.NoError(t, err)
	require.Len(t, evs, 2, "the append before the batch stays, the batch does not")
	none, err := ops.ReadStream(ctx, "dup-a", 0, 100, false)
	require.NoError(t, err)
	require.Empty(t, none)

	_, err = p.DownTo(ctx, 16)
	require.NoError(t, err, "down to 00016")
	got, err := ops.AppendMany(ctx, smallBatch("danach"))
	require.NoError(t, err, "00016's procedure appends on")
	require.Len(t, got, 3)
	require.Greater(t, got[0][0].GlobalPosition, top)
	_, err = p.Up(ctx)
	require.NoError(t, err, "up again")
}
