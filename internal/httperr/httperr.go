// Package httperr is the one error body of eventfold's HTTP handlers
// (orchestrator/httpapi and listener/sse): a status, a machine-readable
// code and a message, written as JSON {"error": message, "code": code}.
// Both packages export its type under their own name (httpapi.Error,
// sse.HTTPError) as an alias, so a client parses every error alike.
package httperr

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Error is an error with an HTTP status and a machine-readable code.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code is the machine-readable code in the body; "" derives one from
	// Status ("forbidden" for 403, "service_unavailable" for 503).
	Code string
	// Message is the human-readable text in the body and Error's result.
	Message string
}

func (e *Error) Error() string { return e.Message }

// Write writes e as the response: status e.Status, body
// {"error": e.Message, "code": e.Code}.
func Write(w http.ResponseWriter, e *Error) {
	code := e.Code
	if code == "" {
		code = strings.ReplaceAll(strings.ToLower(http.StatusText(e.Status)), " ", "_")
	}
	WriteJSON(w, e.Status, map[string]string{"error": e.Message, "code": code})
}

// WriteJSON writes v as a JSON response with the given status.
// nosniff keeps a browser from reading an error body that echoes request
// text as HTML.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
