package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/examples/bank/demo"
)

// shellBlocks returns the lines of the ```sh blocks of a README.
func shellBlocks(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out [][]string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		var lines []string
		for _, l := range strings.Split(m[1], "\n") {
			if strings.TrimSpace(l) != "" && !strings.HasPrefix(strings.TrimSpace(l), "#") {
				lines = append(lines, l)
			}
		}
		out = append(out, lines)
	}
	return out
}

// words splits a shell line into words: single and double quotes, a
// comment from an unquoted '#' at the start of a word.
func words(line string) []string {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(line[i+1:], c)
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			return out
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// readmeSession runs README shell lines in process: esctl and bankctl
// through esctl.Main, serve in the background, curl through net/http.
type readmeSession struct {
	t       *testing.T
	ctx     context.Context
	env     map[string]string
	addr    string // replaces 127.0.0.1:8080
	serving bool
}

func (s *readmeSession) run(line string) {
	t := s.t
	line = strings.ReplaceAll(line, "127.0.0.1:8080", s.addr)
	w := words(line)
	require.NotEmpty(t, w, line)
	opts := esctl.Options{Demo: demo.Run, Getenv: func(k string) string { return s.env[k] }}
	switch {
	case w[0] == "export":
		k, v, _ := strings.Cut(w[1], "=")
		s.env[k] = v
		return
	case len(w) >= 2 && w[0] == "go" && w[1] == "test":
		return // this is it
	case w[0] == "goose":
		t.Logf("not run (the goose CLI is not installed here): %s", line)
		return
	case w[0] == "curl":
		s.curl(w[1:])
		return
	case w[0] == "esctl":
		w = w[1:]
	case len(w) > 2 && w[0] == "go" && w[1] == "run" && w[2] == "./cmd/esctl":
		w = w[3:]
	case len(w) > 2 && w[0] == "go" && w[1] == "run" && w[2] == "./examples/bank/cmd/bankctl":
		w = w[3:]
		opts = options()
		opts.Getenv = func(k string) string { return s.env[k] }
	default:
		t.Fatalf("README line not understood by the test: %s", line)
	}
	if slicesContains(w, "serve") {
		s.serve(w, opts)
		return
	}
	var stdout, stderr bytes.Buffer
	code := esctl.Main(s.ctx, w, &stdout, &stderr, opts)
	require.Equal(t, 0, code, "%s\nstdout: %s\nstderr: %s", line, stdout.String(), stderr.String())
}

// serve starts `serve` and waits until it answers.
func (s *readmeSession) serve(args []string, opts esctl.Options) {
	go func() { _ = esctl.Main(s.ctx, args, io.Discard, io.Discard, opts) }()
	require.Eventually(s.t, func() bool {
		c, err := net.Dial("tcp", s.addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	s.serving = true
}

// curl runs the README's curl lines: -s, -N, -X, -H, -d and a URL.
func (s *readmeSession) curl(args []string) {
	t := s.t
	method, body, target := "GET", "", ""
	hdr := http.Header{}
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-s", "-N":
		case "-X":
			i++
			method = args[i]
		case "-H":
			i++
			k, v, _ := strings.Cut(args[i], ":")
			hdr.Set(k, strings.TrimSpace(v))
		case "-d":
			i++
			body = args[i]
		default:
			target = args[i]
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, strings.NewReader(body))
	require.NoError(t, err)
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if method == "POST" {
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusCreated, resp.StatusCode, "%s %s: %s", method, target, b)
		return
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// The stream: collect events until the log's two events were seen.
	want := []string{"1 AccountOpened", "2 MoneyDeposited"}
	if hdr.Get("Last-Event-ID") == "1" {
		want = want[1:]
	}
	var got []string
	var id string
	sc := bufio.NewScanner(resp.Body)
	for len(got) < len(want) && sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "id: "):
			id = strings.TrimPrefix(l, "id: ")
		case strings.HasPrefix(l, "data: "):
			var ev struct {
				Type string `json:"type"`
			}
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(l, "data: ")), &ev), l)
			got = append(got, id+" "+ev.Type)
		}
	}
	require.Equal(t, want, got)
}

// TestREADMECommands runs every shell line of eventfold's README and of the
// bank's README, in order, from a fresh directory.
func TestREADMECommands(t *testing.T) {
	for _, readme := range []string{"../../../../README.md", "../../README.md"} {
		t.Run(strings.TrimLeft(readme, "./"), func(t *testing.T) {
			blocks := shellBlocks(t, readme)
			dir := t.TempDir()
			t.Chdir(dir)
			t.Setenv("TMPDIR", dir) // esctl demo's scratch database
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			addr := ln.Addr().String()
			ln.Close()
			s := &readmeSession{t: t, ctx: ctx, env: map[string]string{}, addr: addr}
			n := 0
			for _, block := range blocks {
				for _, line := range block {
					s.run(line)
					n++
				}
			}
			require.Greater(t, n, 3, fmt.Sprintf("%s: too few commands found", readme))
		})
	}
}

func slicesContains(w []string, s string) bool {
	for _, x := range w {
		if x == s {
			return true
		}
	}
	return false
}
