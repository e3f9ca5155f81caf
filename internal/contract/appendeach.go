package contract

import "context"

// AppendEach is AppendMany as a loop over Append: the fallback of a
// dialect without a multi-stream statement, and the reference the native
// implementations must agree with. It costs what len(appends) Appends cost
// (one or more statements each). On Ops bound to a transaction the
// elements before a failure stay written in it, so the caller rolls it
// back (see Log.AppendMany); on Ops bound to a pool each element is an
// Append of its own and commits by itself.
func AppendEach(ctx context.Context, log Log, appends []StreamAppend) ([][]Event, error) {
	out := make([][]Event, len(appends))
	for i, a := range appends {
		evs, err := log.Append(ctx, a.StreamID, a.Expected, a.Events)
		if err != nil {
			return nil, &AppendManyError{Index: i, Err: err}
		}
		out[i] = evs
	}
	return out, nil
}
