package postgres

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAppendStatementMatchesFunction: eventfold.append_events_returning_data
// (sql/postgres/00015) runs appendStatement with its arguments for $1-$6;
// the two must not drift apart.
func TestAppendStatementMatchesFunction(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../../../sql/postgres/00015_append_statement.sql")
	require.NoError(t, err)
	up := strings.SplitN(string(src), "-- +goose Down", 2)[0]
	stmt := appendStatement
	for _, r := range [][2]string{{"$1", "p_stream_id"}, {"$2", "p_expected_version"}, {"$3", "p_event_ids"}, {"$4", "p_types"}, {"$5", "p_data"}, {"$6", "p_metadata"}} {
		stmt = strings.ReplaceAll(stmt, r[0], r[1])
	}
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	require.Contains(t, norm(up), "FOR v_rec IN "+norm(stmt)+" LOOP")
}
