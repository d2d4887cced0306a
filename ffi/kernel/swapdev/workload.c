// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * swapdev-workload: memory pressure with verification, for a guest that swaps.
 *
 * Maps MIB mebibytes of anonymous memory (meant to be several times the guest's RAM),
 * writes a distinct pattern into every page, then runs ROUNDS rounds that each visit every
 * page once, alternating a random order and a sequential one: every byte of the page is
 * compared with the pattern last written there, then the page is rewritten with a new
 * pattern (its generation is bumped). A last pass verifies everything once more. Each
 * 8-byte word depends on the page, the generation and the word's index, so a page read
 * back from the wrong slot, an old copy of the right page, or a torn page are all caught.
 *
 * Prints one line "WORKLOAD key=value ..." with the pages verified, the bytes verified,
 * the mismatched bytes, the run time, and the change of pswpin/pswpout in /proc/vmstat.
 * Exit status 0 only with 0 mismatches.
 *
 * Usage: swapdev-workload MIB ROUNDS [SEED]
 * Built static (gcc -static -O2) so the guest's initramfs needs no libc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / 8u)

/* SplitMix64 finaliser: distinct, well-mixed words from (page, generation, index). */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t page_key(uint64_t page, uint32_t gen)
{
	return mix(page * 0x100000001b3ull ^ ((uint64_t)gen << 40) ^ 0x5a5a);
}

static void fill(uint64_t *p, uint64_t page, uint32_t gen)
{
	uint64_t k = page_key(page, gen);

	for (uint32_t i = 0; i < WORDS; i++)
		p[i] = k ^ ((uint64_t)i * 0x9e3779b97f4a7c15ull);
}

/* Returns the mismatched bytes of the page (0 when it holds generation gen). */
static uint64_t check(const uint64_t *p, uint64_t page, uint32_t gen)
{
	uint64_t k = page_key(page, gen), bad = 0;

	for (uint32_t i = 0; i < WORDS; i++) {
		uint64_t want = k ^ ((uint64_t)i * 0x9e3779b97f4a7c15ull);
		uint64_t diff = p[i] ^ want;

		for (; diff; diff >>= 8)
			bad += (diff & 0xff) != 0;
	}
	return bad;
}

static int vmstat(const char *key, uint64_t *out)
{
	char line[128];
	size_t n = strlen(key);
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, n) && line[n] == ' ') {
			*out = strtoull(line + n + 1, NULL, 10);
			fclose(f);
			return 0;
		}
	}
	fclose(f);
	return -1;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	uint64_t mib, pages, seed, in0 = 0, out0 = 0, in1 = 0, out1 = 0;
	uint64_t bad = 0, bad_pages = 0, visited = 0;
	uint32_t rounds, *order;
	uint8_t *gen;
	uint64_t *mem;
	double t0, t1;

	if (argc < 3) {
		fprintf(stderr, "usage: %s MIB ROUNDS [SEED]\n", argv[0]);
		return 2;
	}
	mib = strtoull(argv[1], NULL, 10);
	rounds = (uint32_t)strtoul(argv[2], NULL, 10);
	seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
	pages = mib * (1024 * 1024 / PAGE);
	if (!pages)
		return 2;
	mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1, 0);
	order = malloc(pages * sizeof(*order));
	gen = calloc(pages, 1);
	if (mem == MAP_FAILED || !order || !gen) {
		fprintf(stderr, "workload: cannot map %llu MiB: %s\n", (unsigned long long)mib, strerror(errno));
		return 2;
	}
	/* Swap-out of huge pages is another path; keep to base pages like most swap traffic. */
	madvise(mem, pages * PAGE, MADV_NOHUGEPAGE);
	vmstat("pswpin", &in0);
	vmstat("pswpout", &out0);
	t0 = now();

	for (uint64_t p = 0; p < pages; p++)
		fill(mem + p * WORDS, p, 0);

	for (uint32_t r = 0; r <= rounds; r++) {
		int last = r == rounds;

		for (uint64_t i = 0; i < pages; i++)
			order[i] = (uint32_t)i;
		if (r % 2 == 0 && !last) {
			/* Fisher-Yates with a per-round stream. */
			uint64_t s = mix(seed + r);

			for (uint64_t i = pages - 1; i > 0; i--) {
				uint64_t j;

				s = mix(s);
				j = s % (i + 1);
				uint32_t t = order[i];
				order[i] = order[j];
				order[j] = t;
			}
		}
		for (uint64_t i = 0; i < pages; i++) {
			uint64_t p = order[i];
			uint64_t *pg = mem + p * WORDS;
			uint64_t b = check(pg, p, gen[p]);

			visited++;
			if (b) {
				if (bad_pages < 10)
					fprintf(stderr, "workload: page %llu generation %u: %llu bytes differ\n",
						(unsigned long long)p, gen[p], (unsigned long long)b);
				bad += b;
				bad_pages++;
			}
			if (!last) {
				gen[p]++;
				fill(pg, p, gen[p]);
			}
		}
		fprintf(stderr, "workload: round %u/%u done (%s), %.1f s\n", r + 1, rounds + 1,
			last ? "final check" : r % 2 == 0 ? "random" : "sequential", now() - t0);
	}

	t1 = now();
	vmstat("pswpin", &in1);
	vmstat("pswpout", &out1);
	printf("WORKLOAD mib=%llu pages=%llu rounds=%u pages_verified=%llu bytes_verified=%llu "
	       "mismatched_bytes=%llu mismatched_pages=%llu seconds=%.1f pswpin=%llu pswpout=%llu "
	       "swapped_pages_per_s=%.0f\n",
	       (unsigned long long)mib, (unsigned long long)pages, rounds, (unsigned long long)visited,
	       (unsigned long long)(visited * PAGE), (unsigned long long)bad,
	       (unsigned long long)bad_pages, t1 - t0, (unsigned long long)(in1 - in0),
	       (unsigned long long)(out1 - out0), (double)((in1 - in0) + (out1 - out0)) / (t1 - t0));
	fflush(stdout);
	return bad ? 1 : 0;
}
