package testdb

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// Container clean-up without Ryuk. testcontainers' reaper (Ryuk) is itself
// a container pulled from Docker Hub, which CI and many sandboxes cannot
// reach, so testdb disables it (unless TESTCONTAINERS_RYUK_DISABLED is set
// explicitly) and does the same job with the test binary itself:
//
//   - every container carries labels naming this process (host, pid and
//     the pid's start time) and a random session id;
//   - before its first container, the process starts a copy of its own
//     binary as a reaper: a child in its own process group holding the read
//     end of a pipe. When the test process ends, however it ends (tests
//     pass, fail, panic, time out, or it is killed), the pipe closes and the
//     reaper removes every container of the session;
//   - it also sweeps containers whose process is gone (a reaper that was
//     killed too), so nothing accumulates across runs.
const (
	labelOwner    = "org.eventfold.testdb"
	labelSession  = "org.eventfold.testdb.session"
	labelHost     = "org.eventfold.testdb.host"
	labelPID      = "org.eventfold.testdb.pid"
	labelPIDStart = "org.eventfold.testdb.pidstart"

	// reaperEnv, set only in the reaper's environment, holds the session
	// whose containers it removes.
	reaperEnv = "EVENTFOLD_TESTDB_REAPER_SESSION"
)

var (
	session     string    // this process's session id, once prepared
	reaperStdin io.Closer //nolint:unused // write end of the reaper's pipe, held so that only this process's exit closes it
	sessionErr  error     // why the session could not be prepared
)

func init() {
	if s := os.Getenv(reaperEnv); s != "" {
		os.Exit(reap(s))
	}
	// Before any testcontainers call: it reads its configuration once.
	if _, set := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !set {
		_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	pinLocalHost()
}

// prepareSession sweeps stale containers and starts the reaper, once per process. The caller holds containerMu.
func prepareSession(ctx context.Context) error {
	if session != "" || sessionErr != nil {
		return sessionErr
	}
	sweepStale(ctx)
	id := randomHex(8)
	exe, err := os.Executable()
	if err != nil {
		sessionErr = fmt.Errorf("start the container reaper: %w", err)
		return sessionErr
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), reaperEnv+"="+id)
	detach(cmd)
	stdin, err := cmd.StdinPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		sessionErr = fmt.Errorf("start the container reaper: %w", err)
		return sessionErr
	}
	// Not waited for: the reaper outlives this process by design.
	_ = cmd.Process.Release()
	session, reaperStdin = id, stdin
	return nil
}

// sessionLabels are the labels of every container this process starts.
func sessionLabels() map[string]string {
	host, _ := os.Hostname()
	return map[string]string{
		labelOwner:    "1",
		labelSession:  session,
		labelHost:     host,
		labelPID:      strconv.Itoa(os.Getpid()),
		labelPIDStart: procStart(os.Getpid()),
	}
}

// reap is the reaper's main: wait until the test process is gone (stdin
// reaches EOF), then remove the session's containers. Interrupts are
// ignored so that ^C on `go test` ends the tests, not the clean-up.
func reap(id string) int {
	signal.Ignore(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	_, _ = io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Twice: a container whose creation was under way when the process died
	// appears a moment later.
	for i := 0; i < 2; i++ {
		removeLabelled(ctx, labelSession+"="+id, func(map[string]string) bool { return true })
		time.Sleep(2 * time.Second)
	}
	return 0
}

// sweepStale removes containers of earlier test processes on this host that
// are gone, in case their reaper could not do it.
func sweepStale(ctx context.Context) {
	host, _ := os.Hostname()
	removeLabelled(ctx, labelOwner, func(labels map[string]string) bool {
		if labels[labelHost] != host {
			return false // another machine's; its own runs sweep it
		}
		pid, err := strconv.Atoi(labels[labelPID])
		return err == nil && !alive(pid, labels[labelPIDStart])
	})
}

// removeLabelled force-removes, with their anonymous volumes, the
// containers that match the label filter and for which stale says so.
func removeLabelled(ctx context.Context, filter string, stale func(map[string]string) bool) int {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return 0
	}
	defer cli.Close()
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", filter)})
	if err != nil {
		return 0
	}
	n := 0
	for _, c := range list.Items {
		if !stale(c.Labels) {
			continue
		}
		if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err == nil {
			n++
		}
	}
	return n
}

// procStart is the start time of process pid in clock ticks since boot
// (field 22 of /proc/PID/stat), or "" where there is no /proc.
func procStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(s[i+1:]) // fields 3, 4, ...
	if len(fields) < 20 {
		return ""
	}
	return fields[19]
}
