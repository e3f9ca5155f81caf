package bench

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result is one measured run of one mode.
type Result struct {
	Mode              string  `json:"mode"`
	Dialect           string  `json:"dialect"`
	Concurrency       int     `json:"concurrency"`
	EventsPerCommand  int     `json:"events_per_command"`
	Commands          int64   `json:"commands"`
	Errors            int64   `json:"errors"`
	Seconds           float64 `json:"seconds"`
	CommandsPerSecond float64 `json:"commands_per_second"`
	EventsPerSecond   float64 `json:"events_per_second"`
	P50ms             float64 `json:"p50_ms"`
	P95ms             float64 `json:"p95_ms"`
	P99ms             float64 `json:"p99_ms"`
	// PeakRSSBytes is the process's peak resident set during this mode
	// (Linux; 0 elsewhere).
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// CPUMicrosPerCommand is this process's CPU time (user + system)
	// during the mode per command, in µs: the Go side's cost, which the
	// machine's noise moves far less than throughput (Linux; 0 elsewhere).
	CPUMicrosPerCommand float64 `json:"cpu_us_per_command"`
	// ServerCPUMicrosPerCommand is the CPU time of the PostgreSQL
	// backends of the benchmark's database during the mode per command,
	// in µs, read from /proc (a server on this machine only; 0 otherwise).
	ServerCPUMicrosPerCommand float64 `json:"server_cpu_us_per_command,omitempty"`
	// MeanBatchSize is the mean Result.BatchSize of the mode's commands
	// (group commit: how many commands shared a transaction).
	MeanBatchSize float64 `json:"mean_batch_size,omitempty"`
}

// summarize turns per-worker latencies into a Result.
func summarize(mode string, lat [][]time.Duration, errs int64, elapsed time.Duration, eventsPerCommand int) Result {
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := Result{Mode: mode, Commands: int64(len(all)), Errors: errs, Seconds: elapsed.Seconds(), EventsPerCommand: eventsPerCommand}
	if elapsed > 0 {
		r.CommandsPerSecond = float64(len(all)) / elapsed.Seconds()
		r.EventsPerSecond = r.CommandsPerSecond * float64(eventsPerCommand)
	}
	r.P50ms, r.P95ms, r.P99ms = percentileMS(all, 0.50), percentileMS(all, 0.95), percentileMS(all, 0.99)
	return r
}

// percentileMS reads the p-quantile of sorted durations, in milliseconds.
func percentileMS(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return float64(sorted[i].Microseconds()) / 1000
}

// resetPeakRSS restarts the kernel's peak-RSS counter (Linux 4.0+), so
// each mode reports its own peak.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS reads VmHWM from /proc/self/status, in bytes (0 if unknown).
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

// String renders a result as one text line.
func (r Result) String() string {
	s := fmt.Sprintf("%-27s %-9s c=%-3d %9.0f cmd/s %9.0f ev/s  p50 %6.2f ms  p95 %6.2f ms  p99 %6.2f ms  errors %d  peak RSS %d MiB  cpu %.0f µs/cmd",
		r.Mode, r.Dialect, r.Concurrency, r.CommandsPerSecond, r.EventsPerSecond, r.P50ms, r.P95ms, r.P99ms, r.Errors, r.PeakRSSBytes>>20, r.CPUMicrosPerCommand)
	if r.ServerCPUMicrosPerCommand > 0 {
		s += fmt.Sprintf("  server cpu %.0f µs/cmd", r.ServerCPUMicrosPerCommand)
	}
	if r.MeanBatchSize > 0 {
		s += fmt.Sprintf("  batch %.1f", r.MeanBatchSize)
	}
	return s
}
