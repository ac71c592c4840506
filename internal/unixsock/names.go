package unixsock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// newSock creates a unix socket in the restorer. It is non-blocking until
// the end of the restore (nothing may hang the restorer) and has a large
// send buffer meanwhile, for writing queued data through it.
func newSock(typ int) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, fillSndBuf/2)
	return os.NewFile(uintptr(fd), "unix"), nil
}

// newPair creates a connected pair of unnamed sockets, like newSock.
func newPair(typ int) (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	for _, fd := range fds {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, fillSndBuf/2)
	}
	return os.NewFile(uintptr(fds[0]), "unix"), os.NewFile(uintptr(fds[1]), "unix"), nil
}

// bind binds f to name. For a path, whatever is left at the path is dealt
// with first:
//   - a socket file is the stale file of the checkpointed socket (closing a
//     socket never removes its file), or of the socket's replacement that
//     a previous boot left: it is unlinked. Only sockets are ever removed.
//   - when the checkpointed socket's file had been unlinked already
//     (unlinked=true), the path belongs to someone else: it is moved aside
//     while binding and put back at the end of the restore, after our own
//     file is unlinked again. Directories of the path that are gone too (a
//     removed directory) are created for the bind and removed afterwards.
//   - anything that is not a socket makes the bind fail.
//
// A relative path is bound in the directory it was bound in (Dir).
func (o *Opener) bind(f *os.File, name []byte, p *image.UnixPath) error {
	if !isPath(name) {
		if err := bindRaw(int(f.Fd()), name); err != nil {
			return fmt.Errorf("bind %q: %w", image.UnixName(name), err)
		}
		return nil
	}
	path := string(name)
	relative := path[0] != '/'
	if relative {
		if p == nil || p.Dir == "" {
			return fmt.Errorf("bind %q: a relative path without the directory it was bound in", path)
		}
		path = filepath.Join(p.Dir, path)
	}
	var st unix.Stat_t
	switch err := unix.Lstat(path, &st); {
	case errors.Is(err, unix.ENOENT):
		if p != nil && p.Unlinked {
			if err := o.makeDirs(filepath.Dir(path)); err != nil {
				return err
			}
		}
	case err != nil:
		return fmt.Errorf("bind %s: %w", path, err)
	case p != nil && p.Unlinked:
		if err := o.moveAside(path); err != nil {
			return err
		}
	case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
		return fmt.Errorf("bind %s: the path exists and is not a socket", path)
	default:
		if err := unix.Unlink(path); err != nil {
			return fmt.Errorf("remove stale socket file %s: %w", path, err)
		}
	}
	bind := func() error { return bindRaw(int(f.Fd()), name) }
	if relative {
		bind = func() error { return inDir(p.Dir, func() error { return bindRaw(int(f.Fd()), name) }) }
	}
	if err := bind(); err != nil {
		return fmt.Errorf("bind %q: %w", image.UnixName(name), err)
	}
	if p != nil && p.Unlinked {
		o.later(func() { unix.Unlink(path) })
		return nil
	}
	if p != nil {
		if err := os.Lchown(path, int(p.UID), int(p.GID)); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
		if err := os.Chmod(path, os.FileMode(p.Mode&0o777)); err != nil {
			return fmt.Errorf("chmod %s: %w", path, err)
		}
	}
	return nil
}

// reach is the name by which the restorer reaches a socket bound to name:
// for a relative path, the path in the directory it was bound in (whatever
// the path a socket is reached by, it knows its peer by its bound name).
func reach(name []byte, p *image.UnixPath) []byte {
	if isPath(name) && name[0] != '/' && p != nil && p.Dir != "" {
		return []byte(filepath.Join(p.Dir, string(name)))
	}
	return name
}

// makeDirs creates the directories of dir that do not exist, for binding
// a socket whose directory was removed after it was bound; they are removed
// again at the end of the restore, once the socket file is gone.
func (o *Opener) makeDirs(dir string) error {
	var missing []string
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := os.Mkdir(d, 0o700); err != nil {
			return fmt.Errorf("create the removed directory %s for the bind: %w", d, err)
		}
		o.later(func() { os.Remove(d) })
	}
	return nil
}

// inDir runs fn with dir as the working directory, on a thread of its own
// that is thrown away afterwards (the restorer's own stays where it is).
func inDir(dir string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- fmt.Errorf("unshare: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			done <- fmt.Errorf("chdir %s: %w", dir, err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// moveAside renames path out of the way until the end of the restore.
func (o *Opener) moveAside(path string) error {
	o.aside++
	tmp := fmt.Sprintf("%s.seamless-aside-%d-%d", path, os.Getpid(), o.aside)
	if err := os.Rename(path, tmp); err != nil {
		return fmt.Errorf("move %s aside: %w", path, err)
	}
	o.later(func() { os.Rename(tmp, path) })
	return nil
}

// later queues cleanup for the end of the build (last queued runs first).
func (o *Opener) later(f func()) { o.cleanup = append(o.cleanup, f) }

// listenerFor returns a listening socket bound to name, for connecting a
// socket to it and accepting the connection, which so gets name as its own
// address (as a connection accepted by a listener bound to name has): the
// tree's listener of that name, or else a temporary one.
func (o *Opener) listenerFor(typ int, name []byte, p *image.UnixPath) (int, error) {
	for _, r := range o.order {
		if r.u.State == image.UnixListening && r.img.Type == typ && string(r.u.Name) == string(name) && r.f != nil {
			return int(r.f.Fd()), nil
		}
	}
	l, err := newSock(typ)
	if err != nil {
		return -1, err
	}
	o.later(func() { l.Close() })
	fsPath := string(reach(name, p))
	if isPath(name) {
		if _, err := os.Lstat(fsPath); err == nil {
			if err := o.moveAside(fsPath); err != nil {
				return -1, err
			}
		}
	}
	bind := func() error { return bindRaw(int(l.Fd()), name) }
	if isPath(name) && name[0] != '/' && p != nil && p.Dir != "" {
		bind = func() error { return inDir(p.Dir, func() error { return bindRaw(int(l.Fd()), name) }) }
	}
	if err := bind(); err != nil {
		return -1, fmt.Errorf("bind a temporary listener to %q: %w", image.UnixName(name), err)
	}
	if isPath(name) {
		o.later(func() { unix.Unlink(fsPath) })
	}
	if err := unix.Listen(int(l.Fd()), 1); err != nil {
		return -1, fmt.Errorf("listen: %w", err)
	}
	return int(l.Fd()), nil
}

// connectAccept connects cl to the listener l and accepts the connection.
func connectAccept(cl *os.File, l int, name []byte) (*os.File, error) {
	if err := connectRaw(int(cl.Fd()), name); err != nil {
		return nil, fmt.Errorf("connect to %q: %w", image.UnixName(name), err)
	}
	fd, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("accept on %q: %w", image.UnixName(name), err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, fillSndBuf/2)
	return os.NewFile(uintptr(fd), "unix"), nil
}
