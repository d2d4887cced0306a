/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * FAIL and CHECK for the C tests: print the program (CHECK_PROGRAM, defined before this
 * header is included), the place and the reason on stderr, then abort.
 */
#ifndef SWAPDIO_TEST_CHECK_H
#define SWAPDIO_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#ifndef CHECK_PROGRAM
#error "define CHECK_PROGRAM (the test program's name) before including check.h"
#endif

#define FAIL(...)                                                                      \
	do {                                                                           \
		fprintf(stderr, CHECK_PROGRAM ": FAIL at %s:%d: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__);                                          \
		fputc('\n', stderr);                                                   \
		abort();                                                               \
	} while (0)
#define CHECK(cond, ...)                    \
	do {                                \
		if (!(cond))                \
			FAIL(__VA_ARGS__);  \
	} while (0)

#endif /* SWAPDIO_TEST_CHECK_H */
