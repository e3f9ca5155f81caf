package demo_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
			if err := demo.Run(context.Background(), &out, dsn); err != nil {
				t.Fatalf("run %d: %v\n%s", run, err, out.String())
			}
			s := out.String()
			for _, want := range []string{
				"BEGIN", "COMMIT", "ROLLBACK", "handler", "reducer balances (AccountOpened)", "append TransferReceived",
				"ROLLED BACK: orchestrator: handler", "insufficient funds",
				"ROLLED BACK: orchestrator: reducer balances failed on event AccountOpened",
				"DUPLICATE", "proof    last log position still", "Read model \"balances\"",
			} {
				if !strings.Contains(s, want) {
					t.Errorf("run %d: output lacks %q", run, want)
				}
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
				if !strings.Contains(s, want) {
					t.Errorf("run %d: output lacks %q", run, want)
				}
			}
			step5 := s[strings.Index(s, "== 5."):strings.Index(s, "== 6.")]
			if strings.Contains(step5, "carol") {
				t.Errorf("run %d: step 5 mentions carol before she appears:\n%s", run, step5)
			}
			for _, line := range strings.Split(s, "\n") {
				if strings.Contains(line, "append_events") && strings.Contains(line, "...") && !strings.Contains(line, "<-") {
					t.Errorf("run %d: the append call is cut off: %s", run, line)
				}
			}
			if dir := os.Getenv("DEMO_OUT"); dir != "" && run == 1 {
				_ = os.WriteFile(filepath.Join(dir, string(d)+".txt"), out.Bytes(), 0o644)
			}
		}
	})
}
