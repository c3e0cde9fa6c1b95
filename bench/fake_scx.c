/* Minimal fake sched_ext loader for bench/actuator_swap.py: the same protocol as
 * tests/fakes/fake_scx.py (lock file = struct_ops attach, state files as the kernel writes
 * them) in C, so its own start-up time is small and measured.  Its ops name is its file
 * name without "scx_" (scx_simple → simple).  It appends
 * "pid main_ns enabled_ns" (CLOCK_MONOTONIC) to $FAKE_TS. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_sig(int s) { (void)s; stop = 1; }

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void put(const char *dir, const char *name, const char *val)
{
	char tmp[4096], dst[4096];
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp%d", dir, name, getpid());
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	FILE *f = fopen(tmp, "w");
	if (!f) { perror(tmp); exit(1); }
	fprintf(f, "%s\n", val);
	fclose(f);
	rename(tmp, dst);
}

int main(int argc, char **argv)
{
	long long t0 = now_ns();
	const char *sx = getenv("FAKE_SX"), *tsf = getenv("FAKE_TS");
	const char *base = strrchr(argv[0], '/'), *ops;
	base = base ? base + 1 : argv[0];
	ops = strncmp(base, "scx_", 4) ? base : base + 4;
	char path[4096], buf[64];
	if (argc > 1 && !strcmp(argv[1], "-h")) { puts("Usage: fake [-f] [-s N]\n  -f\n  -s"); return 0; }
	if (!sx) { fprintf(stderr, "FAKE_SX needed\n"); return 1; }
	signal(SIGINT, on_sig);
	signal(SIGTERM, on_sig);
	snprintf(path, sizeof(path), "%s/.attached", sx);
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
	if (fd < 0) { puts("Failed to attach struct_ops (Device or resource busy)"); return 1; }
	snprintf(buf, sizeof(buf), "%d", getpid());
	write(fd, buf, strlen(buf));
	close(fd);
	put(sx, "state", "enabling");
	snprintf(path, sizeof(path), "%s/root", sx);
	mkdir(path, 0755);
	put(path, "ops", ops);
	snprintf(path, sizeof(path), "%s/enable_seq", sx);
	FILE *f = fopen(path, "r");
	long seq = 0;
	if (f) { if (fscanf(f, "%ld", &seq) != 1) seq = 0; fclose(f); }
	snprintf(buf, sizeof(buf), "%ld", seq + 1);
	put(sx, "enable_seq", buf);
	put(sx, "switch_all", "1");
	put(sx, "state", "enabled");
	long long t1 = now_ns();
	if (tsf) {
		FILE *o = fopen(tsf, "a");
		if (o) { fprintf(o, "%d %lld %lld\n", getpid(), t0, t1); fclose(o); }
	}
	while (!stop)
		pause();
	put(sx, "state", "disabling");
	snprintf(path, sizeof(path), "%s/root/ops", sx);
	unlink(path);
	put(sx, "state", "disabled");
	snprintf(path, sizeof(path), "%s/.attached", sx);
	unlink(path);
	puts("EXIT: unregistered from user space");
	return 0;
}
