package esctl

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver"
)

// Stats is what `esctl stats --json` prints.
type Stats struct {
	Dialect  string `json:"dialect"`
	Database string `json:"database"` // the DSN, password redacted
	Events   int64  `json:"events"`   // in the hot table
	Streams  int64  `json:"streams"`
	Head     int64  `json:"head"`
	// LastPosition is the highest committed position. Above Head (on
	// PostgreSQL, while a transaction that began earlier still runs) the
	// events are committed but not readable yet: HeldBack says how many
	// and what holds them.
	LastPosition   int64          `json:"last_position"`
	HeldBack       *HeldBack      `json:"held_back,omitempty"`
	FirstPosition  int64          `json:"first_position"`  // lowest in the hot table; 0: empty
	ArchivedBefore int64          `json:"archived_before"` // 0: nothing archived
	ByType         []TypeCount    `json:"by_type"`
	ByDay          []DayCount     `json:"by_day"`
	Subscriptions  []Subscription `json:"subscriptions"`
	// Relays are the subscriptions that relay the log to a broker (esctl
	// relay nats), also listed under Subscriptions.
	Relays []Relay `json:"relays"`
}

// HeldBack is the lag that a running transaction imposes on every reader:
// committed events above the head, which no reader gets until the
// transaction ends (PostgreSQL's gap-free horizon).
type HeldBack struct {
	Events    int64   `json:"events"`    // committed beyond the head
	Positions int64   `json:"positions"` // LastPosition - Head (sparse on PostgreSQL)
	Holder    *Holder `json:"holder,omitempty"`
}

// Holder is the transaction that holds the head back: the oldest running
// transaction with a transaction id, in any database of the cluster.
type Holder struct {
	PID         int64   `json:"pid"` // 0: a prepared transaction
	XIDAge      int64   `json:"xid_age"`
	AgeSeconds  float64 `json:"age_seconds"`
	State       string  `json:"state"`
	Database    string  `json:"database"`
	User        string  `json:"user"`
	Application string  `json:"application"`
	Query       string  `json:"query"` // start of its statement, if the server shows it
}

// Relay is one relay (its subscription) and its lag.
type Relay struct {
	Kind      string `json:"kind"`   // "nats"
	Target    string `json:"target"` // the JetStream stream
	Name      string `json:"name"`
	Position  int64  `json:"position"`   // last event acked by the broker and checkpointed
	LagEvents int64  `json:"lag_events"` // events after Position, up to the head
	// HeldBackEvents are committed after Position but above the head: not
	// readable yet (see Stats.HeldBack). The lag once the holder ends is
	// LagEvents + HeldBackEvents.
	HeldBackEvents int64     `json:"held_back_events"`
	UpdatedAt      time.Time `json:"updated_at"`
	Owner          string    `json:"owner"`
}

// relaysOf picks the relays out of the subscriptions.
func relaysOf(subs []Subscription) []Relay {
	out := []Relay{}
	for _, s := range subs {
		if target, ok := strings.CutPrefix(s.Name, natsRelayPrefix); ok {
			out = append(out, Relay{Kind: "nats", Target: target, Name: s.Name, Position: s.Position, LagEvents: s.LagEvents, HeldBackEvents: s.HeldBackEvents, UpdatedAt: s.UpdatedAt, Owner: s.Owner})
		}
	}
	return out
}

// TypeCount is the number of events of one type.
type TypeCount struct {
	Type   string `json:"type"`
	Events int64  `json:"events"`
}

// DayCount is the number of events recorded on one day (UTC).
type DayCount struct {
	Day    string `json:"day"`
	Events int64  `json:"events"`
}

// Subscription is one durable subscription (package listener) and its lag.
type Subscription struct {
	Name      string `json:"name"`
	Position  int64  `json:"position"`   // last event handled
	LagEvents int64  `json:"lag_events"` // events after Position, up to the head
	// HeldBackEvents are committed after Position but above the head: not
	// readable yet (see Stats.HeldBack). The lag once the holder ends is
	// LagEvents + HeldBackEvents.
	HeldBackEvents int64     `json:"held_back_events"`
	UpdatedAt      time.Time `json:"updated_at"`
	Owner          string    `json:"owner"` // holder of an unexpired lease; "" when none runs it
}

func runStats(ctx context.Context, env *Env, args []string) error {
	fs, dsn := env.newFlags("stats", "[--json] [--days N]",
		`Prints what the log holds: events and streams, head position, archive watermark,
events per type, events per day (UTC), and each subscription with its lag in events
and the process holding its lease.`,
		`  esctl stats
  esctl stats --json | jq '.subscriptions[] | select(.lag_events > 1000)'`)
	asJSON := fs.Bool("json", false, "print one JSON object")
	days := fs.Int("days", 14, "show the last N days with events (0: all; --json prints all)")
	if err := env.parse(fs, dsn, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	store, err := env.Open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	st, err := collectStats(ctx, env, store.Driver().Ops(), store.Dialect())
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return printStats(env, st, *days)
}

func collectStats(ctx context.Context, env *Env, ops eventfold.Ops, d eventfold.Dialect) (*Stats, error) {
	so := ops
	st := &Stats{Dialect: string(d), Database: sqldriver.Redact(env.DSN), ByType: []TypeCount{}, ByDay: []DayCount{}, Subscriptions: []Subscription{}}
	var err error
	if st.Events, st.Streams, st.FirstPosition, err = so.StatsTotals(ctx); err != nil {
		return nil, err
	}
	if st.Head, err = eventfold.HeadOf(ctx, ops); err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	if st.LastPosition, err = ops.LastPosition(ctx); err != nil {
		return nil, fmt.Errorf("last position: %w", err)
	}
	if st.LastPosition > st.Head {
		if st.HeldBack, err = heldBack(ctx, ops, st.Head, st.LastPosition); err != nil {
			return nil, err
		}
	}
	if st.ArchivedBefore, err = ops.ArchivedBefore(ctx); err != nil {
		return nil, fmt.Errorf("read the archive watermark: %w", err)
	}
	types, err := so.StatsEventTypes(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range types {
		st.ByType = append(st.ByType, TypeCount{r.Key, r.Events})
	}
	days, err := so.StatsEventDays(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range days {
		st.ByDay = append(st.ByDay, DayCount{r.Key, r.Events})
	}
	subs, err := listSubscriptions(ctx, ops)
	if err != nil {
		return nil, err
	}
	if st.HeldBack != nil {
		for i := range subs {
			if subs[i].HeldBackEvents, err = ops.StatsEventsBeyond(ctx, max(subs[i].Position, st.Head)); err != nil {
				return nil, err
			}
		}
	}
	st.Subscriptions = subs
	st.Relays = relaysOf(subs)
	return st, nil
}

// heldBack counts the committed events above the head and names the
// transaction holding them; nil when none are (they committed between the
// two reads, or the gap is only rolled-back positions).
func heldBack(ctx context.Context, ops eventfold.Ops, head, last int64) (*HeldBack, error) {
	n, err := ops.StatsEventsBeyond(ctx, head)
	if err != nil || n == 0 {
		return nil, err
	}
	hb := &HeldBack{Events: n, Positions: last - head}
	h, err := ops.StatsHorizonHolder(ctx)
	if err != nil {
		return nil, err
	}
	if h != nil {
		hb.Holder = &Holder{PID: h.PID, XIDAge: h.XIDAge, AgeSeconds: h.Age.Seconds(), State: h.State,
			Database: h.Database, User: h.User, Application: h.Application, Query: h.Query}
	}
	return hb, nil
}

// listSubscriptions reads the checkpoints of package listener with their
// lag. A database without the subscriptions tables (migration 00003) has
// no subscriptions.
func listSubscriptions(ctx context.Context, ops eventfold.Ops) ([]Subscription, error) {
	subs := []Subscription{}
	rows, err := ops.ListCheckpoints(ctx)
	if err != nil {
		if ops.UndefinedObject(err) {
			return subs, nil
		}
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	for _, r := range rows {
		subs = append(subs, Subscription{Name: r.Name, Position: r.Position, UpdatedAt: r.UpdatedAt.UTC()})
	}
	for i := range subs {
		if subs[i].LagEvents, err = ops.StatsEventsAfter(ctx, subs[i].Position); err != nil {
			return nil, err
		}
		if subs[i].Owner, err = ops.LeaseOwner(ctx, subs[i].Name); err != nil && !ops.UndefinedObject(err) {
			return nil, fmt.Errorf("lease of subscription %q: %w", subs[i].Name, err)
		}
	}
	return subs, nil
}

func printStats(env *Env, st *Stats, days int) error {
	w := env.Stdout
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "database\t%s (%s)\n", st.Database, st.Dialect)
	fmt.Fprintf(tw, "events\t%d\n", st.Events)
	fmt.Fprintf(tw, "streams\t%d\n", st.Streams)
	fmt.Fprintf(tw, "head position\t%d\n", st.Head)
	if hb := st.HeldBack; hb != nil {
		fmt.Fprintf(tw, "held back\t%d committed events above the head (last position %d): no reader gets them until the transaction holding the head ends\n", hb.Events, st.LastPosition)
		if h := hb.Holder; h != nil {
			fmt.Fprintf(tw, "\toldest running transaction: %s\n", describeHolder(h))
		}
	}
	if st.ArchivedBefore > 0 {
		fmt.Fprintf(tw, "archived\tevery event before position %d\n", st.ArchivedBefore)
	} else {
		fmt.Fprintf(tw, "archived\tnothing\n")
	}
	tw.Flush()

	fmt.Fprintln(w, "\nEvents per type:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	for _, t := range st.ByType {
		fmt.Fprintf(tw, "  %d\t  %s\t\n", t.Events, t.Type)
	}
	tw.Flush()
	if len(st.ByType) == 0 {
		fmt.Fprintln(w, "  (none)")
	}

	fmt.Fprintln(w, "\nEvents per day (UTC, newest first):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, d := range st.ByDay {
		if days > 0 && i == days {
			fmt.Fprintf(tw, "  ...\t(%d more days; --days 0 shows all)\n", len(st.ByDay)-days)
			break
		}
		fmt.Fprintf(tw, "  %s\t%d\n", d.Day, d.Events)
	}
	tw.Flush()
	if len(st.ByDay) == 0 {
		fmt.Fprintln(w, "  (none)")
	}

	fmt.Fprintln(w, "\nSubscriptions:")
	printSubscriptions(env, st.Subscriptions)
	if len(st.Relays) > 0 {
		fmt.Fprintln(w, "\nRelays:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  KIND\tTARGET\tPOSITION\tLAG (EVENTS)\tRUN BY")
		for _, r := range st.Relays {
			owner := r.Owner
			if owner == "" {
				owner = "-"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%s\n", r.Kind, r.Target, r.Position, r.LagEvents, owner)
		}
		tw.Flush()
	}
	return nil
}

func printSubscriptions(env *Env, subs []Subscription) {
	if len(subs) == 0 {
		fmt.Fprintln(env.Stdout, "  (none)")
		return
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tPOSITION\tLAG (EVENTS)\tUPDATED\tRUN BY")
	for _, s := range subs {
		owner := s.Owner
		if owner == "" {
			owner = "-"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\n", s.Name, s.Position, s.LagEvents, s.UpdatedAt.Format("2006-01-02 15:04:05Z"), owner)
	}
	tw.Flush()
}
