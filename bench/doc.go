// Package bench is eventfold's benchmark harness (esctl bench). Its main
// workload, "dispatch", is the one the design notes measure: per command,
// append events and let a reducer upsert one read-model row per event.
// It runs the same workload through the orchestrator and, with Raw, as
// hand-written SQL on the bare driver in the same process and run, and
// reports the ratio: absolute numbers drift between runs and machines,
// ratios taken in one run do not.
package bench
