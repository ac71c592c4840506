/* hold_packet.c: a AF_PACKET socket on fd 40 (see hold_socket.h). */
#define _GNU_SOURCE
#include <sys/socket.h>

#define HOLD_NAME "AF_PACKET"
#define HOLD_FAMILY AF_PACKET
#define HOLD_TYPE SOCK_DGRAM
#define HOLD_PROTOCOL 0
#define HOLD_SETUP() do { } while (0)

#include "hold_socket.h"
