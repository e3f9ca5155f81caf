package sqldriver

import (
	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect"
	"github.com/eventfold/eventfold/internal/dialect/mysql"
)

func init() {
	dialects[eventfold.MySQL] = func(db dialect.DB) eventfold.Ops { return mysql.New(db) }
}
