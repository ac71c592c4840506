/* hold_icmp.c: an ICMP datagram ("ping") socket on fd 40 (see hold_socket.h).
 * Ping sockets need net.ipv4.ping_group_range to include the process's
 * group: the workload takes a network namespace of its own and sets it. */
#define _GNU_SOURCE
#include <netinet/in.h>

#define HOLD_NAME "ICMP (ping)"
#define HOLD_FAMILY AF_INET
#define HOLD_TYPE SOCK_DGRAM
#define HOLD_PROTOCOL IPPROTO_ICMP
#define HOLD_SETUP()                                                                                \
	do {                                                                                        \
		int f_;                                                                             \
		WL_CHECK(unshare(CLONE_NEWNET) == 0, "unshare: %s", strerror(errno));               \
		f_ = open("/proc/sys/net/ipv4/ping_group_range", O_WRONLY | O_CLOEXEC);            \
		WL_CHECK(f_ >= 0 && write(f_, "0 0", 3) == 3, "ping_group_range: %s", strerror(errno)); \
		close(f_);                                                                          \
	} while (0)

#include "hold_socket.h"
