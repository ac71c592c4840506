/* hold_udplite.c: a UDP-Lite socket on fd 40 (see hold_socket.h). */
#define _GNU_SOURCE
#include <netinet/in.h>

#define HOLD_NAME "UDP-Lite"
#define HOLD_FAMILY AF_INET
#define HOLD_TYPE SOCK_DGRAM
#define HOLD_PROTOCOL IPPROTO_UDPLITE
#define HOLD_SETUP() do { } while (0)

#include "hold_socket.h"
