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
	for _, d := range []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres, eventfold.MySQL} {
		t.Run(string(d), func(t *testing.T) {
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
				if dir := os.Getenv("DEMO_OUT"); dir != "" && run == 1 {
					_ = os.WriteFile(filepath.Join(dir, string(d)+".txt"), out.Bytes(), 0o644)
				}
			}
		})
	}
}
