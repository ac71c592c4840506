package image

// InetSocket is the state of a TCP or UDP socket, IPv4 or IPv6.
type InetSocket struct{}
