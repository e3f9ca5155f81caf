package mysql

import (
	"context"
	"fmt"
	"strings"
)

// Damage a dump or a hand-made change can leave behind that the schema
// version cannot show (esctl doctor asks with SchemaDamage).

// appendRoutines are the procedures the library and DBAs append with, and
// the schema version that first creates each.
var appendRoutines = []struct {
	name  string
	since int64
}{
	{"eventfold_append_events", 1},
	{"eventfold_append_one", 15},
	{"eventfold_append_batch", 15},
}

// routinesMigration is the latest migration that (re)creates every
// procedure in appendRoutines: down to the one before it and up again
// recreates them all.
const routinesMigration = 21

// archiveMigration creates eventfold_archive_watermark (00004_archive.sql).
const archiveMigration = 4

// SchemaDamage reports, for a schema at version, what is missing or
// inconsistent, one sentence each (none: nothing found):
//   - append procedures that are not in the database: mysqldump leaves
//     routines out unless given --routines, so a plain dump loaded into a
//     new database has every table and the version table but no procedure
//     (every append fails with "PROCEDURE ... does not exist");
//   - streams whose row in eventfold_streams is behind their events: a dump
//     taken earlier loaded over the live database (REPLACE rewrites the
//     rows it carries, the later events stay); every append to such a
//     stream fails on the stream-version key.
//
// Both read whole tables; for doctor, not for a hot path.
func (o *Ops) SchemaDamage(ctx context.Context, version int64) ([]string, error) {
	var found []string
	rows, err := o.db.QueryContext(ctx, `SELECT ROUTINE_NAME FROM information_schema.ROUTINES
WHERE ROUTINE_SCHEMA = DATABASE() AND ROUTINE_TYPE = 'PROCEDURE' AND ROUTINE_NAME LIKE 'eventfold\_append\_%'`)
	if err != nil {
		return nil, fmt.Errorf("list the append procedures: %w", interpretError(err))
	}
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		have[strings.ToLower(n)] = true
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	var missing []string
	for _, r := range appendRoutines {
		if version >= r.since && !have[r.name] {
			missing = append(missing, r.name)
		}
	}
	if len(missing) > 0 {
		back := "load a dump taken with mysqldump --routines"
		if version < routinesMigration {
			// Each migration that redefines them drops them first: one that
			// failed midway (MySQL's DDL is not transactional) leaves them
			// dropped, its version unrecorded.
			back = fmt.Sprintf("run 'esctl migrate up' (migration %05d creates all of them; a migration that failed midway leaves them dropped), or %s",
				routinesMigration, back)
		} else if version == routinesMigration {
			back += fmt.Sprintf(", or recreate them with 'esctl migrate down --to %d' then 'esctl migrate up' (migration %05d creates all of them)",
				routinesMigration-1, routinesMigration)
		}
		found = append(found, fmt.Sprintf("procedures missing: %s: every append fails until they are back (a dump loaded without its routines? mysqldump leaves them out unless given --routines): %s",
			strings.Join(missing, ", "), back))
	}

	// Streams whose row is behind their events, or that have none.
	rows, err = o.db.QueryContext(ctx, `SELECT e.stream_id, COALESCE(s.version, 0), e.top
FROM (SELECT stream_id, MAX(stream_version) AS top FROM eventfold_events GROUP BY stream_id) e
LEFT JOIN eventfold_streams s ON s.stream_id = e.stream_id
WHERE s.stream_id IS NULL OR s.version < e.top
ORDER BY e.stream_id LIMIT 11`)
	if err != nil {
		return nil, fmt.Errorf("compare stream rows with their events: %w", interpretError(err))
	}
	var behind []string
	for rows.Next() {
		var id []byte
		var row, top int64
		if err := rows.Scan(&id, &row, &top); err != nil {
			rows.Close()
			return nil, err
		}
		behind = append(behind, fmt.Sprintf("%q (row at version %d, events up to %d)", id, row, top))
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if len(behind) > 0 {
		more := ""
		if len(behind) > 10 {
			behind, more = behind[:10], " and more"
		}
		found = append(found, fmt.Sprintf("streams behind their events: %s%s: eventfold_streams holds an older version than the log (an older dump loaded over this database?); every append to them fails on the stream-version key. Read models restored with that dump are behind the log too: find out what was loaded before changing anything",
			strings.Join(behind, ", "), more))
	}
	// Events gone without an archive: with nothing archived, every version
	// a stream row counts is an event in the table. Fewer events than that
	// means a DELETE or TRUNCATE of live events, whose positions the
	// append procedures do not know about (their floor only knows archived
	// positions): new events may take positions the log already used.
	// The watermark table comes with migration 00004: before it nothing
	// can have been archived, and a schema that old is told to migrate up.
	if version < archiveMigration {
		return found, nil
	}
	var watermark, versions, events int64
	err = o.db.QueryRowContext(ctx, `SELECT
    COALESCE((SELECT MAX(archived_before) FROM eventfold_archive_watermark), 0),
    COALESCE((SELECT SUM(version) FROM eventfold_streams), 0),
    (SELECT COUNT(*) FROM eventfold_events)`).Scan(&watermark, &versions, &events)
	if err != nil {
		return nil, fmt.Errorf("count the events: %w", interpretError(err))
	}
	if watermark <= 1 && events < versions {
		found = append(found, fmt.Sprintf("events deleted without an archive: the streams count %d events, eventfold_events holds %d and nothing is archived (a TRUNCATE or DELETE of live events?): their positions may be handed out again, below what subscribers have seen; restore the events from a backup",
			versions, events))
	}
	return found, nil
}
