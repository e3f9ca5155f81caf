package esctl

import (
	"encoding/json"
	"io"

	"github.com/eventfold/eventfold"
)

// eventWriter prints events as JSON lines with exactly the fields of
// eventfold.Event's JSON tags. HTML escaping is off so that payloads read
// as they were written.
type eventWriter struct{ enc *json.Encoder }

func newEventWriter(w io.Writer) *eventWriter {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &eventWriter{enc: enc}
}

func (w *eventWriter) write(e eventfold.Event) error {
	e.RecordedAt = e.RecordedAt.UTC()
	return w.enc.Encode(e)
}
