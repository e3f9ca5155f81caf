package listener

import (
	"sync"
	"time"
)

// Signal is a broadcast wake-up: every follower waiting on it is woken by
// the next Broadcast or Announce. Wake-ups coalesce for free: a follower
// that was busy when several happened reads once and gets everything.
// Announce also tells the followers the highest position committed (feed
// one Signal per log): a follower whose read stops short of it knows the
// rest is held back (Capabilities.HeadLags) and reads again soon, where
// after a Broadcast it must ask the database. A nil *Signal never fires.
// Safe for concurrent use.
type Signal struct {
	mu  sync.Mutex
	cur *signalGen
}

// signalGen is one generation of a Signal: its channel is closed by the
// Broadcast that ends it. at is when it began (monoNow), that is when the
// Broadcast that ended the previous generation happened: a read that
// starts at or after at sees everything announced before the generation's
// channel was taken (shared.go uses it to let followers share a read).
// pos is the highest position announced before it began, broadcasts the
// number of wake-ups without a position (Broadcast) before it began: a
// follower that sees it change asks the log what committed (tail.go).
type signalGen struct {
	ch         chan struct{}
	at         int64
	pos        int64
	broadcasts uint64
	// posAt is when pos was announced (monoNow): a position is carried
	// into later generations for announceMemory only, so that one
	// announced by mistake (another log's, a NOTIFY with any number sent
	// by anyone who can connect) does not hide the real ones for good.
	posAt int64
}

// announceMemory is how long an announced position outlives the
// generation that announced it: long enough for every follower to wake
// and read (wake-ups coalesce), short enough that a stray one is soon
// forgotten.
const announceMemory = time.Second

// NewSignal returns a Signal.
func NewSignal() *Signal { return &Signal{cur: &signalGen{ch: make(chan struct{}), at: monoNow()}} }

// Wait returns a channel that is closed by the next Broadcast or Announce
// after the call. Take it before reading the log, then wait on it only if the read came
// back empty, so that a commit between the read and the wait is not missed.
func (s *Signal) Wait() <-chan struct{} {
	if g := s.gen(); g != nil {
		return g.ch
	}
	return nil
}

// gen returns the current generation (nil for a nil Signal).
func (s *Signal) gen() *signalGen {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil { // the zero Signal
		s.cur = &signalGen{ch: make(chan struct{}), at: monoNow()}
	}
	return s.cur
}

// Broadcast wakes every current waiter. It says nothing about what
// committed: followers on a log whose head can lag behind its commits
// (PostgreSQL, MySQL/MariaDB) ask the log once for its last position when
// their read after it comes back short. Prefer Announce when the position
// is known.
func (s *Signal) Broadcast() { s.next(0, 1) }

// Announce wakes every current waiter and tells them that events up to
// position pos committed (Notifier.Notify calls it, and a
// pgxdriver.Listener for a notification that carries a position). A
// follower whose read comes back short of pos knows the rest is held back
// and reads again soon, backing off towards its poll interval, without a
// query of its own. Call it after the commit, with a position of the log
// the followers read.
func (s *Signal) Announce(pos int64) { s.next(pos, 0) }

func (s *Signal) next(pos int64, broadcasts uint64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	now := monoNow()
	g := &signalGen{ch: make(chan struct{}), at: now, pos: pos, posAt: now, broadcasts: broadcasts}
	if s.cur != nil {
		close(s.cur.ch)
		if s.cur.pos > g.pos && now-s.cur.posAt < int64(announceMemory) {
			g.pos, g.posAt = s.cur.pos, s.cur.posAt
		}
		g.broadcasts += s.cur.broadcasts
	}
	s.cur = g
	s.mu.Unlock()
}

// monoEpoch anchors monoNow.
var monoEpoch = time.Now()

// monoNow is a monotonic clock reading in nanoseconds, always > 0.
func monoNow() int64 { return int64(time.Since(monoEpoch)) + 1 }
