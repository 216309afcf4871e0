/* tests/test_cpu.c — the CPU detector (core/cpu.h) and the shared row
 * helpers (core/vec.h) at every CPU level this machine allows.
 *  - conversions: all 65536 f16 and bf16 patterns, and f32 specials (NaN
 *    payloads, ±Inf, ties, subnormals, overflow) plus random bits, must be
 *    bit-identical at every level to the scalar core/half.h definitions
 *    (f16 -> f32 with NaN quieted), at odd lengths and unaligned addresses,
 *    with guard bytes after every output;
 *  - dots and axpy: against a double-precision sum with a bound of
 *    n·2^-23·Σ|a_i b_i| (the float-accumulation error bound), and the avx2
 *    and avx512 levels bit-identical to each other (core/vec.h's promise). */
#include "test.h"
#include "cpu_levels.h" // defines: test_cpu_levels
#define TU_SEED 0x9e3779b97f4a7c15ull
#include "test_util.h" // defines: urand, nrand
#include "../core/cpu.h"
#include "../core/half.h"
#include "../core/vec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GUARD 0xA5

static void check_switch(void) {
    hq_cpu_level l;
    CHECK(hq_cpu_level_parse("scalar", &l) && l == HQ_CPU_SCALAR, "parse scalar");
    CHECK(hq_cpu_level_parse("avx2", &l) && l == HQ_CPU_AVX2, "parse avx2");
    CHECK(hq_cpu_level_parse("avx512", &l) && l == HQ_CPU_AVX512, "parse avx512");
    CHECK(!hq_cpu_level_parse("AVX2", &l) && !hq_cpu_level_parse("", &l) && !hq_cpu_level_parse(NULL, &l),
          "parse rejects other spellings");
    const hq_cpu_info *ci = hq_cpu_info_get();
    hq_cpu_level top = hq_cpu_level_now();
    CHECK(top <= ci->hw && top <= ci->env_max, "level %d above hw %d or HQ_CPU %d", top, ci->hw, ci->env_max);
    hq_cpu_level prev = hq_cpu_set_max(HQ_CPU_SCALAR);
    CHECK(hq_cpu_level_now() == HQ_CPU_SCALAR && !hq_cpu_has(HQ_CPU_AVX2), "cap to scalar");
    CHECK(!hq_cpu_has_feature(HQ_CPU_F_AVX512VNNI) && !hq_cpu_has_feature(HQ_CPU_F_AMX_INT8),
          "features beyond the level are hidden at scalar");
    hq_cpu_set_max(prev);
    CHECK(hq_cpu_level_now() == top, "cap restored");
    if (hq_cpu_has_feature(HQ_CPU_F_AVX512VNNI)) CHECK(hq_cpu_has(HQ_CPU_AVX512), "vnni512 implies avx512");
    char d[160];
    hq_cpu_describe(d, sizeof d);
    CHECK(strncmp(d, "cpu: ", 5) == 0, "describe: %s", d);
    printf("%s\n", d);
}

static uint16_t ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* expected f16 -> f32: core/half.h with a NaN quieted */
static uint32_t f16_expect(uint16_t h) {
    uint32_t u = hq_f32_bits(hq_f16_to_f32(h));
    if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) u |= 0x400000u;
    return u;
}

static void check_half_to_f32(const char *lv) {
    const int64_t N = 65536;
    uint8_t *src = malloc((size_t)N * 2 + 1);
    float *dst = malloc((size_t)(N + 16) * 4);
    for (int bf = 0; bf < 2; bf++) {
        for (int off = 0; off < 2; off++) { /* off 1: an odd source address */
            for (int64_t i = 0; i < N; i++) {
                uint16_t h = (uint16_t)i;
                memcpy(src + off + 2 * i, &h, 2);
            }
            memset(dst, GUARD, (size_t)(N + 16) * 4);
            if (bf) hq_bf16_to_f32_row(src + off, dst, N);
            else hq_f16_to_f32_row(src + off, dst, N);
            int64_t bad = 0, first = -1;
            for (int64_t i = 0; i < N; i++) {
                uint32_t want = bf ? (uint32_t)i << 16 : f16_expect((uint16_t)i);
                if (hq_f32_bits(dst[i]) != want && bad++ == 0) first = i;
            }
            CHECK(bad == 0, "%s %s->f32 (offset %d): %lld of 65536 differ, first 0x%04llx", lv, bf ? "bf16" : "f16",
                  off, (long long)bad, (long long)first);
            const uint8_t *g = (const uint8_t *)(dst + N);
            bool gok = true;
            for (int k = 0; k < 64; k++) gok &= g[k] == GUARD;
            CHECK(gok, "%s %s->f32: guard bytes overwritten", lv, bf ? "bf16" : "f16");
        }
    }
    free(src);
    free(dst);
}

static void check_f32_to_half(const char *lv) {
    enum { N = 4096 };
    static uint32_t bits[N];
    const uint32_t special[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u,
                                0x7f800001u, 0x7fbfffffu, 0x477fefffu, 0x477ff000u, 0x477fe000u, 0x38800000u,
                                0x387fffffu, 0x33000000u, 0x33000001u, 0x32ffffffu, 0x3f808000u, 0x3f818000u,
                                0x3f80ffffu, 0x00000001u, 0x807fffffu, 0x7f7fffffu, 0x3f801000u, 0x3f803000u};
    const int ns = (int)(sizeof special / sizeof *special);
    for (int i = 0; i < N; i++) {
        if (i < ns) bits[i] = special[i];
        else if (i % 3 == 0) bits[i] = (uint32_t)(urand() * 4294967296.0);
        else bits[i] = hq_f32_bits(nrand() * (float)pow(2.0, (double)(i % 40) - 20));
    }
    uint8_t *src = malloc(N * 4 + 4), *dst = malloc(N * 2 + 64);
    for (int bf = 0; bf < 2; bf++) {
        const int lens[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 100, N};
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
            int n = lens[li], off = (int)(li % 4); /* unaligned floats too */
            memcpy(src + off, bits, (size_t)n * 4);
            memset(dst, GUARD, N * 2 + 64);
            if (bf) hq_f32_to_bf16_row(src + off, dst + 1, n);
            else hq_f32_to_f16_row(src + off, dst + 1, n);
            int bad = 0, first = -1;
            for (int i = 0; i < n; i++) {
                float f = hq_bits_f32(bits[i]);
                uint16_t want = bf ? hq_f32_to_bf16(f) : hq_f32_to_f16(f);
                if (ld16(dst + 1 + 2 * i) != want && bad++ == 0) first = i;
            }
            CHECK(bad == 0, "%s f32->%s n=%d: %d differ, first input 0x%08x", lv, bf ? "bf16" : "f16", n, bad,
                  first >= 0 ? bits[first] : 0);
            CHECK(dst[0] == GUARD && dst[1 + 2 * n] == GUARD && dst[2 + 2 * n] == GUARD, "%s f32->%s n=%d: guard", lv,
                  bf ? "bf16" : "f16", n);
        }
    }
    free(src);
    free(dst);
}

/* dots at one level; res[] keeps every result for the cross-level check */
#define NDOT 12
static const int64_t k_dot_lens[NDOT] = {0, 1, 5, 7, 8, 15, 16, 17, 33, 129, 1023, 4099};
static void check_dots(const char *lv, float res[3][NDOT]) {
    for (int li = 0; li < NDOT; li++) {
        int64_t n = k_dot_lens[li];
        float *a = malloc((size_t)(n + 1) * 4), *b = malloc((size_t)(n + 1) * 4);
        uint16_t *h = malloc((size_t)(n + 1) * 2), *g = malloc((size_t)(n + 1) * 2);
        for (int64_t i = 0; i < n; i++) {
            a[i] = nrand(), b[i] = nrand();
            h[i] = hq_f32_to_f16(a[i]), g[i] = hq_f32_to_bf16(a[i]);
        }
        for (int kind = 0; kind < 3; kind++) {
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < n; i++) {
                double w = kind == 0 ? a[i] : kind == 1 ? hq_f16_to_f32(h[i]) : hq_bf16_to_f32(g[i]);
                ref += w * b[i], mag += fabs(w * b[i]);
            }
            float got = kind == 0 ? hq_dot_f32(a, b, n) : kind == 1 ? hq_dot_f16_f32(h, b, n) : hq_dot_bf16_f32(g, b, n);
            double tol = (double)(n + 1) * 1.1920929e-7 * mag;
            CHECK(fabs(got - ref) <= tol, "%s dot(%s) n=%lld: %.9g vs %.9g (tol %.3g)", lv,
                  kind == 0 ? "f32" : kind == 1 ? "f16" : "bf16", (long long)n, got, ref, tol);
            res[kind][li] = got;
        }
        /* axpy: y += 0.75·a, exact per element up to one rounding (FMA or not) */
        float *y = malloc((size_t)(n + 1) * 4);
        for (int64_t i = 0; i <= n; i++) y[i] = i < n ? b[i] : 12345.0f;
        hq_axpy_f32(0.75f, a, y, n);
        int bad = 0;
        for (int64_t i = 0; i < n; i++) {
            double want = (double)b[i] + 0.75 * (double)a[i];
            if (fabs(y[i] - want) > 1.2e-7 * (fabs(want) + fabs(0.75 * a[i]) + fabs(b[i]))) bad++;
        }
        CHECK(bad == 0 && y[n] == 12345.0f, "%s axpy n=%lld: %d off, guard %g", lv, (long long)n, bad, y[n]);
        free(a), free(b), free(h), free(g), free(y);
    }
}

int main(void) {
    check_switch();
    hq_cpu_level levels[HQ_CPU_LEVEL_COUNT];
    int nl = test_cpu_levels(levels, "test_cpu");
    static float res[HQ_CPU_LEVEL_COUNT][3][NDOT];
    bool have[HQ_CPU_LEVEL_COUNT] = {false};
    for (int i = 0; i < nl; i++) {
        hq_cpu_set_max(levels[i]);
        CHECK(hq_cpu_level_now() == levels[i], "level %s not reached", hq_cpu_level_name(levels[i]));
        const char *lv = hq_cpu_level_name(levels[i]);
        check_half_to_f32(lv);
        check_f32_to_half(lv);
        g_rng = TU_SEED; /* the same data at every level */
        check_dots(lv, res[levels[i]]);
        have[levels[i]] = true;
    }
    hq_cpu_set_max(HQ_CPU_AVX512);
    if (have[HQ_CPU_AVX2] && have[HQ_CPU_AVX512])
        CHECK(memcmp(res[HQ_CPU_AVX2], res[HQ_CPU_AVX512], sizeof res[0]) == 0,
              "avx2 and avx512 dots must round the same (core/vec.h)");
    TEST_END();
}
