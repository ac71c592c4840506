/*
 * unixwl: AF_UNIX workloads for the unixsock round-trip tests.
 *
 *   unixwl MODE DIR [ARGS...]
 *
 * Each mode builds its sockets, leaves data queued in them (unread), and
 * prints "READY pids=P1,P2,...". It then waits for DIR/go (the harness
 * creates it after checkpoint and restore, or at once when run alone),
 * reads every queued byte and checks it byte for byte, keeps using the
 * sockets, and prints "VERIFIED". On DIR/stop it prints "DONE ok" and exits
 * 0. Any mismatch prints "FAIL ..." and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[4096];

static void say(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf - 2, fmt, ap);
	va_end(ap);
	n = strlen(buf);
	buf[n++] = '\n';
	if (write(1, buf, n) < 0)
		_exit(3);
}

#define CHECK(c, ...)                                              \
	do {                                                       \
		if (!(c)) {                                        \
			char m_[1024];                             \
			snprintf(m_, sizeof m_, __VA_ARGS__);      \
			say("FAIL [pid %d] %s (errno %s)", getpid(), m_, strerror(errno)); \
			_exit(1);                                  \
		}                                                  \
	} while (0)

static int exists(const char *name)
{
	char p[4200];
	struct stat st;

	snprintf(p, sizeof p, "%s/%s", dir, name);
	return stat(p, &st) == 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void wait_file(const char *name)
{
	while (!exists(name))
		sleep_ms(20);
}

static uint8_t pat(int tag, size_t i)
{
	return (uint8_t)(i * 131 + (size_t)tag * 7 + (i >> 8) + (i >> 16));
}

static void fill(uint8_t *b, size_t n, int tag)
{
	for (size_t i = 0; i < n; i++)
		b[i] = pat(tag, i);
}

/* wait_io waits until fd is readable (or writable) when it is non-blocking. */
static void wait_io(int fd, short ev)
{
	struct pollfd p = { fd, ev, 0 };

	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
}

static void write_all(int fd, const void *b, size_t n)
{
	const char *p = b;

	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
			wait_io(fd, POLLOUT);
			continue;
		}
		CHECK(w > 0, "write %zu bytes on fd %d", n, fd);
		p += w;
		n -= (size_t)w;
	}
}

static void read_all(int fd, void *b, size_t n)
{
	char *p = b;

	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
			wait_io(fd, POLLIN);
			continue;
		}
		CHECK(r > 0, "read on fd %d: %zd, %zu bytes missing", fd, r, n);
		p += r;
		n -= (size_t)r;
	}
}

/* write_pattern writes n bytes of pattern tag in writes of varying sizes. */
static void write_pattern(int fd, size_t n, int tag)
{
	uint8_t *b = malloc(n);
	size_t off = 0, k = 1;

	fill(b, n, tag);
	while (off < n) {
		size_t c = (k * 977) % 4000 + 1;
		if (c > n - off)
			c = n - off;
		write_all(fd, b + off, c);
		off += c;
		k++;
	}
	free(b);
}

static void check_pattern(int fd, size_t n, int tag, const char *what)
{
	uint8_t *b = malloc(n);

	read_all(fd, b, n);
	for (size_t i = 0; i < n; i++)
		CHECK(b[i] == pat(tag, i), "%s: byte %zu of %zu is %#x, want %#x", what, i, n, b[i], pat(tag, i));
	free(b);
}

static void check_eof(int fd, const char *what)
{
	char c;
	ssize_t r;

	for (;;) {
		r = read(fd, &c, 1);
		if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
			wait_io(fd, POLLIN);
			continue;
		}
		break;
	}
	CHECK(r == 0, "%s: expected end of stream, read returned %zd", what, r);
}

/* pingpong exchanges n sequence numbers; the initiator sends even ones. */
static void pingpong(int fd, int initiator, int n)
{
	for (uint64_t i = 0; i < (uint64_t)n; i++) {
		uint64_t v;
		if (initiator) {
			v = 2 * i;
			write_all(fd, &v, sizeof v);
			read_all(fd, &v, sizeof v);
			CHECK(v == 2 * i + 1, "ping-pong %llu: got %llu", (unsigned long long)i, (unsigned long long)v);
		} else {
			read_all(fd, &v, sizeof v);
			CHECK(v == 2 * i, "ping-pong %llu: got %llu", (unsigned long long)i, (unsigned long long)v);
			v++;
			write_all(fd, &v, sizeof v);
		}
	}
}

static socklen_t mkaddr(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	if (name[0] == '@') {
		memcpy(a->sun_path + 1, name + 1, strlen(name) - 1);
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
	}
	strcpy(a->sun_path, name);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name) + 1);
}

/* same_name compares an address returned by the kernel with name. */
static int same_name(struct sockaddr_un *a, socklen_t l, const char *name)
{
	struct sockaddr_un w;
	socklen_t wl = mkaddr(&w, name);

	if (name[0] == 0)
		return l <= offsetof(struct sockaddr_un, sun_path);
	if (name[0] != '@') /* paths: the kernel may report a longer length */
		return l >= wl - 1 && strcmp(a->sun_path, w.sun_path) == 0;
	return l == wl && memcmp(a->sun_path, w.sun_path, wl - offsetof(struct sockaddr_un, sun_path)) == 0;
}

static void check_sockname(int fd, int peer, const char *name, const char *what)
{
	struct sockaddr_un a;
	socklen_t l = sizeof a;

	CHECK((peer ? getpeername(fd, (void *)&a, &l) : getsockname(fd, (void *)&a, &l)) == 0, "%s: getsockname", what);
	CHECK(same_name(&a, l, name), "%s: address is not %s", what, name);
}

static int sock_bound(int type, const char *name)
{
	struct sockaddr_un a;
	socklen_t l = mkaddr(&a, name);
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0, "socket");
	CHECK(bind(fd, (void *)&a, l) == 0, "bind %s", name);
	return fd;
}

static int sock_connect(int type, const char *name)
{
	struct sockaddr_un a;
	socklen_t l = mkaddr(&a, name);
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0, "socket");
	CHECK(connect(fd, (void *)&a, l) == 0, "connect %s", name);
	return fd;
}

static int getopt_int(int fd, int opt)
{
	int v = -1;
	socklen_t l = sizeof v;

	CHECK(getsockopt(fd, SOL_SOCKET, opt, &v, &l) == 0, "getsockopt %d", opt);
	return v;
}

/* ready is the child's "my state is built" signal to its parent. */
static int ready_pipe[2];

static void child_ready(void)
{
	write_all(ready_pipe[1], "r", 1);
}

static void parent_wait_ready(void)
{
	char c;
	read_all(ready_pipe[0], &c, 1);
}

static void finish(pid_t child)
{
	if (child > 0) {
		int st;
		CHECK(waitpid(child, &st, 0) == child, "waitpid %d", child);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d ended with status %#x", child, st);
	}
	say("VERIFIED");
	wait_file("stop");
	say("DONE ok");
	exit(0);
}

/* ---- stream: a socketpair with data both ways, options, a shut-down pair ---- */

#define S_A 100000
#define S_B 50000
#define S_TAIL 777

static void mode_stream(void)
{
	int sv[2], sp[2], gone[2];
	pid_t child;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0, "socketpair");
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, gone) == 0, "socketpair");
	int snd = 300000, lowat = 3;
	CHECK(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd) == 0, "SO_SNDBUF");
	CHECK(setsockopt(sv[0], SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) == 0, "SO_RCVLOWAT");
	CHECK(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK");
	int want_snd = getopt_int(sv[0], SO_SNDBUF);
	child = fork();
	CHECK(child >= 0, "fork");
	if (child == 0) {
		close(sv[0]);
		close(sp[0]);
		close(gone[0]);
		write_pattern(sv[1], S_B, 2);
		child_ready();
		wait_file("go");
		check_pattern(sv[1], S_A, 1, "child: data queued by the parent");
		check_pattern(sp[1], S_TAIL, 3, "child: data before shutdown");
		check_eof(sp[1], "child: shut-down socket");
		check_pattern(gone[1], 555, 4, "child: data written before the peer closed");
		check_eof(gone[1], "child: socket whose peer closed");
		pingpong(sv[1], 0, 500);
		_exit(0);
	}
	close(sv[1]);
	close(sp[1]);
	close(gone[1]);
	write_pattern(gone[0], 555, 4);
	close(gone[0]); /* the child's end keeps the data, then sees EOF */
	write_pattern(sv[0], S_A, 1);
	write_pattern(sp[0], S_TAIL, 3);
	CHECK(shutdown(sp[0], SHUT_WR) == 0, "shutdown");
	parent_wait_ready();
	say("READY pids=%d,%d", getpid(), child);
	wait_file("go");
	CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK, "O_NONBLOCK was lost");
	CHECK(getopt_int(sv[0], SO_SNDBUF) == want_snd, "SO_SNDBUF is %d, was %d", getopt_int(sv[0], SO_SNDBUF), want_snd);
	CHECK(getopt_int(sv[0], SO_RCVLOWAT) == lowat, "SO_RCVLOWAT is %d", getopt_int(sv[0], SO_RCVLOWAT));
	check_pattern(sv[0], S_B, 2, "parent: data queued by the child");
	pingpong(sv[0], 1, 500);
	CHECK(send(sp[0], "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "send after SHUT_WR did not fail with EPIPE");
	finish(child);
}

/* ---- message pairs (seqpacket, dgram): boundaries and credentials ---- */

static size_t msize(int tag, int i)
{
	return (size_t)((i * 37 + tag * 11) % 3000) + 1;
}

static void send_msgs(int fd, int tag, int n)
{
	uint8_t b[4096];
	for (int i = 0; i < n; i++) {
		size_t l = msize(tag, i);
		fill(b, l, tag * 100 + i);
		CHECK(send(fd, b, l, 0) == (ssize_t)l, "send message %d", i);
	}
}

static void check_msgs(int fd, int tag, int n, pid_t sender, const char *what)
{
	uint8_t b[8192];
	for (int i = 0; i < n; i++) {
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(struct ucred))];
		} cm;
		struct iovec iov = { b, sizeof b };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof cm.buf };
		ssize_t r = recvmsg(fd, &msg, 0);
		CHECK(r >= 0, "%s: recvmsg %d", what, i);
		CHECK((size_t)r == msize(tag, i), "%s: message %d has %zd bytes, want %zu (boundaries lost)", what, i, r, msize(tag, i));
		for (ssize_t k = 0; k < r; k++)
			CHECK(b[k] == pat(tag * 100 + i, (size_t)k), "%s: message %d byte %zd differs", what, i, k);
		if (sender > 0) {
			struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
			CHECK(c && c->cmsg_type == SCM_CREDENTIALS, "%s: message %d has no credentials", what, i);
			struct ucred u;
			memcpy(&u, CMSG_DATA(c), sizeof u);
			CHECK(u.pid == sender, "%s: message %d credentials say pid %d, sender is %d", what, i, u.pid, sender);
		}
	}
}

static void mode_msgpair(int type)
{
	int sv[2], on = 1;
	pid_t child;

	CHECK(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	CHECK(setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) == 0, "SO_PASSCRED");
	child = fork();
	CHECK(child >= 0, "fork");
	if (child == 0) {
		close(sv[0]);
		send_msgs(sv[1], 5, 9);
		child_ready();
		wait_file("go");
		check_msgs(sv[1], 6, 7, 0, "child");
		pingpong(sv[1], 0, 300);
		_exit(0);
	}
	close(sv[1]);
	send_msgs(sv[0], 6, 7);
	parent_wait_ready();
	say("READY pids=%d,%d", getpid(), child);
	wait_file("go");
	CHECK(getopt_int(sv[0], SO_PASSCRED) == 1, "SO_PASSCRED was lost");
	check_msgs(sv[0], 5, 9, child, "parent");
	pingpong(sv[0], 1, 300);
	finish(child);
}

/* ---- named datagram sockets: path server, abstract client, connected client ---- */

static void recv_from(int fd, int tag, int i, const char *from, const char *what)
{
	uint8_t b[8192];
	struct sockaddr_un a;
	socklen_t l = sizeof a;
	ssize_t r = recvfrom(fd, b, sizeof b, 0, (void *)&a, &l);

	CHECK(r >= 0, "%s: recvfrom %d", what, i);
	CHECK((size_t)r == msize(tag, i), "%s: datagram %d has %zd bytes, want %zu", what, i, r, msize(tag, i));
	for (ssize_t k = 0; k < r; k++)
		CHECK(b[k] == pat(tag * 100 + i, (size_t)k), "%s: datagram %d byte %zd differs", what, i, k);
	CHECK(same_name(&a, l, from), "%s: datagram %d does not come from \"%s\"", what, i, from);
}

static void sendto_name(int fd, int tag, int i, const char *to)
{
	uint8_t b[4096];
	struct sockaddr_un a;
	socklen_t l = mkaddr(&a, to);
	size_t n = msize(tag, i);

	fill(b, n, tag * 100 + i);
	CHECK(sendto(fd, b, n, 0, (void *)&a, l) == (ssize_t)n, "sendto %s", to);
}

static void mode_dgram(const char *path, const char *abs)
{
	int s = sock_bound(SOCK_DGRAM, path);
	pid_t child;

	child = fork();
	CHECK(child >= 0, "fork");
	if (child == 0) {
		int c1 = sock_bound(SOCK_DGRAM, abs);
		int c2 = sock_connect(SOCK_DGRAM, path);
		for (int i = 0; i < 4; i++) {
			sendto_name(c1, 7, i, path);
			uint8_t b[4096];
			size_t n = msize(8, i);
			fill(b, n, 800 + i);
			CHECK(send(c2, b, n, 0) == (ssize_t)n, "send");
		}
		child_ready();
		wait_file("go");
		check_sockname(c1, 0, abs, "child: abstract client");
		check_sockname(c2, 1, path, "child: connected client's peer");
		for (int i = 0; i < 3; i++)
			recv_from(c1, 9, i, path, "child: queued for the abstract client");
		for (int i = 0; i < 100; i++) {
			recv_from(c1, 10, i % 50, path, "child: ping");
			uint8_t b[4096];
			size_t n = msize(11, i % 50);
			fill(b, n, 1100 + i % 50);
			CHECK(send(c2, b, n, 0) == (ssize_t)n, "send pong");
		}
		_exit(0);
	}
	parent_wait_ready();
	for (int i = 0; i < 3; i++)
		sendto_name(s, 9, i, abs);
	say("READY pids=%d,%d", getpid(), child);
	wait_file("go");
	check_sockname(s, 0, path, "parent: server");
	for (int i = 0; i < 4; i++) {
		recv_from(s, 7, i, abs, "parent: from the abstract client");
		recv_from(s, 8, i, "", "parent: from the connected client");
	}
	for (int i = 0; i < 100; i++) {
		sendto_name(s, 10, i % 50, abs);
		recv_from(s, 11, i % 50, "", "parent: pong");
	}
	finish(child);
}

/* ---- listener: accepted connection with data both ways, one pending ---- */

static void mode_listener(const char *name)
{
	int l = sock_bound(SOCK_STREAM, name), a1;
	pid_t child;

	CHECK(listen(l, 5) == 0, "listen");
	child = fork();
	CHECK(child >= 0, "fork");
	if (child == 0) {
		close(l);
		int c1 = sock_connect(SOCK_STREAM, name);
		write_pattern(c1, 30000, 20);
		char c;
		read_all(c1, &c, 1); /* accepted, and its data written */
		int c2 = sock_connect(SOCK_STREAM, name);
		child_ready();
		wait_file("go");
		check_sockname(c1, 1, name, "child: peer of the accepted connection");
		check_pattern(c1, 20000, 21, "child: data queued by the server");
		write_all(c2, "two", 3);
		int c3 = sock_connect(SOCK_STREAM, name);
		write_all(c3, "three", 5);
		pingpong(c1, 0, 300);
		char b[8];
		read_all(c2, b, 4);
		CHECK(memcmp(b, "bye2", 4) == 0, "child: c2 reply");
		read_all(c3, b, 4);
		CHECK(memcmp(b, "bye3", 4) == 0, "child: c3 reply");
		_exit(0);
	}
	a1 = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	CHECK(a1 >= 0, "accept");
	write_all(a1, "!", 1);
	write_pattern(a1, 20000, 21);
	parent_wait_ready();
	say("READY pids=%d,%d", getpid(), child);
	wait_file("go");
	check_sockname(l, 0, name, "parent: listener");
	check_sockname(a1, 0, name, "parent: accepted connection");
	CHECK(getopt_int(l, SO_ACCEPTCONN) == 1, "listener no longer listens");
	check_pattern(a1, 30000, 20, "parent: data queued by the client");
	int a2 = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	CHECK(a2 >= 0, "accept the connection that was pending");
	char b[8];
	read_all(a2, b, 3);
	CHECK(memcmp(b, "two", 3) == 0, "parent: the pending connection is not the second client's");
	int a3 = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	CHECK(a3 >= 0, "accept a new connection");
	read_all(a3, b, 5);
	CHECK(memcmp(b, "three", 5) == 0, "parent: third client");
	pingpong(a1, 1, 300);
	write_all(a2, "bye2", 4);
	write_all(a3, "bye3", 4);
	finish(child);
}

/* ---- external: a connection to a listener outside the tree ---- */

/* The restore gives the connection back closed by its peer (the listener's
 * program keeps state per connection that a new connection would lack): the
 * workload reads end of file and reconnects, as a client does after its
 * server restarted. */
static void mode_external(const char *path)
{
	int c = sock_connect(SOCK_STREAM, path);
	char b[8];

	signal(SIGPIPE, SIG_IGN);
	write_all(c, "before\n", 7);
	say("READY pids=%d", getpid());
	wait_file("go");
	CHECK(read(c, b, 1) == 0, "end of file on the connection to the outside peer");
	close(c);
	c = sock_connect(SOCK_STREAM, path);
	write_all(c, "after\n", 6);
	read_all(c, b, 3);
	CHECK(memcmp(b, "ok\n", 3) == 0, "reply from the external peer");
	finish(0);
}

/* ---- accepted: a server's connection from a client outside the tree ---- */

/* The client outside the tree is gone after a restore: the server reads end
 * of file on the connection it had accepted, as after a client disconnect,
 * and accepts the next client on its listener. */
static void mode_accepted(const char *path)
{
	int l = sock_bound(SOCK_STREAM, path);
	char b[8];

	signal(SIGPIPE, SIG_IGN);
	CHECK(listen(l, 4) == 0, "listen");
	say("LISTENING");
	int c = accept(l, NULL, NULL);
	CHECK(c >= 0, "accept");
	read_all(c, b, 6);
	CHECK(memcmp(b, "hello\n", 6) == 0, "hello from the client");
	say("READY pids=%d", getpid());
	wait_file("go");
	CHECK(read(c, b, 1) == 0, "end of file on the accepted connection");
	close(c);
	c = accept(l, NULL, NULL);
	CHECK(c >= 0, "accept after restore");
	read_all(c, b, 6);
	CHECK(memcmp(b, "again\n", 6) == 0, "the next client's request");
	write_all(c, "ok\n", 3);
	finish(0);
}

/* ---- rights: a descriptor in flight (the checkpoint must refuse it) ---- */

static void mode_rights(void)
{
	int sv[2], p[2];
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe");
	struct iovec iov = { "f", 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof cm.buf };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &p[0], sizeof(int));
	CHECK(sendmsg(sv[0], &msg, 0) == 1, "sendmsg SCM_RIGHTS");
	close(p[0]);
	say("READY pids=%d", getpid());
	wait_file("go");
	char b[4];
	struct iovec riov = { b, sizeof b };
	struct msghdr r = { .msg_iov = &riov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof cm.buf };
	CHECK(recvmsg(sv[1], &r, 0) == 1, "recvmsg");
	c = CMSG_FIRSTHDR(&r);
	CHECK(c && c->cmsg_type == SCM_RIGHTS, "no descriptor received");
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof fd);
	write_all(p[1], "hi", 2);
	read_all(fd, b, 2);
	CHECK(memcmp(b, "hi", 2) == 0, "received pipe end");
	finish(0);
}

/* ---- state: a socket filter and options that only getsockopt shows ---- */

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif
#ifndef SO_PASSRIGHTS
#define SO_PASSRIGHTS 83
#endif

/* Passes the messages whose first byte is 'A'. */
static struct sock_filter only_a[] = {
	BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 'A', 0, 1),
	BPF_STMT(BPF_RET | BPF_K, 0xffff),
	BPF_STMT(BPF_RET | BPF_K, 0),
};

static void set_int(int fd, int opt, int v, const char *name)
{
	CHECK(setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v) == 0, "setsockopt %s", name);
}

static void want_int(int fd, int opt, int v, const char *name)
{
	int got = getopt_int(fd, opt);

	CHECK(got == v, "%s is %d, want %d", name, got, v);
}

static void mode_state(void)
{
	int sv[2], passrights;
	struct sock_fprog prog = { 4, only_a };
	struct sock_filter got[8];
	socklen_t l = 8;
	char b[16];

	CHECK(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	CHECK(setsockopt(sv[1], SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) == 0, "SO_ATTACH_FILTER");
	set_int(sv[1], SO_LOCK_FILTER, 1, "SO_LOCK_FILTER");
	set_int(sv[1], SO_PRIORITY, 5, "SO_PRIORITY");
	set_int(sv[1], SO_MARK, 42, "SO_MARK");
	set_int(sv[1], SO_TIMESTAMP, 1, "SO_TIMESTAMP");
	set_int(sv[1], SO_BUF_LOCK, 1, "SO_BUF_LOCK");
	passrights = setsockopt(sv[1], SOL_SOCKET, SO_PASSRIGHTS, &(int){ 0 }, sizeof(int)) == 0;
	CHECK(send(sv[0], "A-queued", 8, 0) == 8, "send");
	CHECK(send(sv[0], "B-dropped", 9, 0) == 9, "send");
	say("READY pids=%d", getpid());
	wait_file("go");
	CHECK(getsockopt(sv[1], SOL_SOCKET, SO_GET_FILTER, got, &l) == 0, "SO_GET_FILTER");
	CHECK(l == 4 && memcmp(got, only_a, sizeof only_a) == 0, "the socket filter has %d instructions or differs", (int)l);
	want_int(sv[1], SO_LOCK_FILTER, 1, "SO_LOCK_FILTER");
	want_int(sv[1], SO_PRIORITY, 5, "SO_PRIORITY");
	want_int(sv[1], SO_MARK, 42, "SO_MARK");
	want_int(sv[1], SO_TIMESTAMP, 1, "SO_TIMESTAMP");
	want_int(sv[1], SO_BUF_LOCK, 1, "SO_BUF_LOCK");
	if (passrights)
		want_int(sv[1], SO_PASSRIGHTS, 0, "SO_PASSRIGHTS");
	CHECK(recv(sv[1], b, sizeof b, MSG_DONTWAIT) == 8 && memcmp(b, "A-queued", 8) == 0, "the queued message");
	CHECK(recv(sv[1], b, sizeof b, MSG_DONTWAIT) < 0 && errno == EAGAIN, "a message the filter dropped arrived");
	CHECK(send(sv[0], "B-new", 5, 0) == 5 && send(sv[0], "A-new", 5, 0) == 5, "send");
	CHECK(recv(sv[1], b, sizeof b, MSG_DONTWAIT) == 5 && memcmp(b, "A-new", 5) == 0, "the filter is not filtering");
	CHECK(recv(sv[1], b, sizeof b, MSG_DONTWAIT) < 0 && errno == EAGAIN, "the filter let B-new through");
	finish(0);
}

/* ---- names: sockets whose names a plain bind could not give back ---- */

/* A datagram socket connected to its own name, with a message to itself
 * queued; a stream listener bound in a directory that was then removed;
 * with relative, instead, a stream listener bound to a relative path and
 * a connection made to it by that path, with data queued. */
static void mode_names(int relative)
{
	char self[4200], gone[4200], sub[4200], rel[4200], b[16];
	int s, g, r, c, a;

	if (relative)
		goto relative;
	snprintf(self, sizeof self, "%s/self.sock", dir);
	s = sock_bound(SOCK_DGRAM, self);
	{
		struct sockaddr_un sa;
		socklen_t l = mkaddr(&sa, self);

		CHECK(connect(s, (struct sockaddr *)&sa, l) == 0, "connect to itself");
	}
	CHECK(send(s, "to-me", 5, 0) == 5, "send to itself");

	snprintf(sub, sizeof sub, "%s/gone", dir);
	snprintf(gone, sizeof gone, "%s/gone/l.sock", dir);
	CHECK(mkdir(sub, 0755) == 0, "mkdir %.200s", sub);
	g = sock_bound(SOCK_STREAM, gone);
	CHECK(listen(g, 4) == 0, "listen");
	CHECK(unlink(gone) == 0 && rmdir(sub) == 0, "remove %.200s", sub);
	say("READY pids=%d", getpid());
	wait_file("go");
	check_sockname(s, 0, self, "self-connected socket");
	check_sockname(s, 1, self, "peer of the self-connected socket");
	CHECK(recv(s, b, sizeof b, MSG_DONTWAIT) == 5 && memcmp(b, "to-me", 5) == 0, "the message to itself");
	CHECK(send(s, "again", 5, 0) == 5 && recv(s, b, sizeof b, MSG_DONTWAIT) == 5 && memcmp(b, "again", 5) == 0,
	      "a new message to itself");
	check_sockname(g, 0, gone, "listener bound in a removed directory");
	CHECK(getopt_int(g, SO_ACCEPTCONN) == 1, "the listener in the removed directory no longer listens");
	CHECK(access(sub, F_OK) != 0 && errno == ENOENT, "the removed directory %.200s is back", sub);
	finish(0);
	return;

relative:
	snprintf(rel, sizeof rel, "%s/rel", dir);
	CHECK(mkdir(rel, 0755) == 0 && chdir(rel) == 0, "chdir %.200s", rel);
	r = sock_bound(SOCK_STREAM, "r.sock");
	CHECK(listen(r, 4) == 0, "listen");
	c = sock_connect(SOCK_STREAM, "r.sock");
	a = accept4(r, NULL, NULL, SOCK_CLOEXEC);
	CHECK(a >= 0, "accept");
	write_all(c, "rel", 3);

	say("READY pids=%d", getpid());
	wait_file("go");
	check_sockname(r, 0, "r.sock", "listener bound to a relative path");
	check_sockname(a, 0, "r.sock", "accepted connection of the relative listener");
	read_all(a, b, 3);
	CHECK(memcmp(b, "rel", 3) == 0, "data queued on the relative path's connection");
	{
		char abs[4300];
		int c2;

		snprintf(abs, sizeof abs, "%s/r.sock", rel);
		c2 = sock_connect(SOCK_STREAM, abs);
		CHECK(accept4(r, NULL, NULL, SOCK_CLOEXEC) >= 0, "a connection by the full path to the relative listener");
		close(c2);
	}
	finish(0);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s MODE DIR [ARGS...]\n", argv[0]);
		return 2;
	}
	snprintf(dir, sizeof dir, "%s", argv[2]);
	signal(SIGPIPE, SIG_IGN);
	CHECK(pipe2(ready_pipe, O_CLOEXEC) == 0, "pipe");
	const char *m = argv[1];
	if (!strcmp(m, "stream"))
		mode_stream();
	else if (!strcmp(m, "seqpacket"))
		mode_msgpair(SOCK_SEQPACKET);
	else if (!strcmp(m, "dgram-pair"))
		mode_msgpair(SOCK_DGRAM);
	else if (!strcmp(m, "dgram-named") && argc >= 5)
		mode_dgram(argv[3], argv[4]);
	else if (!strcmp(m, "listener") && argc >= 4)
		mode_listener(argv[3]);
	else if (!strcmp(m, "external") && argc >= 4)
		mode_external(argv[3]);
	else if (!strcmp(m, "accepted") && argc >= 4)
		mode_accepted(argv[3]);
	else if (!strcmp(m, "rights"))
		mode_rights();
	else if (!strcmp(m, "state"))
		mode_state();
	else if (!strcmp(m, "names"))
		mode_names(0);
	else if (!strcmp(m, "relative"))
		mode_names(1);
	else {
		fprintf(stderr, "unknown mode %s\n", m);
		return 2;
	}
	return 0;
}
