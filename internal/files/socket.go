package files

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/sockets"
)

// Sockets (image.FileSocket): the socket packages (internal/sockets and the
// families below it) decide, save and rebuild them; this is their entry in
// the table of kinds. Their record, image.Socket, is in the image package,
// which those packages (below this one) read and write.

var socketKind = &kind{name: image.FileSocket, record: func() image.FileRecord { return new(image.Socket) },
	is:    func(_ *Scope, d *desc) bool { return d.fileType() == unix.S_IFSOCK },
	check: checkSocket, dump: dumpSocket, open: openSocket}

// checkSocket refuses the kinds of socket that are not carried (the
// family, type and protocol alone decide it).
func checkSocket(_ *Scope, ds *desc) error {
	if _, err := sockets.Check(ds.local); err != nil {
		return fmt.Errorf("socket %s (%v)", ds.link, err)
	}
	return nil
}

// dumpSocket hands the socket to the socket dumper, which keeps the
// checkpointer's duplicate of it.
func dumpSocket(d *Dumper, ds *desc, f *image.File) error {
	ds.kept = true // the socket dumper owns the duplicate from here on
	s, err := d.Sockets.Dump(ds.local, ds.pid, ds.fd)
	if err != nil {
		return &Unsupported{PID: ds.pid, FD: ds.fd, What: fmt.Sprintf("socket %s (%v)", ds.link, err), Err: err}
	}
	f.Record = s
	return nil
}

// openSocket rebuilds the socket.
func openSocket(o *Opener, f *image.File) (*os.File, error) {
	s := f.Socket()
	if s == nil {
		return nil, fmt.Errorf("socket without state")
	}
	return o.Sockets.Open(s)
}
