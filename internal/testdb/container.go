package testdb

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/eventfold/eventfold"
)

// Default images: the official ones a user with Docker Hub would pull.
// EVENTFOLD_TEST_POSTGRES_IMAGE, EVENTFOLD_TEST_MYSQL_IMAGE and
// EVENTFOLD_TEST_MSSQL_IMAGE replace them, e.g. with the images
// scripts/test-images.sh builds from Debian packages.
const (
	DefaultPostgresImage = "postgres:15"
	DefaultMySQLImage    = "mariadb:10.11"
	DefaultMSSQLImage    = "mcr.microsoft.com/mssql/server:2022-latest"
)

// PullEnv names the variable that controls pulls: "never" forbids asking a
// registry (CI sets it, so a missing image fails at once instead of waiting
// on a registry that cannot be reached); anything else pulls a missing image.
const PullEnv = "EVENTFOLD_TEST_PULL"

// Credentials the containers are started with. The official images take
// them from the environment; the locally built ones accept them as they are
// (PostgreSQL trusts, MariaDB has root/eventfold from any host).
const (
	containerPassword      = "eventfold"
	containerMSSQLPassword = "Eventfold-2026!"
)

// Timeouts: a pull that does not finish, or a server that does not answer a
// query in time, is reported instead of being waited on for ever.
const (
	pullTimeout    = 90 * time.Second
	startupTimeout = 2 * time.Minute
	mssqlStartup   = 4 * time.Minute
)

// loopback is where container ports are published.
var loopback = netip.MustParseAddr("127.0.0.1")

// image describes how to run a server for one dialect in a container.
type image struct {
	env      string // variable naming the image
	fallback string // default image
	port     string // container port, "5432/tcp"
	envs     map[string]string
	driver   string                   // database/sql driver name for the wait query
	waitDSN  func(addr string) string // DSN of driver for the wait query
	dsn      func(addr string) string // eventfold DSN handed to the tests
	// rotate, when set, is the statement that gives the server's admin
	// user the random password of this container (%s); the tests get that
	// one. A fixed password would be scrubbed from every message the tests
	// check (the redactor replaces the password wherever it appears, and
	// "eventfold" appears in many), and a random one keeps other local
	// users out of the container while it runs.
	rotate  string
	timeout time.Duration
}

func imageFor(d eventfold.Dialect) (image, error) {
	switch d {
	case eventfold.Postgres:
		return image{
			env: "EVENTFOLD_TEST_POSTGRES_IMAGE", fallback: DefaultPostgresImage, port: "5432/tcp",
			envs:   map[string]string{"POSTGRES_PASSWORD": containerPassword},
			driver: "pgx",
			waitDSN: func(addr string) string {
				return "postgres://postgres:" + containerPassword + "@" + addr + "/postgres?sslmode=disable&connect_timeout=5"
			},
			dsn: func(addr string) string {
				return "postgres://postgres:" + containerPassword + "@" + addr + "/postgres?sslmode=disable"
			},
			rotate:  "ALTER USER postgres PASSWORD '%s'",
			timeout: startupTimeout,
		}, nil
	case eventfold.MySQL:
		return image{
			env: "EVENTFOLD_TEST_MYSQL_IMAGE", fallback: DefaultMySQLImage, port: "3306/tcp",
			envs:    map[string]string{"MARIADB_ROOT_PASSWORD": containerPassword, "MYSQL_ROOT_PASSWORD": containerPassword},
			driver:  "mysql",
			waitDSN: func(addr string) string { return "root:" + containerPassword + "@tcp(" + addr + ")/?timeout=5s" },
			dsn:     func(addr string) string { return "mysql://root:" + containerPassword + "@" + addr + "/" },
			rotate:  "ALTER USER 'root'@'%%' IDENTIFIED BY '%s'",
			timeout: startupTimeout,
		}, nil
	case eventfold.SQLServer:
		return image{
			env: "EVENTFOLD_TEST_MSSQL_IMAGE", fallback: DefaultMSSQLImage, port: "1433/tcp",
			envs:   map[string]string{"ACCEPT_EULA": "Y", "MSSQL_SA_PASSWORD": containerMSSQLPassword},
			driver: "sqlserver",
			waitDSN: func(addr string) string {
				return "sqlserver://sa:" + containerMSSQLPassword + "@" + addr + "?database=master&dial+timeout=5"
			},
			dsn: func(addr string) string {
				return "sqlserver://sa:" + containerMSSQLPassword + "@" + addr + "?database=master"
			},
			timeout: mssqlStartup,
		}, nil
	}
	return image{}, fmt.Errorf("no container image for %s", d)
}

// name is the image to run: the variable's value, else the default.
func (im image) name() string {
	if v := strings.TrimSpace(os.Getenv(im.env)); v != "" {
		return v
	}
	return im.fallback
}

// dockerAnswers tells quickly whether a Docker engine may be reachable, so
// that a machine without one skips at once instead of timing out.
func dockerAnswers() bool {
	if os.Getenv("DOCKER_HOST") != "" {
		return true
	}
	for _, sock := range []string{"/var/run/docker.sock", os.Getenv("HOME") + "/.docker/run/docker.sock"} {
		if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return true
		}
	}
	return false
}

// startContainer starts a database server for d and returns its DSN. Every
// container carries this process's labels (reaper.go), so it is removed
// when the process ends however it ends; one that fails to come up is
// removed at once.
func startContainer(d eventfold.Dialect) (string, error) {
	im, err := imageFor(d)
	if err != nil {
		return "", err
	}
	if !dockerAnswers() {
		return "", errors.New("no Docker engine answers (no DOCKER_HOST, no docker.sock)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), im.timeout+pullTimeout+time.Minute)
	defer cancel()
	if err := prepareSession(ctx); err != nil {
		return "", err
	}
	ref := im.name()
	if err := ensureImage(ctx, ref, im.env); err != nil {
		return "", err
	}
	dsn, _, err := runImage(ctx, string(d), ref, im)
	return dsn, err
}

// runImage starts ref as a server described by im and returns its DSN and
// container id once it answers a query. A container that does not come up
// is removed before runImage returns, and the error carries its last log
// lines.
func runImage(ctx context.Context, what, ref string, im image) (dsn, id string, err error) {
	port := network.MustParsePort(im.port)
	req := testcontainers.ContainerRequest{
		Image:        ref,
		ExposedPorts: []string{im.port},
		Env:          im.envs,
		Labels:       sessionLabels(),
		// Published on 127.0.0.1 only, on a port the engine picks: the
		// containers are this process's test hosts, nobody else's, and the
		// well-known ports may belong to servers running on this machine.
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{port: {{HostIP: loopback, HostPort: "0"}}}
		},
		// Ready means: the server answers a query on the published port.
		// That holds for the official images (whose first start runs a
		// temporary server without TCP) and for the locally built ones.
		WaitingFor: wait.ForSQL(im.port, im.driver, func(host string, p network.Port) string {
			return im.waitDSN(hostAddr(host, p.Port()))
		}).WithStartupTimeout(im.timeout).WithPollInterval(250 * time.Millisecond),
	}
	started := time.Now()
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
	if err != nil {
		if c != nil {
			err = fmt.Errorf("%w\n%s", err, lastLogLines(c, 15))
			removeContainer(c)
		}
		return "", "", fmt.Errorf("container of %s (image %s, from %s) did not come up: %w", what, ref, im.env, err)
	}
	host, err := c.Host(ctx)
	if err == nil {
		var mapped network.Port
		mapped, err = c.MappedPort(ctx, im.port)
		if err == nil {
			addr := hostAddr(host, mapped.Port())
			// On stderr so that CI logs show which servers the suite ran on.
			fmt.Fprintf(os.Stderr, "testdb: %s container %.12s (image %s) answers on %s after %s\n",
				what, c.GetContainerID(), ref, addr, time.Since(started).Round(100*time.Millisecond))
			dsn, err = rotatePassword(ctx, im, addr)
			if err == nil {
				return dsn, c.GetContainerID(), nil
			}
		}
	}
	removeContainer(c)
	return "", "", fmt.Errorf("container of %s (image %s): %w", what, ref, err)
}

// hostAddr is host:port for the published port. A local engine's host is
// "localhost", which may resolve to ::1 first; the port is bound on
// 127.0.0.1 only, so that is what is dialled.
func hostAddr(host, port string) string {
	if host == "localhost" || host == "" {
		host = "127.0.0.1"
	}
	return host + ":" + port
}

// pinLocalHost makes testcontainers look for published ports on 127.0.0.1
// when the engine is local (a unix socket), unless
// TESTCONTAINERS_HOST_OVERRIDE says otherwise. Left alone, testcontainers
// guesses: inside a container (a CI sandbox, a dev container) it dials the
// default gateway, where a port published on 127.0.0.1 is not.
func pinLocalHost() {
	if _, set := os.LookupEnv("TESTCONTAINERS_HOST_OVERRIDE"); set {
		return
	}
	if h := os.Getenv("DOCKER_HOST"); h == "" || strings.HasPrefix(h, "unix://") {
		_ = os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	}
}

// ensureImage makes sure ref is present in the engine. A missing image is
// pulled once with a deadline, unless EVENTFOLD_TEST_PULL=never; either way
// the error names the image and the variable to set, instead of leaving
// testcontainers to retry a registry that cannot be reached.
func ensureImage(ctx context.Context, ref, env string) error {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("connect to the Docker engine: %w", err)
	}
	defer cli.Close()
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return nil
	}
	hint := fmt.Sprintf("set %s to an image present in the engine (scripts/test-images.sh builds one from Debian packages)", env)
	if os.Getenv(PullEnv) == "never" {
		return fmt.Errorf("image %s is not present locally and %s=never forbids pulling it; %s", ref, PullEnv, hint)
	}
	pctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	resp, err := cli.ImagePull(pctx, ref, client.ImagePullOptions{})
	if err == nil {
		err = resp.Wait(pctx)
		_ = resp.Close()
	}
	if err != nil {
		return fmt.Errorf("image %s is not present locally and pulling it failed (%v); %s", ref, err, hint)
	}
	return nil
}

// lastLogLines returns the container's last n log lines, to show why it did
// not come up.
func lastLogLines(c testcontainers.Container, n int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := c.Logs(ctx)
	if err != nil {
		return "(no container log: " + err.Error() + ")"
	}
	defer rc.Close()
	var lines []string
	sc := bufio.NewScanner(io.LimitReader(rc, 1<<20))
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return "last lines of the container's log:\n  " + strings.Join(lines, "\n  ")
}

// removeContainer kills and removes c with its anonymous volumes; the
// reaper would do it at exit, this does it now.
func removeContainer(c testcontainers.Container) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = c.Terminate(ctx, testcontainers.StopTimeout(0))
}

// rotatePassword gives the container's admin user a random password (see
// image.rotate) and returns the DSN that uses it.
func rotatePassword(ctx context.Context, im image, addr string) (string, error) {
	dsn := im.dsn(addr)
	if im.rotate == "" {
		return dsn, nil
	}
	db, err := sql.Open(im.driver, im.waitDSN(addr))
	if err != nil {
		return "", err
	}
	defer db.Close()
	pw := "pw" + randomHex(10)
	if _, err := db.ExecContext(ctx, fmt.Sprintf(im.rotate, pw)); err != nil {
		return "", fmt.Errorf("set the container's password: %w", err)
	}
	return strings.Replace(dsn, ":"+containerPassword+"@", ":"+pw+"@", 1), nil
}
