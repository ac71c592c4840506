package image

// Socket is a socket's state: its family, type and protocol, and the
// family-specific part.
type Socket struct {
	Family   int `json:"family"`
	Type     int `json:"type"`
	Protocol int `json:"protocol"`
	// Unix is set for AF_UNIX sockets (see unixsock.go).
	Unix *UnixSocket `json:"unix,omitempty"`
	// Inet is set for AF_INET and AF_INET6 sockets (see inet.go).
	Inet *InetSocket `json:"inet,omitempty"`
	// Filter is the classic BPF program attached with SO_ATTACH_FILTER.
	Filter *SocketFilter `json:"filter,omitempty"`
}

// SocketFilter is a classic BPF socket filter: its program as struct
// sock_filter entries of 8 bytes (code u16, jt u8, jf u8, k u32), and
// whether SO_LOCK_FILTER locks it.
type SocketFilter struct {
	Prog   []byte `json:"prog"`
	Locked bool   `json:"locked,omitempty"`
}
