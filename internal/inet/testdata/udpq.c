/* udpq: a UDP socket whose datagrams stay queued across the checkpoint.
 *
 * udpq FAMILY PORT DIR: binds the wildcard address, prints "ready", waits
 * for DIR/go, then reads datagrams and echoes each back to its sender
 * until it reads "end".
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc != 4) return 1;
	int fam = atoi(argv[1]) == 6 ? AF_INET6 : AF_INET;
	int s = socket(fam, SOCK_DGRAM, 0);
	struct sockaddr_storage ss = {0};
	socklen_t len;
	if (fam == AF_INET) {
		struct sockaddr_in *a = (void *)&ss;
		a->sin_family = AF_INET, a->sin_port = htons(atoi(argv[2]));
		len = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (void *)&ss;
		a->sin6_family = AF_INET6, a->sin6_port = htons(atoi(argv[2]));
		len = sizeof *a;
	}
	int rb = 1 << 20;
	setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb);
	if (bind(s, (void *)&ss, len)) { perror("bind"); return 1; }
	printf("ready\n");
	fflush(stdout);
	char path[4096], buf[65536];
	snprintf(path, sizeof path, "%s/go", argv[3]);
	while (access(path, F_OK)) usleep(10000);
	for (;;) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof from;
		ssize_t n = recvfrom(s, buf, sizeof buf, 0, (void *)&from, &fl);
		if (n < 0) return 2;
		sendto(s, buf, n, 0, (void *)&from, fl);
		if (n == 3 && !memcmp(buf, "end", 3)) return 0;
	}
}
