package orchestrator_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/pgxdriver"
)

// TestAttack2PgxTextDataEdges: event data goes as text in every exec mode.
// Backslashes, quotes and a large payload come back as they went, also on
// a session with standard_conforming_strings=off (where the simple
// protocol's quoting would read backslashes as escapes: refused, or
// right, never altered); invalid UTF-8 is refused before the database.
func TestAttack2PgxTextDataEdges(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.Postgres)
	big := `{"big":"` + strings.Repeat(`\\ \" ' x`, 100_000) + `"}`
	for _, mode := range []string{"exec", "simple_protocol"} {
		for _, extra := range []string{"", "&standard_conforming_strings=off"} {
			t.Run(mode+extra, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				sep := "?"
				if containsQuery(dsn) {
					sep = "&"
				}
				pool, err := pgxpool.New(ctx, dsn+sep+"default_query_exec_mode="+mode+extra)
				require.NoError(t, err)
				t.Cleanup(pool.Close)
				store := eventfold.New(pgxdriver.New(pool), nil)
				stream := "edge-" + mode + extra + time.Now().Format("150405.000000000")
				payloads := []string{`{"bs":"a\\b\\\\c","q":"it''s 'x'","u":"\u00e9\\u0041"}`, `"\\\\"`, big}
				evs := make([]eventfold.EventData, len(payloads))
				for i, p := range payloads {
					evs[i] = eventfold.EventData{Type: "T", Data: json.RawMessage(p)}
				}
				got, err := store.Append(ctx, stream, eventfold.NoStream, evs...)
				if err != nil {
					t.Logf("refused: %v", err)
					require.NotEmpty(t, extra, "refused on a standard session")
					return
				}
				read, err := store.ReadStream(ctx, stream, eventfold.ReadStreamOptions{})
				require.NoError(t, err)
				require.Len(t, read, len(payloads))
				for i, p := range payloads {
					require.JSONEq(t, p, string(read[i].Data), "payload %d read back", i)
					require.JSONEq(t, p, string(got[i].Data), "payload %d as appended", i)
				}
				_, err = store.Append(ctx, stream+"-bad", eventfold.NoStream,
					eventfold.EventData{Type: "T", Data: json.RawMessage("{\"s\":\"\xff\xfe\"}")})
				require.Error(t, err, "invalid UTF-8 refused")
				t.Logf("invalid UTF-8: %v", err)
			})
		}
	}
}
