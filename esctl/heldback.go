package esctl

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/eventfold/eventfold"
)

// Reads stop at the head. On PostgreSQL a transaction that began before
// an append and still runs, in any database of the cluster, holds the
// head below events that are already committed: read --all then prints
// less than the log holds and tail waits, both rightly (the order is only
// gap-free below the head) but in silence. sayHeldBack tells the operator
// on stderr; stdout, which scripts parse, stays what was readable.

// checkHeldBack returns the committed events above the head and what
// holds them, nil when there are none.
func checkHeldBack(ctx context.Context, ops eventfold.Ops) (*HeldBack, int64, error) {
	head, err := eventfold.HeadOf(ctx, ops)
	if err != nil {
		return nil, 0, fmt.Errorf("head: %w", err)
	}
	last, err := ops.LastPosition(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("last position: %w", err)
	}
	if last <= head {
		return nil, last, nil
	}
	hb, err := heldBack(ctx, ops, head, last)
	return hb, last, err
}

// sayHeldBack writes to w, when a read reached the head, how many
// committed events are above it and what holds them. A failure to find
// out is said too, but is no failure of the read.
func sayHeldBack(ctx context.Context, env *Env, ops eventfold.Ops, cmd string) *HeldBack {
	hb, last, err := checkHeldBack(ctx, ops)
	if err != nil {
		if ctx.Err() == nil {
			fmt.Fprintf(env.Stderr, "%s %s: could not check for committed events above the head: %v\n", env.Program, cmd, err)
		}
		return nil
	}
	if hb != nil {
		writeHeldBack(env, cmd, hb, last)
	}
	return hb
}

func writeHeldBack(env *Env, cmd string, hb *HeldBack, last int64) {
	fmt.Fprintf(env.Stderr, "%s %s: %d committed events above the head (last position %d) are not readable yet: a running transaction holds the read horizon back, and readers get them when it ends\n",
		env.Program, cmd, hb.Events, last)
	if h := hb.Holder; h != nil {
		fmt.Fprintf(env.Stderr, "%s %s: oldest running transaction: %s\n", env.Program, cmd, describeHolder(h))
	}
}

// describeHolder says which transaction holds the head, as stats shows it.
func describeHolder(h *Holder) string {
	who := fmt.Sprintf("pid %d", h.PID)
	if h.PID == 0 {
		who = "a prepared transaction"
	}
	return fmt.Sprintf("%s, %s old (%d xids), %s, database %q, user %q, application %q: %q",
		who, time.Duration(h.AgeSeconds*float64(time.Second)).Round(time.Millisecond), h.XIDAge, h.State, h.Database, h.User, h.Application, h.Query)
}

// heldBackWatch is the log tail follows: a read that comes back empty
// (tail reached the head) checks, at most every heldBackEvery, for
// committed events above the head, and says so when that changes (held
// back or not, and by which transaction).
type heldBackWatch struct {
	eventfold.Log
	env *Env
	ops eventfold.Ops

	mu      sync.Mutex
	checked time.Time
	said    string // the holder last said ("" none; "?" held back by no known transaction)
}

// heldBackEvery spaces the checks of a tail at the head: each costs two
// to four reads.
const heldBackEvery = 5 * time.Second

func (h *heldBackWatch) ReadAll(ctx context.Context, opt eventfold.ReadAllOptions) ([]eventfold.Event, error) {
	evs, err := h.Log.ReadAll(ctx, opt)
	if err == nil && len(evs) == 0 {
		h.atHead(ctx)
	}
	return evs, err
}

func (h *heldBackWatch) atHead(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.checked.IsZero() && time.Since(h.checked) < heldBackEvery {
		return
	}
	h.checked = time.Now()
	hb, last, err := checkHeldBack(ctx, h.ops)
	if err != nil {
		return // tail's own reads report the database's trouble
	}
	key := ""
	if hb != nil {
		key = "?"
		if hb.Holder != nil {
			key = fmt.Sprintf("%d/%s", hb.Holder.PID, hb.Holder.Database)
		}
	}
	if key != h.said && hb != nil {
		writeHeldBack(h.env, "tail", hb, last)
	}
	h.said = key
}
