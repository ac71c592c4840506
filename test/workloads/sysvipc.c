/*
 * sysvipc.c: System V shared memory, semaphores and message queues.
 *
 *   P (root, prints the ticks)
 *   └─ Q (child; two more threads: S blocked in semop(), R blocked in msgrcv())
 *
 * Objects (keys drawn from the nonce, created IPC_EXCL):
 * - shm A: IPC_PRIVATE, 1 MiB, attached by P, filled with a pattern, then
 *   IPC_RMID'd while attached (it lives on as "dest" until detached);
 *   one word P rewrites each tick.
 * - shm B: keyed, 64 KiB, mode 0640; P attaches it read-write and again
 *   SHM_RDONLY at another address (writes through one are seen through the
 *   other), Q attaches it read-write and ticks a counter in it; P checks the
 *   counter through its read-only view. nattch must be 3.
 * - semaphore set: keyed, 4 semaphores set to {3, 0, 7, 42}; Q took one
 *   from sem 0 (without SEM_UNDO: semundo.c covers undo values); P adds 1
 *   to sem 3 each tick; S waits in semop() for sem 1 (0 until the end).
 * - message queue: keyed; always 5 or 6 messages of varied types and sizes
 *   with sequence numbers: each tick P sends one and receives the oldest;
 *   every tick all queued messages are read without removing them
 *   (MSG_COPY); R waits in msgrcv() for type 99 (sent at the end).
 *
 * Checked every tick: the ids still name the same objects (shmget/semget/
 * msgget of the key return the stored id, IPC_STAT key, size, mode,
 * nattch, qnum, cbytes, and the owner 1234:5678 the keyed objects were given
 * with IPC_SET: a service's objects belong to its user), the mappings are SysV mappings ("/SYSV<key>" in
 * /proc/self/maps) at their addresses, contents, semaphore values, queued
 * messages in order. Pids that the kernel records (shm_cpid/lpid, sempid,
 * msg_lspid/lrpid) are reported in INFO lines when they change, not failed.
 * At the end: S and R get their wake-ups, Q exits, shmdt of each
 * attachment works and lowers nattch, everything is removed with IPC_RMID.
 */
#include "common.h"

#include <pthread.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>

/* The owner the keyed objects are given after creation (root made them). */
#define OWNER_UID 1234
#define OWNER_GID 5678

#define CHECK_OWNER(perm, what)                                                                   \
	WL_CHECK((perm).uid == OWNER_UID && (perm).gid == OWNER_GID, "%s belongs to %u:%u, want %d:%d", \
		 what, (unsigned)(perm).uid, (unsigned)(perm).gid, OWNER_UID, OWNER_GID)


#ifndef MSG_COPY
#define MSG_COPY 040000
#endif

#define SHM_A_SIZE (1 << 20)
#define SHM_B_SIZE (64 << 10)
#define NSEMS 4
#define QLEN 5
#define MAXMSG 256

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

struct shared {
	uint64_t nonce;
	pid_t p, q;
	volatile int q_ready, s_waiting, r_waiting, stop, s_got, r_got;
	volatile uint64_t ctr_q;
};

/* The layout of shm B. */
struct seg_b {
	uint64_t nonce;
	volatile uint64_t p_word;
	volatile uint64_t q_ctr;
	uint8_t pattern[];
};

struct msg {
	long mtype;
	char mtext[MAXMSG];
};

static struct shared *sh;
static key_t key_b, key_sem, key_msg;
static int shm_a = -1, shm_b = -1, sem = -1, mq = -1;
static uint8_t *a;		 /* shm A, read-write */
static struct seg_b *b, *b_ro; /* shm B, read-write and read-only */
static struct seg_b *q_b;	 /* Q's attachment of shm B */
static uint64_t a_word, sem3, next_send, next_recv;
static pid_t last_pids[8];

static void set_name(const char *role)
{
	char name[16];

	snprintf(wl_role, sizeof wl_role, "sysvipc %s", role);
	snprintf(name, sizeof name, "wl-ipc-%s", role);
	prctl(PR_SET_NAME, name, 0, 0, 0);
	wl_pid = (pid_t)syscall(SYS_getpid);
}

static uint8_t a_byte(size_t i)
{
	return (uint8_t)wl_mix(wl_nonce ^ (0xa000000000ULL + i));
}

static uint8_t b_byte(size_t i)
{
	return (uint8_t)wl_mix(wl_nonce ^ (0xb000000000ULL + i));
}

static long msg_type(uint64_t seq)
{
	return 1 + (long)(seq % 3);
}

static size_t msg_size(uint64_t seq)
{
	return 16 + (size_t)(seq * 37 % 200);
}

static void msg_fill(struct msg *m, uint64_t seq)
{
	size_t n = msg_size(seq);

	m->mtype = msg_type(seq);
	memcpy(m->mtext, &seq, sizeof seq);
	for (size_t i = sizeof seq; i < n; i++)
		m->mtext[i] = (char)wl_mix(wl_nonce ^ (seq << 16) ^ i);
}

static void msg_check(const struct msg *m, ssize_t n, uint64_t seq, const char *how)
{
	struct msg want;

	msg_fill(&want, seq);
	WL_CHECK(n == (ssize_t)msg_size(seq) && m->mtype == want.mtype &&
			 memcmp(m->mtext, want.mtext, msg_size(seq)) == 0,
		 "%s: message #%" PRIu64 " differs: type %ld size %zd seq %" PRIu64
		 ", want type %ld size %zu",
		 how, seq, m->mtype, n, n >= 8 ? *(const uint64_t *)m->mtext : 0, want.mtype,
		 msg_size(seq));
}

/* sysv_mapping checks that addr starts a shared "/SYSV<key>" mapping of size len. */
static void check_sysv_mapping(const void *addr, size_t len, key_t key, int ro, const char *what)
{
	char line[512], name[64];
	FILE *f = fopen("/proc/self/maps", "re");
	int found = 0;

	WL_CHECK(f != NULL, "open /proc/self/maps: %s", strerror(errno));
	snprintf(name, sizeof name, "/SYSV%08x", (unsigned)key);
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || lo != (unsigned long)addr)
			continue;
		found = 1;
		WL_CHECK(hi - lo == len && strstr(line, name) != NULL && perms[3] == 's' &&
				 (perms[1] == 'w') == !ro,
			 "%s at %p is not the SysV attachment it was (want %s, %zu bytes, %s): %s", what,
			 addr, name, len, ro ? "read-only" : "read-write", line);
	}
	fclose(f);
	WL_CHECK(found, "%s: nothing is mapped at %p any more", what, addr);
}

static void note_pid(int slot, pid_t pid, const char *what)
{
	if (last_pids[slot] != 0 && last_pids[slot] != pid)
		wl_say("INFO %s changed from %d to %d", what, (int)last_pids[slot], (int)pid);
	last_pids[slot] = pid;
}

static void check_shm(void)
{
	struct shmid_ds ds;

	WL_CHECK(shmctl(shm_a, IPC_STAT, &ds) == 0, "shmctl(A id %d, IPC_STAT): %s", shm_a,
		 strerror(errno));
	WL_CHECK(ds.shm_segsz == SHM_A_SIZE && ds.shm_perm.__key == IPC_PRIVATE &&
			 (ds.shm_perm.mode & 0777) == 0600 && (ds.shm_perm.mode & SHM_DEST) &&
			 ds.shm_nattch == 1,
		 "shm A (id %d): size %zu key %#x mode %#o nattch %lu, want %d, 0, 0600|SHM_DEST, 1",
		 shm_a, ds.shm_segsz, (unsigned)ds.shm_perm.__key, (unsigned)ds.shm_perm.mode,
		 (unsigned long)ds.shm_nattch, SHM_A_SIZE);
	note_pid(0, ds.shm_cpid, "shm A shm_cpid");
	WL_CHECK(shmget(key_b, 0, 0) == shm_b, "shmget(key %#x) = %d, want the stored id %d",
		 (unsigned)key_b, shmget(key_b, 0, 0), shm_b);
	WL_CHECK(shmctl(shm_b, IPC_STAT, &ds) == 0, "shmctl(B id %d, IPC_STAT): %s", shm_b,
		 strerror(errno));
	WL_CHECK(ds.shm_segsz == SHM_B_SIZE && ds.shm_perm.__key == key_b &&
			 (ds.shm_perm.mode & 0777) == 0640 && !(ds.shm_perm.mode & SHM_DEST) &&
			 ds.shm_nattch == 3,
		 "shm B (id %d): size %zu key %#x mode %#o nattch %lu, want %d %#x 0640 3", shm_b,
		 ds.shm_segsz, (unsigned)ds.shm_perm.__key, (unsigned)ds.shm_perm.mode,
		 (unsigned long)ds.shm_nattch, SHM_B_SIZE, (unsigned)key_b);
	CHECK_OWNER(ds.shm_perm, "shm B");
	note_pid(1, ds.shm_cpid, "shm B shm_cpid");
	check_sysv_mapping(a, SHM_A_SIZE, IPC_PRIVATE, 0, "shm A");
	check_sysv_mapping(b, SHM_B_SIZE, key_b, 0, "shm B");
	check_sysv_mapping(b_ro, SHM_B_SIZE, key_b, 1, "shm B read-only");
	/* Contents: a sample of the pattern each tick, and the live words. */
	for (size_t i = (wl_tick * 4099) % 4096; i < SHM_A_SIZE - 8; i += 4096)
		WL_CHECK(a[i] == a_byte(i), "shm A byte %zu is %#x, want %#x", i, a[i], a_byte(i));
	WL_CHECK(*(uint64_t *)(a + SHM_A_SIZE - 8) == a_word, "shm A word %#" PRIx64 ", want %#" PRIx64,
		 *(uint64_t *)(a + SHM_A_SIZE - 8), a_word);
	WL_CHECK(b->nonce == wl_nonce && b_ro->nonce == wl_nonce, "shm B nonce changed");
	WL_CHECK(b_ro->p_word == b->p_word && b->p_word == a_word,
		 "shm B word: read-write view %#" PRIx64 ", read-only view %#" PRIx64 ", want %#" PRIx64,
		 b->p_word, b_ro->p_word, a_word);
	for (size_t i = (wl_tick * 131) % 512; i < SHM_B_SIZE - sizeof *b; i += 512)
		WL_CHECK(b_ro->pattern[i] == b_byte(i), "shm B byte %zu is %#x, want %#x", i,
			 b_ro->pattern[i], b_byte(i));
}

static void check_sem(void)
{
	unsigned short v[NSEMS];
	unsigned short want[NSEMS] = { 2, 0, 7, 42 };
	struct semid_ds ds;
	union semun arg;

	want[3] = (unsigned short)(42 + sem3);
	WL_CHECK(semget(key_sem, 0, 0) == sem, "semget(key %#x) = %d, want the stored id %d",
		 (unsigned)key_sem, semget(key_sem, 0, 0), sem);
	arg.buf = &ds;
	WL_CHECK(semctl(sem, 0, IPC_STAT, arg) == 0, "semctl(id %d, IPC_STAT): %s", sem,
		 strerror(errno));
	WL_CHECK(ds.sem_nsems == NSEMS && ds.sem_perm.__key == key_sem &&
			 (ds.sem_perm.mode & 0777) == 0600,
		 "semaphore set %d: nsems %lu key %#x mode %#o", sem, (unsigned long)ds.sem_nsems,
		 (unsigned)ds.sem_perm.__key, (unsigned)ds.sem_perm.mode);
	CHECK_OWNER(ds.sem_perm, "the semaphore set");
	arg.array = v;
	WL_CHECK(semctl(sem, 0, GETALL, arg) == 0, "semctl(GETALL): %s", strerror(errno));
	for (int i = 0; i < NSEMS; i++)
		WL_CHECK(v[i] == want[i], "semaphore %d is %d, want %d (values %d %d %d %d)", i, v[i],
			 want[i], v[0], v[1], v[2], v[3]);
	note_pid(2, semctl(sem, 3, GETPID), "sempid of semaphore 3");
	{
		int n = semctl(sem, 1, GETNCNT);

		WL_CHECK(n == 0 || n == 1, "GETNCNT of semaphore 1 = %d, want S (or nobody, while S restarts)",
			 n);
	}
}

static void check_msg(void)
{
	struct msqid_ds ds;
	uint64_t n = next_send - next_recv;
	size_t bytes = 0;

	WL_CHECK(msgget(key_msg, 0) == mq, "msgget(key %#x) = %d, want the stored id %d",
		 (unsigned)key_msg, msgget(key_msg, 0), mq);
	WL_CHECK(msgctl(mq, IPC_STAT, &ds) == 0, "msgctl(id %d, IPC_STAT): %s", mq, strerror(errno));
	for (uint64_t s = next_recv; s < next_send; s++)
		bytes += msg_size(s);
	WL_CHECK(ds.msg_perm.__key == key_msg && (ds.msg_perm.mode & 0777) == 0600 &&
			 ds.msg_qnum == n && ds.msg_cbytes == bytes,
		 "message queue %d: key %#x mode %#o qnum %lu cbytes %lu, want %" PRIu64
		 " messages, %zu bytes",
		 mq, (unsigned)ds.msg_perm.__key, (unsigned)ds.msg_perm.mode,
		 (unsigned long)ds.msg_qnum, (unsigned long)ds.msg_cbytes, n, bytes);
	CHECK_OWNER(ds.msg_perm, "the message queue");
	note_pid(3, ds.msg_lspid, "msg_lspid");
	for (uint64_t i = 0; i < n; i++) {
		struct msg m;
		ssize_t r = msgrcv(mq, &m, MAXMSG, (long)i, IPC_NOWAIT | MSG_COPY | MSG_NOERROR);

		WL_CHECK(r >= 0, "msgrcv(MSG_COPY %" PRIu64 "): %s", i, strerror(errno));
		msg_check(&m, r, next_recv + i, "queued message (MSG_COPY)");
	}
}

static void *s_thread(void *arg)
{
	struct sembuf op = { .sem_num = 1, .sem_op = -1, .sem_flg = 0 };

	(void)arg;
	sh->s_waiting = 1;
	while (semop(sem, &op, 1) != 0)
		WL_CHECK(errno == EINTR, "S: semop(sem 1, -1): %s", strerror(errno));
	WL_CHECK(sh->stop, "S got semaphore 1 before the end");
	sh->s_got = 1;
	return NULL;
}

static void *r_thread(void *arg)
{
	struct msg m;
	ssize_t r;

	(void)arg;
	sh->r_waiting = 1;
	while ((r = msgrcv(mq, &m, MAXMSG, 99, 0)) < 0)
		WL_CHECK(errno == EINTR, "R: msgrcv(type 99): %s", strerror(errno));
	WL_CHECK(sh->stop && r == 8 && m.mtype == 99 && memcmp(m.mtext, &wl_nonce, 8) == 0,
		 "R: unexpected message type %ld size %zd", m.mtype, r);
	sh->r_got = 1;
	return NULL;
}

static void run_q(void)
{
	struct sembuf op = { .sem_num = 0, .sem_op = -1, .sem_flg = 0 };
	pthread_t ts, tr;
	uint64_t n = 0;
	int err;

	set_name("Q");
	sh->q = wl_pid;
	/* fork copied P's three attachments: Q keeps none of them, only its own. */
	WL_CHECK(shmdt(a) == 0 && shmdt(b) == 0 && shmdt(b_ro) == 0, "Q: shmdt of the inherited attachments: %s",
		 strerror(errno));
	q_b = shmat(shm_b, NULL, 0);
	WL_CHECK(q_b != (void *)-1, "Q: shmat B: %s", strerror(errno));
	WL_CHECK(semop(sem, &op, 1) == 0, "Q: semop(sem 0, -1): %s", strerror(errno));
	err = pthread_create(&ts, NULL, s_thread, NULL);
	WL_CHECK(err == 0, "pthread_create: %s", strerror(err));
	err = pthread_create(&tr, NULL, r_thread, NULL);
	WL_CHECK(err == 0, "pthread_create: %s", strerror(err));
	sh->q_ready = 1;
	while (!sh->stop) {
		WL_CHECK(getpid() == wl_pid, "getpid() = %d, was %d", (int)getpid(), (int)wl_pid);
		WL_CHECK(getppid() == sh->p, "getppid() = %d, want P %d", (int)getppid(), (int)sh->p);
		WL_CHECK(q_b->nonce == wl_nonce, "Q: shm B nonce changed");
		WL_CHECK(q_b->q_ctr == n, "Q: my counter in shm B is %" PRIu64 ", I counted %" PRIu64,
			 q_b->q_ctr, n);
		check_sysv_mapping(q_b, SHM_B_SIZE, key_b, 0, "Q's shm B");
		q_b->q_ctr = ++n;
		sh->ctr_q = n;
		wl_sleep_ms(20);
	}
	err = pthread_join(ts, NULL);
	WL_CHECK(err == 0 && sh->s_got, "S did not finish");
	err = pthread_join(tr, NULL);
	WL_CHECK(err == 0 && sh->r_got, "R did not finish");
	WL_CHECK(shmdt(q_b) == 0, "Q: shmdt B: %s", strerror(errno));
	_exit(0);
}

static void p_tick(pid_t q)
{
	int status;
	struct sembuf op = { .sem_num = 3, .sem_op = 1, .sem_flg = 0 };
	struct msg m;
	ssize_t r;

	wl_check_pid();
	WL_CHECK(sh->nonce == wl_nonce, "shared nonce changed");
	WL_CHECK(waitpid(q, &status, WNOHANG) == 0, "Q ended early (status %#x)", status);
	check_shm();
	check_sem();
	check_msg();
	/* Q's counter, through the read-only view (Q writes it there first, then in sh). */
	{
		uint64_t s1 = sh->ctr_q, bq = b_ro->q_ctr, s2 = sh->ctr_q;

		WL_CHECK(bq >= s1 && bq <= s2 + 1,
			 "Q's counter in shm B is %" PRIu64 ", Q counted %" PRIu64 "..%" PRIu64
			 " (not shared any more)",
			 bq, s1, s2);
	}
	/* Change everything a little. */
	a_word = wl_mix(wl_nonce + wl_tick);
	*(uint64_t *)(a + SHM_A_SIZE - 8) = a_word;
	b->p_word = a_word;
	WL_CHECK(semop(sem, &op, 1) == 0, "semop(sem 3, +1): %s", strerror(errno));
	sem3++;
	msg_fill(&m, next_send);
	WL_CHECK(msgsnd(mq, &m, msg_size(next_send), IPC_NOWAIT) == 0, "msgsnd #%" PRIu64 ": %s",
		 next_send, strerror(errno));
	next_send++;
	r = msgrcv(mq, &m, MAXMSG, 0, IPC_NOWAIT);
	WL_CHECK(r >= 0, "msgrcv #%" PRIu64 ": %s", next_recv, strerror(errno));
	msg_check(&m, r, next_recv, "received message");
	next_recv++;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = wl_usr1_counter };
	unsigned short init[NSEMS] = { 3, 0, 7, 42 };
	union semun arg;
	pid_t q;

	wl_init(argc, argv, "sysvipc P");
	wl_settle_root = wl_pid;
	set_name("P");
	sigaction(SIGUSR1, &sa, NULL);
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(sh != MAP_FAILED, "mmap shared: %s", strerror(errno));
	sh->nonce = wl_nonce;
	sh->p = wl_pid;

	/* 0x5ea1xxx0: the harness recognises (and removes) left-overs by this prefix. */
	key_b = (key_t)(0x5ea10000 | (wl_nonce & 0xfff0));
	key_sem = key_b + 1;
	key_msg = key_b + 2;

	shm_a = shmget(IPC_PRIVATE, SHM_A_SIZE, IPC_CREAT | 0600);
	WL_CHECK(shm_a >= 0, "shmget(IPC_PRIVATE): %s", strerror(errno));
	a = shmat(shm_a, NULL, 0);
	WL_CHECK(a != (void *)-1, "shmat A: %s", strerror(errno));
	WL_CHECK(shmctl(shm_a, IPC_RMID, NULL) == 0, "shmctl(A, IPC_RMID): %s", strerror(errno));
	for (size_t i = 0; i < SHM_A_SIZE; i++)
		a[i] = a_byte(i);
	a_word = *(uint64_t *)(a + SHM_A_SIZE - 8);

	shm_b = shmget(key_b, SHM_B_SIZE, IPC_CREAT | IPC_EXCL | 0640);
	WL_CHECK(shm_b >= 0, "shmget(key %#x): %s", (unsigned)key_b, strerror(errno));
	{
		struct shmid_ds ds;

		WL_CHECK(shmctl(shm_b, IPC_STAT, &ds) == 0, "shmctl(IPC_STAT): %s", strerror(errno));
		ds.shm_perm.uid = OWNER_UID;
		ds.shm_perm.gid = OWNER_GID;
		WL_CHECK(shmctl(shm_b, IPC_SET, &ds) == 0, "shmctl(IPC_SET): %s", strerror(errno));
	}
	b = shmat(shm_b, NULL, 0);
	WL_CHECK(b != (void *)-1, "shmat B: %s", strerror(errno));
	b_ro = shmat(shm_b, NULL, SHM_RDONLY);
	WL_CHECK(b_ro != (void *)-1, "shmat B read-only: %s", strerror(errno));
	b->nonce = wl_nonce;
	b->p_word = a_word;
	for (size_t i = 0; i < SHM_B_SIZE - sizeof *b; i++)
		b->pattern[i] = b_byte(i);

	sem = semget(key_sem, NSEMS, IPC_CREAT | IPC_EXCL | 0600);
	WL_CHECK(sem >= 0, "semget(key %#x): %s", (unsigned)key_sem, strerror(errno));
	arg.array = init;
	WL_CHECK(semctl(sem, 0, SETALL, arg) == 0, "semctl(SETALL): %s", strerror(errno));
	{
		struct semid_ds ds;

		arg.buf = &ds;
		WL_CHECK(semctl(sem, 0, IPC_STAT, arg) == 0, "semctl(IPC_STAT): %s", strerror(errno));
		ds.sem_perm.uid = OWNER_UID;
		ds.sem_perm.gid = OWNER_GID;
		WL_CHECK(semctl(sem, 0, IPC_SET, arg) == 0, "semctl(IPC_SET): %s", strerror(errno));
	}

	mq = msgget(key_msg, IPC_CREAT | IPC_EXCL | 0600);
	WL_CHECK(mq >= 0, "msgget(key %#x): %s", (unsigned)key_msg, strerror(errno));
	{
		struct msqid_ds ds;

		WL_CHECK(msgctl(mq, IPC_STAT, &ds) == 0, "msgctl(IPC_STAT): %s", strerror(errno));
		ds.msg_perm.uid = OWNER_UID;
		ds.msg_perm.gid = OWNER_GID;
		WL_CHECK(msgctl(mq, IPC_SET, &ds) == 0, "msgctl(IPC_SET): %s", strerror(errno));
	}
	for (; next_send < QLEN; next_send++) {
		struct msg m;

		msg_fill(&m, next_send);
		WL_CHECK(msgsnd(mq, &m, msg_size(next_send), IPC_NOWAIT) == 0, "msgsnd: %s",
			 strerror(errno));
	}

	q = fork();
	WL_CHECK(q >= 0, "fork Q: %s", strerror(errno));
	if (q == 0)
		run_q();
	wl_wait_flag(&sh->q_ready, "Q ready");
	wl_wait_flag(&sh->s_waiting, "S started");
	wl_wait_flag(&sh->r_waiting, "R started");
	{
		int64_t until = wl_mono_ns() + 20000000000LL;

		while (semctl(sem, 1, GETNCNT) != 1) {
			WL_CHECK(wl_mono_ns() < until, "S never blocked in semop");
			wl_sleep_ms(2);
		}
	}
	wl_say("INFO ids shm_private=%d shm_key=%d (key %#x) sem=%d (key %#x) msg=%d (key %#x) q=%d",
	       shm_a, shm_b, (unsigned)key_b, sem, (unsigned)key_sem, mq, (unsigned)key_msg, (int)q);
	wl_say("READY");
	for (;;) {
		char extra[256];

		p_tick(q);
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra,
			 "shm=%d,%d sem=%d msg=%d keys=%#x,%#x,%#x sem3=%" PRIu64 " msgs=%" PRIu64
			 "..%" PRIu64 " q_ctr=%" PRIu64,
			 shm_a, shm_b, sem, mq, (unsigned)key_b, (unsigned)key_sem, (unsigned)key_msg,
			 sem3, next_recv, next_send, sh->ctr_q);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}

	/* The end: wake S and R, let Q go, check the undo and detach. */
	sh->stop = 1;
	{
		struct sembuf op = { .sem_num = 1, .sem_op = 1, .sem_flg = 0 };
		struct msg m = { .mtype = 99 };
		struct shmid_ds ds;
		int status;
		pid_t r;

		memcpy(m.mtext, &wl_nonce, 8);
		WL_CHECK(semop(sem, &op, 1) == 0, "semop(sem 1, +1): %s", strerror(errno));
		WL_CHECK(msgsnd(mq, &m, 8, IPC_NOWAIT) == 0, "msgsnd type 99: %s", strerror(errno));
		do
			r = waitpid(q, &status, 0);
		while (r < 0 && errno == EINTR);
		WL_CHECK(r == q && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "Q ended with wait status %#x", status);
		WL_CHECK(semctl(sem, 0, GETVAL) == 2, "semaphore 0 is %d after Q exited, want 2",
			 semctl(sem, 0, GETVAL));
		WL_CHECK(semctl(sem, 1, GETVAL) == 0, "semaphore 1 is %d, want 0 (S took it)",
			 semctl(sem, 1, GETVAL));
		check_msg();
		WL_CHECK(shmdt(b_ro) == 0, "shmdt(B read-only): %s", strerror(errno));
		WL_CHECK(shmctl(shm_b, IPC_STAT, &ds) == 0 && ds.shm_nattch == 1,
			 "shm B nattch %lu after Q's and one of our shmdt, want 1",
			 (unsigned long)ds.shm_nattch);
		WL_CHECK(shmdt(b) == 0, "shmdt(B): %s", strerror(errno));
		WL_CHECK(shmdt(a) == 0, "shmdt(A): %s", strerror(errno));
		WL_CHECK(shmctl(shm_a, IPC_STAT, &ds) < 0 && (errno == EINVAL || errno == EIDRM),
			 "shm A still exists after its last detach");
		WL_CHECK(shmctl(shm_b, IPC_RMID, NULL) == 0, "shmctl(B, IPC_RMID): %s", strerror(errno));
		WL_CHECK(semctl(sem, 0, IPC_RMID) == 0, "semctl(IPC_RMID): %s", strerror(errno));
		WL_CHECK(msgctl(mq, IPC_RMID, NULL) == 0, "msgctl(IPC_RMID): %s", strerror(errno));
	}
	wl_say("DONE ok");
	return 0;
}
