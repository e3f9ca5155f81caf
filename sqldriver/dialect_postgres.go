package sqldriver

import (
	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect"
	"github.com/eventfold/eventfold/internal/dialect/postgres"
)

func init() {
	dialects[eventfold.Postgres] = func(db dialect.DB) eventfold.Ops { return postgres.NewStd(db) }
}
