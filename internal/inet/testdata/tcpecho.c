/* tcpecho: the checkpointed side of the inet round-trip tests.
 *
 * tcpecho FAMILY PORT MODE DIR
 *   FAMILY 4 or 6; listens on the wildcard address, prints "ready".
 *   Each accepted connection is served by a forked child:
 *   echo      echo everything, then shut down on EOF
 *   closewait echo until EOF, wait for DIR/go, write "bye", close
 *   finwait   write "hello", shut down writing, read a stream of
 *             little-endian uint32 counters until EOF, write the result
 *             ("ok N" or "bad N") to DIR/result
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int writeall(int fd, const char *p, size_t n) {
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w <= 0) return -1;
		p += w, n -= w;
	}
	return 0;
}

static void opts(int c) {
	int one = 1, idle = 30, ut = 60000, sb = 65536;
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(c, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	setsockopt(c, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof ut);
	setsockopt(c, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
}

static void serve(int c, const char *mode, const char *dir) {
	static char buf[65536];
	char path[4096];
	ssize_t n;
	if (!strcmp(mode, "finwait")) {
		uint64_t total = 0;
		int ok = 1;
		writeall(c, "hello\n", 6);
		shutdown(c, SHUT_WR);
		while ((n = read(c, buf, sizeof buf)) > 0) {
			for (ssize_t i = 0; i < n; i++, total++) {
				uint32_t v = (uint32_t)(total / 4);
				if ((unsigned char)buf[i] != (unsigned char)(v >> (8 * (total % 4)))) ok = 0;
			}
		}
		snprintf(path, sizeof path, "%s/result", dir);
		FILE *f = fopen(path, "w");
		fprintf(f, "%s %llu\n", ok && n == 0 ? "ok" : "bad", (unsigned long long)total);
		fclose(f);
		exit(0);
	}
	while ((n = read(c, buf, sizeof buf)) > 0)
		if (writeall(c, buf, n)) exit(2);
	if (!strcmp(mode, "closewait")) {
		snprintf(path, sizeof path, "%s/go", dir);
		while (access(path, F_OK)) usleep(10000);
		writeall(c, "bye\n", 4);
	}
	close(c);
	exit(0);
}

int main(int argc, char **argv) {
	if (argc != 5) return 1;
	int fam = atoi(argv[1]) == 6 ? AF_INET6 : AF_INET, one = 1;
	int l = socket(fam, SOCK_STREAM, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
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
	if (bind(l, (void *)&ss, len) || listen(l, 16)) { perror("listen"); return 1; }
	signal(SIGCHLD, SIG_IGN);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int c = accept(l, NULL, NULL);
		if (c < 0) continue;
		opts(c);
		if (fork() == 0) {
			close(l);
			serve(c, argv[3], argv[4]);
		}
		close(c);
	}
}
