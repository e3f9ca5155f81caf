package httpapi_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/orchestrator/httpapi"
)

type open struct {
	Account string `json:"account"`
	Owner   string `json:"owner"`
}

func TestCommandHandler(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	o := orchestrator.New(store, &orchestrator.Config{MaxAttempts: 1})
	orchestrator.Handle(o, "OpenAccount", func(ctx context.Context, tx *sql.Tx, c open) ([]orchestrator.Emit, error) {
		if c.Owner == "" {
			return nil, orchestrator.Reject(errors.New("owner is required"))
		}
		return []orchestrator.Emit{{Stream: "account-" + c.Account, Expected: eventfold.NoStream, Type: "AccountOpened", Data: c}}, nil
	})
	mux := http.NewServeMux()
	mux.Handle("/commands/{name}", httpapi.New(o, &httpapi.Config{MaxBodyBytes: 256}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	post := func(name, body string, hdr map[string]string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/commands/"+name, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			if v == "" {
				req.Header.Del(k)
				continue
			}
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	status, body := post("OpenAccount", `{"account":"1","owner":"ann"}`, map[string]string{"Idempotency-Key": "cmd-1"})
	if status != http.StatusCreated {
		t.Fatalf("open: %d %v", status, body)
	}
	evs, _ := body["events"].([]any)
	if len(evs) != 1 || evs[0].(map[string]any)["type"] != "AccountOpened" || evs[0].(map[string]any)["global_position"].(float64) <= 0 {
		t.Errorf("events = %v", body["events"])
	}
	if status, body = post("OpenAccount", `{"account":"1","owner":"ann"}`, map[string]string{"Idempotency-Key": "cmd-1"}); status != http.StatusOK || body["duplicate"] != true {
		t.Errorf("replay: %d %v, want 200 duplicate", status, body)
	}
	cases := []struct {
		name, cmd, body string
		hdr             map[string]string
		status          int
		code            string
	}{
		{"conflict", "OpenAccount", `{"account":"1","owner":"bob"}`, nil, http.StatusConflict, "wrong_expected_version"},
		{"bad json", "OpenAccount", `{"account":`, nil, http.StatusBadRequest, "bad_json"},
		{"unknown field", "OpenAccount", `{"acount":"2","owner":"x"}`, nil, http.StatusBadRequest, "invalid_command"},
		{"unknown command", "Nope", `{}`, nil, http.StatusNotFound, "unknown_command"},
		{"rejected", "OpenAccount", `{"account":"3"}`, nil, http.StatusUnprocessableEntity, "rejected"},
		{"too large", "OpenAccount", `{"account":"4","owner":"` + strings.Repeat("x", 300) + `"}`, nil, http.StatusRequestEntityTooLarge, "too_large"},
		{"not json", "OpenAccount", `a=b`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"text/plain", "OpenAccount", `{"account":"5","owner":"x"}`, map[string]string{"Content-Type": "text/plain"}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"no content type", "OpenAccount", `{"account":"5","owner":"x"}`, map[string]string{"Content-Type": ""}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
	}
	for _, c := range cases {
		status, body := post(c.cmd, c.body, c.hdr)
		if status != c.status || body["code"] != c.code {
			t.Errorf("%s: %d %v, want %d %s", c.name, status, body, c.status, c.code)
		}
	}
	resp, err := http.Get(srv.URL + "/commands/OpenAccount")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
	log, _ := store.ReadAll(context.Background(), eventfold.ReadAllOptions{})
	if len(log) != 1 {
		t.Errorf("log has %d events, want 1 (failed commands must store nothing)", len(log))
	}
}
