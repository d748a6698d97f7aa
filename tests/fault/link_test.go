package fault_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// link is a loopback TCP proxy between NATS clients and a nats-server that
// can lose replies on the way back: with dropReplies set it discards every
// message the server delivers to an _INBOX subject, which is where
// JetStream publish acknowledgements go. The publish itself still reaches
// the stream, so the producer sees a timeout for a batch that was stored:
// an acknowledgement lost on the way back.
type link struct {
	ln          net.Listener
	target      string
	dropReplies atomic.Bool
	dropped     atomic.Int64

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

// newLink proxies to the nats-server at target (host:port) until cleanup.
func newLink(t testing.TB, target string) *link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &link{ln: ln, target: target}
	l.wg.Add(1)
	go l.accept()
	t.Cleanup(l.close)
	return l
}

// URL is the NATS URL clients dial to go through the link.
func (l *link) URL() string { return "nats://" + l.ln.Addr().String() }

func (l *link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		if !l.track(c, s) {
			return
		}
		l.wg.Add(2)
		go func() {
			defer l.wg.Done()
			_, _ = io.Copy(s, c)
			s.Close()
			c.Close()
		}()
		go func() {
			defer l.wg.Done()
			_ = l.filter(c, s)
			s.Close()
			c.Close()
		}()
	}
}

// track registers a proxied pair, or closes it and reports false once the
// link is closed.
func (l *link) track(c, s net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		s.Close()
		return false
	}
	l.conns = append(l.conns, c, s)
	return true
}

func (l *link) close() {
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.mu.Unlock()
	l.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	l.wg.Wait()
}

// filter copies the server's protocol stream to the client, one operation
// at a time, leaving out replies while dropReplies is set. Server
// operations are lines (INFO, PING, PONG, +OK, -ERR), or MSG and HMSG
// lines whose last field is the size of the payload that follows.
func (l *link) filter(client io.Writer, server io.Reader) error {
	r := bufio.NewReaderSize(server, 64<<10)
	w := bufio.NewWriterSize(client, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long INFO line: pass it through in pieces.
			if _, err := w.Write(line); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		var payload []byte
		if bytes.HasPrefix(line, []byte("MSG ")) || bytes.HasPrefix(line, []byte("HMSG ")) {
			f := bytes.Fields(line)
			n, err := strconv.Atoi(string(f[len(f)-1]))
			if err != nil {
				return err
			}
			reply := bytes.HasPrefix(f[1], []byte("_INBOX."))
			head := append([]byte(nil), line...) // line is only valid until the next read
			payload = make([]byte, n+2)          // and CRLF
			if _, err := io.ReadFull(r, payload); err != nil {
				return err
			}
			if reply && l.dropReplies.Load() {
				l.dropped.Add(1)
				continue
			}
			line = head
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		if _, err := w.Write(payload); err != nil {
			return err
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}
