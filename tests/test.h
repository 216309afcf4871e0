/* tests/test.h — the tiny test harness every tests/test_*.c uses.
 * CHECK records a pass or a failure (with file:line and a message);
 * TEST_END prints "N passed, N failed" and returns the exit status. */
#ifndef HQ_TEST_H
#define HQ_TEST_H
#include <stdio.h>

static int t_passed = 0, t_failed = 0;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        if (cond) {                                                   \
            t_passed++;                                               \
        } else {                                                      \
            t_failed++;                                               \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
            fprintf(stderr, __VA_ARGS__);                             \
            fputc('\n', stderr);                                      \
        }                                                             \
    } while (0)

#define TEST_END()                                                    \
    do {                                                              \
        printf("%d passed, %d failed\n", t_passed, t_failed);         \
        return t_failed ? 1 : 0;                                      \
    } while (0)

/* Path of a fixture relative to the repository root (tests run from there). */
#define FIXTURE(p) "tests/fixtures/" p
#endif
