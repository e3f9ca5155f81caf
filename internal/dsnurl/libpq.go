package dsnurl

import (
	"net/url"
	"regexp"
	"strings"
)

// libpq (psql, pg_dump) accepts two ways of naming a server that
// eventfold's URLs do not: a key=value string (host=/var/run/postgresql
// dbname=app) and a Unix socket directory percent-encoded as the URL's
// host (postgres://app@%2Fvar%2Frun%2Fpostgresql/app). Both are refused
// with the URL to write instead, the password left out.

// libpqKeys are the libpq connection keywords a suggestion carries over.
var libpqKeys = map[string]bool{
	"host": true, "hostaddr": true, "port": true, "dbname": true, "user": true, "password": true,
	"passfile": true, "connect_timeout": true, "client_encoding": true, "options": true,
	"application_name": true, "sslmode": true, "sslcert": true, "sslkey": true, "sslrootcert": true,
	"sslpassword": true, "target_session_attrs": true,
}

// keywordDSN matches the start of a key=value connection string.
var keywordDSN = regexp.MustCompile(`^\s*[A-Za-z_]+\s*=`)

// LibpqKeywordsAsURL returns the postgres:// URL for a libpq key=value
// string (a password as PASSWORD), and false when dsn is not one.
func LibpqKeywordsAsURL(dsn string) (string, bool) {
	if strings.Contains(dsn, "://") || strings.Contains(dsn, ";") || !keywordDSN.MatchString(dsn) {
		return "", false // SQL Server's ADO strings have ';'
	}
	kv := map[string]string{}
	var order []string
	for _, f := range strings.Fields(dsn) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return "", false // quoted values with spaces: no suggestion
		}
		k = strings.TrimSpace(k)
		if !libpqKeys[k] {
			return "", false // not libpq's: no suggestion
		}
		if _, dup := kv[k]; !dup {
			order = append(order, k)
		}
		kv[k] = strings.Trim(v, "'")
	}
	host := kv["host"]
	if h, err := url.PathUnescape(host); err == nil {
		host = h // %2F is no escape in libpq's key=value, but meant as '/'
	}
	var query []string
	for _, k := range order {
		switch k {
		case "host", "port", "user", "password", "dbname", "sslpassword", "passfile":
		default:
			query = append(query, k+"="+queryValue(kv[k]))
		}
	}
	_, hasPassword := kv["password"]
	return buildURL(kv["user"], hasPassword, host, kv["port"], kv["dbname"], query), true
}

// SocketHostAsURL returns the URL to write for a postgres:// URL whose
// host is a percent-encoded Unix socket directory (libpq's form), and
// false for any other DSN.
func SocketHostAsURL(dsn string) (string, bool) {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok || (!strings.EqualFold(scheme, "postgres") && !strings.EqualFold(scheme, "postgresql")) {
		return "", false
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	userinfo, hostport := "", authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, hostport = authority[:at], authority[at+1:]
	}
	if len(hostport) < 3 || !strings.EqualFold(hostport[:3], "%2f") {
		return "", false
	}
	host, port := hostport, ""
	if i := strings.LastIndex(hostport, ":"); i >= 0 && strings.Trim(hostport[i+1:], "0123456789") == "" {
		host, port = hostport[:i], hostport[i+1:]
	}
	dir, err := url.PathUnescape(host)
	if err != nil {
		return "", false
	}
	path, rawQuery, _ := strings.Cut(tail, "?")
	user, _, hasPassword := strings.Cut(userinfo, ":")
	var query []string
	if rawQuery != "" {
		query = append(query, redactKeywords(rawQuery)) // a password parameter stays out
	}
	return buildURL(user, hasPassword, dir, port, strings.TrimPrefix(path, "/"), query), true
}

// buildURL writes postgres://user[:PASSWORD]@host[:port]/db?query, a
// socket directory (a host starting with '/') as the host parameter, as
// the README shows it.
func buildURL(user string, hasPassword bool, host, port, db string, query []string) string {
	var b strings.Builder
	b.WriteString("postgres://")
	if user != "" || hasPassword {
		b.WriteString(url.PathEscape(user))
		if hasPassword {
			b.WriteString(":PASSWORD")
		}
		b.WriteString("@")
	}
	socket := strings.HasPrefix(host, "/")
	if !socket {
		b.WriteString(host)
		if port != "" {
			b.WriteString(":" + port)
		}
	}
	b.WriteString("/" + url.PathEscape(db))
	var q []string
	if socket {
		q = append(q, "host="+queryValue(host))
		if port != "" {
			q = append(q, "port="+port)
		}
	}
	q = append(q, query...)
	if len(q) > 0 {
		b.WriteString("?" + strings.Join(q, "&"))
	}
	return b.String()
}

// queryValue escapes v for a query, leaving '/' as it is (readable paths).
func queryValue(v string) string { return strings.ReplaceAll(url.QueryEscape(v), "%2F", "/") }
