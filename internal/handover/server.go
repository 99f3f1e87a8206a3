package handover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Handler is the running agent's side of a hand-over. Serve calls its
// methods one at a time, in the order of the conversation.
type Handler interface {
	// Sockets returns the listening sockets to hand over, as duplicates that
	// Serve closes once sent.
	Sockets() ([]Socket, error)
	// Release frees what the new agent must bind itself (the gossip port).
	// The old agent goes on serving its listeners.
	Release() error
	// Ready is told that the new agent serves. The old one stops accepting
	// (its sockets stay open in the new process) and starts draining; Serve
	// answers done when Ready returns.
	Ready() error
}

// Timeouts of the old side: a new agent says hello at once, but may take
// its first Docker sync and its join to the fleet before it is ready.
const (
	helloTimeout = 5 * time.Second
	readyTimeout = 2 * time.Minute
)

// Server is the control socket of a running agent.
type Server struct {
	path string
	// who is this agent: only an agent of the same identity takes over.
	who Identity
	ln  *net.UnixListener
	// created identifies the file this server put at path, so Close removes
	// it only while no successor has replaced it.
	created os.FileInfo
	log     *slog.Logger
}

// Listen creates the control socket at path, mode 0600 in a directory of
// mode 0700 (created when missing), replacing whatever is there in one step:
// a predecessor that has handed over keeps no claim to the path.
func Listen(path string, who Identity, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("handover: control socket directory: %w", err)
	}
	// Bound under a name of its own, made private, then renamed into place:
	// at no moment does path hold a socket others may connect to.
	tmp := path + ".new-" + strconv.Itoa(os.Getpid())
	os.Remove(tmp)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: tmp, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("handover: control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*Server, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("handover: control socket %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	info, err := os.Lstat(tmp)
	if err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	return &Server{path: path, who: who, ln: ln, created: info, log: log}, nil
}

// Path is the control socket's path.
func (s *Server) Path() string { return s.path }

// Serve answers new agents until one has taken over (it returns nil then) or
// the server closes (net.ErrClosed). A conversation that fails leaves this
// agent serving as before; the next new agent may try again.
func (s *Server) Serve(h Handler) error {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			return fmt.Errorf("handover: %w", err)
		}
		took, err := s.converse(conn{c}, h)
		c.Close()
		if took {
			return nil
		}
		s.log.Warn("handover: a new agent's takeover failed; this agent goes on serving", "err", err)
	}
}

// converse runs one hand-over; took reports that the new agent took over.
func (s *Server) converse(c conn, h Handler) (took bool, err error) {
	// The hello is read first, so that a refusal is the peer's next
	// message: closing on a message unread would reset the connection
	// before the peer reads why.
	hello, _, err := c.recv(time.Now().Add(helloTimeout))
	if err != nil {
		return false, err
	}
	if hello.kind != msgHello {
		return false, c.fail(fmt.Errorf("handover: message type %d where %d belongs", hello.kind, msgHello))
	}
	if err := c.checkPeer(); err != nil {
		return false, c.fail(err)
	}
	if hello.who != s.who {
		return false, c.fail(fmt.Errorf("handover: the new agent is node %s with its admin API on %s, this one node %s on %s: only the same agent takes over (agents that differ need different upgrade.socket paths)",
			hello.who.Node, hello.who.Admin, s.who.Node, s.who.Admin))
	}
	socks, err := h.Sockets()
	if err != nil {
		return false, c.fail(err)
	}
	entries := make([]Entry, len(socks))
	files := make([]*os.File, len(socks))
	for i, sk := range socks {
		entries[i], files[i] = sk.Entry, sk.File
	}
	err = c.send(message{kind: msgSockets, entries: entries}, files)
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		return false, c.fail(err)
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		m, _, err := c.recv(deadline)
		if err != nil {
			return false, err
		}
		switch m.kind {
		case msgRelease:
			if err := h.Release(); err != nil {
				return false, c.fail(err)
			}
			if err := c.send(message{kind: msgReleased}, nil); err != nil {
				return false, err
			}
		case msgReady:
			// Past this point the new agent serves: this one gives up the
			// path whether or not the answer reaches it.
			s.ln.Close()
			if err := h.Ready(); err != nil {
				s.log.Warn("handover: stopping after the takeover", "err", err)
			}
			c.send(message{kind: msgDone}, nil)
			return true, nil
		default:
			return false, c.fail(fmt.Errorf("handover: message type %d where release or ready belongs", m.kind))
		}
	}
}

// Close stops serving and removes the control socket unless a successor has
// already put its own at the path.
func (s *Server) Close() error {
	err := s.ln.Close()
	if now, statErr := os.Lstat(s.path); statErr == nil && os.SameFile(now, s.created) {
		os.Remove(s.path)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("handover: %w", err)
	}
	return nil
}

// ErrNoPredecessor: nothing serves at the control socket's path (no file, or
// a file no agent listens on any more). The new agent then binds its sockets
// itself.
var ErrNoPredecessor = errors.New("handover: no running agent to take over from")

// Client is the new agent's side of a hand-over.
type Client struct {
	c       conn
	sockets []Socket
}

// Dial connects to the running agent at path, as who, and receives its
// sockets. ErrNoPredecessor when no agent serves there.
func Dial(ctx context.Context, path string, who Identity) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unixpacket", path)
	if err != nil {
		if isAbsent(err) {
			return nil, ErrNoPredecessor
		}
		return nil, fmt.Errorf("handover: %w", err)
	}
	c := conn{nc.(*net.UnixConn)}
	fail := func(err error) (*Client, error) {
		nc.Close()
		return nil, err
	}
	if err := c.checkPeer(); err != nil {
		return fail(err)
	}
	if err := c.send(message{kind: msgHello, who: who}, nil); err != nil {
		return fail(err)
	}
	socks, err := c.expect(msgSockets, deadlineOf(ctx, helloTimeout))
	if err != nil {
		return fail(err)
	}
	return &Client{c: c, sockets: socks}, nil
}

// Sockets are the sockets received; the caller owns their files.
func (c *Client) Sockets() []Socket { return c.sockets }

// Release asks the old agent to free what cannot be shared and waits until
// it has.
func (c *Client) Release(ctx context.Context) error {
	if err := c.c.send(message{kind: msgRelease}, nil); err != nil {
		return err
	}
	_, err := c.c.expect(msgReleased, deadlineOf(ctx, readyTimeout))
	return err
}

// Ready tells the old agent that this one serves, and waits until it has
// stopped accepting and given up the control socket's path.
func (c *Client) Ready(ctx context.Context) error {
	if err := c.c.send(message{kind: msgReady}, nil); err != nil {
		return err
	}
	_, err := c.c.expect(msgDone, deadlineOf(ctx, readyTimeout))
	return err
}

// Close ends the conversation. Before Ready, the old agent goes on serving.
func (c *Client) Close() error { return c.c.c.Close() }

func deadlineOf(ctx context.Context, def time.Duration) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(def)
}
