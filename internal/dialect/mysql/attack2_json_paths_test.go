package mysql_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestAttack2AppendPathsAgreeOnExoticJSON: the same data appended by a
// lone Append, by eventfold_append_batch's small-batch path (each event by
// JSON path, 00017) and by its large path (> 128 events) comes back the
// same from the append and from the readers, and streams with quotes,
// backslashes and emoji in their ids land where they are named.
func TestAttack2AppendPathsAgreeOnExoticJSON(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := latestDB(t)
	ops := mysqlops.New(db)
	payloads := []string{
		`{"nul":"a\u0000b","bs":"c:\\dir\\\"x\"","emoji":"😀 \ud83d\ude00","ctl":"\t\n\u001f"}`,
		`{"big":12345678901234567890,"exp":1e300,"neg":-0.0,"f":1.50}`,
		`{"dup":1,"dup":2}`,
		`[1,"two",{"three":[]},null]`,
		`{}`,
		`"\u0000"`,
		`12345678901234567890`,
		`true`,
		`{"huge":1e400,"s":"   spaced  :  "}`,
	}
	streamIDs := []string{`q"uote`, `back\slash`, `emoji-😀`, `pct%_`, `sp ace`, `dollar$.path`, `[0]`, `*`, `sp  ace2`}
	type path struct {
		name  string
		extra int // filler events to take the batch past 128
	}
	var results [][]string
	for _, pth := range []path{{"lone", -1}, {"small", 0}, {"large", 130}} {
		var got []eventfold.Event
		for i, pl := range payloads {
			ev := newEvent("X")
			ev.Data = []byte(pl)
			stream := fmt.Sprintf("%s-%s", pth.name, streamIDs[i])
			if pth.extra < 0 {
				evs, err := ops.Append(ctx, stream, eventfold.NoStream, []eventfold.EventData{ev})
				require.NoError(t, err, "%s %s", pth.name, pl)
				got = append(got, evs...)
				continue
			}
			batch := []contract.StreamAppend{{StreamID: stream, Expected: eventfold.NoStream, Events: []eventfold.EventData{ev}}}
			if pth.extra > 0 {
				fill := make([]eventfold.EventData, pth.extra)
				for j := range fill {
					fill[j] = newEvent("Fill")
				}
				batch = append(batch, contract.StreamAppend{StreamID: stream + "-fill", Expected: eventfold.Any, Events: fill})
			}
			res, err := ops.AppendMany(ctx, batch)
			require.NoError(t, err, "%s %s", pth.name, pl)
			got = append(got, res[0]...)
		}
		var datas []string
		for i, e := range got {
			stream := fmt.Sprintf("%s-%s", pth.name, streamIDs[i])
			require.Equal(t, stream, e.StreamID, "%s: stream id", pth.name)
			read, err := ops.ReadStream(ctx, stream, 0, 10, false)
			require.NoError(t, err)
			require.Len(t, read, 1, "%s: stream %q", pth.name, stream)
			require.Equal(t, string(read[0].Data), string(e.Data), "%s: %s: appended vs read", pth.name, payloads[i])
			datas = append(datas, string(e.Data))
		}
		results = append(results, datas)
	}
	for i := range payloads {
		require.Equal(t, results[0][i], results[1][i], "lone vs small batch for %s", payloads[i])
		require.Equal(t, results[0][i], results[2][i], "lone vs large batch for %s", payloads[i])
	}
}
