package mysql

import (
	"context"

	"github.com/eventfold/eventfold/internal/contract"
)

// AppendMany implements contract.Log with the fallback loop over Append
// (contract.AppendEach): one Append's statements per element. A native
// multi-stream statement replaces it in the dialect's own branch.
func (o *Ops) AppendMany(ctx context.Context, appends []contract.StreamAppend) ([][]contract.Event, error) {
	return contract.AppendEach(ctx, o, appends)
}
