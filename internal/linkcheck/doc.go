// Package linkcheck proves that a program links the database drivers of
// the databases it uses and no others. Its subdirectories are small
// programs (pgxonly, mysqlonly, sqliteonly) built on one service body;
// linkcheck_test.go runs `go list -deps` on each and fails when a driver
// of another database, or a test-only module, is among its packages.
package linkcheck
