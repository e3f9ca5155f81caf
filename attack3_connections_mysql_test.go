package eventfold_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestAttack3MySQLUserConnectionLimit: a service and an operator's esctl
// share an account whose MAX_USER_CONNECTIONS is small (the shared
// server's own max_connections may not be changed here; the per-account
// limit refuses the same way, with 1226 instead of 1040). sqldriver.Open
// keeps up to 32 idle connections for 5 minutes, so a burst leaves the
// account's connections held. What the callers see must name the limit,
// and nothing may be half-written: every refused append wrote nothing,
// every answered one is in the log exactly once.
func TestAttack3MySQLUserConnectionLimit(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t, eventfold.MySQL)
	adminDrv, err := sqldriver.Open(ctx, dsn)
	require.NoError(t, err)
	defer adminDrv.Close()
	admin := adminDrv.DB()
	var dbName string
	require.NoError(t, admin.QueryRowContext(ctx, `SELECT DATABASE()`).Scan(&dbName))
	user := fmt.Sprintf("eft_lim_%d", time.Now().UnixNano()%1e9)
	_, err = admin.ExecContext(ctx, fmt.Sprintf("CREATE USER '%s'@'%%' WITH MAX_USER_CONNECTIONS 3", user))
	require.NoError(t, err)
	defer admin.ExecContext(ctx, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)) //nolint:errcheck
	_, err = admin.ExecContext(ctx, fmt.Sprintf("GRANT ALL ON `%s`.* TO '%s'@'%%'", dbName, user))
	require.NoError(t, err)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	u.User = url.User(user)

	// The service: a burst of 12 appenders on one pool.
	svcDrv, err := sqldriver.Open(ctx, u.String())
	require.NoError(t, err)
	defer svcDrv.Close()
	svc := eventfold.New(svcDrv, nil)
	const writers, each = 12, 5
	var mu sync.Mutex
	var ok []eventfold.Event
	var refused []error
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				evs, err := svc.Append(ctx, fmt.Sprintf("conn-%d", w), eventfold.Any, positionData)
				mu.Lock()
				if err != nil {
					refused = append(refused, err)
				} else {
					ok = append(ok, evs...)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("burst: %d appended, %d refused; idle connections held by the service's pool: %d",
		len(ok), len(refused), svcDrv.DB().Stats().Idle)
	for _, err := range refused {
		require.Contains(t, err.Error(), "max_user_connections", "a refusal must name the limit: %v", err)
	}
	if len(refused) > 0 {
		t.Logf("first refusal: %v (ErrTransient: %v)", refused[0], errors.Is(refused[0], eventfold.ErrTransient))
	}

	// The operator's esctl (another pool, as another process would have)
	// while the service's pool holds its idle connections.
	opDrv, err := sqldriver.Open(ctx, u.String())
	if err == nil {
		_, err = eventfold.New(opDrv, nil).Append(ctx, "operator", eventfold.Any, positionData)
		opDrv.Close()
	}
	t.Logf("a second pool's append while the service idles: %v", err)
	if err != nil {
		require.True(t, strings.Contains(err.Error(), "max_user_connections"), "%v", err)
	} else {
		ok = append(ok, eventfold.Event{StreamID: "operator"})
	}

	// Nothing half-written: the log holds exactly the answered appends.
	var n int64
	require.NoError(t, admin.QueryRowContext(ctx, `SELECT COUNT(*) FROM eventfold_events`).Scan(&n))
	require.Equal(t, int64(len(ok)), n)
	for w := range writers {
		var rowVersion, events int64
		stream := fmt.Sprintf("conn-%d", w)
		err := admin.QueryRowContext(ctx, `SELECT COALESCE((SELECT version FROM eventfold_streams WHERE stream_id = ?), 0),
		    (SELECT COUNT(*) FROM eventfold_events WHERE stream_id = ?)`, stream, stream).Scan(&rowVersion, &events)
		require.NoError(t, err)
		require.Equal(t, events, rowVersion, "stream %s: its row and its events agree", stream)
	}
}
