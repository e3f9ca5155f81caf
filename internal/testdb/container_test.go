package testdb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"

	"github.com/eventfold/eventfold"
)

// engine returns a Docker client and the PostgreSQL image to run, or skips
// the test; in container-mode CI (PostgreSQL required, no DSN) it fails
// instead, so these tests cannot go silently green there.
func engine(t *testing.T) (*testcontainers.DockerClient, string) {
	t.Helper()
	containerMode := Required(eventfold.Postgres) && os.Getenv(envVar(eventfold.Postgres)) == ""
	skip := func(reason string) {
		t.Helper()
		if containerMode {
			t.Fatalf("container mode (EVENTFOLD_REQUIRE names postgres, no DSN) but %s", reason)
		}
		t.Skip(reason)
	}
	if !dockerAnswers() {
		skip("no Docker engine answers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		skip("Docker engine: " + err.Error())
	}
	t.Cleanup(func() { cli.Close() })
	im, err := imageFor(eventfold.Postgres)
	require.NoError(t, err)
	if _, err := cli.ImageInspect(ctx, im.name()); err != nil {
		skip(fmt.Sprintf("image %s not present (set %s)", im.name(), im.env))
	}
	containerMu.Lock()
	defer containerMu.Unlock()
	require.NoError(t, prepareSession(ctx))
	return cli, im.name()
}

// sessionContainers lists the containers of this process's session.
func sessionContainers(t *testing.T, cli *testcontainers.DockerClient) []container.Summary {
	t.Helper()
	list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{
		All: true, Filters: client.Filters{}.Add("label", labelSession+"="+session),
	})
	require.NoError(t, err)
	return list.Items
}

// gone waits until container id no longer exists.
func gone(t *testing.T, cli *testcontainers.DockerClient, id string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, err := cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
		if err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %.12s still exists after %s", id, within)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestContainerPublishesOnLoopbackOnly: the server answers on a port the
// engine picked, bound to 127.0.0.1 only, and carries the session labels.
func TestContainerPublishesOnLoopbackOnly(t *testing.T) {
	cli, ref := engine(t)
	im, err := imageFor(eventfold.Postgres)
	require.NoError(t, err)
	ctx := context.Background()
	dsn, id, err := runImage(ctx, "postgres", ref, im)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	})
	require.Contains(t, dsn, "@127.0.0.1:")

	info, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	require.NoError(t, err)
	bindings := info.Container.HostConfig.PortBindings
	require.Len(t, bindings, 1)
	for port, bs := range bindings {
		require.Equal(t, "5432/tcp", port.String())
		require.Len(t, bs, 1)
		require.Equal(t, "127.0.0.1", bs[0].HostIP.String())
	}
	for _, bs := range info.Container.NetworkSettings.Ports {
		for _, b := range bs {
			require.Equal(t, "127.0.0.1", b.HostIP.String(), "published beyond loopback")
			require.NotEqual(t, "5432", b.HostPort, "took the well-known port")
		}
	}
	labels := info.Container.Config.Labels
	require.Equal(t, session, labels[labelSession])
	require.Equal(t, fmt.Sprint(os.Getpid()), labels[labelPID])

	drv, err := admin(eventfold.Postgres, dsn)
	require.NoError(t, err)
	var one int
	require.NoError(t, drv.DB().QueryRow("SELECT 1").Scan(&one))
	drv.Close()
}

// TestContainerNotReadyIsRemovedAtOnce: a server that never answers (here:
// the wait looks at a port nothing listens on) fails within its startup
// timeout with the container's log in the error, and its container is gone
// when runImage returns, not only when the process ends.
func TestContainerNotReadyIsRemovedAtOnce(t *testing.T) {
	cli, ref := engine(t)
	im, err := imageFor(eventfold.Postgres)
	require.NoError(t, err)
	im.port = "5439/tcp"
	im.timeout = 5 * time.Second
	before := len(sessionContainers(t, cli))
	start := time.Now()
	_, _, err = runImage(context.Background(), "postgres", ref, im)
	require.Error(t, err)
	require.Less(t, time.Since(start), 40*time.Second)
	require.Contains(t, err.Error(), "did not come up")
	require.Contains(t, err.Error(), ref)
	require.Contains(t, err.Error(), "last lines of the container's log")
	require.Len(t, sessionContainers(t, cli), before, "the failed container was left behind")
}

// TestMissingImageFailsFast: an image the engine does not have fails at once
// with EVENTFOLD_TEST_PULL=never, and within the pull deadline otherwise;
// both errors name the image and the variable to set.
func TestMissingImageFailsFast(t *testing.T) {
	engine(t)
	const ref = "eventfold-test/no-such-image:0"
	for _, pull := range []string{"never", ""} {
		t.Run("pull="+pull, func(t *testing.T) {
			t.Setenv(PullEnv, pull)
			start := time.Now()
			err := ensureImage(context.Background(), ref, "EVENTFOLD_TEST_MYSQL_IMAGE")
			require.Error(t, err)
			require.Contains(t, err.Error(), ref)
			require.Contains(t, err.Error(), "EVENTFOLD_TEST_MYSQL_IMAGE")
			limit := pullTimeout + 5*time.Second
			if pull == "never" {
				limit = 5 * time.Second
			}
			require.Less(t, time.Since(start), limit)
			t.Logf("failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

// TestSweepRemovesStaleContainers: a labelled container whose process is
// gone is removed by the sweep; one whose process lives is left alone.
func TestSweepRemovesStaleContainers(t *testing.T) {
	cli, ref := engine(t)
	ctx := context.Background()
	dead := exec.Command("true")
	require.NoError(t, dead.Run())
	create := func(pid int, start string) string {
		labels := sessionLabels()
		labels[labelSession] = "sweep-test"
		labels[labelPID] = fmt.Sprint(pid)
		labels[labelPIDStart] = start
		res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: ref, Labels: labels}})
		require.NoError(t, err)
		t.Cleanup(func() { _, _ = cli.ContainerRemove(ctx, res.ID, client.ContainerRemoveOptions{Force: true}) })
		return res.ID
	}
	stale := create(dead.Process.Pid, "1")
	reused := create(os.Getpid(), "1") // a live pid, but not the process that started it
	live := create(os.Getpid(), procStart(os.Getpid()))

	sweepStale(ctx)
	gone(t, cli, stale, 5*time.Second)
	gone(t, cli, reused, 5*time.Second)
	_, err := cli.ContainerInspect(ctx, live, client.ContainerInspectOptions{})
	require.NoError(t, err, "the sweep removed a live process's container")
}

// TestReaperRemovesContainersWhenTheProcessDies: a test process that started
// a container and then panics, or is killed, leaves nothing behind.
func TestReaperRemovesContainersWhenTheProcessDies(t *testing.T) {
	cli, _ := engine(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	for _, how := range []string{"panic", "kill"} {
		t.Run(how, func(t *testing.T) {
			cmd := exec.Command(exe, "-test.run=^TestReaperHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), "EVENTFOLD_TESTDB_HELPER="+how, envVar(eventfold.Postgres)+"=")
			out, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			var id string
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if rest, ok := strings.CutPrefix(sc.Text(), "CONTAINER "); ok {
					id = rest
					break
				}
			}
			require.NotEmpty(t, id, "the helper started no container")
			_, err = cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
			require.NoError(t, err, "the container should exist while its process runs")
			if how == "kill" {
				require.NoError(t, cmd.Process.Kill())
			}
			go func() { _, _ = bufio.NewReader(out).WriteTo(discard{}) }()
			err = cmd.Wait()
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "the helper should have failed: %v", err)
			gone(t, cli, id, 30*time.Second)
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestReaperHelper is the process TestReaperRemovesContainersWhenTheProcessDies
// runs: it starts a container, says which, and dies.
func TestReaperHelper(t *testing.T) {
	how := os.Getenv("EVENTFOLD_TESTDB_HELPER")
	if how == "" {
		t.Skip("helper process only")
	}
	dsn, reason := serverDSN(eventfold.Postgres)
	if dsn == "" {
		t.Fatal(reason)
	}
	list, err := testcontainers.NewDockerClientWithOpts(context.Background())
	require.NoError(t, err)
	for _, c := range sessionContainers(t, list) {
		fmt.Printf("CONTAINER %s\n", c.ID)
	}
	if how == "panic" {
		panic("helper panics with its container running")
	}
	time.Sleep(time.Minute) // killed by the parent
}
