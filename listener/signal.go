package listener

import (
	"sync"
	"time"
)

// Signal is a broadcast wake-up: every follower waiting on it is woken by
// the next Broadcast. It carries no data, so wake-ups coalesce for free: a
// follower that was busy when several broadcasts happened reads once and
// gets everything. A nil *Signal never fires. Safe for concurrent use.
type Signal struct {
	mu  sync.Mutex
	cur *signalGen
}

// signalGen is one generation of a Signal: its channel is closed by the
// Broadcast that ends it. at is when it began (monoNow), that is when the
// Broadcast that ended the previous generation happened: a read that
// starts at or after at sees everything announced before the generation's
// channel was taken (shared.go uses it to let followers share a read).
type signalGen struct {
	ch chan struct{}
	at int64
}

// NewSignal returns a Signal.
func NewSignal() *Signal { return &Signal{cur: &signalGen{ch: make(chan struct{}), at: monoNow()}} }

// Wait returns a channel that is closed by the next Broadcast after the
// call. Take it before reading the log, then wait on it only if the read came
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

// Broadcast wakes every current waiter.
func (s *Signal) Broadcast() {
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.cur != nil {
		close(s.cur.ch)
	}
	s.cur = &signalGen{ch: make(chan struct{}), at: monoNow()}
	s.mu.Unlock()
}

// monoEpoch anchors monoNow.
var monoEpoch = time.Now()

// monoNow is a monotonic clock reading in nanoseconds, always > 0.
func monoNow() int64 { return int64(time.Since(monoEpoch)) + 1 }
