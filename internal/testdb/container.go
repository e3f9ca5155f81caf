package testdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/eventfold/eventfold"
)

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

// startContainer starts a database server for d and returns its DSN. The
// container lives as long as the test process (testcontainers' reaper
// removes it afterwards).
func startContainer(d eventfold.Dialect) (string, error) {
	if !dockerAnswers() {
		return "", errors.New("no Docker engine answers (no DOCKER_HOST, no docker.sock)")
	}
	var req testcontainers.ContainerRequest
	var port string
	switch d {
	case eventfold.Postgres:
		port = "5432/tcp"
		req = testcontainers.ContainerRequest{
			Image: "postgres:15", ExposedPorts: []string{port},
			Env:        map[string]string{"POSTGRES_PASSWORD": "eventfold"},
			WaitingFor: wait.ForLog("database system is ready to accept connections").WithOccurrence(2).WithStartupTimeout(2 * time.Minute),
		}
	case eventfold.MySQL:
		port = "3306/tcp"
		req = testcontainers.ContainerRequest{
			Image: "mariadb:10.11", ExposedPorts: []string{port},
			Env:        map[string]string{"MARIADB_ROOT_PASSWORD": "eventfold"},
			WaitingFor: wait.ForListeningPort(port).WithStartupTimeout(2 * time.Minute),
		}
	case eventfold.SQLServer:
		port = "1433/tcp"
		req = testcontainers.ContainerRequest{
			Image: "mcr.microsoft.com/mssql/server:2022-latest", ExposedPorts: []string{port},
			Env:        map[string]string{"ACCEPT_EULA": "Y", "MSSQL_SA_PASSWORD": "Eventfold-2026!"},
			WaitingFor: wait.ForLog("SQL Server is now ready for client connections").WithStartupTimeout(3 * time.Minute),
		}
	default:
		return "", fmt.Errorf("no container image for %s", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
	if err != nil {
		return "", err
	}
	host, err := c.Host(ctx)
	if err != nil {
		return "", err
	}
	mapped, err := c.MappedPort(ctx, port)
	if err != nil {
		return "", err
	}
	addr := fmt.Sprintf("%s:%s", host, mapped.Port())
	switch d {
	case eventfold.Postgres:
		return "postgres://postgres:eventfold@" + addr + "/postgres?sslmode=disable", nil
	case eventfold.MySQL:
		// MariaDB opens its port before it accepts logins; wait for that.
		return "mysql://root:eventfold@" + addr + "/", waitMySQL("mysql://root:eventfold@" + addr + "/")
	default:
		return "sqlserver://sa:Eventfold-2026!@" + addr + "?database=master", nil
	}
}

func waitMySQL(dsn string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		drv, err := admin(eventfold.MySQL, dsn)
		if err == nil {
			drv.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Second)
	}
}
