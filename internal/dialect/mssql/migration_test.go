package mssql

import (
	"bufio"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

// gooseFile is a migration split the way goose splits it: outside
// StatementBegin/End a statement ends at a line ending in ';'; comment
// lines before a statement are dropped.
type gooseFile struct {
	up, down []string
}

// splitGoose mirrors goose's SQL parser rules closely enough to check that
// the file's annotations pair up and where each statement (= SQL Server
// batch) begins. It fails the test on malformed annotations.
func splitGoose(t *testing.T, text string) gooseFile {
	t.Helper()
	var (
		f                  gooseFile
		section            string // "", "up", "down"
		inBlock            bool
		buf                strings.Builder
		sawUp, sawDown     bool
		beginLine, lineNum int
	)
	flush := func() {
		stmt := strings.TrimSpace(buf.String())
		buf.Reset()
		if stmt == "" {
			return
		}
		switch section {
		case "up":
			f.up = append(f.up, stmt)
		case "down":
			f.down = append(f.down, stmt)
		default:
			t.Fatalf("line %d: SQL before -- +goose Up", lineNum)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		lineNum++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") && strings.Contains(line, "+goose") {
			require.False(t, strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t"), "line %d: goose annotations must start the line", lineNum)
			switch ann := strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(trimmed, "--"), " +goose")); ann {
			case "Up":
				require.False(t, sawUp, "line %d: second Up", lineNum)
				sawUp, section = true, "up"
			case "Down":
				require.True(t, sawUp, "line %d: Down before Up", lineNum)
				require.False(t, sawDown, "line %d: second Down", lineNum)
				require.False(t, inBlock, "line %d: Down inside a StatementBegin block", lineNum)
				require.Empty(t, strings.TrimSpace(buf.String()), "line %d: unterminated statement before Down", lineNum)
				sawDown, section = true, "down"
			case "StatementBegin":
				require.NotEmpty(t, section, "line %d: StatementBegin outside Up/Down", lineNum)
				require.False(t, inBlock, "line %d: nested StatementBegin (open since line %d)", lineNum, beginLine)
				require.Empty(t, strings.TrimSpace(buf.String()), "line %d: unterminated statement before StatementBegin", lineNum)
				inBlock, beginLine = true, lineNum
			case "StatementEnd":
				require.True(t, inBlock, "line %d: StatementEnd without StatementBegin", lineNum)
				inBlock = false
				flush()
			default:
				t.Fatalf("line %d: unknown goose annotation %q", lineNum, ann)
			}
			continue
		}
		if buf.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "--")) {
			continue
		}
		buf.WriteString(line)
		buf.WriteByte('\n')
		if !inBlock {
			code, _, _ := strings.Cut(line, "--")
			if strings.HasSuffix(strings.TrimSpace(code), ";") {
				flush()
			}
		}
	}
	require.NoError(t, sc.Err())
	require.True(t, sawUp, "no -- +goose Up")
	require.True(t, sawDown, "no -- +goose Down")
	require.False(t, inBlock, "StatementBegin at line %d never ended", beginLine)
	require.Empty(t, strings.TrimSpace(buf.String()), "unterminated statement at the end of the file")
	return f
}

func readMigration(t *testing.T) string {
	t.Helper()
	fsys, err := eventfold.MigrationsFS(eventfold.SQLServer)
	require.NoError(t, err)
	b, err := fs.ReadFile(fsys, "00001_events.sql")
	require.NoError(t, err, "the migration must be embedded under sql/mssql")
	return string(b)
}

func TestMigrationSplitsIntoValidBatches(t *testing.T) {
	t.Parallel()
	text := readMigration(t)
	f := splitGoose(t, text)

	for i, line := range strings.Split(text, "\n") {
		require.NotEqual(t, "GO", strings.ToUpper(strings.TrimSpace(line)), "line %d: goose would send GO to the server", i+1)
	}

	// CREATE SCHEMA and CREATE PROCEDURE must open their batch; the
	// procedure must be the only statement in it.
	var procs, schemas int
	for _, stmt := range f.up {
		upper := strings.ToUpper(stmt)
		if strings.Contains(upper, "CREATE PROCEDURE") {
			procs++
			require.True(t, strings.HasPrefix(upper, "CREATE PROCEDURE EVENTFOLD.APPEND_EVENTS"), "CREATE PROCEDURE must start its batch:\n%.200s", stmt)
		}
		if strings.Contains(upper, "CREATE SCHEMA") {
			schemas++
			require.True(t, strings.HasPrefix(upper, "CREATE SCHEMA"), "CREATE SCHEMA must start its batch:\n%.200s", stmt)
		}
	}
	require.Equal(t, 1, procs)
	require.Equal(t, 1, schemas)
	require.True(t, strings.HasPrefix(strings.ToUpper(f.up[0]), "CREATE SCHEMA EVENTFOLD"), "the schema comes first")

	up := strings.Join(f.up, "\n")
	for _, obj := range []string{"eventfold.streams", "eventfold.events", "eventfold.position"} {
		require.Contains(t, up, "CREATE TABLE "+obj)
	}
	require.Regexp(t, `INSERT INTO eventfold\.position \(id, last_position\) VALUES \(1, 0\);`, up, "the counter row is seeded")

	down := strings.Join(f.down, "\n")
	for _, drop := range []string{
		"DROP PROCEDURE IF EXISTS eventfold.append_events",
		"DROP TABLE IF EXISTS eventfold.events",
		"DROP TABLE IF EXISTS eventfold.streams",
		"DROP TABLE IF EXISTS eventfold.position",
		"DROP SCHEMA IF EXISTS eventfold",
	} {
		require.Contains(t, down, drop)
	}
	require.True(t, strings.HasPrefix(strings.ToUpper(f.down[len(f.down)-1]), "DROP SCHEMA"), "the schema goes last")
}

// tsqlCode strips comments and string literals so that keywords can be
// counted.
func tsqlCode(stmt string) string {
	var b strings.Builder
	for i := 0; i < len(stmt); i++ {
		switch {
		case strings.HasPrefix(stmt[i:], "--"):
			for i < len(stmt) && stmt[i] != '\n' {
				i++
			}
			b.WriteByte('\n')
		case stmt[i] == '\'':
			i++
			for i < len(stmt) {
				if stmt[i] == '\'' {
					if i+1 < len(stmt) && stmt[i+1] == '\'' {
						i += 2
						continue
					}
					break
				}
				i++
			}
			b.WriteString("''")
		default:
			b.WriteByte(stmt[i])
		}
	}
	return b.String()
}

func TestMigrationProcedureShape(t *testing.T) {
	t.Parallel()
	f := splitGoose(t, readMigration(t))
	var proc string
	for _, stmt := range f.up {
		if strings.HasPrefix(stmt, "CREATE PROCEDURE") {
			proc = stmt
		}
	}
	require.NotEmpty(t, proc)
	checkProcedure(t, proc)
}

func TestMigrationNamesTheConstraintsGoMatches(t *testing.T) {
	t.Parallel()
	text := readMigration(t)
	require.Contains(t, text, "CONSTRAINT "+constraintEventID+" UNIQUE")
	require.Contains(t, text, "CONSTRAINT "+constraintStreamVersion+" UNIQUE")
	require.Contains(t, text, "COLLATE Latin1_General_100_BIN2", "stream ids are case-sensitive")
}

// checkProcedure checks a CREATE or ALTER PROCEDURE batch of
// eventfold.append_events: balanced blocks, terminated statements before
// THROW and around transaction statements, and the contract with the Go
// side.
func checkProcedure(t *testing.T, proc string) {
	t.Helper()
	code := tsqlCode(proc)

	// BEGIN (not BEGIN TRANSACTION) and CASE each close with one END.
	words := regexp.MustCompile(`[A-Za-z_@]+`).FindAllString(strings.ToUpper(code), -1)
	var opens, ends int
	for i, w := range words {
		switch w {
		case "BEGIN":
			if i+1 < len(words) && (words[i+1] == "TRANSACTION" || words[i+1] == "TRAN") {
				continue
			}
			opens++
		case "CASE":
			opens++
		case "END":
			ends++
		}
	}
	require.Equal(t, opens, ends, "BEGIN/CASE vs END")
	require.Equal(t, strings.Count(code, "("), strings.Count(code, ")"), "parentheses")

	// The statement before THROW must end with ';' (or be an IF / BEGIN
	// that THROW is the body of); every transaction statement is
	// terminated, so that the next word is never taken for a savepoint name.
	lines := strings.Split(code, "\n")
	prev := ""
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, "THROW") {
			ok := strings.HasSuffix(prev, ";") || strings.HasPrefix(prev, "IF ") || prev == "BEGIN"
			require.True(t, ok, "THROW after %q", prev)
		}
		if regexp.MustCompile(`^(BEGIN|COMMIT|ROLLBACK) TRANSACTION`).MatchString(l) {
			require.True(t, strings.HasSuffix(l, ";"), "unterminated %q", l)
		}
		prev = l
	}

	// The contract with the Go side.
	require.Contains(t, proc, "THROW 50001, @msg, 1;")
	require.Contains(t, proc, "THROW 50002, @msg, 1;")
	require.Contains(t, proc, "N'eventfold: wrong expected version: actual='")
	require.Contains(t, proc, "WITH (UPDLOCK, HOLDLOCK)")
	require.Contains(t, proc, "SET @last = last_position = last_position + @n")
	require.Contains(t, proc, "SET XACT_ABORT ON;")
}
