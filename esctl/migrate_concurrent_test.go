package esctl_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/sqldriver"
)

// asEsctl makes the test binary run esctl.Main with the arguments after
// "--" when it is started with EVENTFOLD_TEST_AS_ESCTL=1: a real separate
// process, without building a binary.
func asEsctl() {
	if os.Getenv("EVENTFOLD_TEST_AS_ESCTL") != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(esctl.Main(context.Background(), args, os.Stdout, os.Stderr, esctl.Options{}))
}

// TestMigrateUpConcurrentSQLite starts several `esctl migrate up`
// processes on the same fresh SQLite file at once. goose has no lock for
// SQLite: without one, a process that read the version table before
// another committed ran a migration again and failed with "table ...
// already exists". Every process must succeed and the schema end up
// complete.
func TestMigrateUpConcurrentSQLite(t *testing.T) {
	const procs = 4
	path := filepath.Join(t.TempDir(), "eventfold.db")
	dsn := "sqlite://" + path
	var wg sync.WaitGroup
	outs := make([]bytes.Buffer, procs)
	errs := make([]error, procs)
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$", "--", "--dsn", dsn, "migrate", "up")
			cmd.Env = append(os.Environ(), "EVENTFOLD_TEST_AS_ESCTL=1")
			cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
			errs[i] = cmd.Run()
		}()
	}
	wg.Wait()
	for i := range procs {
		require.NoError(t, errs[i], "process %d: %s", i, outs[i].String())
	}
	ctx := context.Background()
	drv, err := sqldriver.Open(ctx, dsn)
	require.NoError(t, err)
	defer drv.Close()
	v, err := eventfold.New(drv, nil).SchemaVersion(ctx)
	require.NoError(t, err)
	p, err := eventfold.NewMigrator(eventfold.SQLite, drv.DB())
	require.NoError(t, err)
	srcs := p.ListSources()
	require.Equal(t, srcs[len(srcs)-1].Version, v, fmt.Sprintf("outputs: %v", outs))
}

func TestMain(m *testing.M) {
	asEsctl()
	os.Exit(m.Run())
}
