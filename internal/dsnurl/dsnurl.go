// Package dsnurl is eventfold's one reading of a DSN's credentials: the
// password redactor (Redact, Scrub) and the ambiguity rule (Check), shared
// by sqldriver, its mysqldriver and pgxdriver so that they refuse the same
// DSNs with the same words. sqldriver.Redact and sqldriver.Scrub are its
// public face.
package dsnurl

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/eventfold/eventfold"
)

// Redact is for a DSN shown in a message, Scrub for any text a driver may
// have echoed a password into, and Check refuses a DSN whose password the
// drivers and the redactor could split differently (pgx cuts user info at
// the first '@', net/url at the last): a password is never printed because
// nobody agrees on where it ends.

// Redact returns dsn with any password replaced by "xxxxx", for logs and
// error messages. Besides URLs it covers the forms a user may pass by
// mistake: go-sql-driver's user:pass@tcp(host)/db and key=value strings
// (password=..., pwd=...). A URL that does not parse cleanly loses its
// whole user-info part.
func Redact(dsn string) string {
	if !strings.Contains(dsn, "://") {
		return redactKeywords(userinfoPassword.ReplaceAllString(dsn, "${1}:xxxxx@"))
	}
	u, ok := cleanURL(dsn)
	if !ok {
		scheme, rest, _ := strings.Cut(dsn, "://")
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			return scheme + "://xxxxx@" + redactKeywords(rest[at+1:])
		}
		return redactKeywords(dsn)
	}
	changed := false
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			changed = true
		}
	}
	// A password may also come as a query parameter, with or without user
	// info in the URL (sqlserver://host?user+id=u&password=p).
	q := u.Query()
	for k := range q {
		if isPasswordKey(k) {
			q.Set(k, "xxxxx")
			changed = true
		}
	}
	if !changed {
		return dsn
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Scrub returns s with every password dsn carries (in any encoding) and
// the DSN itself replaced by their redacted forms: for driver errors and
// anything else that may have echoed the DSN.
func Scrub(s, dsn string) string {
	if dsn == "" {
		return s
	}
	if red := Redact(dsn); red != dsn {
		s = strings.ReplaceAll(s, dsn, red)
	}
	for _, pw := range secrets(dsn) {
		if len(pw) < minScrubPiece {
			// Replaced only where it stands as a password: replacing "e"
			// (or the "p" and "ss" of an ambiguous "p@ss") everywhere
			// turned "connect" into "connxxxxxct", and which letters were
			// replaced spelled the password out. No driver here echoes a
			// password in running text.
			s = strings.ReplaceAll(s, ":"+pw+"@", ":xxxxx@")
			continue
		}
		s = strings.ReplaceAll(s, pw, "xxxxx")
	}
	return redactKeywords(s)
}

// secrets lists the passwords dsn carries, raw and in the encodings a
// driver or net/url may print them in.
func secrets(dsn string) []string {
	var out []string
	add := func(s string) {
		if s == "" {
			return
		}
		out = append(out, s)
		for _, esc := range []string{url.QueryEscape(s), url.PathEscape(s), url.UserPassword("", s).String()[1:]} {
			if esc != s {
				out = append(out, esc)
			}
		}
	}
	if !strings.Contains(dsn, "://") {
		if m := userinfoPassword.FindStringSubmatch(dsn); m != nil {
			add(m[2])
		}
		for _, m := range keywordPassword.FindAllStringSubmatch(dsn, -1) {
			add(strings.Trim(m[3], "'"))
		}
		return out
	}
	u, ok := cleanURL(dsn)
	if !ok {
		// Whatever sits between the first ':' after the scheme and the
		// last '@' may be a password, and so may each of its pieces (the
		// user name before that ':' is not secret, and scrubbing it would
		// garble every word it occurs in).
		_, rest, _ := strings.Cut(dsn, "://")
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				add(pw)
				for _, piece := range strings.FieldsFunc(pw, func(r rune) bool { return r == '@' || r == ':' }) {
					add(piece)
				}
			}
		}
		return out
	}
	if u.User != nil {
		if pw, has := u.User.Password(); has {
			add(pw)
		}
	}
	for k, vs := range u.Query() {
		if isPasswordKey(k) {
			for _, v := range vs {
				add(v)
			}
		}
	}
	return out
}

// minScrubPiece is the shortest password (or piece of an ambiguous one)
// that Scrub replaces wherever it occurs; shorter ones only where they
// stand as a password (see Scrub).
const minScrubPiece = 6

// cleanURL parses a scheme://... DSN and says whether its user info is
// unambiguous: at most one '@' before the query, and that '@' ends the user
// info as net/url understood it (not a '/', '?' or '#' inside an unescaped
// password that moved it into the path, query or fragment).
func cleanURL(dsn string) (*url.URL, bool) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, false
	}
	if strings.HasPrefix(strings.ToLower(dsn), "sqlite:") {
		return u, true // a file path: '@' is an ordinary character there
	}
	hier, _, _ := strings.Cut(dsn, "?")
	switch n := strings.Count(hier, "@"); {
	case n > 1:
		return nil, false
	case n == 1 && (u.User == nil || strings.Contains(u.Path, "@") || strings.Contains(u.Fragment, "@")):
		return nil, false
	}
	for k := range u.Query() {
		if strings.Contains(k, "@") { // postgres://u:12?pw@host: the password ran into the query
			return nil, false
		}
	}
	return u, true
}

// Check refuses a server DSN that cleanURL cannot split without doubt,
// with a message (an *eventfold.ValidationError) that says how to write it
// and shows no part of it that may be a password. SQLite paths pass.
func Check(dsn string, d eventfold.Dialect) error {
	if d == eventfold.SQLite {
		return nil
	}
	if u, ok := cleanURL(dsn); ok {
		// A parameter given twice: the driver uses one and ignores the
		// other without a word (?sslmode=require&sslmode=disable
		// connected in the clear). The values are not shown: one may be
		// a password.
		q := u.Query()
		keys := make([]string, 0, len(q))
		for k, vs := range q {
			if len(vs) > 1 {
				keys = append(keys, k)
			}
		}
		if len(keys) > 0 {
			sort.Strings(keys)
			return &eventfold.ValidationError{Field: "dsn", Reason: fmt.Sprintf("the parameter %q is given more than once (the driver would use one and ignore the others): give it once", keys[0])}
		}
		return nil
	}
	if d == eventfold.Postgres {
		if u, ok := SocketHostAsURL(dsn); ok {
			return &eventfold.ValidationError{Field: "dsn", Reason: fmt.Sprintf("a Unix socket directory is not written as the URL's host here (libpq's %%2F-encoded form): write %s%s", u, passwordNote(u))}
		}
	}
	hint := "percent-encode reserved characters in the user name and password ('@' as %40, ':' as %3A, '/' as %2F, '?' as %3F, '#' as %23, '%' as %25)"
	if d == eventfold.MySQL && strings.Contains(dsn, "@tcp(") {
		return &eventfold.ValidationError{Field: "dsn", Reason: "mysql:// takes a URL, not go-sql-driver's user:pass@tcp(host:port)/db form: write mysql://user:pass@host:3306/db (" + hint + ")"}
	}
	if !strings.Contains(dsn, "@") {
		return &eventfold.ValidationError{Field: "dsn", Reason: fmt.Sprintf("%s: not a valid URL; check the host and port, and %s", Redact(dsn), hint)}
	}
	return &eventfold.ValidationError{Field: "dsn", Reason: fmt.Sprintf("%s://xxxxx@...: the user name, password or host cannot be told apart; %s", d, hint)}
}

// userinfoPassword matches "user:password@" at the start of a DSN without a
// scheme (go-sql-driver's format); the password runs to the last "@".
var userinfoPassword = regexp.MustCompile(`^([^:@/()=\s]*):(.*)@`)

// keywordPassword matches password=... in key=value DSNs (PostgreSQL's
// "host=h password=p", SQL Server's "server=h;password=p").
var keywordPassword = regexp.MustCompile(`(?i)\b(password|pwd)(\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s;&]*)`)

func redactKeywords(s string) string {
	return keywordPassword.ReplaceAllString(s, "${1}${2}xxxxx")
}

func isPasswordKey(k string) bool {
	k = strings.ToLower(k)
	return k == "password" || k == "pwd"
}

// passwordNote tells where the password goes when a suggested URL has the
// PASSWORD placeholder.
func passwordNote(suggested string) string {
	if strings.Contains(suggested, ":PASSWORD@") {
		return " (the password in place of PASSWORD, percent-encoded)"
	}
	return ""
}

// KeywordsHint returns, for a libpq key=value string, the sentence that
// says which URL to write, and "" for any other DSN.
func KeywordsHint(dsn string) string {
	u, ok := LibpqKeywordsAsURL(dsn)
	if !ok {
		return ""
	}
	return fmt.Sprintf("a libpq key=value string is not accepted; eventfold takes URLs: write %s%s", u, passwordNote(u))
}
