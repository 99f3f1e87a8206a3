package handover

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Socket is a socket handed over: its entry and its descriptor. Whoever holds
// a Socket owns File and closes it.
type Socket struct {
	Entry
	File *os.File
}

// conn is one end of a control connection.
type conn struct {
	c *net.UnixConn
}

// checkPeer refuses a peer of another user: a socket handed to it could serve
// this agent's ports, and sockets taken from it could serve anything.
func (c conn) checkPeer() error {
	raw, err := c.c.SyscallConn()
	if err != nil {
		return fmt.Errorf("handover: peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("handover: peer credentials: %w", err)
	}
	if credErr != nil {
		return fmt.Errorf("handover: peer credentials: %w", credErr)
	}
	if int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("handover: the peer (pid %d) runs as uid %d, this agent as uid %d: only the same user may take over", cred.Pid, cred.Uid, os.Getuid())
	}
	return nil
}

func (c conn) send(m message, files []*os.File) error {
	b, err := encode(m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := c.c.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("handover: send: %w", err)
	}
	return nil
}

// recv reads one message before deadline. Descriptors come only with a
// sockets message, one per entry; any other arrival of them is refused (and
// they are closed).
func (c conn) recv(deadline time.Time) (message, []Socket, error) {
	c.c.SetReadDeadline(deadline)
	buf := make([]byte, maxMessage+1)
	oob := make([]byte, unix.CmsgSpace(MaxSockets*4))
	n, oobn, flags, _, err := c.c.ReadMsgUnix(buf, oob)
	if err != nil {
		return message{}, nil, fmt.Errorf("handover: receive: %w", err)
	}
	m, socks, err := parse(buf[:n], oob[:oobn], flags)
	if err != nil {
		return message{}, nil, c.fail(err)
	}
	if m.kind == msgError {
		return message{}, nil, fmt.Errorf("handover: the peer refused: %s", m.text)
	}
	return m, socks, nil
}

// parse checks a message and its descriptors; it closes them when it
// refuses them.
func parse(buf, oob []byte, flags int) (m message, socks []Socket, err error) {
	files, err := filesOf(oob)
	defer func() {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
		}
	}()
	switch {
	case err != nil:
		return message{}, nil, err
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		return message{}, nil, errors.New("handover: message or descriptors cut short: more than the protocol allows")
	case len(buf) == 0:
		return message{}, nil, errors.New("handover: the peer closed the connection")
	}
	if m, err = decode(buf); err != nil {
		return message{}, nil, err
	}
	if len(files) != len(m.entries) {
		return message{}, nil, fmt.Errorf("handover: %d descriptors came with %d socket entries", len(files), len(m.entries))
	}
	socks = make([]Socket, len(files))
	for i, f := range files {
		socks[i] = Socket{Entry: m.entries[i], File: f}
	}
	if err = checkKinds(socks); err != nil {
		return message{}, nil, err
	}
	return m, socks, nil
}

// filesOf takes the descriptors out of the control messages; non-rights
// control messages are refused.
func filesOf(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("handover: control message: %w", err)
	}
	var files []*os.File
	var bad error
	for _, cm := range cmsgs {
		fds, err := unix.ParseUnixRights(&cm)
		if err != nil {
			bad = fmt.Errorf("handover: control message: %w", err)
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "handover"))
		}
	}
	return files, bad
}

// checkKinds makes sure each descriptor is what its entry says: a listening
// TCP socket or a UDP socket. A file, a pipe or a connected socket is refused.
func checkKinds(socks []Socket) error {
	for _, s := range socks {
		raw, err := s.File.SyscallConn()
		if err != nil {
			return fmt.Errorf("handover: socket %s: %w", s.Name, err)
		}
		var typ, listening int
		var typErr, listenErr error
		raw.Control(func(fd uintptr) {
			typ, typErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
			listening, listenErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		})
		if typErr != nil || listenErr != nil {
			return fmt.Errorf("handover: socket %s: the descriptor is not a socket: %w", s.Name, cmp.Or(typErr, listenErr))
		}
		switch {
		case s.Network == NetworkTCP && (typ != syscall.SOCK_STREAM || listening != 1):
			return fmt.Errorf("handover: socket %s: the descriptor is not a listening TCP socket", s.Name)
		case s.Network == NetworkUDP && typ != syscall.SOCK_DGRAM:
			return fmt.Errorf("handover: socket %s: the descriptor is not a UDP socket", s.Name)
		}
	}
	return nil
}

// fail tells the peer why the conversation ends, best effort, and returns err.
func (c conn) fail(err error) error {
	text := err.Error()
	if len(text) > maxField {
		text = text[:maxField]
	}
	clean := []byte(text)
	for i, ch := range clean {
		if !printableByte(ch) {
			clean[i] = '?'
		}
	}
	c.send(message{kind: msgError, text: string(clean)}, nil)
	return err
}

// expect receives a message of kind before deadline.
func (c conn) expect(kind byte, deadline time.Time) ([]Socket, error) {
	m, socks, err := c.recv(deadline)
	if err != nil {
		return nil, err
	}
	if m.kind != kind {
		for _, s := range socks {
			s.File.Close()
		}
		return nil, c.fail(fmt.Errorf("handover: message type %d where %d belongs", m.kind, kind))
	}
	return socks, nil
}

// isAbsent: nothing listens at the path (no file, or a stale one).
func isAbsent(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}
