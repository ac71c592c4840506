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
}
