/* hold_netlink.c: a NETLINK_ROUTE socket on fd 40 (see hold_socket.h). */
#define _GNU_SOURCE
#include <linux/netlink.h>

#define HOLD_NAME "NETLINK_ROUTE"
#define HOLD_FAMILY AF_NETLINK
#define HOLD_TYPE SOCK_RAW
#define HOLD_PROTOCOL NETLINK_ROUTE
#define HOLD_SETUP() do { } while (0)

#include "hold_socket.h"
