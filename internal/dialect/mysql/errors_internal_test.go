package mysql

import "testing"

func TestIsEventIDKey(t *testing.T) {
	for msg, want := range map[string]bool{
		"Duplicate entry '0192f0c1-7d3a-7cc1-9a51-1f1f0a7c2b10' for key 'eventfold_events_event_id_key'":                  true,
		"Duplicate entry '0192f0c1-7d3a-7cc1-9a51-1f1f0a7c2b10' for key 'eventfold_events.eventfold_events_event_id_key'": true,
		"Duplicate entry 'eventfold_events_event_id_key-1' for key 'eventfold_events_stream_version_key'":                 false,
		"Duplicate entry 's-1' for key 'eventfold_events_stream_version_key'":                                             false,
	} {
		if got := isEventIDKey(msg); got != want {
			t.Errorf("isEventIDKey(%q) = %v, want %v", msg, got, want)
		}
	}
}
