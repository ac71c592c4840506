/*
 * xstate.c: FPU/SSE/AVX/AVX-512 register state kept live across sleeps.
 *
 * Two threads (main and a worker) each run a hand-written assembly loop
 * that loads distinct patterns into every vector register (zmm0-31 and
 * k0-7 with AVX-512F, else ymm0-15) and two 80-bit values onto the x87
 * stack, then repeatedly calls nanosleep(2) with the raw syscall
 * instruction and compares every register with its pattern. A checkpoint
 * almost always lands inside one of those sleeps, with the registers live.
 * Each thread also sets its own x87 control word (precision and rounding)
 * and MXCSR (rounding, FTZ, DAZ) and checks them and a rounding-sensitive
 * float and long double division every tick.
 * SIGUSR1 runs a handler that trashes every vector register, MXCSR and the
 * x87 state: sigreturn must bring the interrupted loop's state back.
 */
#include "common.h"

#include <pthread.h>

/* Pattern and dump layout, shared with the assembly below. */
#define OFF_K 2048   /* after 32 zmm registers of 64 bytes */
#define OFF_X87 2112 /* after 8 opmask registers of 8 bytes */
#define STATE_BYTES 2144
#define Y_OFF_X87 512 /* AVX2 layout: 16 ymm registers of 32 bytes */
#define Y_STATE_BYTES 544

struct xstate_buf {
	unsigned char b[STATE_BYTES];
} __attribute__((aligned(64)));

/* xs_loop512/xs_loop256 return 0, or 1 + the index of the first differing qword. */
long xs_loop512(const void *pat, void *scratch, long iters, const struct timespec *ts);
long xs_loop256(const void *pat, void *scratch, long iters, const struct timespec *ts);
void xs_clobber512(void);
void xs_clobber256(void);

__asm__(".text\n"
	".globl xs_loop512\n"
	".type xs_loop512,@function\n"
	"xs_loop512:\n"
	"	push %rbx\n"
	"	push %r12\n"
	"	push %r13\n"
	"	push %r14\n"
	"	push %r15\n"
	"	mov %rdi, %r12\n"
	"	mov %rsi, %r13\n"
	"	mov %rdx, %r14\n"
	"	mov %rcx, %r15\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"	vmovdqu64 \\i*64(%r12), %zmm\\i\n"
	"	.endr\n"
	"	.irp i,0,1,2,3,4,5,6,7\n"
	"	kmovq 2048+\\i*8(%r12), %k\\i\n"
	"	.endr\n"
	"	fldt 2128(%r12)\n"
	"	fldt 2112(%r12)\n"
	"1:\n"
	"	mov $35, %eax\n" /* nanosleep(ts, NULL) */
	"	mov %r15, %rdi\n"
	"	xor %esi, %esi\n"
	"	syscall\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"	vmovdqu64 %zmm\\i, \\i*64(%r13)\n"
	"	.endr\n"
	"	.irp i,0,1,2,3,4,5,6,7\n"
	"	kmovq %k\\i, 2048+\\i*8(%r13)\n"
	"	.endr\n"
	"	fld %st(0)\n"
	"	fstpt 2112(%r13)\n"
	"	fld %st(1)\n"
	"	fstpt 2128(%r13)\n"
	"	mov %r12, %rsi\n"
	"	mov %r13, %rdi\n"
	"	mov $268, %ecx\n" /* 2144 / 8 */
	"	cld\n"
	"	repe cmpsq\n"
	"	jne 2f\n"
	"	dec %r14\n"
	"	jnz 1b\n"
	"	xor %eax, %eax\n"
	"	jmp 3f\n"
	"2:\n"
	"	mov $268, %eax\n"
	"	sub %rcx, %rax\n"
	"3:\n"
	"	fstp %st(0)\n"
	"	fstp %st(0)\n"
	"	vzeroupper\n"
	"	pop %r15\n"
	"	pop %r14\n"
	"	pop %r13\n"
	"	pop %r12\n"
	"	pop %rbx\n"
	"	ret\n"
	".size xs_loop512, .-xs_loop512\n"

	".globl xs_loop256\n"
	".type xs_loop256,@function\n"
	"xs_loop256:\n"
	"	push %rbx\n"
	"	push %r12\n"
	"	push %r13\n"
	"	push %r14\n"
	"	push %r15\n"
	"	mov %rdi, %r12\n"
	"	mov %rsi, %r13\n"
	"	mov %rdx, %r14\n"
	"	mov %rcx, %r15\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	vmovdqu \\i*32(%r12), %ymm\\i\n"
	"	.endr\n"
	"	fldt 528(%r12)\n"
	"	fldt 512(%r12)\n"
	"1:\n"
	"	mov $35, %eax\n"
	"	mov %r15, %rdi\n"
	"	xor %esi, %esi\n"
	"	syscall\n"
	"	.irp i,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	vmovdqu %ymm\\i, \\i*32(%r13)\n"
	"	.endr\n"
	"	fld %st(0)\n"
	"	fstpt 512(%r13)\n"
	"	fld %st(1)\n"
	"	fstpt 528(%r13)\n"
	"	mov %r12, %rsi\n"
	"	mov %r13, %rdi\n"
	"	mov $68, %ecx\n" /* 544 / 8 */
	"	cld\n"
	"	repe cmpsq\n"
	"	jne 2f\n"
	"	dec %r14\n"
	"	jnz 1b\n"
	"	xor %eax, %eax\n"
	"	jmp 3f\n"
	"2:\n"
	"	mov $68, %eax\n"
	"	sub %rcx, %rax\n"
	"3:\n"
	"	fstp %st(0)\n"
	"	fstp %st(0)\n"
	"	vzeroupper\n"
	"	pop %r15\n"
	"	pop %r14\n"
	"	pop %r13\n"
	"	pop %r12\n"
	"	pop %rbx\n"
	"	ret\n"
	".size xs_loop256, .-xs_loop256\n"

	/* Trash every vector register, the opmasks, MXCSR and the x87 state. */
	".globl xs_clobber512\n"
	".type xs_clobber512,@function\n"
	"xs_clobber512:\n"
	"	vpternlogd $0xff, %zmm0, %zmm0, %zmm0\n"
	"	.irp i,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
	"	vmovdqa64 %zmm0, %zmm\\i\n"
	"	.endr\n"
	"	.irp i,0,1,2,3,4,5,6,7\n"
	"	kxnorq %k\\i, %k\\i, %k\\i\n"
	"	.endr\n"
	"	jmp xs_clobber_common\n"
	".size xs_clobber512, .-xs_clobber512\n"
	".globl xs_clobber256\n"
	".type xs_clobber256,@function\n"
	"xs_clobber256:\n"
	"	vpcmpeqd %ymm0, %ymm0, %ymm0\n"
	"	.irp i,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
	"	vmovdqa %ymm0, %ymm\\i\n"
	"	.endr\n"
	"xs_clobber_common:\n"
	"	fninit\n"
	"	sub $8, %rsp\n"
	"	movl $0x1f80, (%rsp)\n"
	"	ldmxcsr (%rsp)\n"
	"	add $8, %rsp\n"
	"	vzeroupper\n"
	"	ret\n"
	".size xs_clobber256, .-xs_clobber256\n");

static int use512;
static volatile int worker_stop;
static pid_t tids[2];
static char tids_str[64];
static volatile uint64_t loops[2];

struct thread_fp {
	unsigned mxcsr;
	unsigned short cw;
};
static const struct thread_fp fp_want[2] = {
	{ 0x1f80 | 0x6000 | 0x8000 | 0x0040, (0x037f & ~0x0f00) | 0x0200 | 0x0800 }, /* RZ+FTZ+DAZ; PC53, up */
	{ 0x1f80 | 0x4000, 0x037f | 0x0400 },					     /* up; PC64, down */
};

static void usr1_handler(int sig)
{
	(void)sig;
	wl_usr1_count++;
	if (use512)
		xs_clobber512();
	else
		xs_clobber256();
}

static void fill_pattern(struct xstate_buf *p, int thread)
{
	uint64_t *q = (uint64_t *)p->b;
	int x87 = use512 ? OFF_X87 : Y_OFF_X87;

	memset(p, 0, sizeof *p);
	for (int i = 0; i < x87 / 8; i++)
		q[i] = wl_mix(wl_nonce ^ (uint64_t)thread << 32 ^ (uint64_t)i);
	/* Two normal 80-bit numbers: explicit integer bit set, modest exponent. */
	for (int v = 0; v < 2; v++) {
		uint64_t mant = wl_mix(wl_nonce ^ 0x87 ^ (uint64_t)(thread * 2 + v)) | 1ULL << 63;
		uint16_t se = (uint16_t)(0x3fff + thread * 4 + v) | (v ? 0x8000 : 0);

		memcpy(p->b + x87 + v * 16, &mant, 8);
		memcpy(p->b + x87 + v * 16 + 8, &se, 2);
	}
}

static void set_fp(int thread)
{
	unsigned mx = fp_want[thread].mxcsr;
	unsigned short cw = fp_want[thread].cw;

	__asm__ volatile("ldmxcsr %0" : : "m"(mx));
	__asm__ volatile("fldcw %0" : : "m"(cw));
}

struct fp_result {
	float f;
	long double ld;
};

static void compute(struct fp_result *r)
{
	volatile float a = 1.0f, b = 3.0f;
	volatile long double la = 2.0L, lb = 3.0L;

	r->f = a / b;
	r->ld = la / lb;
}

/* check_fp verifies the thread's control words and what they do to arithmetic. */
static void check_fp(int thread, const struct fp_result *rec)
{
	unsigned mx;
	unsigned short cw;
	struct fp_result now;

	__asm__ volatile("stmxcsr %0" : "=m"(mx));
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	WL_CHECK((mx & ~0x3fu) == fp_want[thread].mxcsr, "thread %d: MXCSR %#x, want %#x", thread,
		 mx, fp_want[thread].mxcsr);
	WL_CHECK(cw == fp_want[thread].cw, "thread %d: x87 control word %#x, want %#x", thread, cw,
		 fp_want[thread].cw);
	compute(&now);
	WL_CHECK(memcmp(&now.f, &rec->f, sizeof now.f) == 0, "thread %d: float 1/3 rounds differently",
		 thread);
	WL_CHECK(memcmp(&now.ld, &rec->ld, 10) == 0, "thread %d: long double 2/3 rounds differently",
		 thread);
}

/* run_loop runs ~20 ms of the register loop and fails on a mismatch. */
static void run_loop(int thread, const struct xstate_buf *pat, struct xstate_buf *scratch)
{
	static const struct timespec ts = { 0, 4000000 };
	long r = use512 ? xs_loop512(pat, scratch, 5, &ts) : xs_loop256(pat, scratch, 5, &ts);

	if (r != 0) {
		long q = r - 1;
		int x87 = use512 ? OFF_X87 : Y_OFF_X87;
		uint64_t got = ((uint64_t *)scratch->b)[q], want = ((const uint64_t *)pat->b)[q];
		char what[64];

		if (q * 8 >= x87)
			snprintf(what, sizeof what, "x87 st(%ld)", (q * 8 - x87) / 16);
		else if (use512 && q * 8 >= OFF_K)
			snprintf(what, sizeof what, "k%ld", (q * 8 - OFF_K) / 8);
		else
			snprintf(what, sizeof what, "%s%ld qword %ld", use512 ? "zmm" : "ymm",
				 q / (use512 ? 8 : 4), q % (use512 ? 8 : 4));
		wl_fail("thread %d: %s is %#" PRIx64 ", want %#" PRIx64, thread, what, got, want);
	}
	loops[thread]++;
}

static void *worker(void *arg)
{
	static struct xstate_buf pat, scratch;
	struct fp_result rec;

	(void)arg;
	tids[1] = wl_gettid();
	fill_pattern(&pat, 1);
	set_fp(1);
	compute(&rec);
	while (!__atomic_load_n(&worker_stop, __ATOMIC_ACQUIRE)) {
		run_loop(1, &pat, &scratch);
		check_fp(1, &rec);
		WL_CHECK(wl_gettid() == tids[1], "worker tid changed");
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static struct xstate_buf pat, scratch;
	struct fp_result rec;
	struct sigaction sa;
	pthread_t th;

	wl_init(argc, argv, "xstate");
	__builtin_cpu_init();
	use512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"); /* kmovq */
	WL_CHECK(use512 || __builtin_cpu_supports("avx2"), "neither AVX-512F nor AVX2");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = usr1_handler;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");

	tids[0] = wl_gettid();
	fill_pattern(&pat, 0);
	set_fp(0);
	compute(&rec);
	WL_CHECK(pthread_create(&th, NULL, worker, NULL) == 0, "pthread_create");
	while (__atomic_load_n(&loops[1], __ATOMIC_ACQUIRE) == 0)
		run_loop(0, &pat, &scratch);
	snprintf(tids_str, sizeof tids_str, "%d,%d", (int)tids[0], (int)tids[1]);
	wl_say("INFO xstate=%s", use512 ? "avx512" : "avx2");
	wl_say("READY");
	for (;;) {
		char extra[64];

		run_loop(0, &pat, &scratch);
		check_fp(0, &rec);
		wl_check_pid();
		WL_CHECK(wl_gettid() == tids[0], "main tid changed");
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "loops=%" PRIu64 ",%" PRIu64, loops[0], loops[1]);
		wl_print_tick(tids_str, extra);
	}
	__atomic_store_n(&worker_stop, 1, __ATOMIC_RELEASE);
	WL_CHECK(pthread_join(th, NULL) == 0, "join");
	run_loop(0, &pat, &scratch);
	check_fp(0, &rec);
	wl_say("DONE ok");
	return 0;
}
