package unixsock

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
		if pd, ok := all[d.peer]; ok && len(pd.name) > 0 {
			p.Name = string(pd.name)
			if pd.name[0] == 0 {
				p.Name = "@" + string(pd.name[1:])
			}
		}
		out[ino] = p
	}
	return out, nil
}
