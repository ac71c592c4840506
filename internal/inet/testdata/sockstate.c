/* sockstate: socket state that getsockopt, SO_GET_FILTER and the socket's
 * behaviour show, across a checkpoint.
 *
 * sockstate DIR (in namespace A of a lab, address 10.77.0.1, fd77::1):
 *
 *   u4  UDP, bound to 10.77.0.1:7300 on device va: SO_DONTROUTE, SO_NO_CHECK,
 *       IP_PKTINFO, IP_MULTICAST_LOOP 0, IP_MULTICAST_TTL 7, IP_RECVTTL,
 *       SO_PRIORITY 3, SO_RCVTIMEO 1.5 s, SO_TIMESTAMPNS, SO_BUF_LOCK 2
 *       (receive buffer locked without a size), SO_PEEK_OFF 0, UDP_GRO, and
 *       a locked classic BPF filter that passes datagrams starting with 'A'
 *   uc  UDP connected to 10.77.0.2:7301, shutdown(SHUT_WR): send fails with
 *       EPIPE
 *   u6  UDP over IPv6, bound to [fd77::1]:7302: IPV6_RECVHOPLIMIT,
 *       IPV6_MULTICAST_HOPS 5, IPV6_MULTICAST_LOOP 0, IPV6_AUTOFLOWLABEL 0,
 *       IPV6_RECVERR, and IP_TOS 0x20 (for IPv4-mapped traffic)
 *   tl  TCP listener on 10.77.0.1:7303: TCP_CONGESTION reno, TCP_FASTOPEN 5,
 *       TCP_WINDOW_CLAMP 40000, TCP_MAXSEG 1200, SO_DONTROUTE, SO_BUF_LOCK 3,
 *       and a classic filter that passes everything
 *   ub  UDP never bound (in no UDP table, so sock_diag does not list it)
 *   tc  a client connected to tl, and te, its accepted end: te has
 *       TCP_CONGESTION reno, IP_TOS 0x10, SO_NO_CHECK, TCP_SYNCNT 3,
 *       TCP_LINGER2 7 and shutdown(SHUT_RD): a read returns 0 at once while
 *       tc's bytes still flow the other way
 *
 * It checks everything once, prints "ready", waits for DIR/go and checks
 * everything again; the result ("ok" or the first difference) goes to
 * DIR/result. Then it waits for DIR/stop.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

static char dir[4096];
static char failure[1024];
static int u4, uc, u6, tl, tc, te, probe, ub;

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
	fprintf(stderr, "sockstate: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void seti(int fd, int level, int opt, int v, const char *name)
{
	if (setsockopt(fd, level, opt, &v, sizeof v))
		die(name);
}

static void want(int fd, const char *sock, int level, int opt, int v, const char *name)
{
	int got = -12345;
	socklen_t l = sizeof got;

	if (getsockopt(fd, level, opt, &got, &l))
		fail("%s %s: %s", sock, name, strerror(errno));
	else if (got != v)
		fail("%s %s is %d, want %d", sock, name, got, v);
}

static void want_name(int fd, const char *sock, int level, int opt, const char *v, const char *name)
{
	char got[64] = "";
	socklen_t l = sizeof got;

	if (getsockopt(fd, level, opt, got, &l))
		fail("%s %s: %s", sock, name, strerror(errno));
	else if (strcmp(got, v))
		fail("%s %s is %s, want %s", sock, name, got, v);
}

/* The filters: u4's passes datagrams whose first byte is 'A' (the UDP
 * payload starts after the 8-byte header); tl's passes everything. */
static struct sock_filter only_a[] = {
	BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 8),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 'A', 0, 1),
	BPF_STMT(BPF_RET | BPF_K, 0xffff),
	BPF_STMT(BPF_RET | BPF_K, 0),
};
static struct sock_filter pass_all[] = {
	BPF_STMT(BPF_RET | BPF_K, 0x40000),
};

static void attach(int fd, struct sock_filter *f, int n, int lock)
{
	struct sock_fprog p = { (unsigned short)n, f };

	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &p, sizeof p))
		die("SO_ATTACH_FILTER");
	if (lock)
		seti(fd, SOL_SOCKET, SO_LOCK_FILTER, 1, "SO_LOCK_FILTER");
}

static void want_filter(int fd, const char *sock, struct sock_filter *f, int n, int lock)
{
	struct sock_filter got[16];
	socklen_t l = 16; /* in instructions */

	if (getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, got, &l))
		fail("%s SO_GET_FILTER: %s", sock, strerror(errno));
	else if ((int)l != n || memcmp(got, f, n * sizeof *f))
		fail("%s: its socket filter has %d instructions or differs, want the %d attached", sock, (int)l, n);
	want(fd, sock, SOL_SOCKET, SO_LOCK_FILTER, lock, "SO_LOCK_FILTER");
}

static struct sockaddr_in a4(const char *ip, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

static void setup(void)
{
	struct sockaddr_in a;
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(7302) };
	struct timeval tv = { 1, 500000 };
	socklen_t l;

	u4 = socket(AF_INET, SOCK_DGRAM, 0);
	if (setsockopt(u4, SOL_SOCKET, SO_BINDTODEVICE, "va", 3))
		die("SO_BINDTODEVICE");
	a = a4("10.77.0.1", 7300);
	if (bind(u4, (void *)&a, sizeof a))
		die("bind u4");
	seti(u4, SOL_SOCKET, SO_DONTROUTE, 1, "SO_DONTROUTE");
	seti(u4, SOL_SOCKET, SO_NO_CHECK, 1, "SO_NO_CHECK");
	seti(u4, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
	seti(u4, IPPROTO_IP, IP_MULTICAST_LOOP, 0, "IP_MULTICAST_LOOP");
	seti(u4, IPPROTO_IP, IP_MULTICAST_TTL, 7, "IP_MULTICAST_TTL");
	seti(u4, IPPROTO_IP, IP_RECVTTL, 1, "IP_RECVTTL");
	seti(u4, SOL_SOCKET, SO_PRIORITY, 3, "SO_PRIORITY");
	seti(u4, SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS");
	seti(u4, SOL_SOCKET, SO_BUF_LOCK, 2, "SO_BUF_LOCK");
	seti(u4, SOL_SOCKET, SO_PEEK_OFF, 0, "SO_PEEK_OFF");
	seti(u4, IPPROTO_UDP, UDP_GRO, 1, "UDP_GRO");
	if (setsockopt(u4, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv))
		die("SO_RCVTIMEO");
	attach(u4, only_a, 4, 1);

	uc = socket(AF_INET, SOCK_DGRAM, 0);
	a = a4("10.77.0.2", 7301);
	if (connect(uc, (void *)&a, sizeof a))
		die("connect uc");
	if (shutdown(uc, SHUT_WR))
		die("shutdown uc");

	u6 = socket(AF_INET6, SOCK_DGRAM, 0);
	inet_pton(AF_INET6, "fd77::1", &a6.sin6_addr);
	if (bind(u6, (void *)&a6, sizeof a6))
		die("bind u6");
	seti(u6, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1, "IPV6_RECVHOPLIMIT");
	seti(u6, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 5, "IPV6_MULTICAST_HOPS");
	seti(u6, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0, "IPV6_MULTICAST_LOOP");
	seti(u6, IPPROTO_IPV6, IPV6_AUTOFLOWLABEL, 0, "IPV6_AUTOFLOWLABEL");
	seti(u6, IPPROTO_IPV6, IPV6_RECVERR, 1, "IPV6_RECVERR");
	seti(u6, IPPROTO_IP, IP_TOS, 0x20, "IP_TOS");

	tl = socket(AF_INET, SOCK_STREAM, 0);
	seti(tl, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	if (setsockopt(tl, IPPROTO_TCP, TCP_CONGESTION, "reno", 4))
		die("TCP_CONGESTION");
	seti(tl, IPPROTO_TCP, TCP_WINDOW_CLAMP, 40000, "TCP_WINDOW_CLAMP");
	seti(tl, IPPROTO_TCP, TCP_MAXSEG, 1200, "TCP_MAXSEG");
	seti(tl, SOL_SOCKET, SO_BUF_LOCK, 3, "SO_BUF_LOCK");
	a = a4("10.77.0.1", 7303);
	if (bind(tl, (void *)&a, sizeof a) || listen(tl, 8))
		die("listen tl");
	seti(tl, IPPROTO_TCP, TCP_FASTOPEN, 5, "TCP_FASTOPEN");
	seti(tl, SOL_SOCKET, SO_DONTROUTE, 1, "SO_DONTROUTE");
	attach(tl, pass_all, 1, 0);

	tc = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(tc, (void *)&a, sizeof a))
		die("connect tc");
	l = sizeof a;
	te = accept(tl, (void *)&a, &l);
	if (te < 0)
		die("accept");
	if (setsockopt(te, IPPROTO_TCP, TCP_CONGESTION, "reno", 4))
		die("TCP_CONGESTION te");
	seti(te, IPPROTO_IP, IP_TOS, 0x10, "IP_TOS");
	seti(te, SOL_SOCKET, SO_NO_CHECK, 1, "SO_NO_CHECK");
	seti(te, IPPROTO_TCP, TCP_SYNCNT, 3, "TCP_SYNCNT");
	seti(te, IPPROTO_TCP, TCP_LINGER2, 7, "TCP_LINGER2");
	if (shutdown(te, SHUT_RD))
		die("shutdown te");

	probe = socket(AF_INET, SOCK_DGRAM, 0);
	ub = socket(AF_INET, SOCK_DGRAM, 0);
	if (ub < 0)
		die("socket ub");
}

static void check(void)
{
	struct timeval tv;
	socklen_t l = sizeof tv;
	char buf[64];
	ssize_t n;
	struct sockaddr_in to = a4("10.77.0.1", 7300);

	want_name(u4, "u4", SOL_SOCKET, SO_BINDTODEVICE, "va", "SO_BINDTODEVICE");
	want(u4, "u4", SOL_SOCKET, SO_DONTROUTE, 1, "SO_DONTROUTE");
	want(u4, "u4", SOL_SOCKET, SO_NO_CHECK, 1, "SO_NO_CHECK");
	want(u4, "u4", IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
	want(u4, "u4", IPPROTO_IP, IP_MULTICAST_LOOP, 0, "IP_MULTICAST_LOOP");
	want(u4, "u4", IPPROTO_IP, IP_MULTICAST_TTL, 7, "IP_MULTICAST_TTL");
	want(u4, "u4", IPPROTO_IP, IP_RECVTTL, 1, "IP_RECVTTL");
	want(u4, "u4", SOL_SOCKET, SO_PRIORITY, 3, "SO_PRIORITY");
	want(u4, "u4", SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS");
	want(u4, "u4", SOL_SOCKET, SO_BUF_LOCK, 2, "SO_BUF_LOCK");
	want(u4, "u4", SOL_SOCKET, SO_PEEK_OFF, 0, "SO_PEEK_OFF");
	want(u4, "u4", IPPROTO_UDP, UDP_GRO, 1, "UDP_GRO");
	if (getsockopt(u4, SOL_SOCKET, SO_RCVTIMEO, &tv, &l) || tv.tv_sec != 1 || tv.tv_usec != 500000)
		fail("u4 SO_RCVTIMEO is %ld.%06ld, want 1.5 s", (long)tv.tv_sec, (long)tv.tv_usec);
	want_filter(u4, "u4", only_a, 4, 1);
	/* The filter at work: B is dropped, A arrives. */
	sendto(probe, "B-dropped", 9, 0, (void *)&to, sizeof to);
	sendto(probe, "A-passes", 8, 0, (void *)&to, sizeof to);
	n = recv(u4, buf, sizeof buf, 0);
	if (n != 8 || memcmp(buf, "A-passes", 8))
		fail("u4 received %zd bytes (%.*s), want the datagram A-passes only", n, n > 0 ? (int)n : 0, buf);
	n = recv(u4, buf, sizeof buf, MSG_DONTWAIT);
	if (n >= 0 || errno != EAGAIN)
		fail("u4 received a second datagram (%zd bytes): its filter let it through", n);

	if (send(uc, "x", 1, MSG_NOSIGNAL) >= 0 || errno != EPIPE)
		fail("uc: send after shutdown(SHUT_WR) gave %s, want EPIPE", strerror(errno));

	want(u6, "u6", IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1, "IPV6_RECVHOPLIMIT");
	want(u6, "u6", IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 5, "IPV6_MULTICAST_HOPS");
	want(u6, "u6", IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0, "IPV6_MULTICAST_LOOP");
	want(u6, "u6", IPPROTO_IPV6, IPV6_AUTOFLOWLABEL, 0, "IPV6_AUTOFLOWLABEL");
	want(u6, "u6", IPPROTO_IPV6, IPV6_RECVERR, 1, "IPV6_RECVERR");
	want(u6, "u6", IPPROTO_IP, IP_TOS, 0x20, "IP_TOS");

	want_name(tl, "tl", IPPROTO_TCP, TCP_CONGESTION, "reno", "TCP_CONGESTION");
	want(tl, "tl", IPPROTO_TCP, TCP_FASTOPEN, 5, "TCP_FASTOPEN");
	want(tl, "tl", IPPROTO_TCP, TCP_WINDOW_CLAMP, 40000, "TCP_WINDOW_CLAMP");
	want(tl, "tl", IPPROTO_TCP, TCP_MAXSEG, 1200, "TCP_MAXSEG");
	want(tl, "tl", SOL_SOCKET, SO_DONTROUTE, 1, "SO_DONTROUTE");
	want(tl, "tl", SOL_SOCKET, SO_BUF_LOCK, 3, "SO_BUF_LOCK");
	want_filter(tl, "tl", pass_all, 1, 0);

	want_name(te, "te", IPPROTO_TCP, TCP_CONGESTION, "reno", "TCP_CONGESTION");
	want(te, "te", IPPROTO_IP, IP_TOS, 0x10, "IP_TOS");
	want(te, "te", SOL_SOCKET, SO_NO_CHECK, 1, "SO_NO_CHECK");
	want(te, "te", IPPROTO_TCP, TCP_SYNCNT, 3, "TCP_SYNCNT");
	want(te, "te", IPPROTO_TCP, TCP_LINGER2, 7, "TCP_LINGER2");
	n = recv(te, buf, sizeof buf, MSG_DONTWAIT);
	if (n != 0)
		fail("te: a read after shutdown(SHUT_RD) gave %zd (%s), want 0 (end of file)", n, n < 0 ? strerror(errno) : "data");
	n = recv(ub, buf, sizeof buf, MSG_DONTWAIT);
	if (n >= 0 || errno != EAGAIN)
		fail("ub: a read gave %zd (%s), want EAGAIN", n, n < 0 ? strerror(errno) : "data");
	if (send(te, "pong", 4, MSG_NOSIGNAL) != 4 || recv(tc, buf, 4, MSG_WAITALL) != 4 || memcmp(buf, "pong", 4))
		fail("te -> tc: the other direction no longer carries data");
}

static int exists(const char *name)
{
	char p[8192];

	snprintf(p, sizeof p, "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

int main(int argc, char **argv)
{
	char p[8192], q[8192];
	FILE *f;

	if (argc != 2)
		return 2;
	snprintf(dir, sizeof dir, "%s", argv[1]);
	setup();
	check();
	if (failure[0]) {
		fprintf(stderr, "sockstate: before the checkpoint: %s\n", failure);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (!exists("go"))
		usleep(10000);
	check();
	snprintf(p, sizeof p, "%s/result.tmp", dir);
	f = fopen(p, "w");
	if (!f)
		die("result");
	fprintf(f, "%s\n", failure[0] ? failure : "ok");
	fclose(f);
	snprintf(q, sizeof q, "%s/result", dir);
	if (rename(p, q))
		die("rename result");
	while (!exists("stop"))
		usleep(10000);
	return 0;
}
