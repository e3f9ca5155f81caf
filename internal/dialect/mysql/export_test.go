package mysql

import (
	"context"
	"database/sql"
)

// InterpretErrorForTest lets the external tests classify raw driver errors.
var InterpretErrorForTest = interpretError

// HeadAndFloorQueryForTest is Head's statement, for the cost measurement
// (the pool's mark at position 10000).
var HeadAndFloorQueryForTest = headAndFloorAt(10000)

// SettledMarkForTest returns a pool's settled mark (0 if none) and whether
// its anchor is still the event at its position, as Head would judge it
// (without dropping it).
func SettledMarkForTest(ctx context.Context, db *sql.DB) (pos int64, trusted bool, err error) {
	o := New(db)
	mark := o.settled().Load()
	if mark == nil {
		return 0, false, nil
	}
	hf, err := o.headAndFloor(ctx, mark)
	if err != nil {
		return 0, false, err
	}
	return mark.pos, hf.markAnchor == mark.anchor, nil
}
