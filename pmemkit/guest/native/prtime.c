/*
 * prtime: the latency of each pread(2), timed in C so no interpreter sits in the timed path.
 *
 * Why: a Python loop around os.preadv pays the interpreter's own cost per call (about 3 us per
 * call under TCG), which fio's C loop does not; tracepoints cost microseconds per call too. This
 * program does what fio's psync engine does per I/O (one pread of BS bytes at the next offset,
 * queue depth 1) with clock_gettime(CLOCK_MONOTONIC) immediately before and after the call, so
 * its figure is the I/O's own latency plus one clock read, as fio's clat is.
 *
 * Usage: prtime [-d] [-c CPU] [-w WARMUP] -b BS FILE < OFFSETS
 *   -d          open FILE with O_DIRECT
 *   -c CPU      pin to CPU first (sched_setaffinity)
 *   -w WARMUP   untimed preads first, at the first WARMUP offsets (default 0)
 *   -b BS       bytes per pread
 *   OFFSETS     on stdin, decimal byte offsets, one per line
 *   --version   one line: the format version and the compiler (__VERSION__)
 *
 * Output (text, stdout): "key value" header lines, then "samples", then one line per pread, in
 * offset order: the nanoseconds between the two clock reads around it. The clock's own cost
 * (median and minimum of back-to-back clock_gettime pairs) is in the header, measured once and
 * never subtracted. A pread that returns fewer than BS bytes is counted as short and still timed;
 * one that fails stops the program with a line on stderr and exit status 3.
 * Exit status: 0 done, 2 bad usage or input, 3 an I/O or system call failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FORMAT 1
#define MAX_OFFSETS (1L << 24) /* 16 Mi preads: far beyond any profile, bounds the memory used */
#define MAX_BS (64L << 20)
#define CLOCK_PAIRS 1001       /* odd: the median is one observed pair */

static int die(int status, const char *what, const char *detail)
{
	fprintf(stderr, "prtime: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	return status;
}

static int64_t ns_of(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* A decimal number in [min, max], the whole string; -1 when it is not one. */
static long long number(const char *text, long long min, long long max)
{
	char *end;
	long long value;

	errno = 0;
	value = strtoll(text, &end, 10);
	if (errno || end == text || *end || value < min || value > max)
		return -1;
	return value;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The clock's own cost: CLOCK_PAIRS back-to-back reads; the median and minimum difference. */
static void clock_cost(int64_t *median, int64_t *minimum)
{
	int64_t d[CLOCK_PAIRS];
	struct timespec a, b;

	for (int i = 0; i < CLOCK_PAIRS; i++) {
		clock_gettime(CLOCK_MONOTONIC, &a);
		clock_gettime(CLOCK_MONOTONIC, &b);
		d[i] = ns_of(&b) - ns_of(&a);
	}
	qsort(d, CLOCK_PAIRS, sizeof(d[0]), cmp_i64);
	*median = d[CLOCK_PAIRS / 2];
	*minimum = d[0];
}

/* Offsets from stdin, one decimal per line; returns the count, or -1 with *why set. */
static long read_offsets(int64_t **out, const char **why)
{
	char line[64];
	long n = 0, cap = 4096;
	int64_t *offs = malloc(cap * sizeof(*offs));

	if (!offs) {
		*why = "out of memory";
		return -1;
	}
	while (fgets(line, sizeof(line), stdin)) {
		size_t len = strlen(line);
		long long value;

		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		if (!len)
			continue;
		value = number(line, 0, INT64_MAX);
		if (value < 0 || n >= MAX_OFFSETS) {
			*why = value < 0 ? "an offset is not a decimal byte count" : "too many offsets";
			free(offs);
			return -1;
		}
		if (n == cap) {
			int64_t *grown = realloc(offs, 2 * cap * sizeof(*offs));

			if (!grown) {
				*why = "out of memory";
				free(offs);
				return -1;
			}
			offs = grown;
			cap *= 2;
		}
		offs[n++] = value;
	}
	*out = offs;
	return n;
}

int main(int argc, char **argv)
{
	int direct = 0, fd, opt;
	long long cpu = -1, warmup = 0, bs = 0;
	int64_t *offs = NULL, *lat, clock_median, clock_min;
	long n, shorts = 0;
	const char *why = "";
	void *buf;
	char errtext[160];

	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("prtime %d %s\n", FORMAT, __VERSION__);
		return 0;
	}
	while ((opt = getopt(argc, argv, "dc:w:b:")) != -1) {
		switch (opt) {
		case 'd':
			direct = 1;
			break;
		case 'c':
			if ((cpu = number(optarg, 0, CPU_SETSIZE - 1)) < 0)
				return die(2, "bad -c (a CPU number)", optarg);
			break;
		case 'w':
			if ((warmup = number(optarg, 0, MAX_OFFSETS)) < 0)
				return die(2, "bad -w (a count)", optarg);
			break;
		case 'b':
			if ((bs = number(optarg, 1, MAX_BS)) < 0)
				return die(2, "bad -b (bytes per pread)", optarg);
			break;
		default:
			return die(2, "usage: prtime [-d] [-c CPU] [-w WARMUP] -b BS FILE < OFFSETS", NULL);
		}
	}
	if (bs <= 0 || optind != argc - 1)
		return die(2, "usage: prtime [-d] [-c CPU] [-w WARMUP] -b BS FILE < OFFSETS", NULL);

	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			return die(3, "sched_setaffinity", strerror(errno));
	}
	n = read_offsets(&offs, &why);
	if (n < 0)
		return die(2, why, NULL);
	if (n == 0)
		return die(2, "no offsets on stdin", NULL);
	if (warmup > n)
		warmup = n;
	lat = calloc(n, sizeof(*lat)); /* allocated and touched before timing: no fault in the loop */
	if (!lat || posix_memalign(&buf, 4096, bs))
		return die(3, "out of memory", NULL);
	memset(buf, 0, bs);
	memset(lat, 0, n * sizeof(*lat));
	fd = open(argv[optind], O_RDONLY | (direct ? O_DIRECT : 0));
	if (fd < 0)
		return die(3, "open", strerror(errno));
	clock_cost(&clock_median, &clock_min);

	for (long i = 0; i < warmup; i++)
		if (pread(fd, buf, bs, offs[i]) < 0)
			return die(3, "pread (warm-up)", strerror(errno));
	for (long i = 0; i < n; i++) {
		struct timespec t0, t1;
		ssize_t got;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		got = pread(fd, buf, bs, offs[i]);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (got < 0) {
			snprintf(errtext, sizeof(errtext), "%s at offset %" PRId64, strerror(errno), offs[i]);
			return die(3, "pread", errtext);
		}
		shorts += got != bs;
		lat[i] = ns_of(&t1) - ns_of(&t0);
	}
	close(fd);

	printf("prtime %d\nclock CLOCK_MONOTONIC\nclock_overhead_median_ns %" PRId64 "\n", FORMAT,
	       clock_median);
	printf("clock_overhead_min_ns %" PRId64 "\nclock_pairs %d\n", clock_min, CLOCK_PAIRS);
	printf("cpu %lld\ndirect %d\nbs %lld\nwarmup %lld\ncount %ld\nshort %ld\nsamples\n", cpu,
	       direct, bs, warmup, n, shorts);
	for (long i = 0; i < n; i++)
		printf("%" PRId64 "\n", lat[i]);
	return fflush(stdout) ? die(3, "writing the samples", strerror(errno)) : 0;
}
