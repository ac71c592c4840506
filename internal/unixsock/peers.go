package unixsock

import "bytes"

// Peer is what sock_diag tells about a unix socket's other end.
type Peer struct {
	// Inode is the peer socket's inode (0 when unconnected).
	Inode uint64
	// Name is the address the peer is bound to ("" when unbound; abstract
	// names start with '@').
	Name string
	// Type is the socket's type (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET).
	Type int
}

// Peers lists, for every unix socket of the caller's network namespace, its
// peer, indexed by socket inode.
func Peers() (map[uint64]Peer, error) {
	all, err := diagDump(-1)
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]Peer, len(all))
	for ino, d := range all {
		p := Peer{Inode: d.peer, Type: d.typ}
		if pd, ok := all[d.peer]; ok {
			p.Name = diagName(pd.name)
		}
		out[ino] = p
	}
	return out, nil
}

// diagName is a socket's name as sock_diag gives it, written as Peer.Name
// says. A path comes with the NUL its binder counted in the address length
// (journald's /run/systemd/journal/stdout does), which is no part of it.
func diagName(b []byte) string {
	switch {
	case len(b) == 0:
		return ""
	case b[0] == 0:
		return "@" + string(b[1:])
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
