/* tests/test_core.c — core helpers: half conversions, checked arithmetic,
 * atomic output, option parsing. */
#include "../core/half.h"
#include "../core/hq.h"
#include "../core/opts.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    /* f16 round trip of every finite half value is exact */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if (((h >> 10) & 0x1f) == 0x1f) continue;
        if (hq_f32_to_f16(hq_f16_to_f32((uint16_t)h)) != h) bad++;
    }
    CHECK(bad == 0, "%d f16 values do not round-trip", bad);
    CHECK(hq_f32_to_f16(65520.0f) == 0x7c00, "65520 must round to inf");
    CHECK(hq_f32_to_f16(65519.0f) == 0x7bff, "65519 must round to 65504");
    CHECK(hq_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00, "tie rounds to even");
    CHECK(hq_f32_to_f16(5.9604644775390625e-8f) == 1, "smallest subnormal");
    CHECK(hq_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 tie to even");
    CHECK(isnan(hq_bf16_to_f32(hq_f32_to_bf16(NAN))), "bf16 NaN stays NaN");
    bad = 0;
    for (uint32_t h = 0; h < 65536; h += 7) {
        float f = hq_bf16_to_f32((uint16_t)h);
        if (!isnan(f) && hq_f32_to_bf16(f) != h) bad++;
    }
    CHECK(bad == 0, "%d bf16 values do not round-trip", bad);

    uint64_t r;
    CHECK(!hq_mul_u64(1ull << 40, 1ull << 30, &r), "mul overflow detected");
    CHECK(hq_align_u64(33, 32, &r) && r == 64, "align");
    CHECK(!hq_align_u64(UINT64_MAX - 3, 32, &r), "align overflow detected");

    /* atomic output: abort leaves nothing; commit renames */
    char err[HQ_ERR_LEN];
    char path[] = "/tmp/hq_test_core_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    hq_out o;
    CHECK(hq_out_open(&o, path, err) == HQ_OK, "open: %s", err);
    CHECK(hq_out_write(&o, "abc", 3, err) == HQ_OK, "write");
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", o.tmp_path);
    hq_out_abort(&o);
    CHECK(access(tmp, F_OK) != 0 && access(path, F_OK) != 0, "abort must remove the temp file");
    CHECK(hq_out_open(&o, path, err) == HQ_OK, "open: %s", err);
    CHECK(hq_out_write(&o, "abc", 3, err) == HQ_OK, "write");
    CHECK(hq_out_commit(&o, err) == HQ_OK, "commit: %s", err);
    char *buf;
    uint64_t len;
    CHECK(hq_read_file(path, 100, &buf, &len, err) == HQ_OK && len == 3 && !memcmp(buf, "abc", 3), "content");
    free(buf);
    unlink(path);

    /* allocation fault injection */
    hq_alloc_fail_at(2);
    void *a = hq_malloc(8), *b = hq_malloc(8);
    CHECK(a && !b, "second allocation must fail");
    hq_free(a);
    hq_alloc_fail_at(0);

    /* options */
    int64_t n = 5;
    double x = 0;
    bool flag = false;
    const char *s = NULL;
    hq_opt opts[] = {
        {'n', "count", HQ_OPT_INT, &n, "N", "count (default 5)", 1, 100},
        {0, "scale", HQ_OPT_FLOAT, &x, "X", "scale", 0, 1},
        {0, "fast", HQ_OPT_FLAG, &flag, NULL, "go fast", 0, 0},
        {'o', "out", HQ_OPT_STR, &s, "FILE", "output", 0, 0},
        {0},
    };
    const char *pos[4];
    int np;
    bool help;
    char *argv1[] = {"cmd", "in.gguf", "-n", "7", "--scale=0.5", "--fast", "-o", "x.gguf"};
    CHECK(hq_opts_parse(opts, 8, argv1, pos, 4, &np, &help, err) == HQ_OK, "parse: %s", err);
    CHECK(n == 7 && x == 0.5 && flag && s && !strcmp(s, "x.gguf") && np == 1, "parsed values");
    char *argv2[] = {"cmd", "-n", "1000"};
    CHECK(hq_opts_parse(opts, 3, argv2, pos, 4, &np, &help, err) == HQ_ERR_ARG && strstr(err, "must be in"),
          "range error: %s", err);
    char *argv3[] = {"cmd", "-n", "12abc"};
    CHECK(hq_opts_parse(opts, 3, argv3, pos, 4, &np, &help, err) == HQ_ERR_ARG, "garbage number refused");
    char *argv4[] = {"cmd", "--bogus"};
    CHECK(hq_opts_parse(opts, 2, argv4, pos, 4, &np, &help, err) == HQ_ERR_ARG && strstr(err, "--bogus"),
          "unknown option named: %s", err);
    TEST_END();
}
