// SPDX-License-Identifier: GPL-2.0
/*
 * vbench: the two loopback workloads of bench/run.sh, client and server in
 * one executable (so one vordr rule covers both ends).
 *
 *   vbench storm CONNS PAR PORT [SECS]
 *       PAR client processes make CONNS TCP connections in all to a server
 *       process on 127.0.0.1:PORT: connect, the server accepts and closes,
 *       the client reads EOF and closes.
 *   vbench udp DGRAMS SIZE PORT [SECS]
 *       a sender sends DGRAMS datagrams of SIZE bytes to a receiver process
 *       on 127.0.0.1:PORT.
 *
 * SECS (0: none) stops the clients or the sender after that many seconds,
 * for a firewall too slow to finish in reasonable time.
 *
 * Prints one line of KEY=VALUE: rate is connections/s (storm, measured from
 * the moment every client is ready to the moment the last one is done) or
 * received datagrams/s (udp, from the first datagram received to the last;
 * the receiver stops once the sender is done and its queue is empty).
 * Exit status 0 only if every connection made succeeded (storm) or at least
 * half the datagrams sent arrived (udp); anything else is a broken run.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static __attribute__((noreturn)) void die(const char *what)
{
	fprintf(stderr, "vbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static long arg(const char *s, const char *name, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max) {
		fprintf(stderr, "vbench: %s must be an integer in [%ld, %ld], got '%s'\n",
			name, min, max, s);
		exit(2);
	}
	return v;
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

/* Exact-size read or write on a pipe. */
static void xfer(int fd, void *buf, size_t len, int wr)
{
	char *p = buf;

	while (len) {
		ssize_t n = wr ? write(fd, p, len) : read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die(wr ? "pipe write" : "pipe read");
		p += n;
		len -= n;
	}
}

static int storm(long conns, long par, int port, double secs)
{
	struct sockaddr_in a = loopback(port);
	int one = 1, ready[2], go[2], done[2];
	long i, errors = 0, made = 0;
	pid_t server;
	double t0, t1;
	int ls;

	ls = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0)
		die("socket");
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 4096))
		die("bind/listen");

	server = fork();
	if (server < 0)
		die("fork");
	if (server == 0) {
		for (;;) {
			int c = accept(ls, NULL, NULL);

			if (c < 0) {
				if (errno == EINTR || errno == ECONNABORTED)
					continue;
				die("accept");
			}
			close(c);
		}
	}
	close(ls);

	if (pipe(ready) || pipe(go) || pipe(done))
		die("pipe");
	for (i = 0; i < par; i++) {
		long n = conns / par + (i < conns % par), k, err = 0, res[2];
		double end;
		char c;

		switch (fork()) {
		case -1:
			die("fork");
		case 0:
			close(ready[0]); close(go[1]); close(done[0]);
			xfer(ready[1], "r", 1, 1);
			xfer(go[0], &c, 1, 0);
			end = now() + secs;
			for (k = 0; k < n && (!secs || now() < end); k++) {
				int s = socket(AF_INET, SOCK_STREAM, 0);

				if (s < 0)
					die("socket");
				if (connect(s, (struct sockaddr *)&a, sizeof(a))) {
					if (err++ < 3)
						fprintf(stderr, "vbench: connect: %s\n", strerror(errno));
				} else if (read(s, &c, 1) != 0) {
					if (err++ < 3)
						fprintf(stderr, "vbench: expected EOF from the server\n");
				}
				close(s);
			}
			res[0] = k;
			res[1] = err;
			xfer(done[1], res, sizeof(res), 1);
			_exit(0);
		}
	}
	close(ready[1]); close(go[0]); close(done[1]);
	for (i = 0; i < par; i++) {
		char c;

		xfer(ready[0], &c, 1, 0);
	}
	t0 = now();
	for (i = 0; i < par; i++)
		xfer(go[1], "g", 1, 1);
	for (i = 0; i < par; i++) {
		long res[2];

		xfer(done[0], res, sizeof(res), 0);
		made += res[0];
		errors += res[1];
	}
	t1 = now();
	kill(server, SIGKILL);
	while (wait(NULL) > 0)
		;
	printf("workload=storm conns=%ld made=%ld par=%ld errors=%ld secs=%.4f rate=%.1f\n",
	       conns, made, par, errors, t1 - t0, (made - errors) / (t1 - t0));
	return errors || !made ? 1 : 0;
}

static int udp(long dgrams, long size, int port, double secs)
{
	struct sockaddr_in a = loopback(port);
	int rcvbuf = 32 << 20, res[2], ready[2], fin[2];
	double t0, t1, tsend, tsent, end;
	char *buf = calloc(1, size + 1);
	long got = 0, i, bytes = 0, sent = 0, senderr = 0;
	pid_t receiver;
	int s;

	if (!buf)
		die("calloc");
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0)
		die("socket");
	if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)))
		setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)))
		die("bind");
	if (pipe(res) || pipe(ready) || pipe(fin))
		die("pipe");

	receiver = fork();
	if (receiver < 0)
		die("fork");
	if (receiver == 0) {
		struct pollfd p[2] = { { .fd = s, .events = POLLIN },
				       { .fd = fin[0], .events = POLLIN } };
		double r[3] = { 0, 0, 0 };
		int sent_all = 0;

		close(res[0]); close(ready[0]); close(fin[1]);
		xfer(ready[1], "r", 1, 1);
		/*
		 * Until the sender is done and the queue has been empty for
		 * 0.2 s (a stalled VM must not end the flood early).
		 */
		while (poll(p, sent_all ? 1 : 2, sent_all ? 200 : -1) > 0) {
			ssize_t n;

			if (!sent_all && p[1].revents)
				sent_all = 1;
			while ((n = recv(s, buf, size + 1, MSG_DONTWAIT)) >= 0) {
				if (!got)
					r[0] = now();
				got++;
				bytes += n;
				r[1] = now();
			}
		}
		r[2] = got;
		xfer(res[1], r, sizeof(r), 1);
		_exit(0);
	}
	close(s); close(res[1]); close(ready[1]); close(fin[0]);
	{
		char c;

		xfer(ready[0], &c, 1, 0);
	}

	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)))
		die("udp connect");
	tsend = now();
	end = tsend + secs;
	for (i = 0; i < dgrams && (!secs || (i & 63) || now() < end); i++) {
		memcpy(buf, &i, sizeof(i) < (size_t)size ? sizeof(i) : (size_t)size);
		if (send(s, buf, size, 0) == size) {
			sent++;
		} else if (senderr++ < 3) {
			fprintf(stderr, "vbench: send: %s\n", strerror(errno));
		}
	}
	tsent = now();
	xfer(fin[1], "f", 1, 1);
	{
		double r[3];

		xfer(res[0], r, sizeof(r), 0);
		t0 = r[0]; t1 = r[1]; got = (long)r[2];
	}
	waitpid(receiver, NULL, 0);
	printf("workload=udp dgrams=%ld size=%ld sent=%ld received=%ld senderrors=%ld "
	       "sendrate=%.1f secs=%.4f rate=%.1f\n",
	       dgrams, size, sent, got, senderr, sent / (tsent - tsend), t1 - t0,
	       got > 1 && t1 > t0 ? (got - 1) / (t1 - t0) : 0.0);
	return senderr || got < sent / 2 ? 1 : 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	double secs = argc == 6 ? arg(argv[5], "SECS", 0, 86400) : 0;

	if ((argc == 5 || argc == 6) && !strcmp(argv[1], "storm"))
		return storm(arg(argv[2], "CONNS", 1, 10000000), arg(argv[3], "PAR", 1, 64),
			     arg(argv[4], "PORT", 1, 65535), secs);
	if ((argc == 5 || argc == 6) && !strcmp(argv[1], "udp"))
		return udp(arg(argv[2], "DGRAMS", 2, 100000000), arg(argv[3], "SIZE", 8, 65000),
			   arg(argv[4], "PORT", 1, 65535), secs);
	fprintf(stderr, "usage: vbench storm CONNS PAR PORT [SECS] | vbench udp DGRAMS SIZE PORT [SECS]\n");
	return 2;
}
