// Package inet checkpoints and restores TCP and UDP sockets over IPv4 and
// IPv6.
//
// TCP connections are read and rebuilt with TCP_REPAIR (sequence numbers,
// both queues, TCP_REPAIR_WINDOW, MSS, window scale, SACK, timestamps),
// half-closed connections the way CRIU's libsoccr does (a FIN put back with
// shutdown(2) in repair mode, the peer's FIN injected as a packet), listening
// sockets by address, backlog and options, UDP sockets by addresses, options
// and their queued datagrams. While the tree is away the network lock
// (internal/netlock) drops the inbound packets of every preserved socket.
// See docs/inet.md.
package inet

import "errors"

// ErrPendingAccept is wrapped by the error of a checkpoint that found
// connections waiting in a listener's accept queue. Connections cannot be
// put back into an accept queue, but the service accepts them within
// moments if it is let run: the checkpoint can be retried.
var ErrPendingAccept = errors.New("connections are waiting to be accepted")
