package eventfold

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/eventfold/eventfold/internal/contract"
)

// PositionCheck is what Store.CheckPositions found and did; its fields
// are documented in internal/contract.
type PositionCheck = contract.PositionCheck

// CheckPositions reports whether the log holds positions above the ones the
// database now assigns, which happens on PostgreSQL after a logical
// dump/restore or logical replication into a new cluster (its transaction
// ids restart low), and on MySQL/MariaDB when the events table's
// AUTO_INCREMENT falls to or below the log, its archive watermark or a
// checkpoint (TRUNCATE, ALTER TABLE, a dump into a new database once
// everything was archived). With repair set it raises the position offset
// (MySQL: AUTO_INCREMENT) so that every new position lies above the log and
// readers see every restored event; appends wait for the moment it takes,
// readers do not. Migrate runs
// it with repair set, and Append runs it when the database refuses an
// append for this reason. Safe to call at any time, concurrently with
// appends.
func (s *Store[TTx]) CheckPositions(ctx context.Context, repair bool) (PositionCheck, error) {
	if !s.driver.Ops().Capabilities().PositionCheck {
		return PositionCheck{Message: fmt.Sprintf("positions ok: %s positions are stored with the data", s.driver.Dialect())}, nil
	}
	var res PositionCheck
	var err error
	if repair {
		// The repair writes (the floor, the offset) by what this binary
		// knows of positions: refused on a schema newer than that, as every
		// other write is.
		if err := s.CheckWritable(ctx); err != nil {
			return PositionCheck{}, fmt.Errorf("eventfold: repair positions: %w", err)
		}
		// In a transaction of its own: the repair's lock must last until its
		// new offset is committed.
		err = s.InTx(ctx, func(tx TTx) error {
			res, err = s.driver.OpsTx(tx).CheckPositions(ctx, true)
			return err
		})
	} else {
		res, err = s.driver.Ops().CheckPositions(ctx, false)
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
