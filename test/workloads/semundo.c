/*
 * semundo.c: System V semaphore undo values (SEM_UNDO) across a restore.
 *
 *   P (root, prints the ticks; created the semaphore set {5, 10})
 *   └─ Q (took 2 from semaphore 0 and added 3 to semaphore 1, both with
 *        SEM_UNDO: the set reads {3, 13}, and Q's undo adjustments are
 *        {+2, -3})
 *
 * Every tick P checks the values, the set's key and id, and that Q runs. At
 * the end Q exits and the kernel applies its adjustments: the set must read
 * {5, 10} again. A restore that recreates the values but not Q's undo list
 * leaves {3, 13}.
 */
#include "common.h"

#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <sys/wait.h>


union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

struct shared {
	volatile int q_ready, stop;
};

static struct shared *sh;
static key_t key;
static int sem = -1;

static void check_values(int v0, int v1, const char *when)
{
	unsigned short v[2];
	union semun arg = { .array = v };

	WL_CHECK(semget(key, 0, 0) == sem, "semget(key %#x) = %d, want the stored id %d", (unsigned)key,
		 semget(key, 0, 0), sem);
	WL_CHECK(semctl(sem, 0, GETALL, arg) == 0, "semctl(GETALL): %s", strerror(errno));
	WL_CHECK(v[0] == v0 && v[1] == v1, "%s: semaphores are {%d, %d}, want {%d, %d}%s", when, v[0],
		 v[1], v0, v1,
		 v0 == 5 && v[0] == 3 ? " (Q's SEM_UNDO adjustments were lost)" : "");
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = wl_usr1_counter };
	unsigned short init[2] = { 5, 10 };
	union semun arg = { .array = init };
	pid_t q;

	wl_init(argc, argv, "semundo P");
	wl_settle_root = wl_pid;
	sigaction(SIGUSR1, &sa, NULL);
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(sh != MAP_FAILED, "mmap shared: %s", strerror(errno));
	/* 0x5ea1xxx8: the harness recognises (and removes) left-overs by this prefix. */
	key = (key_t)(0x5ea10008 | (wl_nonce & 0xfff0));
	sem = semget(key, 2, IPC_CREAT | IPC_EXCL | 0600);
	WL_CHECK(sem >= 0, "semget(key %#x): %s", (unsigned)key, strerror(errno));
	WL_CHECK(semctl(sem, 0, SETALL, arg) == 0, "semctl(SETALL): %s", strerror(errno));
	q = fork();
	WL_CHECK(q >= 0, "fork: %s", strerror(errno));
	if (q == 0) {
		struct sembuf ops[2] = { { 0, -2, SEM_UNDO }, { 1, 3, SEM_UNDO } };

		snprintf(wl_role, sizeof wl_role, "semundo Q");
		prctl(PR_SET_NAME, "wl-semundo-Q", 0, 0, 0);
		WL_CHECK(semop(sem, ops, 2) == 0, "semop with SEM_UNDO: %s", strerror(errno));
		sh->q_ready = 1;
		while (!sh->stop) {
			WL_CHECK(getppid() == wl_pid, "getppid() = %d, want %d", (int)getppid(), (int)wl_pid);
			wl_sleep_ms(20);
		}
		_exit(0);
	}
	{
		int64_t until = wl_mono_ns() + 20000000000LL;

		while (!sh->q_ready) {
			WL_CHECK(wl_mono_ns() < until, "Q did not start");
			wl_sleep_ms(2);
		}
	}
	check_values(3, 13, "with Q's operations");
	wl_say("INFO sem=%d key=%#x q=%d", sem, (unsigned)key, (int)q);
	wl_say("READY");
	for (;;) {
		int status;

		wl_check_pid();
		WL_CHECK(waitpid(q, &status, WNOHANG) == 0, "Q ended early (status %#x)", status);
		check_values(3, 13, "while Q runs");
		if (wl_stop_requested())
			break;
		wl_print_tick(NULL, NULL);
		wl_sleep_ms(20);
	}
	sh->stop = 1;
	{
		int status;
		pid_t r;

		do
			r = waitpid(q, &status, 0);
		while (r < 0 && errno == EINTR);
		WL_CHECK(r == q && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "Q ended with wait status %#x", status);
	}
	check_values(5, 10, "after Q exited (the kernel applied its SEM_UNDO adjustments)");
	WL_CHECK(semctl(sem, 0, IPC_RMID) == 0, "semctl(IPC_RMID): %s", strerror(errno));
	wl_say("DONE ok");
	return 0;
}
