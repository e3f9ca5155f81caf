package otelfold_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// goListDeps lists the packages pkg links.
func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return strings.Fields(string(out))
}

// TestPlainProgramLinksNoOpenTelemetry: a service using the orchestrator,
// a subscription, the command endpoint and SSE, but not otelfold, links
// no OpenTelemetry package at all.
func TestPlainProgramLinksNoOpenTelemetry(t *testing.T) {
	deps := goListDeps(t, "github.com/eventfold/eventfold/otelfold/testdata/plain")
	require.Contains(t, deps, "github.com/eventfold/eventfold/orchestrator", "the test program is what it claims")
	for _, p := range deps {
		require.False(t, strings.HasPrefix(p, "go.opentelemetry.io/"), "links %s", p)
	}
}

// TestOtelfoldLinksTheAPIOnly: otelfold itself links the OpenTelemetry
// API, never the SDK or an exporter (the application chooses those).
func TestOtelfoldLinksTheAPIOnly(t *testing.T) {
	deps := goListDeps(t, "github.com/eventfold/eventfold/otelfold")
	require.Contains(t, deps, "go.opentelemetry.io/otel/trace")
	for _, p := range deps {
		require.False(t, strings.HasPrefix(p, "go.opentelemetry.io/otel/sdk") || strings.HasPrefix(p, "go.opentelemetry.io/otel/exporters"), "links %s", p)
		require.False(t, strings.Contains(p, "prometheus"), "links %s", p)
	}
}
