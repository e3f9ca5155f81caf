// Package httpapi is the write side of eventfold's HTTP communication
// layer: POST a command as JSON, get the committed events back as JSON.
//
//	mux.Handle("POST /commands/{name}", httpapi.New(orch, nil))
//
// The command name is the {name} path value (or the last path segment), the
// body is the command's JSON payload, sent as Content-Type application/json
// (anything else, or none, is 415: a cross-origin form or text/plain POST
// needs no CORS preflight, so accepting it would let another site post
// commands with the user's cookies). Headers: Idempotency-Key becomes the
// command id, X-Correlation-ID the correlation id.
//
// Idempotency: a retried request (same key, same command, same payload)
// returns the first one's events, 200 with "duplicate": true. Keys are
// scoped to the caller: set Config.Envelope to put the authenticated
// caller (user, tenant or account) into Envelope.Scope, or the
// orchestrator's Config.Scope to derive it; two callers may then use the
// same key independently. A key reused for another command or another
// payload is 422 "idempotency_key_reused"; a key whose command's events
// were archived is 410 "archived".
//
// Responses: 201 with {"command_id", "events", "duplicate"} when events
// were committed (200 when none were, or for a duplicate); 400 bad JSON or
// invalid command, 404 unknown command, 405 not POST, 409 version conflict
// or duplicate event id, 410 the command's events were archived, 413 body
// too large, 415 not JSON, 422 the handler rejected the command
// (orchestrator.Reject; its message is the answer) or a reused
// idempotency key, 503 a transient database conflict (retry) or a
// request whose context ended (a server or middleware deadline: code
// "timeout"; a cancellation: "cancelled") before the command completed,
// or whose commit could not be confirmed ("commit_outcome_unknown", see
// orchestrator.ErrCommitOutcomeUnknown: retry with the same key), 500
// anything else. Error bodies are {"error", "code"}. A 500 says only
// "internal error" and a "request_id" (also the X-Request-ID header); the
// full error is logged with that id, never shown: a database error names
// tables, columns and values.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/httperr"
	"github.com/eventfold/eventfold/orchestrator"
)

// Dispatcher is what the handler needs of an orchestrator; every
// *orchestrator.Orchestrator[TTx] satisfies it.
type Dispatcher interface {
	DispatchJSON(ctx context.Context, name string, payload json.RawMessage, env orchestrator.Envelope) (*orchestrator.Result, error)
}

// Config configures the handler. The zero value is usable.
type Config struct {
	// MaxBodyBytes limits the request body. Defaults to 1 MiB.
	MaxBodyBytes int64
	// Envelope builds the command envelope from the request (e.g. the
	// authenticated user into Metadata and, as the idempotency key space,
	// into Scope). Defaults to DefaultEnvelope, which sets no Scope: every
	// caller then shares one key space (a reused key still never returns
	// another command's events, but one caller's key can block another's).
	// An error refuses the request: an *Error picks the status, any other
	// gives 400.
	Envelope func(r *http.Request) (orchestrator.Envelope, error)
	// Status maps an error to a response before the defaults apply; return
	// ok false to fall through. Optional.
	Status func(err error) (status int, code string, ok bool)
	// Logger receives 500s, in full, with their request id. Defaults to
	// slog.Default().
	Logger *slog.Logger
}

// Error is an error with an HTTP status and a machine-readable code. It is
// an alias of the one error body type that listener/sse shares (there
// sse.HTTPError), written as {"error": Message, "code": Code}.
type Error = httperr.Error

// Response is the body of a successful request.
type Response struct {
	CommandID string            `json:"command_id"`
	Events    []eventfold.Event `json:"events"`
	Duplicate bool              `json:"duplicate"`
}

// DefaultEnvelope takes the command id from Idempotency-Key and the
// correlation id from X-Correlation-ID. It knows no caller, so it sets no
// Scope; wrap it to add one.
func DefaultEnvelope(r *http.Request) (orchestrator.Envelope, error) {
	return orchestrator.Envelope{
		ID:            r.Header.Get("Idempotency-Key"),
		CorrelationID: r.Header.Get("X-Correlation-ID"),
	}, nil
}

type handler struct {
	d   Dispatcher
	cfg Config
}

// New returns the command handler over d.
func New(d Dispatcher, cfg *Config) http.Handler {
	h := &handler{d: d}
	if cfg != nil {
		h.cfg = *cfg
	}
	if h.cfg.MaxBodyBytes <= 0 {
		h.cfg.MaxBodyBytes = 1 << 20
	}
	if h.cfg.Envelope == nil {
		h.cfg.Envelope = DefaultEnvelope
	}
	if h.cfg.Logger == nil {
		h.cfg.Logger = slog.Default()
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "use POST"})
		return
	}
	// Required, not merely checked when present: only a non-simple content
	// type makes a browser ask (CORS preflight) before a cross-origin POST.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "the body must be sent as Content-Type: application/json"})
		return
	}
	name := r.PathValue("name")
	if name == "" {
		name = r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	}
	if name == "" {
		writeError(w, &Error{Status: http.StatusNotFound, Code: "unknown_command", Message: "no command name in the path"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, &Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "the body exceeds the size limit"})
			return
		}
		writeError(w, &Error{Status: http.StatusBadRequest, Code: "bad_body", Message: "could not read the body"})
		return
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	if !json.Valid(body) {
		writeError(w, &Error{Status: http.StatusBadRequest, Code: "bad_json", Message: "the body is not valid JSON"})
		return
	}
	env, err := h.cfg.Envelope(r)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: err.Error()}
		}
		writeError(w, e)
		return
	}
	res, err := h.d.DispatchJSON(r.Context(), name, body, env)
	if err != nil {
		h.fail(w, r, name, err)
		return
	}
	status := http.StatusCreated
	if res.Duplicate || len(res.Events) == 0 {
		status = http.StatusOK
	}
	events := res.Events
	if events == nil {
		events = []eventfold.Event{}
	}
	writeJSON(w, status, Response{CommandID: res.CommandID, Events: events, Duplicate: res.Duplicate})
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, name string, err error) {
	if h.cfg.Status != nil {
		if status, code, ok := h.cfg.Status(err); ok {
			writeError(w, &Error{Status: status, Code: code, Message: err.Error()})
			return
		}
	}
	var he *orchestrator.HandlerError
	switch {
	case errors.Is(err, orchestrator.ErrUnknownCommand):
		writeError(w, &Error{Status: http.StatusNotFound, Code: "unknown_command", Message: "unknown command " + name})
	case errors.Is(err, orchestrator.ErrIdempotencyKeyReused):
		// As payment APIs answer a key reused with other parameters.
		writeError(w, &Error{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused",
			Message: "the Idempotency-Key was already used for a different request (another command or another payload); use a new key for a new request"})
	case errors.Is(err, orchestrator.ErrCommandArchived):
		writeError(w, &Error{Status: http.StatusGone, Code: "archived",
			Message: "this Idempotency-Key's command was applied, but the events of this command were archived and cannot be returned"})
	case errors.As(err, &he) && errors.Is(he.Err, orchestrator.ErrRejected):
		// The handler refused the command: its own message is the answer.
		writeError(w, &Error{Status: http.StatusUnprocessableEntity, Code: "rejected", Message: he.Err.Error()})
	case errors.Is(err, eventfold.ErrWrongExpectedVersion):
		writeError(w, &Error{Status: http.StatusConflict, Code: "wrong_expected_version", Message: err.Error()})
	case errors.Is(err, eventfold.ErrDuplicateEventID):
		writeError(w, &Error{Status: http.StatusConflict, Code: "duplicate_event_id", Message: err.Error()})
	case errors.Is(err, orchestrator.ErrInvalidCommand), errors.Is(err, eventfold.ErrInvalidInput):
		writeError(w, &Error{Status: http.StatusBadRequest, Code: "invalid_command", Message: err.Error()})
	case errors.Is(err, eventfold.ErrTransient):
		w.Header().Set("Retry-After", "1")
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: "transient", Message: "a transient database conflict; retry"})
	case errors.Is(err, orchestrator.ErrCommitOutcomeUnknown):
		// The COMMIT's answer was lost and its marker could not be looked
		// up: the command may or may not be applied. A 500 said nothing
		// of that; the client needs to know that a retry is safe.
		w.Header().Set("Retry-After", "1")
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: "commit_outcome_unknown",
			Message: "the database did not confirm the commit, so the command may or may not have been applied; " + retryAdvice(r)})
	case r.Context().Err() != nil && errors.Is(err, r.Context().Err()):
		// The request's context ended before the command was answered:
		// a deadline (a server or middleware timeout) or a cancellation
		// (mostly the client gone). Writing nothing made net/http send
		// 200 OK with an empty body, to a client that may well be there.
		w.Header().Set("Retry-After", "1")
		if errors.Is(err, context.DeadlineExceeded) {
			writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: "timeout",
				Message: "the command did not complete within the request's time limit; " + retryAdvice(r)})
			return
		}
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: "cancelled",
			Message: "the request was cancelled before the command completed; " + retryAdvice(r)})
	default:
		// Anything else, a handler error that is no rejection included (a
		// failed read-model query, a bug), is unexpected: its text is for
		// the log, not for the client.
		h.internal(w, r, name, err)
	}
}

// retryAdvice says how to retry a command whose outcome the client cannot
// know: with the same Idempotency-Key a retry never applies it twice;
// without one, a retry may.
func retryAdvice(r *http.Request) string {
	if r.Header.Get("Idempotency-Key") != "" {
		return "retry it with the same Idempotency-Key to get its outcome (a retry never applies a command twice)"
	}
	return "it carried no Idempotency-Key, so a retry may apply it twice: send one with every command that must not be applied twice"
}

// internal answers 500 with a fresh request id and logs err in full under
// that id, so that an operator can find what a client reports.
func (h *handler) internal(w http.ResponseWriter, r *http.Request, name string, err error) {
	id := requestID()
	h.cfg.Logger.ErrorContext(r.Context(), "httpapi: command failed",
		"request_id", id, "command", name, "idempotency_key", r.Header.Get("Idempotency-Key"),
		"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "err", err.Error())
	w.Header().Set("X-Request-ID", id)
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error", "code": "internal", "request_id": id})
}

// requestID returns 16 random hex digits.
func requestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

func writeError(w http.ResponseWriter, e *Error) { httperr.Write(w, e) }

func writeJSON(w http.ResponseWriter, status int, v any) { httperr.WriteJSON(w, status, v) }
