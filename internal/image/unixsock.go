package image

// UnixSocket is the state of an AF_UNIX socket.
type UnixSocket struct {
	Inode uint64 `json:"inode"`
}
