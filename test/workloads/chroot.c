/*
 * chroot.c: a process that chroot()ed into its directory and works in a
 * subdirectory of it (run as root). Its root and working directory, as
 * /proc shows them from outside, are paths outside the chroot; inside,
 * getcwd says /sub, "/" and ".." are the directory it chrooted into, and a
 * file there is found by its path inside.
 */
#include "common.h"

static ino_t top_ino, sub_ino;

static ino_t ino_of(const char *path)
{
	struct stat st;

	WL_CHECK(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	return st.st_ino;
}

static void verify(void)
{
	char buf[256];
	ssize_t n;

	WL_CHECK(getcwd(buf, sizeof buf) != NULL && strcmp(buf, "/sub") == 0, "getcwd: %s",
		 getcwd(buf, sizeof buf) ? buf : strerror(errno));
	WL_CHECK(ino_of("/") == top_ino && ino_of("..") == top_ino, "/ or .. is not the directory chrooted into");
	WL_CHECK(ino_of(".") == sub_ino, ". is not the working directory");
	n = wl_read_file("/marker", buf, sizeof buf);
	WL_CHECK(n == 14 && memcmp(buf, "inside chroot\n", 14) == 0,
		 "/marker reads %zd bytes", n);
	WL_CHECK(wl_read_file("here", buf, sizeof buf) == 4, "a relative path does not lead into /sub");
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	int fd;

	wl_init(argc, argv, "chroot");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	WL_CHECK(mkdir("sub", 0755) == 0, "mkdir: %s", strerror(errno));
	fd = open("marker", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	WL_CHECK(fd >= 0 && write(fd, "inside chroot\n", 14) == 14 && close(fd) == 0, "marker: %s", strerror(errno));
	fd = open("sub/here", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	WL_CHECK(fd >= 0 && write(fd, "here", 4) == 4 && close(fd) == 0, "here: %s", strerror(errno));
	top_ino = ino_of(".");
	sub_ino = ino_of("sub");
	/* The stop file is in this very directory: "/stop" once inside. */
	WL_CHECK(strcmp(strrchr(wl_stop_path, '/'), "/stop") == 0, "the stop file is not ./stop");
	WL_CHECK(chroot(".") == 0 && chdir("/sub") == 0, "chroot: %s", strerror(errno));
	snprintf(wl_stop_path, sizeof wl_stop_path, "/stop");

	verify();
	wl_say("READY");
	for (;;) {
		verify();
		if (wl_stop_requested())
			break;
		wl_print_tick(NULL, NULL);
		wl_sleep_ms(20);
	}
	verify();
	wl_say("DONE ok");
	return 0;
}
