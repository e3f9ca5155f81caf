package sqldriver

import (
	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect"
	"github.com/eventfold/eventfold/internal/dialect/sqlite"
)

// dialects maps each dialect to its operations over database/sql; the
// files dialect_<name>.go add theirs.
var dialects = map[eventfold.Dialect]func(dialect.DB) eventfold.Ops{
	eventfold.SQLite: func(db dialect.DB) eventfold.Ops { return sqlite.New(db) },
}
