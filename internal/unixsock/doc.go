// Package unixsock checkpoints and restores AF_UNIX sockets: stream,
// datagram and seqpacket; socket pairs; sockets bound to a path, to an
// abstract name, or unbound; listeners with their backlog and the
// connections of the tree waiting in their accept queue; connections
// between processes of the tree; connections to peers outside it.
//
// # Checkpoint
//
// Dump reads, from the checkpointer's duplicate of the socket: its inode,
// its address (getsockname, raw bytes), its options (SO_PASSCRED,
// SO_PASSSEC, SO_PASSPIDFD, SO_SNDBUF, SO_RCVBUF, SO_RCVLOWAT,
// SO_PEEK_OFF, SO_SNDTIMEO, SO_RCVTIMEO) and its receive queue. The queue
// is read without consuming it: SO_PEEK_OFF is set to 0, every MSG_PEEK
// read moves it past what it returned, and it is put back afterwards.
// Datagram and seqpacket messages are kept one by one, with the sender's
// address (datagrams) and SCM_CREDENTIALS when the socket reads them.
//
// Finish asks sock_diag (NETLINK_SOCK_DIAG, one dump per network namespace
// the sockets live in) for each socket's state, peer inode, accept queue
// (UDIAG_SHOW_ICONS), queue lengths, shutdown state and socket file. A
// peer whose inode is not in the tree is outside it: the connection is
// recorded with the peer's name (getpeername) as image.UnixExternal.
//
// Refused, with the reason, leaving the tree running:
//   - descriptors in flight (SCM_RIGHTS queued and not received);
//   - unread datagrams from a peer outside the tree (they cannot be
//     replayed into a new connection by name);
//   - a connection of the tree waiting in the accept queue of a listener of
//     the tree with data already sent on it (it is queued on the
//     not-yet-accepted socket, which has no descriptor to read it from);
//   - a socket bound to a relative path;
//   - socket types other than stream, datagram and seqpacket.
//
// # Restore
//
// The Opener builds every socket of the tree on the first Open: listeners
// (a stale socket file at their path is removed first: only a socket is
// ever removed), connections (socketpair when neither end has a name,
// else connect + accept, so that the accepted end gets the listener's
// name; datagram pairs by socketpair, then bound), the other sockets,
// datagram queues (sent by the socket of the tree bearing the sender's
// name, or by a temporary socket bound to that name when it is free),
// datagram connections, stream and seqpacket queues (written by the peer),
// the tree's connections waiting in accept queues (in queue order),
// connections to peers outside the tree, shutdown, then options, peek
// offset and O_NONBLOCK (from the image.File flags). A connection whose peer
// was closed gets a stand-in peer that writes the queued data and is
// closed, so the survivor reads the data and then end-of-file, as before.
//
// A connection to a peer outside the tree (ExternalFate) is replaced by the
// socket the caller gives for it (Opener.External: the unit's new journal
// stream), a datagram one is connected again to the peer's name, and any
// other comes back as one whose peer has closed it, the same way as above:
// a server's connection from a client outside the tree (psql on
// PostgreSQL's socket), a client's connection to a server outside it
// (redis, PostgreSQL, D-Bus). Those peers keep state per connection (a
// session, a transaction, an authentication) that a new connection by the
// same name would silently lack; the program's own reconnect logic runs
// instead. Each such connection is named in Opener.Warnings.
//
// # Limitations
//
//   - Zero-length datagrams cannot be told from the end of the queue by
//     MSG_PEEK and are not preserved.
//   - Out-of-band data (MSG_OOB on stream sockets) is not handled.
//   - Connections from outside the tree waiting in a listener's accept
//     queue are dropped (counted in DroppedPending): their clients see the
//     connection reset, as after a reboot.
//   - A socket description also held by a process outside the tree (e.g.
//     a listener of systemd socket activation) is restored as the tree's
//     own copy; the outside holder keeps the old socket.
//   - Credentials of queued messages are restored only if the sender's PID
//     exists at restore (it does when the sender is in the tree); else the
//     message carries the restorer's. A datagram queued on a socket
//     connected by socketpair is re-sent by its peer, so recvfrom reports
//     the peer's name even if another socket had sent it before the pair
//     was connected. SO_ERROR (e.g. ECONNRESET pending) is not preserved,
//     because reading it clears it.
//   - Abstract names are per network namespace: sockets are rebuilt in the
//     restorer's namespace; paths are resolved in the restorer's root.
package unixsock
