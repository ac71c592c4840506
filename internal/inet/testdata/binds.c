/* binds: sockets whose address a plain bind(2) on the new kernel refuses.
 *
 * binds DIR (in namespace A of a lab: 10.77.0.1 is configured, 10.77.0.99 not)
 *
 *   fu  UDP bound to 10.77.0.99:7400 with IP_FREEBIND, which it then
 *       cleared: it keeps the address, without the option
 *   ft  TCP listener on 10.77.0.99:7401, bound the same way
 *   l1, l2  two TCP listeners sharing 10.77.0.1:7402 (SO_REUSEPORT), as
 *       nginx and Go servers run them, made by uid 65534 (setfsuid): after
 *       the restore a third one of that uid joins them, as a server's new
 *       process does when it restarts without a gap
 *   l3  a plain TCP listener on 10.77.0.1:7403
 *   ac  an accepted connection of l3 whose client reset it: in state close,
 *       still bound to the listener's port 7403
 *
 * It checks everything, prints "ready", waits for DIR/go, checks again and
 * accepts one connection on port 7402 (the test dials it from namespace B),
 * and writes "ok" or the first difference to DIR/result.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <unistd.h>

static char dir[4096], failure[1024];
static int fu, ft, l1, l2, l3, ac;

static void fail(const char *fmt, ...)
{
	va_list ap;

	if (failure[0])
		return;
	va_start(ap, fmt);
	vsnprintf(failure, sizeof failure, fmt, ap);
	va_end(ap);
}

static void die(const char *what)
{
	fprintf(stderr, "binds: %s: %s\n", what, strerror(errno));
	exit(1);
}

static struct sockaddr_in a4(const char *ip, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

static int opt(int fd, int level, int o)
{
	int v = -1;
	socklen_t l = sizeof v;

	getsockopt(fd, level, o, &v, &l);
	return v;
}

static void seti(int fd, int level, int o, int v, const char *what)
{
	if (setsockopt(fd, level, o, &v, sizeof v))
		die(what);
}

static int freebound(int type, int port)
{
	int s = socket(AF_INET, type, 0);
	struct sockaddr_in a = a4("10.77.0.99", port);

	seti(s, IPPROTO_IP, IP_FREEBIND, 1, "IP_FREEBIND");
	if (bind(s, (void *)&a, sizeof a))
		die("bind 10.77.0.99");
	seti(s, IPPROTO_IP, IP_FREEBIND, 0, "clear IP_FREEBIND");
	return s;
}

/* reuseport_listener listens on port 7402 with SO_REUSEPORT, as uid
 * 65534: the kernel groups such sockets by the uid that made them. */
static int reuseport_listener(void)
{
	struct sockaddr_in a = a4("10.77.0.1", 7402);
	int s;

	setfsuid(65534);
	s = socket(AF_INET, SOCK_STREAM, 0);
	setfsuid(0);
	if (s < 0)
		return -1;
	seti(s, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
	if (bind(s, (void *)&a, sizeof a) || listen(s, 16)) {
		int e = errno;

		close(s);
		errno = e;
		return -1;
	}
	return s;
}

static void want_name(int fd, const char *what, const char *ip, int port)
{
	struct sockaddr_in a;
	socklen_t l = sizeof a;
	char got[64];

	if (getsockname(fd, (void *)&a, &l)) {
		fail("%s: getsockname: %s", what, strerror(errno));
		return;
	}
	inet_ntop(AF_INET, &a.sin_addr, got, sizeof got);
	if (strcmp(got, ip) || ntohs(a.sin_port) != port)
		fail("%s is bound to %s:%d, want %s:%d", what, got, ntohs(a.sin_port), ip, port);
}

static int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof ti;

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l))
		return -1;
	return ti.tcpi_state;
}

static void check(void)
{
	want_name(fu, "fu", "10.77.0.99", 7400);
	if (opt(fu, IPPROTO_IP, IP_FREEBIND) != 0)
		fail("fu has IP_FREEBIND %d, want 0", opt(fu, IPPROTO_IP, IP_FREEBIND));
	want_name(ft, "ft", "10.77.0.99", 7401);
	if (opt(ft, IPPROTO_IP, IP_FREEBIND) != 0)
		fail("ft has IP_FREEBIND %d, want 0", opt(ft, IPPROTO_IP, IP_FREEBIND));
	if (opt(ft, SOL_SOCKET, SO_ACCEPTCONN) != 1)
		fail("ft does not listen");
	for (int i = 0; i < 2; i++) {
		int l = i ? l2 : l1;

		want_name(l, i ? "l2" : "l1", "10.77.0.1", 7402);
		if (opt(l, SOL_SOCKET, SO_ACCEPTCONN) != 1 || opt(l, SOL_SOCKET, SO_REUSEPORT) != 1)
			fail("%s: listening %d, SO_REUSEPORT %d", i ? "l2" : "l1", opt(l, SOL_SOCKET, SO_ACCEPTCONN),
			     opt(l, SOL_SOCKET, SO_REUSEPORT));
	}
	want_name(l3, "l3", "10.77.0.1", 7403);
	want_name(ac, "ac", "10.77.0.1", 7403);
	if (tcp_state(ac) != TCP_CLOSE)
		fail("ac is in TCP state %d, want close (%d)", tcp_state(ac), TCP_CLOSE);
}

static int exists(const char *name)
{
	char p[8192];

	snprintf(p, sizeof p, "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

static void write_result(void)
{
	char p[8192], q[8192];
	FILE *f;

	snprintf(p, sizeof p, "%s/result.tmp", dir);
	snprintf(q, sizeof q, "%s/result", dir);
	f = fopen(p, "w");
	if (!f)
		die("result");
	fprintf(f, "%s\n", failure[0] ? failure : "ok");
	fclose(f);
	if (rename(p, q))
		die("rename");
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = a4("10.77.0.1", 7403);
	struct linger lg = { 1, 0 };
	struct pollfd pf[2];
	int c;

	if (argc != 2)
		return 2;
	snprintf(dir, sizeof dir, "%s", argv[1]);
	fu = freebound(SOCK_DGRAM, 7400);
	ft = freebound(SOCK_STREAM, 7401);
	if (listen(ft, 4))
		die("listen ft");
	l1 = reuseport_listener();
	l2 = reuseport_listener();
	if (l1 < 0 || l2 < 0)
		die("listen 7402");
	l3 = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(l3, (void *)&a, sizeof a) || listen(l3, 4))
		die("listen 7403");
	/* A connection its client resets. */
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(c, (void *)&a, sizeof a))
		die("connect");
	ac = accept(l3, NULL, NULL);
	if (ac < 0)
		die("accept");
	if (setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg))
		die("SO_LINGER");
	close(c);
	for (int i = 0; i < 500 && tcp_state(ac) != TCP_CLOSE; i++)
		usleep(10000);
	check();
	if (failure[0]) {
		fprintf(stderr, "binds: before the checkpoint: %s\n", failure);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (!exists("go"))
		usleep(10000);
	check();
	if (!failure[0]) {
		int l4 = reuseport_listener();

		if (l4 < 0)
			fail("a new SO_REUSEPORT listener of uid 65534 cannot join the restored ones on port 7402: %s",
			     strerror(errno));
		close(l4);
	}
	if (!failure[0]) {
		/* The test dials port 7402: one of the two listeners accepts. */
		pf[0] = (struct pollfd){ l1, POLLIN };
		pf[1] = (struct pollfd){ l2, POLLIN };
		if (poll(pf, 2, 20000) <= 0)
			fail("no connection arrived on port 7402");
		else if ((c = accept(pf[0].revents ? l1 : l2, NULL, NULL)) < 0 || write(c, "hi\n", 3) != 3)
			fail("accept on port 7402: %s", strerror(errno));
	}
	write_result();
	while (!exists("stop"))
		usleep(10000);
	return 0;
}
