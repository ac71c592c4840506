package files

import (
	"fmt"
	"os"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/sockets"
)

// Sockets (image.FileSocket): the socket packages (internal/sockets and the
// families below it) decide, save and rebuild them; this is their entry in
// the table of kinds.

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
	var err error
	if f.Socket, err = d.Sockets.Dump(ds.local, ds.pid, ds.fd); err != nil {
		return &Unsupported{PID: ds.pid, FD: ds.fd, What: fmt.Sprintf("socket %s (%v)", ds.link, err), Err: err}
	}
	return nil
}

// openSocket rebuilds the socket.
func openSocket(o *Opener, f *image.File) (*os.File, error) {
	if f.Socket == nil {
		return nil, fmt.Errorf("socket without state")
	}
	return o.Sockets.Open(f.Socket)
}
