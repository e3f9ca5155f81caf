package listener_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestCrashRestart kills (SIGKILL) a process in the middle of an
// at-least-once subscription, then runs the subscription again here: once
// the dead holder's lease expires, it resumes from the last saved
// checkpoint. The events handled across both runs are the log with, at most,
// repeats since that checkpoint: no gap.
func TestCrashRestart(t *testing.T) {
	for _, d := range []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres, eventfold.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			dsn := testdb.DSN(t, d)
			drv, err := sqldriver.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer drv.Close()
			store := eventfold.New(drv, nil)
			ctx := context.Background()
			for i := range 60 {
				evs := make([]eventfold.EventData, 20)
				for j := range evs {
					evs[j] = eventfold.EventData{Type: "E", Data: data(i*20 + j)}
				}
				if _, err := store.Append(ctx, fmt.Sprintf("c-%d", i%4), eventfold.Any, evs...); err != nil {
					t.Fatal(err)
				}
			}
			want := readLog(t, store)
			file := filepath.Join(t.TempDir(), "handled.txt")
			cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), "EVENTFOLD_CRASH_DSN="+dsn, "EVENTFOLD_CRASH_FILE="+file)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 60*time.Second, "the child to handle 300 events", func() bool { return len(readHandled(t, file, want)) >= 300 })
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			got := readHandled(t, file, want)
			saved, _, _ := listener.Checkpoint(ctx, store, "crashy")
			savedIndex := indexOf(want, saved)
			t.Logf("child handled %d events before SIGKILL; checkpoint at index %d", len(got), savedIndex)
			if savedIndex < 0 || savedIndex >= len(got) {
				t.Fatalf("checkpoint %d (index %d) is not among the %d handled events", saved, savedIndex, len(got))
			}
			// Exactly the events handled after the last saved checkpoint
			// may come again, no more.
			wantReplays := len(got) - (savedIndex + 1)

			var mu sync.Mutex
			sub, err := listener.New(store, "crashy", func(_ context.Context, ev eventfold.Event) error {
				mu.Lock()
				got = append(got, ev)
				mu.Unlock()
				return nil
			}, &listener.Options{LeaseTTL: time.Second, PollInterval: 20 * time.Millisecond, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- sub.Run(rctx) }()
			waitFor(t, 30*time.Second, "the restarted subscription to finish", func() bool {
				p, _, _ := listener.Checkpoint(ctx, store, "crashy")
				return p == want[len(want)-1].GlobalPosition
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			replays := checkReplayed(t, "crash restart", got, want)
			t.Logf("%d events redelivered after the crash", replays)
			if replays != wantReplays {
				t.Errorf("%d events redelivered, want %d (those handled after the saved checkpoint)", replays, wantReplays)
			}
		})
	}
}

// TestCrashHelper is the child process of TestCrashRestart.
func TestCrashHelper(t *testing.T) {
	dsn, file := os.Getenv("EVENTFOLD_CRASH_DSN"), os.Getenv("EVENTFOLD_CRASH_FILE")
	if dsn == "" {
		t.Skip("only run as TestCrashRestart's child")
	}
	drv, err := sqldriver.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	store := eventfold.New(drv, nil)
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := listener.New(store, "crashy", func(_ context.Context, ev eventfold.Event) error {
		time.Sleep(time.Millisecond)
		_, err := fmt.Fprintf(f, "%d %s\n", ev.GlobalPosition, ev.ID)
		return err
	}, &listener.Options{LeaseTTL: time.Second, BatchSize: 64, CheckpointInterval: 50 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.Run(context.Background()) // until killed
}

func readHandled(t *testing.T, file string, log []eventfold.Event) []eventfold.Event {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []eventfold.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pos, id, ok := strings.Cut(sc.Text(), " ")
		p, err := strconv.ParseInt(pos, 10, 64)
		if !ok || err != nil || len(id) != 36 {
			continue // a line cut short by the kill
		}
		out = append(out, eventfold.Event{GlobalPosition: p, ID: id})
	}
	return out
}

func indexOf(log []eventfold.Event, pos int64) int {
	for i, e := range log {
		if e.GlobalPosition == pos {
			return i
		}
	}
	return -1
}
