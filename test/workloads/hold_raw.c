/* hold_raw.c: a raw socket on fd 40 (see hold_socket.h). */
#define _GNU_SOURCE
#include <netinet/in.h>

#define HOLD_NAME "raw"
#define HOLD_FAMILY AF_INET
#define HOLD_TYPE SOCK_RAW
#define HOLD_PROTOCOL IPPROTO_ICMP
#define HOLD_SETUP() do { } while (0)

#include "hold_socket.h"
