package listener

import "sync"

// Signal is a broadcast wake-up: every follower waiting on it is woken by
// the next Broadcast. It carries no data, so wake-ups coalesce for free: a
// follower that was busy when several broadcasts happened reads once and
// gets everything. A nil *Signal never fires. Safe for concurrent use.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewSignal returns a Signal.
func NewSignal() *Signal { return &Signal{ch: make(chan struct{})} }

// Wait returns a channel that is closed by the next Broadcast after the
// call. Take it before reading the log, then wait on it only if the read came
// back empty, so that a commit between the read and the wait is not missed.
func (s *Signal) Wait() <-chan struct{} {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

// Broadcast wakes every current waiter.
func (s *Signal) Broadcast() {
	if s == nil {
		return
	}
	s.mu.Lock()
	close(s.ch)
	s.ch = make(chan struct{})
	s.mu.Unlock()
}
