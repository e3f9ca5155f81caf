package postgres

import (
	"context"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
)

// AppendMany implements contract.Log with one Append per element, in order
// (the fallback until this dialect has a native multi-stream append).
func (o *Ops) AppendMany(ctx context.Context, appends []contract.StreamAppend) ([][]eventfold.Event, error) {
	out := make([][]eventfold.Event, len(appends))
	for i, a := range appends {
		evs, err := o.Append(ctx, a.StreamID, a.Expected, a.Events)
		if err != nil {
			return nil, &contract.AppendManyError{Index: i, Err: err}
		}
		out[i] = evs
	}
	return out, nil
}
