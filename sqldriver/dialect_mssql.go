package sqldriver

import (
	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect"
	"github.com/eventfold/eventfold/internal/dialect/mssql"
)

func init() {
	dialects[eventfold.SQLServer] = func(db dialect.DB) eventfold.Ops { return mssql.New(db) }
}
