package testdb

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eventfold/eventfold"
)

// CommitProxy is a TCP proxy on 127.0.0.1 in front of a PostgreSQL or
// MySQL/MariaDB server that understands just enough of the wire protocol
// to recognise a transaction's COMMIT and cut the connection around it:
//
//   - DropReply: after the server answered COMMIT (PostgreSQL: the
//     CommandComplete message 'C' with tag "COMMIT"; MySQL: the OK packet
//     that follows the client's COMMIT query), the reply is swallowed and
//     both connections are closed. The commit is durable; the client sees
//     a broken connection.
//   - DropQuery: the client's COMMIT is never forwarded; both connections
//     are closed. The server rolls the transaction back.
//
// The decision is made per COMMIT by the functions given to SetDropReply
// and SetDropQuery (safe to change while connections run).
type CommitProxy struct {
	// Addr is host:port to connect to instead of the server.
	Addr string
	// DSN is the server DSN rewritten to go through the proxy.
	DSN string

	// Refuse, while true, makes the proxy close new connections at once.
	Refuse atomic.Bool

	// Commits counts the COMMIT replies seen; RepliesDropped and
	// QueriesDropped count the cuts.
	Commits, RepliesDropped, QueriesDropped atomic.Int64

	dropReply, dropQuery atomic.Pointer[func() bool]

	dialect  eventfold.Dialect
	upstream string
	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

// StartCommitProxy starts a proxy in front of the server of dsn (eventfold
// URL form, postgres:// or mysql://); it stops when the test ends.
func StartCommitProxy(t testing.TB, dsn string) *CommitProxy {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("commit proxy: parse DSN: %v", err)
	}
	d, err := eventfold.ParseDialect(u.Scheme)
	if err != nil || (d != eventfold.Postgres && d != eventfold.MySQL) {
		t.Fatalf("commit proxy: %q: want a postgres:// or mysql:// DSN", u.Scheme)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("commit proxy: listen: %v", err)
	}
	p := &CommitProxy{Addr: ln.Addr().String(), dialect: d, upstream: u.Host, ln: ln, conns: map[net.Conn]struct{}{}}
	u.Host = p.Addr
	p.DSN = u.String()
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// SetDropReply sets what decides, per COMMIT the server answered, whether
// the reply is swallowed and the connection cut (nil: never).
func (p *CommitProxy) SetDropReply(f func() bool) { p.dropReply.Store(&f) }

// SetDropQuery sets what decides, per COMMIT a client sends, whether the
// connection is cut instead of forwarding it (nil: never).
func (p *CommitProxy) SetDropQuery(f func() bool) { p.dropQuery.Store(&f) }

func decide(fp *atomic.Pointer[func() bool]) bool {
	f := fp.Load()
	return f != nil && *f != nil && (*f)()
}

func (p *CommitProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *CommitProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
}

func (p *CommitProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *CommitProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.Refuse.Load() {
			client.Close()
			continue
		}
		server, err := net.Dial("tcp", p.upstream)
		if err != nil {
			client.Close()
			continue
		}
		p.track(client)
		p.track(server)
		s := &proxySession{p: p, client: client, server: server}
		p.wg.Add(2)
		go func() { defer p.wg.Done(); s.clientToServer() }()
		go func() { defer p.wg.Done(); s.serverToClient() }()
	}
}

// proxySession is one proxied connection.
type proxySession struct {
	p              *CommitProxy
	client, server net.Conn
	// commitSent is set (MySQL) when the client's COMMIT query went out:
	// the server's next packet is its reply.
	commitSent atomic.Bool
	// commitStmts names the PostgreSQL statements the client prepared
	// (Parse) as COMMIT, so that their Bind is recognised too: pgx sends
	// COMMIT that way in a pipeline (pgxdriver's commit with queued writes).
	commitStmts map[string]bool
	once        sync.Once
}

func (s *proxySession) cut() {
	s.once.Do(func() {
		s.p.untrack(s.client)
		s.p.untrack(s.server)
	})
}

func (s *proxySession) clientToServer() {
	defer s.cut()
	r := bufio.NewReader(s.client)
	first := true
	for {
		var msg []byte
		var err error
		if s.p.dialect == eventfold.Postgres {
			msg, err = readPGMessage(r, first)
		} else {
			msg, err = readMySQLPacket(r)
		}
		first = false
		if err != nil {
			return
		}
		if s.isCommitQuery(msg) {
			if decide(&s.p.dropQuery) {
				s.p.QueriesDropped.Add(1)
				return
			}
			s.commitSent.Store(true) // before the server can answer
		}
		if _, err := s.server.Write(msg); err != nil {
			return
		}
	}
}

func (s *proxySession) serverToClient() {
	defer s.cut()
	r := bufio.NewReader(s.server)
	for {
		var msg []byte
		var err error
		reply := false
		if s.p.dialect == eventfold.Postgres {
			msg, err = readPGMessage(r, false)
			// CommandComplete 'C' with tag "COMMIT": the server committed.
			reply = err == nil && msg[0] == 'C' && bytes.Equal(msg[5:], []byte("COMMIT\x00"))
		} else {
			msg, err = readMySQLPacket(r)
			// The packet after a COMMIT query is its reply; 0x00 is OK.
			reply = err == nil && s.commitSent.Swap(false) && len(msg) > 4 && msg[4] == 0x00
		}
		if err != nil {
			return
		}
		if reply {
			s.p.Commits.Add(1)
			if decide(&s.p.dropReply) {
				s.p.RepliesDropped.Add(1)
				return
			}
		}
		if _, err := s.client.Write(msg); err != nil {
			return
		}
	}
}

// isCommitQuery recognises a client's COMMIT: PostgreSQL's simple Query
// message 'Q' "commit" or the Bind 'B' of a statement parsed as "commit",
// MySQL's COM_QUERY (0x03) "COMMIT".
func (s *proxySession) isCommitQuery(msg []byte) bool {
	var q []byte
	if s.p.dialect == eventfold.Postgres {
		if len(msg) < 6 {
			return false
		}
		switch msg[0] {
		case 'P': // Parse: statement name, query, parameter types
			parts := bytes.SplitN(msg[5:], []byte{0}, 3)
			if len(parts) == 3 {
				if s.commitStmts == nil {
					s.commitStmts = map[string]bool{}
				}
				s.commitStmts[string(parts[0])] = strings.EqualFold(strings.TrimSpace(string(parts[1])), "commit")
			}
			return false
		case 'B': // Bind: portal name, statement name, ...
			parts := bytes.SplitN(msg[5:], []byte{0}, 3)
			return len(parts) == 3 && s.commitStmts[string(parts[1])]
		case 'Q':
		default:
			return false
		}
		q = bytes.TrimSuffix(msg[5:], []byte{0})
	} else {
		if len(msg) < 5 || msg[4] != 0x03 {
			return false
		}
		q = msg[5:]
	}
	return strings.EqualFold(strings.TrimSpace(string(q)), "commit")
}

// readPGMessage reads one PostgreSQL message: a type byte and an int32
// length (itself included), or for the client's first message (startup)
// just the length.
func readPGMessage(r *bufio.Reader, startup bool) ([]byte, error) {
	head := 5
	if startup {
		head = 4
	}
	msg := make([]byte, head)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(msg[head-4:]))
	if n < 4 || n > 1<<30 {
		return nil, errors.New("commit proxy: bad PostgreSQL message length")
	}
	msg = append(msg, make([]byte, n-4)...)
	if _, err := io.ReadFull(r, msg[head:]); err != nil {
		return nil, err
	}
	return msg, nil
}

// readMySQLPacket reads one MySQL packet: a 3-byte little-endian length, a
// sequence number, the payload.
func readMySQLPacket(r *bufio.Reader) ([]byte, error) {
	msg := make([]byte, 4)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	n := int(msg[0]) | int(msg[1])<<8 | int(msg[2])<<16
	msg = append(msg, make([]byte, n)...)
	if _, err := io.ReadFull(r, msg[4:]); err != nil {
		return nil, err
	}
	return msg, nil
}
