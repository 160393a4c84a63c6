// SPDX-License-Identifier: GPL-2.0
/*
 * memfdrace: an executable in a memfd, its record swapped under traffic
 * (issue 15, 5e), for the debug kernel (KASAN).
 *
 *   memfdrace HOST PORT SWAPS
 *
 * Copies the dynamic loader into a memfd and executes it (execveat with
 * AT_EMPTY_PATH, as fexecve does) to run this program again: the
 * executable is then a memfd, whose dentry the kernel frees at once, not
 * after a grace period.  The second run starts a thread that sends UDP
 * datagrams to HOST:PORT on one socket without pause (every one asks the
 * module whether the sender is still the executable its socket was
 * learnt from), unmaps the loader, and SWAPS times makes a new memfd the
 * executable (prctl PR_SET_MM_MAP with exe_fd) and closes it, so each
 * record it replaces is freed while datagrams are being judged.  Prints
 * "sent N swaps M" and exits.  Link with -z now.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/prctl.h>

static volatile int ready, go, stop;
static volatile unsigned long sent;
static int sock;

static void say(const char *s)
{
	if (write(1, s, strlen(s)) < 0)
		_exit(3);
}

static void *sender(void *arg)
{
	(void)arg;
	/* One send before the loader goes, so nothing is left to set up. */
	if (send(sock, "t", 1, 0) == 1)
		sent++;
	ready = 1;
	while (!go)
		;
	while (!stop)
		if (send(sock, "r", 1, 0) == 1)
			sent++;
	return NULL;
}

static int unmap_memfd_loader(void)
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
		if (strstr(line, "/memfd:vordr-ld") &&
		    sscanf(line, "%lx-%lx", &lo[n], &hi[n]) == 2)
			n++;
	if (!n)
		return -1;
	for (i = 0; i < n; i++)
		if (munmap((void *)lo[i], hi[i] - lo[i]))
			return -1;
	return 0;
}

static int mm_map(struct prctl_mm_map *map)
{
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
	p += 4;		/* after ") S ": field 4 */
	for (i = 0; i < 48 && *p; i++)
		f[i] = strtoul(p, &p, 10);
	if (i < 48)
		return -1;
	memset(map, 0, sizeof(*map));
	map->start_code = f[22];
	map->end_code = f[23];
	map->start_stack = f[24];
	map->start_data = f[41];
	map->end_data = f[42];
	map->start_brk = f[43];
	map->brk = (unsigned long)sbrk(0);
	map->arg_start = f[44];
	map->arg_end = f[45];
	map->env_start = f[46];
	map->env_end = f[47];
	return 0;
}

static int stage2(const char *host, const char *port, long swaps)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct prctl_mm_map map;
	pthread_t t;
	char line[80];
	long i, done = 0;
	int fd;

	sin.sin_port = htons(atoi(port));
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		return 2;
	sock = socket(AF_INET, SOCK_DGRAM, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sin, sizeof(sin)))
		return 5;
	if (send(sock, "first", 5, 0) != 5)
		return 5;
	/* Before the loader goes: pthread_create() needs it. */
	if (pthread_create(&t, NULL, sender, NULL))
		return 6;
	while (!ready)
		;
	if (mm_map(&map))
		return 7;
	if (geteuid() && unshare(CLONE_NEWUSER))
		return 8;
	if (unmap_memfd_loader()) {
		say("unmap failed\n");
		return 9;
	}
	go = 1;
	for (i = 0; i < swaps; i++) {
		fd = memfd_create("vordr-exe", 0);
		if (fd < 0 || write(fd, "x", 1) != 1)
			break;
		map.exe_fd = fd;
		/* Without CONFIG_CHECKPOINT_RESTORE: PR_SET_MM_EXE_FILE (root). */
		if (!prctl(PR_SET_MM, PR_SET_MM_MAP, (unsigned long)&map, sizeof(map), 0) ||
		    !prctl(PR_SET_MM, PR_SET_MM_EXE_FILE, fd, 0, 0))
			done++;
		close(fd);
	}
	stop = 1;
	snprintf(line, sizeof(line), "sent %lu swaps %ld\n", sent, done);
	say(line);
	_exit(0);
}

int main(int argc, char **argv)
{
	char *args[] = { "vordr-ld", argv[0], "2", argv[1], argv[2], argv[3], NULL };
	struct stat st;
	int ld, mfd;

	if (argc == 5 && !strcmp(argv[1], "2"))
		return stage2(argv[2], argv[3], atol(argv[4]));
	if (argc != 4)
		return 2;
	ld = open("/lib64/ld-linux-x86-64.so.2", O_RDONLY);
	mfd = memfd_create("vordr-ld", MFD_CLOEXEC);
	if (ld < 0 || mfd < 0 || fstat(ld, &st))
		return 10;
	if (sendfile(mfd, ld, NULL, st.st_size) != st.st_size)
		return 11;
	close(ld);
	syscall(SYS_execveat, mfd, "", args, environ, AT_EMPTY_PATH);
	return 12;
}
