// Package migrations embeds eventfold's per-dialect goose migrations:
// sql/postgres, sql/mysql, sql/sqlite and sql/mssql. Each file is plain,
// annotated goose SQL that a DBA can read and apply with the stock goose
// CLI (use -table eventfold_goose_version so the version table matches what
// the library uses):
//
//	goose -dir sql/postgres -table eventfold_goose_version postgres "$DSN" up
package migrations

import "embed"

// FS holds the migrations, one folder per dialect.
//
//go:embed postgres mysql sqlite mssql
var FS embed.FS
