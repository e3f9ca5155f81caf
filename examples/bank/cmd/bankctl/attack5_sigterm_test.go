package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestMain lets a test start this test binary as bankctl itself (main,
// with its signal handling): a real separate process, without building a
// binary.
func TestMain(m *testing.M) {
	if os.Getenv("EVENTFOLD_TEST_AS_BANKCTL") == "1" {
		for i, a := range os.Args {
			if a == "--" {
				os.Args = append([]string{"bankctl"}, os.Args[i+1:]...)
				break
			}
		}
		main()
		return
	}
	os.Exit(m.Run())
}

// TestAttack5ServeStopsOnSIGTERM: `bankctl serve` stops gracefully on
// SIGTERM (what systemd, Docker and Kubernetes send), as it does on
// Ctrl-C, and as esctl does. It handled only SIGINT: SIGTERM killed it
// at once ("signal: terminated"), in-flight requests cut off and no
// shutdown of the HTTP server or the stream.
func TestAttack5ServeStopsOnSIGTERM(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.SQLite)
	var out bytes.Buffer
	require.Zero(t, esctl.Main(context.Background(), []string{"--dsn", dsn, "migrate", "up"}, &out, &out, options()), out.String())
	cmd := exec.Command(os.Args[0], "-test.run=^$", "--", "--dsn", dsn, "serve", "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "EVENTFOLD_TEST_AS_BANKCTL=1")
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "serving http://") }, 20*time.Second, 20*time.Millisecond, "serve's output: %s", stderr)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("bankctl serve did not stop gracefully on SIGTERM: %v (exit code %d); output: %s", err, ee.ExitCode(), stderr)
		}
		require.NoError(t, err, stderr.String())
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("bankctl serve still running 20 s after SIGTERM; output: %s", stderr)
	}
}
