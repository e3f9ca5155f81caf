package sqldriver_test

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/pgxdriver"
	"github.com/eventfold/eventfold/sqldriver"
	"github.com/eventfold/eventfold/sqldriver/mysqldriver"
)

// secretPieces are parts of the test passwords; none may ever be printed.
var secretPieces = []string{"HEADSECRET", "TAILSECRET", "MIDSECRET"}

// passwordsWith: one password per reserved character, each with the
// character between two secret pieces.
var passwordsWith = map[string]string{
	"@":   "HEADSECRET@TAILSECRET",
	":":   "HEADSECRET:TAILSECRET",
	"/":   "HEADSECRET/TAILSECRET",
	"%":   "HEADSECRET%TAILSECRET",
	"?":   "HEADSECRET?TAILSECRET",
	"#":   "HEADSECRET#TAILSECRET",
	"@@":  "HEADSECRET@MIDSECRET@TAILSECRET",
	"12/": "12/TAILSECRET", // looks like a port before the '/'
	"12?": "12?TAILSECRET",
}

// serverDSN writes a DSN for scheme whose password is pw as given (raw:
// not escaped) on an address where nothing answers.
func serverDSN(scheme, userinfo string) string {
	switch scheme {
	case "postgres":
		return "postgres://" + userinfo + "@127.0.0.1:1/db?connect_timeout=2"
	case "mysql":
		return "mysql://" + userinfo + "@127.0.0.1:1/db?timeout=2s"
	default:
		return "sqlserver://" + userinfo + "@127.0.0.1:1?database=db&dial+timeout=2"
	}
}

func requireNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, p := range secretPieces {
		require.NotContains(t, s, p, "%s shows part of the password", what)
	}
}

// TestAmbiguousDSNRefused: a password with an unescaped reserved character
// is refused before any driver sees it (pgx cuts at the first '@', net/url
// at the last), with a message that says to percent-encode and shows no
// part of the password, on every server scheme, from the library and from
// esctl alike, and from mysqldriver.Config and pgxdriver.Open, which share
// the rule (internal/dsnurl).
func TestAmbiguousDSNRefused(t *testing.T) {
	ctx := context.Background()
	for _, scheme := range []string{"postgres", "mysql", "sqlserver"} {
		for name, pw := range passwordsWith {
			if name == ":" {
				continue // unambiguous: the first ':' ends the user name
			}
			t.Run(scheme+"/"+name, func(t *testing.T) {
				dsn := serverDSN(scheme, "user:"+pw)
				requireNoSecret(t, "Redact", sqldriver.Redact(dsn))
				requireNoSecret(t, "Scrub", sqldriver.Scrub("driver said: "+dsn+" and "+pw, dsn))
				_, err := sqldriver.Open(ctx, dsn)
				require.Error(t, err)
				require.ErrorIs(t, err, eventfold.ErrInvalidInput)
				requireNoSecret(t, "Open's error", err.Error())
				require.Contains(t, err.Error(), "percent-encode")

				// The drivers' own entry points apply the same rule.
				switch scheme {
				case "mysql":
					_, err = mysqldriver.Config(dsn)
				case "postgres":
					_, err = pgxdriver.Open(ctx, dsn)
				}
				require.ErrorIs(t, err, eventfold.ErrInvalidInput, "%s's own entry point", scheme)
				requireNoSecret(t, scheme+"'s own entry point", err.Error())
				require.Contains(t, err.Error(), "percent-encode")

				var stdout, stderr bytes.Buffer
				code := esctl.Main(ctx, []string{"--dsn", dsn, "read", "--all"}, &stdout, &stderr, esctl.Options{})
				require.Equal(t, esctl.ExitUsage, code, stderr.String())
				requireNoSecret(t, "esctl's stderr", stderr.String())
				require.Contains(t, stderr.String(), "percent-encode")
			})
		}
	}
}

// TestEncodedPasswordNeverPrinted: the same passwords, percent-encoded,
// are accepted; a failed connection's error shows none of them (the
// servers here are not listening), whatever the driver echoes.
func TestEncodedPasswordNeverPrinted(t *testing.T) {
	ctx := context.Background()
	for _, scheme := range []string{"postgres", "mysql", "sqlserver"} {
		for name, pw := range passwordsWith {
			t.Run(scheme+"/"+name, func(t *testing.T) {
				dsn := serverDSN(scheme, url.UserPassword("user", pw).String())
				if scheme == "mysql" {
					cfg, err := mysqldriver.Config(dsn)
					require.NoError(t, err)
					require.Equal(t, pw, cfg.Passwd, "the driver gets the decoded password")
				}
				requireNoSecret(t, "Redact", sqldriver.Redact(dsn))
				ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				_, err := sqldriver.Open(ctx, dsn)
				require.Error(t, err)
				require.False(t, errors.Is(err, eventfold.ErrInvalidInput), "an encoded password is not ambiguous: %v", err)
				requireNoSecret(t, "Open's error", err.Error())
				requireNoSecret(t, "Scrub of the raw password", sqldriver.Scrub("echo "+pw+" "+url.QueryEscape(pw), dsn))
			})
		}
	}
}

// TestPasswordQueryParameterScrubbed: a password given as a query
// parameter (SQL Server's form, also accepted by pgx) is hidden too.
func TestPasswordQueryParameterScrubbed(t *testing.T) {
	dsn := "sqlserver://127.0.0.1:1?database=db&user+id=u&password=" + url.QueryEscape("HEADSECRET@TAILSECRET")
	requireNoSecret(t, "Redact", sqldriver.Redact(dsn))
	requireNoSecret(t, "Scrub", sqldriver.Scrub("x HEADSECRET@TAILSECRET y", dsn))
	require.True(t, strings.HasPrefix(sqldriver.Redact(dsn), "sqlserver://127.0.0.1:1?"))
}

// TestRefusalKeepsUserName: scrubbing a refused DSN's password pieces does
// not garble the message (the user name is not a secret), and a URL
// without user info gets a message about the URL, not about passwords.
func TestRefusalKeepsUserName(t *testing.T) {
	_, err := sqldriver.Open(context.Background(), "postgres://u:p%ZZ@127.0.0.1/db")
	require.ErrorIs(t, err, eventfold.ErrInvalidInput)
	msg := sqldriver.Scrub(err.Error(), "postgres://u:p%ZZ@127.0.0.1/db")
	require.Contains(t, msg, "the user name, password or host cannot be told apart")
	_, err = sqldriver.Open(context.Background(), "postgres://[::1:5432/db")
	require.ErrorIs(t, err, eventfold.ErrInvalidInput)
	require.Contains(t, err.Error(), "not a valid URL")
	// '@' in a query value is not user info.
	_, _, err = sqldriver.Connector("sqlserver://127.0.0.1:1?database=db&user+id=a@b.example&password=x")
	require.NoError(t, err)
}

// TestShortPasswordPiecesDoNotLeak: the refusal of a DSN whose password
// holds a raw '@' is readable and gives nothing of the password away.
// Before the fix Scrub replaced every piece of "p@ss" wherever it occurred
// in the message: "xxxxxostgres://xxxxx@...: the user name,
// xxxxxaxxxxxword or host cannot be told axxxxxart", which spells out the
// pieces "p" and "ss".
func TestShortPasswordPiecesDoNotLeak(t *testing.T) {
	for _, scheme := range []string{"postgres", "mysql"} {
		dsn := serverDSN(scheme, "user:p@ss")
		_, err := sqldriver.Open(context.Background(), dsn)
		require.ErrorIs(t, err, eventfold.ErrInvalidInput)
		msg := sqldriver.Scrub(err.Error(), dsn)
		require.Equal(t, err.Error(), msg, "nothing in the refusal is a secret to scrub")
		require.Contains(t, msg, scheme+"://xxxxx@...: the user name, password or host cannot be told apart; percent-encode")

		var stdout, stderr bytes.Buffer
		code := esctl.Main(context.Background(), []string{"--dsn", dsn, "stats"}, &stdout, &stderr, esctl.Options{})
		require.Equal(t, esctl.ExitUsage, code)
		require.NotContains(t, stderr.String(), "xxxxxo", stderr.String())
		require.Contains(t, stderr.String(), "password or host cannot be told apart")
	}
	// A clean URL with a one-letter password: the driver's message stays
	// readable and does not spell the password out; the password is still
	// hidden where it stands as one.
	dsn := "mysql://root:e@127.0.0.1:3306/db"
	driverMsg := "Error 1045 (28000): Access denied for user 'root'@'127.0.0.1' (using password: YES)"
	require.Equal(t, driverMsg, sqldriver.Scrub(driverMsg, dsn))
	require.Equal(t, "dial mysql://root:xxxxx@127.0.0.1:3306/db: refused", sqldriver.Scrub("dial "+dsn+": refused", dsn))
	require.Equal(t, "user=root password=xxxxx host=h", sqldriver.Scrub("user=root password=e host=h", dsn))
}
