package sqldriver

import "github.com/eventfold/eventfold/internal/dsnurl"

// Redact returns dsn with any password replaced by "xxxxx", for logs and
// error messages. Besides URLs it covers the forms a user may pass by
// mistake: go-sql-driver's user:pass@tcp(host)/db and key=value strings
// (password=..., pwd=...). A URL that does not parse cleanly loses its
// whole user-info part.
func Redact(dsn string) string { return dsnurl.Redact(dsn) }

// Scrub returns s with every password dsn carries (in any encoding) and
// the DSN itself replaced by their redacted forms: for driver errors and
// anything else that may have echoed the DSN.
func Scrub(s, dsn string) string { return dsnurl.Scrub(s, dsn) }
