/*
 * creds.c: credentials and security state. Must be started as root.
 *
 * At start it sets supplementary groups {1001, 1002, 65533}, drops
 * CAP_SYS_BOOT, CAP_SYS_MODULE and CAP_MKNOD from the bounding set, sets
 * securebits (KEEP_CAPS | NOROOT), switches to distinct real/effective/saved
 * IDs (uid 65534/65533/65532, gid 65534/65533/65532) keeping capabilities,
 * then sets permitted {CHOWN, KILL, NET_BIND_SERVICE}, effective {KILL,
 * NET_BIND_SERVICE}, inheritable and ambient {NET_BIND_SERVICE},
 * PR_SET_NO_NEW_PRIVS and PR_SET_DUMPABLE 1.
 * Every tick it checks all of them (getresuid, getresgid, getgroups,
 * capget, PR_CAPBSET_READ and PR_CAP_AMBIENT_IS_SET for every capability,
 * PR_GET_NO_NEW_PRIVS, PR_GET_SECUREBITS, PR_GET_KEEPCAPS, PR_GET_DUMPABLE)
 * and that the Uid, Gid, Groups, Cap..., NoNewPrivs and Seccomp lines of
 * /proc/self/status are unchanged (this covers fsuid and fsgid too).
 */
#include "common.h"

#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>

#define NGROUPS_SET 3
static const gid_t groups_want[NGROUPS_SET] = { 1001, 1002, 65533 };
static const uid_t uid_want[3] = { 65534, 65533, 65532 };
static const gid_t gid_want[3] = { 65534, 65533, 65532 };

static int cap_last;
static uint64_t bset_want; /* the inherited bounding set less our drops */
static int secbits_rec, keepcaps_rec, dumpable_rec;
static char status_rec[4096];

static uint64_t capmask(int c)
{
	return 1ULL << c;
}

static void get_caps(uint64_t *eff, uint64_t *prm, uint64_t *inh)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	WL_CHECK(syscall(SYS_capget, &hdr, d) == 0, "capget: %s", strerror(errno));
	*eff = d[0].effective | (uint64_t)d[1].effective << 32;
	*prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	*inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
}

static void set_caps(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = {
		{ (uint32_t)eff, (uint32_t)prm, (uint32_t)inh },
		{ (uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32) },
	};

	WL_CHECK(syscall(SYS_capset, &hdr, d) == 0, "capset: %s", strerror(errno));
}

/* status_lines keeps the credential lines of /proc/self/status. */
static void status_lines(char *out, size_t size)
{
	static char buf[8192];
	static const char *keys[] = { "Uid:",	 "Gid:",    "Groups:", "CapInh:",	 "CapPrm:",
				      "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:" };

	WL_CHECK(wl_read_file("/proc/self/status", buf, sizeof buf) > 0, "read /proc/self/status");
	out[0] = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
			if (strncmp(line, keys[k], strlen(keys[k])) == 0) {
				size_t l = strlen(out);
				snprintf(out + l, size - l, "%s|", line);
			}
}

static void setup(void)
{
	char buf[32];

	WL_CHECK(geteuid() == 0, "creds must be started as root (euid %d)", (int)geteuid());
	WL_CHECK(wl_read_file("/proc/sys/kernel/cap_last_cap", buf, sizeof buf) > 0,
		 "read cap_last_cap");
	cap_last = atoi(buf);
	WL_CHECK(cap_last >= CAP_NET_BIND_SERVICE && cap_last < 64, "cap_last_cap %d", cap_last);

	for (int c = 0; c <= cap_last; c++)
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1 &&
		    !(c == CAP_SYS_BOOT || c == CAP_SYS_MODULE || c == CAP_MKNOD))
			bset_want |= capmask(c);
	WL_CHECK(setgroups(NGROUPS_SET, groups_want) == 0, "setgroups: %s", strerror(errno));
	WL_CHECK(prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0) == 0, "CAPBSET_DROP");
	WL_CHECK(prctl(PR_CAPBSET_DROP, CAP_SYS_MODULE, 0, 0, 0) == 0, "CAPBSET_DROP");
	WL_CHECK(prctl(PR_CAPBSET_DROP, CAP_MKNOD, 0, 0, 0) == 0, "CAPBSET_DROP");
	WL_CHECK(prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS | SECBIT_NOROOT, 0, 0, 0) == 0,
		 "PR_SET_SECUREBITS: %s", strerror(errno));
	WL_CHECK(setresgid(gid_want[0], gid_want[1], gid_want[2]) == 0, "setresgid: %s",
		 strerror(errno));
	WL_CHECK(setresuid(uid_want[0], uid_want[1], uid_want[2]) == 0, "setresuid: %s",
		 strerror(errno));
	set_caps(capmask(CAP_KILL) | capmask(CAP_NET_BIND_SERVICE),
		 capmask(CAP_KILL) | capmask(CAP_NET_BIND_SERVICE) | capmask(CAP_CHOWN),
		 capmask(CAP_NET_BIND_SERVICE));
	WL_CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) == 0,
		 "PR_CAP_AMBIENT_RAISE: %s", strerror(errno));
	WL_CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS");
	WL_CHECK(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) == 0, "PR_SET_DUMPABLE");
	WL_CHECK(prctl(PR_SET_NAME, "wl-creds", 0, 0, 0) == 0, "PR_SET_NAME");

	secbits_rec = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	keepcaps_rec = prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0);
	dumpable_rec = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	status_lines(status_rec, sizeof status_rec);
}

static void verify(void)
{
	uid_t u[3];
	gid_t g[3], groups[64];
	uint64_t eff, prm, inh;
	int n;
	char status[4096];

	wl_check_pid();
	WL_CHECK(getresuid(&u[0], &u[1], &u[2]) == 0, "getresuid");
	WL_CHECK(u[0] == uid_want[0] && u[1] == uid_want[1] && u[2] == uid_want[2],
		 "uids %d/%d/%d, want %d/%d/%d", (int)u[0], (int)u[1], (int)u[2], (int)uid_want[0],
		 (int)uid_want[1], (int)uid_want[2]);
	WL_CHECK(getresgid(&g[0], &g[1], &g[2]) == 0, "getresgid");
	WL_CHECK(g[0] == gid_want[0] && g[1] == gid_want[1] && g[2] == gid_want[2],
		 "gids %d/%d/%d, want %d/%d/%d", (int)g[0], (int)g[1], (int)g[2], (int)gid_want[0],
		 (int)gid_want[1], (int)gid_want[2]);
	n = getgroups(64, groups);
	WL_CHECK(n == NGROUPS_SET, "%d supplementary groups, want %d", n, NGROUPS_SET);
	for (int i = 0; i < NGROUPS_SET; i++) {
		int found = 0;

		for (int j = 0; j < n; j++)
			found |= groups[j] == groups_want[i];
		WL_CHECK(found, "supplementary group %d missing", (int)groups_want[i]);
	}
	get_caps(&eff, &prm, &inh);
	WL_CHECK(eff == (capmask(CAP_KILL) | capmask(CAP_NET_BIND_SERVICE)),
		 "effective capabilities %#" PRIx64, eff);
	WL_CHECK(prm == (capmask(CAP_KILL) | capmask(CAP_NET_BIND_SERVICE) | capmask(CAP_CHOWN)),
		 "permitted capabilities %#" PRIx64, prm);
	WL_CHECK(inh == capmask(CAP_NET_BIND_SERVICE), "inheritable capabilities %#" PRIx64, inh);
	for (int c = 0; c <= cap_last; c++) {
		int bset = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
		int amb = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0);
		int bwant = (bset_want & capmask(c)) != 0;

		WL_CHECK(bset == bwant, "bounding set: capability %d is %d, want %d", c, bset, bwant);
		WL_CHECK(amb == (c == CAP_NET_BIND_SERVICE), "ambient set: capability %d is %d", c,
			 amb);
	}
	WL_CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs is %d",
		 prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	WL_CHECK(prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) == secbits_rec &&
			 secbits_rec == (SECBIT_KEEP_CAPS | SECBIT_NOROOT),
		 "securebits %#x, was %#x", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0), secbits_rec);
	WL_CHECK(prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0) == keepcaps_rec, "keepcaps %d, was %d",
		 prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0), keepcaps_rec);
	WL_CHECK(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == dumpable_rec && dumpable_rec == 1,
		 "dumpable %d, was %d", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), dumpable_rec);
	status_lines(status, sizeof status);
	WL_CHECK(strcmp(status, status_rec) == 0, "/proc/self/status credentials: %s; were %s",
		 status, status_rec);
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	wl_init(argc, argv, "creds");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	setup();
	wl_say("READY");
	for (;;) {
		verify();
		if (wl_stop_requested())
			break;
		wl_print_tick(NULL, "uid=65534,65533,65532");
		wl_sleep_ms(20);
	}
	verify();
	wl_say("DONE ok");
	return 0;
}
