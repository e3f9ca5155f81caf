// Package sse pushes committed events to browsers as Server-Sent Events.
//
// One Handler serves any number of clients from one shared tailer: a single
// reader follows the log (listener.Tail) into an in-memory ring of recent
// events, and every client reads that ring with its own cursor. The tailer
// never waits for a client, so a slow client cannot stall the others: it
// falls behind on its own, drops out of the ring and catches up from the
// database (bounded by Config.MaxCatchUp), or is disconnected when a write
// does not finish within Config.WriteTimeout.
//
// Each SSE message carries the event's global position as its id, so a
// browser's EventSource resumes with Last-Event-ID after a reconnection and
// receives exactly the events it missed: reads are gap-free (see package
// listener). Clients that cannot set the header pass ?after=<position>.
// Nothing else the handler sends carries a position: heartbeats and the
// greeting are bare comments, so a client learns no more of the log than the
// events it is allowed to see (a client whose events are sparse resumes from
// its last one, and the handler rescans the log from there). A resume
// position whose events were archived is answered 410 Gone, naming the
// first position the client can resume from (EventSource does not retry a
// non-200 answer); one beyond the log's head (a position from another
// database, or from this one before a restore) is 409 Conflict, where it
// was streamed from, skipping every event up to it.
//
// Query parameters select events: stream=<id>, prefix=<stream prefix>,
// type=<event type>, each repeatable or comma-separated (see
// listener.Filter), at most MaxFilterValues in all; a query that does not
// parse is 400, never read as "no filter". Config.Authorize decides per connection whether the
// client may subscribe at all (it may also narrow the filter) and returns the
// per-event check; events it refuses are never sent.
package sse
