package restored

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/contract"
)

// guard runs fn and turns a panic into an error (with the stack in the
// log): one unit's bad image or a bug met on it must not take the daemon,
// and with it every other unit, down.
func guard(log io.Writer, what string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(log, "internal error while %s: %v\n%s", what, r, debug.Stack())
			err = fmt.Errorf("internal error while %s: %v", what, r)
		}
	}()
	return fn()
}

// listen opens the socket the anchors connect to. Anyone may connect (an
// anchor runs as its unit's user): the daemon restores a unit only for a
// process of that unit's own cgroup, running as the unit's user (see
// authorize).
func (d *daemon) listen() error {
	os.Remove(contract.SocketPath())
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: contract.SocketPath(), Net: "unixpacket"})
	if err != nil {
		return fmt.Errorf("listen on %s: %w", contract.SocketPath(), err)
	}
	if err := os.Chmod(contract.SocketPath(), 0o666); err != nil {
		l.Close()
		return err
	}
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			go d.serve(c)
		}
	}()
	return nil
}

// serve answers one anchor. Whatever goes wrong, the anchor gets an answer
// and the unit a final state: a panic on one unit's request does not end
// the daemon.
func (d *daemon) serve(c *net.UnixConn) {
	defer c.Close()
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return
	}
	asked := time.Now()
	fds := rights(oob[:oobn])
	defer func() {
		for _, f := range fds {
			f.Close()
		}
	}()
	reply := Reply{}
	var req Request
	var p *peer
	var cg string
	err = guard(d.opts.Log, "serve an anchor", func() error {
		if err := json.Unmarshal(buf[:n], &req); err != nil {
			return fmt.Errorf("request: %w", err)
		}
		if req.Ping {
			// Anyone may learn that the daemon answers; nothing else.
			reply.Alive = true
			return nil
		}
		var err error
		if p, err = peerOf(c, d.proc); err != nil {
			return err
		}
		p.pinned = time.Since(asked)
		reply.MainPID, cg, err = d.restoreUnit(req.Unit, p, fds, asked)
		return err
	})
	if p != nil {
		defer p.close()
	}
	if err != nil {
		reply.Error = Bound(err.Error())
	}
	b, _ := json.Marshal(reply)
	_, err = c.Write(b)
	if reply.MainPID > 0 {
		d.handedOver(req.Unit, cg, p, reply.MainPID, err)
	}
}

// rights returns the descriptors of an SCM_RIGHTS message.
func rights(oob []byte) []*os.File {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			files = append(files, os.NewFile(uintptr(fd), "anchor-fd"))
		}
	}
	return files
}

// errNotPending is returned to an anchor whose unit has nothing to restore.
var errNotPending = errors.New("nothing to restore")

// procRead reads a file below /proc through the descriptor opened in the
// initramfs: until the daemon moves to the real root, its /proc is the
// empty directory the initramfs's /proc was moved away from.
func (d *daemon) procRead(pid int, name string) (string, error) {
	fd, err := unix.Openat(int(d.proc.Fd()), strconv.Itoa(pid)+"/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("read /proc/%d/%s: %w", pid, name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}
