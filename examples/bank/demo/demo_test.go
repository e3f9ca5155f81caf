package demo_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/examples/bank/demo"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestRun runs the demo on every dialect the bank supports, twice on the
// same database (the second run must cope with the first one's data).
// DEMO_OUT=dir writes each output to dir/<dialect>.txt.
func TestRun(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		dsn := testdb.EmptyDSN(t, d)
		for run := 1; run <= 2; run++ {
			var out bytes.Buffer
			require.NoError(t, demo.Run(context.Background(), &out, dsn), "run %d:\n%s", run, out.String())
			s := out.String()
			for _, want := range []string{
				"BEGIN", "COMMIT", "ROLLBACK", "handler", "reducer balances (AccountOpened)", "append TransferReceived",
				"ROLLED BACK: orchestrator: handler", "insufficient funds",
				"ROLLED BACK: orchestrator: reducer balances failed on event AccountOpened",
				"DUPLICATE", "proof    last log position still", "Read model \"balances\"",
			} {
				require.Contains(t, s, want, "run %d", run)
			}
			// Issue 9's findings: the demo says what it shows.
			for _, want := range []string{
				"(expected version: -2 no stream yet", // -2 explained
				"has 30.00, withdrawal of 500.00",     // units, as in the heading
				"read model still 2 accounts",         // this run's accounts, also on a reused database
				"== Push: what the live subscriber received",
				"TransferReceived\n  (the rejected withdrawal", // every committed event arrived, the last one last
				"look inside with\n  esctl --dsn ",
			} {
				require.Contains(t, s, want, "run %d", run)
			}
			step5 := s[strings.Index(s, "== 5."):strings.Index(s, "== 6.")]
			require.NotContains(t, step5, "carol", "run %d: step 5 mentions carol before she appears", run)
			for _, line := range strings.Split(s, "\n") {
				cutOff := strings.Contains(line, "append_events") && strings.Contains(line, "...") && !strings.Contains(line, "<-")
				require.False(t, cutOff, "run %d: the append call is cut off: %s", run, line)
			}
			if dir := os.Getenv("DEMO_OUT"); dir != "" && run == 1 {
				_ = os.WriteFile(filepath.Join(dir, string(d)+".txt"), out.Bytes(), 0o644)
			}
		}
	})
}
