package esctl

import (
	"net/url"
	"strings"
)

// dsnSecrets returns the passwords a DSN carries (user info and password
// query parameters), so that they can be scrubbed from any message.
func dsnSecrets(dsn string) []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
			if esc := url.QueryEscape(s); esc != s {
				out = append(out, esc)
			}
			if esc := url.PathEscape(s); esc != s {
				out = append(out, esc)
			}
		}
	}
	u, err := url.Parse(dsn)
	if err != nil {
		// An unparseable URL: take what sits between the last ':' before
		// '@' and the '@', the usual place of a password.
		if at := strings.LastIndex(dsn, "@"); at > 0 {
			head := dsn[:at]
			if i := strings.Index(head, "://"); i >= 0 {
				head = head[i+3:]
			}
			if c := strings.IndexByte(head, ':'); c >= 0 {
				add(head[c+1:])
			}
		}
		return out
	}
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			add(pw)
		}
	}
	for k, vs := range u.Query() {
		if lk := strings.ToLower(k); lk == "password" || lk == "pwd" {
			for _, v := range vs {
				add(v)
			}
		}
	}
	return out
}
