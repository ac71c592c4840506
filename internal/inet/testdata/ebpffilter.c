/* ebpffilter: a UDP socket with an eBPF socket filter (SO_ATTACH_BPF),
 * whose program the kernel cannot hand back: a checkpoint must refuse it.
 *
 * ebpffilter DIR: prints "ready", then waits for DIR/stop, checking every
 * 10 ms that the filter is still attached (SO_GET_FILTER answers EACCES).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif

int main(int argc, char **argv)
{
	struct bpf_insn prog[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0xffff },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	union bpf_attr attr;
	char stop[4096], buf[8];
	socklen_t l = 0;
	int s, fd;

	if (argc != 2)
		return 2;
	memset(&attr, 0, sizeof attr);
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insns = (unsigned long)prog;
	attr.insn_cnt = 2;
	attr.license = (unsigned long)"GPL";
	fd = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
	if (fd < 0) {
		fprintf(stderr, "ebpffilter: BPF_PROG_LOAD: %s\n", strerror(errno));
		return 1;
	}
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (setsockopt(s, SOL_SOCKET, SO_ATTACH_BPF, &fd, sizeof fd)) {
		fprintf(stderr, "ebpffilter: SO_ATTACH_BPF: %s\n", strerror(errno));
		return 1;
	}
	close(fd);
	printf("ready\n");
	fflush(stdout);
	snprintf(stop, sizeof stop, "%s/stop", argv[1]);
	while (access(stop, F_OK)) {
		if (getsockopt(s, SOL_SOCKET, SO_GET_FILTER, buf, &l) == 0 || errno != EACCES) {
			fprintf(stderr, "ebpffilter: the eBPF filter is gone\n");
			return 1;
		}
		usleep(10000);
	}
	return 0;
}
