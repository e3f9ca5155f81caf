package listener

import (
	"context"
	"reflect"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/eventfold/eventfold"
)

// Followers of the same log in one process (Tails, Subscriptions, the SSE
// handler's tail) share their reads at the head: a shared reader keeps the
// window of the most recent events it read, gap-free (what one ReadAll from
// the window's start would return), and every follower whose position is
// inside the window is served from it. Only a follower at the window's end
// triggers a read, and it is one read for all of them: followers that need
// a read wait for the one in flight when it started late enough to see
// what woke them (see reader.next), so under load N followers cost about
// one ReadAll per batch instead of N. A follower behind the window (a
// subscription catching up from its checkpoint) reads alone, exactly as
// before, until it reaches the window. Each follower keeps its own position,
// checkpoint, filter, lease, handler and error handling: the shared reader
// only replaces where a follower's ReadAll results come from.

// sharedWindow is how many events the shared window keeps; it is trimmed
// back to that once it holds twice as many (or twice sharedWindowBytes).
var sharedWindow = 4096

// sharedWindowBytes bounds the window's payload bytes the same way.
const sharedWindowBytes = 16 << 20

func eventBytes(e eventfold.Event) int {
	return len(e.Data) + len(e.Metadata) + len(e.StreamID) + len(e.ID) + len(e.Type) + 64
}

var sharedReaders = struct {
	sync.Mutex
	m map[eventfold.Log]*sharedReader
}{m: map[eventfold.Log]*sharedReader{}}

// sharedReader is the shared read state of one Log.
type sharedReader struct {
	log    eventfold.Log
	ctx    context.Context // the reads' context: ends when the last follower leaves
	cancel context.CancelFunc
	refs   int // under sharedReaders' lock

	mu sync.Mutex
	// anchored is false until a follower set the window's start.
	anchored bool
	// evs are every event in positions (lo, hi], in order.
	lo, hi int64
	evs    []eventfold.Event
	bytes  int // eventBytes of evs
	// freshAt is when (monoNow) the latest successful read from hi+1
	// started; 0 after anchoring. When complete (that read was not cut
	// short by its limit), the window holds everything readable then.
	freshAt  int64
	complete bool
	// flight is the read in progress, nil when none.
	flight *sharedRead
	// advanced is closed (and replaced) after each read, waking followers
	// waiting at the head: they take the new events from the window.
	advanced chan struct{}
	// last is the log's last position as of lastAt (monoNow before the
	// query), lastFlight the query in progress: followers asking after the
	// same wake-up share one query (tail.go, account).
	last       int64
	lastAt     int64
	lastFlight *lastQuery
}

// lastQuery is one LastPosition query made for every follower that asks.
type lastQuery struct {
	start int64
	done  chan struct{}
	pos   int64
	err   error
}

// lastPosition returns the log's last position from a query that started
// at or after fresh: the one in flight or the latest when fresh enough,
// else a new one.
func (sr *sharedReader) lastPosition(ctx context.Context, fresh int64) (int64, error) {
	sr.mu.Lock()
	if sr.lastAt >= fresh {
		pos := sr.last
		sr.mu.Unlock()
		return pos, nil
	}
	q := sr.lastFlight
	if q == nil || q.start < fresh {
		q = &lastQuery{start: monoNow(), done: make(chan struct{})}
		sr.lastFlight = q
		go func() {
			pos, err := sr.log.Ops().LastPosition(sr.ctx)
			sr.mu.Lock()
			q.pos, q.err = pos, err
			if err == nil && q.start > sr.lastAt {
				sr.last, sr.lastAt = pos, q.start
			}
			if sr.lastFlight == q {
				sr.lastFlight = nil
			}
			sr.mu.Unlock()
			close(q.done)
		}()
	}
	sr.mu.Unlock()
	select {
	case <-q.done:
		return q.pos, q.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// staleWindow is how long a window may go unread before a follower past
// its end moves it (rather than extends it) to its own position.
const staleWindow = time.Second

// sharedRead is one ReadAll made for every follower at the head.
type sharedRead struct {
	start int64 // monoNow before the query was sent
	from  int64
	limit int
	done  chan struct{}
	err   error
}

// joinShared returns log's shared reader, creating it for the first
// follower; leave it when done. It returns nil (read alone) for a Log whose
// dynamic type cannot be a map key.
func joinShared(log eventfold.Log) *sharedReader {
	if log == nil || !reflect.TypeOf(log).Comparable() {
		return nil
	}
	sharedReaders.Lock()
	defer sharedReaders.Unlock()
	sr := sharedReaders.m[log]
	if sr == nil {
		ctx, cancel := context.WithCancel(context.Background())
		sr = &sharedReader{log: log, ctx: ctx, cancel: cancel, advanced: make(chan struct{})}
		sharedReaders.m[log] = sr
	}
	sr.refs++
	return sr
}

// leave drops one follower; the last one ends the reader (and a read still
// in flight).
func (sr *sharedReader) leave() {
	if sr == nil {
		return
	}
	sharedReaders.Lock()
	defer sharedReaders.Unlock()
	sr.refs--
	if sr.refs == 0 {
		delete(sharedReaders.m, sr.log)
		sr.cancel()
	}
}

// read returns at most limit events after pos, all that a ReadAll from
// pos+1 that started at or after fresh would have returned (gap-free, in
// order, possibly fewer), when (monoNow) the read they come from started,
// and the channel the next completed read closes (taken with the result,
// so a read completing after it wakes the caller, and the caller's own
// does not). served is false when pos is behind the window: the caller reads
// alone. A follower past the window's end extends the window to it with
// shared reads, or, when nobody read for staleWindow, moves the window.
func (sr *sharedReader) read(ctx context.Context, pos int64, limit int, fresh int64) (evs []eventfold.Event, start int64, advanced <-chan struct{}, served bool, err error) {
	sr.mu.Lock()
	for {
		if sr.flight == nil && (!sr.anchored || pos > sr.hi && monoNow()-sr.freshAt > int64(staleWindow)) {
			sr.anchored, sr.lo, sr.hi, sr.evs, sr.bytes, sr.freshAt, sr.complete = true, pos, pos, nil, 0, 0, false
		}
		if pos < sr.lo {
			sr.mu.Unlock()
			return nil, 0, nil, false, nil
		}
		if pos < sr.hi {
			evs, start, advanced = sr.after(pos, limit), sr.freshAt, sr.advanced
			sr.mu.Unlock()
			return evs, start, advanced, true, nil
		}
		// At the window's end, or past it (a follower that caught up
		// alone, or started at a later head, while the window is in use:
		// the window is extended to it rather than moved, so that the
		// followers in it stay together).
		if sr.complete && sr.freshAt >= fresh {
			start, advanced = sr.freshAt, sr.advanced
			sr.mu.Unlock()
			return nil, start, advanced, true, nil
		}
		f := sr.flight
		if f == nil {
			f = &sharedRead{start: monoNow(), from: sr.hi + 1, limit: limit, done: make(chan struct{})}
			sr.flight = f
			go sr.run(f)
		}
		sr.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, 0, nil, true, ctx.Err()
		}
		sr.mu.Lock()
		if f.err != nil && f.start >= fresh {
			advanced = sr.advanced
			sr.mu.Unlock()
			return nil, 0, advanced, true, f.err
		}
		// Otherwise the window moved (or a read too early for this
		// follower failed): look again.
	}
}

// run makes one shared read and extends the window with its events.
func (sr *sharedReader) run(f *sharedRead) {
	evs, err := sr.log.ReadAll(sr.ctx, eventfold.ReadAllOptions{From: f.from, Limit: f.limit})
	sr.mu.Lock()
	defer sr.mu.Unlock()
	sr.flight = nil
	f.err = err
	if err == nil {
		sr.freshAt, sr.complete = f.start, len(evs) < f.limit
		if len(evs) > 0 {
			sr.evs = append(sr.evs, evs...)
			sr.hi = evs[len(evs)-1].GlobalPosition
			for _, e := range evs {
				sr.bytes += eventBytes(e)
			}
			if len(sr.evs) > 2*sharedWindow || sr.bytes > 2*sharedWindowBytes {
				cut := max(0, len(sr.evs)-sharedWindow)
				for _, e := range sr.evs[:cut] {
					sr.bytes -= eventBytes(e)
				}
				for cut < len(sr.evs) && sr.bytes > sharedWindowBytes {
					sr.bytes -= eventBytes(sr.evs[cut])
					cut++
				}
				if cut > 0 {
					sr.lo = sr.evs[cut-1].GlobalPosition
					sr.evs = slices.Clone(sr.evs[cut:])
				}
			}
		}
	}
	close(f.done)
	close(sr.advanced)
	sr.advanced = make(chan struct{})
}

// after returns a copy of at most limit events of the window after pos
// (lo <= pos < hi). The copy is the follower's own, as a read of its own
// would be: handlers may keep or change it.
func (sr *sharedReader) after(pos int64, limit int) []eventfold.Event {
	i := sort.Search(len(sr.evs), func(i int) bool { return sr.evs[i].GlobalPosition > pos })
	src := sr.evs[i:min(len(sr.evs), i+limit)]
	n := 0
	for _, e := range src {
		n += len(e.Data) + len(e.Metadata)
	}
	buf := make([]byte, 0, n)
	out := make([]eventfold.Event, len(src))
	for j, e := range src {
		out[j] = e
		if e.Data != nil {
			buf = append(buf, e.Data...)
			out[j].Data = buf[len(buf)-len(e.Data) : len(buf) : len(buf)]
		}
		if e.Metadata != nil {
			buf = append(buf, e.Metadata...)
			out[j].Metadata = buf[len(buf)-len(e.Metadata) : len(buf) : len(buf)]
		}
	}
	return out
}
