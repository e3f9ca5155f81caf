package listener

import (
	"slices"
	"strings"

	"github.com/eventfold/eventfold"
)

// Filter selects events by stream and type. The zero Filter matches every
// event. An event matches when its stream matches (Streams or
// StreamPrefixes; either is enough, and no stream condition means every
// stream) and its type matches (Types; none means every type).
//
// Filtering happens as the log is read, in global order, so a filtered
// subscription still moves its checkpoint past the events it ignores.
type Filter struct {
	// Streams lists exact stream ids.
	Streams []string `json:"streams,omitempty"`
	// StreamPrefixes lists stream id prefixes, e.g. "account-" for the
	// category of streams "account-1", "account-2"...
	StreamPrefixes []string `json:"stream_prefixes,omitempty"`
	// Types lists event types.
	Types []string `json:"types,omitempty"`
}

// Match reports whether ev passes the filter.
func (f Filter) Match(ev eventfold.Event) bool {
	if len(f.Types) > 0 && !slices.Contains(f.Types, ev.Type) {
		return false
	}
	if len(f.Streams) == 0 && len(f.StreamPrefixes) == 0 {
		return true
	}
	if slices.Contains(f.Streams, ev.StreamID) {
		return true
	}
	for _, p := range f.StreamPrefixes {
		if strings.HasPrefix(ev.StreamID, p) {
			return true
		}
	}
	return false
}

// IsZero reports whether the filter matches every event.
func (f Filter) IsZero() bool {
	return len(f.Streams) == 0 && len(f.StreamPrefixes) == 0 && len(f.Types) == 0
}
