package eventfold

import (
	"context"
	"fmt"
	"log/slog"
)

// PositionCheck is what Store.CheckPositions found and did.
type PositionCheck struct {
	// Applicable is false on dialects whose positions are a counter stored
	// with the data (MySQL/MariaDB, SQLite, SQL Server): they survive any
	// move, and there is nothing to check.
	Applicable bool
	// Moved reports that the log holds positions the database cannot have
	// assigned: a PostgreSQL database restored into a new cluster.
	Moved bool
	// Repaired reports that the offset was raised just now.
	Repaired bool
	// OldOffset and NewOffset are the position offset before and after
	// (positions are ((xid + offset) << 20) + index).
	OldOffset, NewOffset int64
	// LastPosition is the highest position the log, its archive watermark
	// or a subscription checkpoint has reached.
	LastPosition int64
	// NextPosition is the lowest position an append starting now can get.
	NextPosition int64
	// Message says the above in a sentence, for logs and esctl.
	Message string
}

// PositionChecker is implemented by the Ops of dialects whose positions
// derive from the database server's state (PostgreSQL's transaction ids)
// rather than from the data, and so can fall behind the log when the data
// moves to another server.
type PositionChecker interface {
	// CheckPositions reports whether positions fell behind the log, and
	// with repair set, raises them above it.
	CheckPositions(ctx context.Context, repair bool) (PositionCheck, error)
}

// CheckPositions reports whether the log holds positions above the ones the
// database now assigns, which happens on PostgreSQL after a logical
// dump/restore or logical replication into a new cluster (its transaction
// ids restart low). With repair set it raises the position offset so that
// every new position lies above the log and readers see every restored
// event; appends wait for the moment it takes, readers do not. Migrate runs
// it with repair set, and Append runs it when the database refuses an
// append for this reason. Safe to call at any time, concurrently with
// appends.
func (s *Store[TTx]) CheckPositions(ctx context.Context, repair bool) (PositionCheck, error) {
	pc, ok := s.driver.Ops().(PositionChecker)
	if !ok {
		return PositionCheck{Message: fmt.Sprintf("positions ok: %s positions are stored with the data", s.driver.Dialect())}, nil
	}
	var res PositionCheck
	var err error
	if repair {
		// In a transaction of its own: the repair's lock must last until its
		// new offset is committed.
		err = s.InTx(ctx, func(tx TTx) error {
			txpc, ok := s.driver.OpsTx(tx).(PositionChecker)
			if !ok {
				return fmt.Errorf("%s driver checks positions outside a transaction only", s.driver.Dialect())
			}
			res, err = txpc.CheckPositions(ctx, true)
			return err
		})
	} else {
		res, err = pc.CheckPositions(ctx, false)
	}
	if err != nil {
		return PositionCheck{}, fmt.Errorf("eventfold: check positions: %w", err)
	}
	res.Applicable = true
	if res.Repaired {
		s.logger().WarnContext(ctx, "eventfold: "+res.Message,
			slog.Int64("old_offset", res.OldOffset), slog.Int64("new_offset", res.NewOffset),
			slog.Int64("last_position", res.LastPosition))
	}
	return res, nil
}

func (s *Store[TTx]) logger() *slog.Logger {
	if s.log != nil {
		return s.log
	}
	return slog.Default()
}
