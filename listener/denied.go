package listener

import "github.com/eventfold/eventfold"

// permissionDenied tells whether err is the database refusing this
// account a statement (the dialect's classification). Tail and
// Subscription return such errors instead of retrying them: until a DBA
// grants the privilege no retry succeeds, and a process that keeps running
// and logging warnings hides from its operator what a failed one tells.
// A supervisor restarts a process that exited; a program that wants to
// wait for the grant can loop on the error itself.
func permissionDenied(log eventfold.Log, err error) bool {
	return err != nil && log.Ops().PermissionDenied(err)
}
