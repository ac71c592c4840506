/* acceptor: a busy TCP server for the flood test (flood_test.go).
 *
 * acceptor PORT
 *   Listens on 0.0.0.0:PORT with a backlog of 4096, prints "ready", then
 *   accepts connections one after the other, answers each with
 *   "served N\n" (N counts every connection served, across a restore)
 *   and closes it.
 */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 4096) != 0) {
		perror("listen");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	unsigned long served = 0;
	for (;;) {
		int c = accept(l, NULL, NULL);
		if (c < 0)
			continue;
		char b[64];
		int n = snprintf(b, sizeof b, "served %lu\n", ++served);
		if (write(c, b, (size_t)n) != n)
			served--;
		close(c);
	}
}
