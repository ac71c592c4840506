/*
 * pty.c: a pseudo-terminal pair held inside the tree.
 *
 *   P  (root: holds the master, in packet mode; prints the ticks)
 *   └─ C  (setsid(); the slave is its controlling terminal (TIOCSCTTY),
 *      │   stdin and stdout on it; a checker that never reads or writes it)
 *      └─ C2 (its own process group, the terminal's foreground group
 *             (tcsetpgrp); stdin and stdout on the slave: the reader/writer)
 *
 * Set up by P before the fork, through the master: raw termios (cfmakeraw)
 * with VMIN 5, VTIME 0, a few extra flags and control characters and speed
 * 19200 baud, window size 37 rows x 111 columns, then TIOCPKT.
 *
 * Two byte streams flow all the time, each byte a function of its position
 * and the nonce: P writes to the master and C2 reads it from the slave; C2
 * writes to the slave and P reads it from the master (every read starts
 * with the packet-mode status byte, which must be TIOCPKT_DATA). The writer
 * keeps up to 400 bytes outstanding and the reader only reads what exceeds
 * 200 (FIONREAD), so at any instant, at a checkpoint too, both the input
 * queue of the slave and the input queue of the master hold unread bytes.
 * Every byte read is checked: a lost, added or transformed byte is a FAIL.
 *
 * Every tick P checks the master (pts number TIOCGPTN, ptsname, packet mode
 * TIOCGPKT, window size, the slave's session and foreground group through
 * the master), C checks its session, group, controlling terminal (tty_nr),
 * tcgetsid, tcgetpgrp, ttyname, termios and window size of fd 0, and C2 the
 * same from its side. The children report failures on stderr (stdout is
 * the terminal) and P fails too when one of them exits early.
 */
#include "common.h"

#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>

#define LOW 200	  /* bytes the reader leaves unread */
#define HIGH 400  /* bytes the writer keeps outstanding at most */
#define CHUNK 64  /* bytes per write */
#define VMIN_SET 5
#define ROWS 37
#define COLS 111

struct shared {
	uint64_t nonce;
	pid_t p, c, c2;
	volatile int ready_c, ready_c2, c2_fg;
	volatile int stop;	      /* P: finish; P wrote its last input byte */
	volatile int c2_out_done;     /* C2 wrote its last output byte */
	volatile uint64_t in_written;  /* bytes P wrote to the master */
	volatile uint64_t in_read;     /* bytes C2 read (and checked) from the slave */
	volatile uint64_t out_written; /* bytes C2 wrote to the slave */
	volatile uint64_t out_read;    /* bytes P read (and checked) from the master */
	volatile uint64_t ctr_c, ctr_c2;
};

static struct shared *sh;
static int master = -1;
static int pts_index;
static char pts_path[64];
static dev_t pts_rdev;
static struct termios want_tio;

/* csleep_ms sleeps in a child: wl_sleep_ms would report to stdout, the terminal. */
static void csleep_ms(long ms)
{
	struct timespec req = { ms / 1000, (ms % 1000) * 1000000L }, rem;

	while (nanosleep(&req, &rem) != 0) {
		WL_TTY_CHECK(errno == EINTR, "nanosleep: %s", strerror(errno));
		req = rem;
	}
}

static uint8_t in_byte(uint64_t i)
{
	return (uint8_t)wl_mix(sh->nonce ^ (i << 1));
}

static uint8_t out_byte(uint64_t i)
{
	return (uint8_t)wl_mix(sh->nonce ^ ((i << 1) | 1));
}

static void set_name(const char *role)
{
	char name[16];

	snprintf(wl_role, sizeof wl_role, "pty %s", role);
	snprintf(name, sizeof name, "wl-pty-%s", role);
	prctl(PR_SET_NAME, name, 0, 0, 0);
	wl_pid = (pid_t)syscall(SYS_getpid);
}

/* check_termios compares the terminal settings of fd with the ones P set. */
static void check_termios(int fd, const char *who)
{
	struct termios t;
	struct winsize ws;

	WL_TTY_CHECK(tcgetattr(fd, &t) == 0, "%s: tcgetattr: %s", who, strerror(errno));
	WL_TTY_CHECK(t.c_iflag == want_tio.c_iflag && t.c_oflag == want_tio.c_oflag &&
		       t.c_cflag == want_tio.c_cflag && t.c_lflag == want_tio.c_lflag,
	       "%s: termios flags iflag %#o oflag %#o cflag %#o lflag %#o, want %#o %#o %#o %#o", who,
	       t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag, want_tio.c_iflag, want_tio.c_oflag,
	       want_tio.c_cflag, want_tio.c_lflag);
	for (int i = 0; i < NCCS; i++)
		WL_TTY_CHECK(t.c_cc[i] == want_tio.c_cc[i], "%s: termios c_cc[%d] = %d, want %d", who, i,
		       t.c_cc[i], want_tio.c_cc[i]);
	WL_TTY_CHECK(cfgetospeed(&t) == B19200 && cfgetispeed(&t) == B19200,
	       "%s: speed out %#o in %#o, want B19200 (%#o)", who, cfgetospeed(&t), cfgetispeed(&t),
	       B19200);
	WL_TTY_CHECK(ioctl(fd, TIOCGWINSZ, &ws) == 0, "%s: TIOCGWINSZ: %s", who, strerror(errno));
	WL_TTY_CHECK(ws.ws_row == ROWS && ws.ws_col == COLS && ws.ws_xpixel == 0 && ws.ws_ypixel == 0,
	       "%s: window size %dx%d (%dx%d px), want %dx%d", who, ws.ws_row, ws.ws_col, ws.ws_xpixel,
	       ws.ws_ypixel, ROWS, COLS);
}

/* tty_nr_of reads field 7 (tty_nr) and 8 (tpgid) of /proc/self/stat. */
static void tty_fields(long *tty_nr, long *tpgid)
{
	char buf[1024], *p;

	*tty_nr = *tpgid = -2;
	if (wl_read_file("/proc/self/stat", buf, sizeof buf) > 0 && (p = strrchr(buf, ')')))
		sscanf(p + 2, "%*c %*d %*d %*d %ld %ld", tty_nr, tpgid);
}

/* check_slave_side is what C and C2 check about their terminal (fd 0 and 1). */
static void check_slave_side(pid_t want_sid, pid_t want_fg)
{
	struct stat st0, st1;
	char name[64];
	long tty_nr, tpgid;

	WL_TTY_CHECK(getpid() == wl_pid, "getpid() = %d, was %d", (int)getpid(), (int)wl_pid);
	WL_TTY_CHECK(getsid(0) == want_sid, "getsid() = %d, want %d", (int)getsid(0), (int)want_sid);
	WL_TTY_CHECK(fstat(0, &st0) == 0 && fstat(1, &st1) == 0, "fstat 0/1: %s", strerror(errno));
	WL_TTY_CHECK(S_ISCHR(st0.st_mode) && st0.st_rdev == pts_rdev && st1.st_rdev == pts_rdev,
	       "stdin/stdout are devices %u:%u and %u:%u, want the slave %u:%u", major(st0.st_rdev),
	       minor(st0.st_rdev), major(st1.st_rdev), minor(st1.st_rdev), major(pts_rdev),
	       minor(pts_rdev));
	WL_TTY_CHECK(ttyname_r(0, name, sizeof name) == 0 && strcmp(name, pts_path) == 0,
	       "ttyname(0) = %s, want %s (the pts number changed)", name, pts_path);
	tty_fields(&tty_nr, &tpgid);
	WL_TTY_CHECK((dev_t)tty_nr == pts_rdev, "controlling terminal (tty_nr) is %u:%u, want %u:%u",
	       major(tty_nr), minor(tty_nr), major(pts_rdev), minor(pts_rdev));
	WL_TTY_CHECK(tpgid == want_fg, "tpgid %ld, want the foreground group %d", tpgid, (int)want_fg);
	WL_TTY_CHECK(tcgetsid(0) == want_sid, "tcgetsid(0) = %d, want %d", (int)tcgetsid(0), (int)want_sid);
	WL_TTY_CHECK(tcgetpgrp(0) == want_fg, "tcgetpgrp(0) = %d, want %d", (int)tcgetpgrp(0), (int)want_fg);
	check_termios(0, "slave");
	WL_TTY_CHECK(sh->nonce == wl_nonce, "shared nonce %#" PRIx64 ", mine %#" PRIx64, sh->nonce, wl_nonce);
}

/* c2_read reads exactly n bytes of the input stream from the slave and checks them. */
static void c2_read(uint64_t n)
{
	uint8_t buf[HIGH + CHUNK];

	while (n > 0) {
		ssize_t r = read(0, buf, n < sizeof buf ? n : sizeof buf);

		if (r < 0 && errno == EINTR)
			continue;
		WL_TTY_CHECK(r > 0, "read slave: %s", r < 0 ? strerror(errno) : "EOF");
		for (ssize_t j = 0; j < r; j++) {
			uint64_t pos = sh->in_read;

			WL_TTY_CHECK(buf[j] == in_byte(pos),
			       "input stream byte %" PRIu64 " is %#x, want %#x (lost, added or changed bytes)",
			       pos, buf[j], in_byte(pos));
			sh->in_read = pos + 1;
		}
		n -= (uint64_t)r;
	}
}

static void c2_write(uint64_t n)
{
	uint8_t buf[HIGH];
	uint64_t base = sh->out_written;

	WL_TTY_CHECK(n <= sizeof buf, "c2_write(%" PRIu64 ")", n);
	for (uint64_t j = 0; j < n; j++)
		buf[j] = out_byte(base + j);
	for (uint64_t off = 0; off < n;) {
		ssize_t w = write(1, buf + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		WL_TTY_CHECK(w > 0, "write slave: %s", w < 0 ? strerror(errno) : "short");
		off += (uint64_t)w;
		sh->out_written = base + off;
	}
}

static void run_c2(void)
{
	int64_t until = wl_mono_ns() + 20000000000LL;
	pid_t me = getpid();

	set_name("C2");
	if (setpgid(0, 0) != 0)
		WL_TTY_CHECK(errno == EACCES, "setpgid: %s", strerror(errno));
	while (!sh->c2_fg) {
		WL_TTY_CHECK(wl_mono_ns() < until, "never became the foreground group");
		csleep_ms(2);
	}
	sh->c2 = me;
	sh->ready_c2 = 1;
	for (;;) {
		int avail = 0;

		check_slave_side(sh->c, me);
		WL_TTY_CHECK(getpgid(0) == me, "getpgid() = %d, want %d", (int)getpgid(0), (int)me);
		WL_TTY_CHECK(getppid() == sh->c, "getppid() = %d, want C %d", (int)getppid(), (int)sh->c);
		if (sh->stop) {
			/* P wrote its last byte: read everything that is left. */
			c2_read(sh->in_written - sh->in_read);
			sh->c2_out_done = 1;
			WL_TTY_CHECK(ioctl(0, FIONREAD, &avail) == 0 && avail == 0,
			       "%d unexpected bytes left in the input queue after the stream's end", avail);
			_exit(0);
		}
		WL_TTY_CHECK(ioctl(0, FIONREAD, &avail) == 0, "FIONREAD slave: %s", strerror(errno));
		if (avail >= LOW + VMIN_SET)
			c2_read((uint64_t)avail - LOW);
		if (sh->out_written - sh->out_read < HIGH - CHUNK)
			c2_write(CHUNK);
		sh->ctr_c2++;
		csleep_ms(20);
	}
}

static void run_c(void)
{
	int s;
	pid_t c2, me;

	set_name("C");
	me = getpid();
	close(master);
	WL_TTY_CHECK(setsid() == me, "setsid: %s", strerror(errno));
	s = open(pts_path, O_RDWR | O_NOCTTY);
	WL_TTY_CHECK(s >= 0, "open %s: %s", pts_path, strerror(errno));
	WL_TTY_CHECK(ioctl(s, TIOCSCTTY, 0) == 0, "TIOCSCTTY: %s", strerror(errno));
	WL_TTY_CHECK(dup2(s, 0) == 0 && dup2(s, 1) == 1, "dup2 slave: %s", strerror(errno));
	close(s);
	sh->c = me;
	c2 = fork();
	WL_TTY_CHECK(c2 >= 0, "fork C2: %s", strerror(errno));
	if (c2 == 0)
		run_c2();
	if (setpgid(c2, c2) != 0)
		WL_TTY_CHECK(errno == EACCES || errno == ESRCH, "setpgid(C2): %s", strerror(errno));
	WL_TTY_CHECK(tcsetpgrp(0, c2) == 0, "tcsetpgrp(%d): %s", (int)c2, strerror(errno));
	sh->c2_fg = 1;
	sh->ready_c = 1;
	for (;;) {
		int status;
		pid_t r;

		check_slave_side(me, c2);
		WL_TTY_CHECK(getpgid(0) == me, "getpgid() = %d, want %d", (int)getpgid(0), (int)me);
		WL_TTY_CHECK(getppid() == sh->p, "getppid() = %d, want P %d", (int)getppid(), (int)sh->p);
		r = waitpid(c2, &status, WNOHANG);
		WL_TTY_CHECK(r == 0 || (r == c2 && sh->stop), "waitpid(C2) = %d: it ended early", (int)r);
		if (r == c2) {
			WL_TTY_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			       "C2 ended with wait status %#x", status);
			_exit(0);
		}
		sh->ctr_c++;
		csleep_ms(20);
	}
}

/* p_read reads exactly n data bytes of the output stream from the master. */
static void p_read(uint64_t n)
{
	uint8_t buf[1 + HIGH + CHUNK];

	while (n > 0) {
		size_t want = n < sizeof buf - 1 ? n : sizeof buf - 1;
		ssize_t r = read(master, buf, want + 1);

		if (r < 0 && errno == EINTR)
			continue;
		WL_CHECK(r > 0, "read master: %s", r < 0 ? strerror(errno) : "EOF");
		WL_CHECK(buf[0] == TIOCPKT_DATA,
			 "packet-mode status byte %#x from the master, want TIOCPKT_DATA (0): a control event nobody caused",
			 buf[0]);
		for (ssize_t j = 1; j < r; j++) {
			uint64_t pos = sh->out_read;

			WL_CHECK(buf[j] == out_byte(pos),
				 "output stream byte %" PRIu64 " is %#x, want %#x (lost, added or changed bytes)",
				 pos, buf[j], out_byte(pos));
			sh->out_read = pos + 1;
		}
		n -= (uint64_t)(r - 1);
	}
}

static void p_write(uint64_t n)
{
	uint8_t buf[HIGH];
	uint64_t base = sh->in_written;

	WL_CHECK(n <= sizeof buf, "p_write(%" PRIu64 ")", n);
	for (uint64_t j = 0; j < n; j++)
		buf[j] = in_byte(base + j);
	for (uint64_t off = 0; off < n;) {
		ssize_t w = write(master, buf + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		WL_CHECK(w > 0, "write master: %s", w < 0 ? strerror(errno) : "short");
		off += (uint64_t)w;
		sh->in_written = base + off;
	}
}

static void verify_master(void)
{
	unsigned int n = ~0u;
	int pkt = -1;
	char name[64];
	struct winsize ws;

	wl_check_pid();
	WL_CHECK(sh->nonce == wl_nonce, "shared nonce changed");
	WL_CHECK(ioctl(master, TIOCGPTN, &n) == 0 && (int)n == pts_index,
		 "TIOCGPTN = %u, want %d (the pts number changed)", n, pts_index);
	WL_CHECK(ptsname_r(master, name, sizeof name) == 0 && strcmp(name, pts_path) == 0,
		 "ptsname = %s, want %s", name, pts_path);
	WL_CHECK(ioctl(master, TIOCGPKT, &pkt) == 0 && pkt == 1, "TIOCGPKT = %d (%s), want 1", pkt,
		 strerror(errno));
	WL_CHECK(ioctl(master, TIOCGWINSZ, &ws) == 0 && ws.ws_row == ROWS && ws.ws_col == COLS,
		 "master window size %dx%d, want %dx%d", ws.ws_row, ws.ws_col, ROWS, COLS);
	WL_CHECK((fcntl(master, F_GETFL) & O_ACCMODE) == O_RDWR, "master is not O_RDWR");
	/* Through the master: the slave's session and foreground group. */
	WL_CHECK(tcgetsid(master) == sh->c, "tcgetsid(master) = %d, want C %d", (int)tcgetsid(master),
		 (int)sh->c);
	WL_CHECK(tcgetpgrp(master) == sh->c2, "tcgetpgrp(master) = %d, want C2 %d",
		 (int)tcgetpgrp(master), (int)sh->c2);
	{
		int status;
		pid_t r = waitpid(-1, &status, WNOHANG);

		WL_CHECK(r == 0, "waitpid(WNOHANG) = %d, status %#x: C ended early", (int)r, status);
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = wl_usr1_counter };
	struct winsize ws = { .ws_row = ROWS, .ws_col = COLS };
	struct stat st;
	int one = 1;
	pid_t c;

	wl_init(argc, argv, "pty P");
	set_name("P");
	sigaction(SIGUSR1, &sa, NULL);
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(sh != MAP_FAILED, "mmap shared: %s", strerror(errno));
	sh->nonce = wl_nonce;
	sh->p = wl_pid;

	master = posix_openpt(O_RDWR | O_NOCTTY);
	WL_CHECK(master >= 0, "posix_openpt: %s", strerror(errno));
	WL_CHECK(grantpt(master) == 0 && unlockpt(master) == 0, "grantpt/unlockpt: %s",
		 strerror(errno));
	WL_CHECK(ptsname_r(master, pts_path, sizeof pts_path) == 0, "ptsname: %s", strerror(errno));
	WL_CHECK(sscanf(pts_path, "/dev/pts/%d", &pts_index) == 1, "ptsname %s", pts_path);
	WL_CHECK(stat(pts_path, &st) == 0, "stat %s: %s", pts_path, strerror(errno));
	pts_rdev = st.st_rdev;

	/* The slave's settings, through the master, before packet mode. */
	WL_CHECK(tcgetattr(master, &want_tio) == 0, "tcgetattr: %s", strerror(errno));
	cfmakeraw(&want_tio);
	want_tio.c_iflag |= IUTF8;
	want_tio.c_cflag |= HUPCL;
	want_tio.c_cc[VMIN] = VMIN_SET;
	want_tio.c_cc[VTIME] = 0;
	want_tio.c_cc[VINTR] = 0x07;
	want_tio.c_cc[VEOF] = 0x05;
	want_tio.c_cc[VERASE] = 0x08;
	WL_CHECK(cfsetispeed(&want_tio, B19200) == 0 && cfsetospeed(&want_tio, B19200) == 0,
		 "cfsetspeed");
	WL_CHECK(tcsetattr(master, TCSANOW, &want_tio) == 0, "tcsetattr: %s", strerror(errno));
	/* Read back what the kernel kept: that is what must survive. */
	WL_CHECK(tcgetattr(master, &want_tio) == 0, "tcgetattr: %s", strerror(errno));
	WL_CHECK(cfgetospeed(&want_tio) == B19200 && want_tio.c_cc[VMIN] == VMIN_SET &&
			 !(want_tio.c_lflag & (ICANON | ECHO | ISIG)),
		 "the terminal did not take the settings");
	WL_CHECK(ioctl(master, TIOCSWINSZ, &ws) == 0, "TIOCSWINSZ: %s", strerror(errno));
	WL_CHECK(ioctl(master, TIOCPKT, &one) == 0, "TIOCPKT: %s", strerror(errno));

	c = fork();
	WL_CHECK(c >= 0, "fork C: %s", strerror(errno));
	if (c == 0)
		run_c();
	{
		int64_t until = wl_mono_ns() + 20000000000LL;

		while (!sh->ready_c || !sh->ready_c2) {
			int status;

			WL_CHECK(waitpid(c, &status, WNOHANG) == 0, "C ended during setup (status %#x)",
				 status);
			WL_CHECK(wl_mono_ns() < until, "C and C2 did not start");
			wl_sleep_ms(2);
		}
	}
	/* Fill both queues before saying READY. */
	p_write(HIGH - CHUNK);
	{
		int64_t until = wl_mono_ns() + 20000000000LL;

		while (sh->out_written < LOW + CHUNK) {
			WL_CHECK(wl_mono_ns() < until, "C2 wrote nothing");
			wl_sleep_ms(5);
		}
	}
	verify_master();
	wl_say("INFO pts=%s c=%d c2=%d", pts_path, (int)sh->c, (int)sh->c2);
	wl_say("READY");
	for (;;) {
		char extra[256];
		int avail = 0;

		verify_master();
		WL_CHECK(ioctl(master, FIONREAD, &avail) == 0, "FIONREAD master: %s", strerror(errno));
		if (avail > LOW)
			p_read((uint64_t)avail - LOW);
		if (wl_stop_requested())
			break;
		if (sh->in_written - sh->in_read < HIGH - CHUNK)
			p_write(CHUNK);
		snprintf(extra, sizeof extra,
			 "pts=%d in=%" PRIu64 "/%" PRIu64 " out=%" PRIu64 "/%" PRIu64 " c=%" PRIu64
			 " c2=%" PRIu64,
			 pts_index, sh->in_read, sh->in_written, sh->out_read, sh->out_written,
			 sh->ctr_c, sh->ctr_c2);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}

	/* The end: C2 reads what is left of the input, stops writing; P reads the rest. */
	sh->stop = 1;
	{
		int64_t until = wl_mono_ns() + 20000000000LL;
		int status;
		pid_t r;

		while (!sh->c2_out_done) {
			WL_CHECK(waitpid(c, &status, WNOHANG) == 0, "C ended before C2 finished (status %#x)",
				 status);
			WL_CHECK(wl_mono_ns() < until, "C2 did not finish reading (%" PRIu64 " of %" PRIu64 ")",
				 sh->in_read, sh->in_written);
			wl_sleep_ms(5);
		}
		WL_CHECK(sh->in_read == sh->in_written, "C2 read %" PRIu64 " bytes, P wrote %" PRIu64,
			 sh->in_read, sh->in_written);
		p_read(sh->out_written - sh->out_read);
		do
			r = waitpid(c, &status, 0);
		while (r < 0 && errno == EINTR);
		WL_CHECK(r == c && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "C ended with wait status %#x", status);
	}
	wl_say("INFO streams in=%" PRIu64 " out=%" PRIu64 " bytes", sh->in_read, sh->out_read);
	wl_say("DONE ok");
	return 0;
}
