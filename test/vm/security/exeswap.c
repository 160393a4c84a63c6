// SPDX-License-Identifier: GPL-2.0
/*
 * exeswap: poses as another executable, then connects.  Run through the
 * dynamic loader ("ld.so exeswap PATH HOST PORT") so that the loader, not
 * this program, is the executable exec mapped: the loader's mappings can
 * then be unmapped (replace_mm_exe_file() refuses while the old executable
 * is mapped), and prctl(PR_SET_MM, PR_SET_MM_MAP) with exe_fd names PATH
 * as the executable.  That needs CAP_CHECKPOINT_RESTORE in the caller's
 * user namespace: an unprivileged user gets it by unshare(CLONE_NEWUSER).
 * (A kernel without CONFIG_CHECKPOINT_RESTORE has only PR_SET_MM_EXE_FILE,
 * for root.)
 * Without PATH ("-") it connects as itself.  Prints "swapped" when the swap
 * succeeded, then "connect ok" or "connect ERRNO".  Link with -z now: the
 * loader is gone once the swap is made, so nothing may be resolved late.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/prctl.h>

static void say(const char *s)
{
	if (write(1, s, strlen(s)) < 0)
		_exit(3);
}

static const char *ename(int e)
{
	switch (e) {
	case ECONNREFUSED: return "ECONNREFUSED";
	case EPERM: return "EPERM";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EACCES: return "EACCES";
	}
	return "EOTHER";
}

/* The loader's mappings, found (before any is unmapped) in /proc/self/maps. */
static int unmap_loader(void)
{
	static unsigned long lo[64], hi[64];
	static char buf[1 << 16];
	int fd = open("/proc/self/maps", O_RDONLY), n = 0, i;
	ssize_t len = 0, r;
	char *line, *save;

	if (fd < 0)
		return -1;
	while ((r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += r;
	close(fd);
	buf[len] = 0;
	for (line = strtok_r(buf, "\n", &save); line && n < 64;
	     line = strtok_r(NULL, "\n", &save))
		if (strstr(line, "/ld-linux") &&
		    sscanf(line, "%lx-%lx", &lo[n], &hi[n]) == 2)
			n++;
	if (!n)
		return -1;
	for (i = 0; i < n; i++)
		if (munmap((void *)lo[i], hi[i] - lo[i]))
			return -1;
	return 0;
}

static int swap_exe(const char *path)
{
	struct prctl_mm_map map;
	unsigned long f[48];
	char stat[4096], *p;
	int fd, i;
	ssize_t r;

	fd = open("/proc/self/stat", O_RDONLY);
	if (fd < 0)
		return -1;
	r = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	if (r <= 0)
		return -1;
	stat[r] = 0;
	p = strrchr(stat, ')');
	if (!p)
		return -1;
	/* After ") S ": f[0] is field 4 (ppid). */
	p += 4;
	for (i = 0; i < 48 && *p; i++)
		f[i] = strtoul(p, &p, 10);
	if (i < 48)
		return -1;
	memset(&map, 0, sizeof(map));
	map.start_code = f[22];		/* field 26 */
	map.end_code = f[23];
	map.start_stack = f[24];
	map.start_data = f[41];		/* field 45 */
	map.end_data = f[42];
	map.start_brk = f[43];
	map.brk = (unsigned long)sbrk(0);
	map.arg_start = f[44];
	map.arg_end = f[45];
	map.env_start = f[46];
	map.env_end = f[47];
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	map.exe_fd = fd;
	/* Root has CAP_CHECKPOINT_RESTORE already, and CAP_SYS_RESOURCE. */
	if (geteuid() && unshare(CLONE_NEWUSER)) {
		say("unshare failed\n");
		return -1;
	}
	if (unmap_loader()) {
		say("unmap failed\n");
		return -1;
	}
	/*
	 * Without CONFIG_CHECKPOINT_RESTORE there is no PR_SET_MM_MAP, and
	 * PR_SET_MM_EXE_FILE needs CAP_SYS_RESOURCE: root only.
	 */
	if (prctl(PR_SET_MM, PR_SET_MM_MAP, (unsigned long)&map, sizeof(map), 0) &&
	    prctl(PR_SET_MM, PR_SET_MM_EXE_FILE, fd, 0, 0)) {
		{ char m[48]; snprintf(m, sizeof(m), "prctl failed %d\n", errno); say(m); }
		return -1;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct pollfd pfd;
	int s, err = 0;
	socklen_t len = sizeof(err);
	char line[64];

	if (argc != 4)
		return 2;
	sin.sin_port = htons(atoi(argv[3]));
	if (inet_pton(AF_INET, argv[2], &sin.sin_addr) != 1)
		return 2;
	if (strcmp(argv[1], "-")) {
		if (swap_exe(argv[1]))
			_exit(4);
		say("swapped\n");
	}
	s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (s < 0)
		_exit(5);
	if (connect(s, (struct sockaddr *)&sin, sizeof(sin)) && errno != EINPROGRESS) {
		err = errno;
	} else {
		pfd.fd = s;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, 3000) != 1)
			err = ETIMEDOUT;
		else if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len))
			err = errno;
	}
	snprintf(line, sizeof(line), "connect %s\n", err ? ename(err) : "ok");
	say(line);
	_exit(0);
}
