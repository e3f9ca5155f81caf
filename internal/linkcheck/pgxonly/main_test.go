package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestRunOnPostgres runs the program on a fresh Postgres database.
func TestRunOnPostgres(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{testdb.EmptyDSN(t, eventfold.Postgres)}, &out))
	require.Contains(t, out.String(), "read back [Pinged]")
}
