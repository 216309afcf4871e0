/* tests/test_quant.c — block formats and kernels (quant/).
 *
 * Modes:  test_quant            the checks below ("N passed, N failed")
 *         test_quant --dump DIR write inputs / our blocks / our dequantized
 *                               values for tools/quant_py_check.py
 *         test_quant --perf     quantize params/s and vec_dot GB/s per core
 *
 * What is checked, per type (F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 IQ4_NL
 * Q4_K Q5_K Q6_K Q2_K Q3_K, and Q8_K where it applies):
 *  - the table agrees with formats/ggml_types (block size, bytes);
 *  - round trip: max |x − x̂| per (super-)block ≤ bound·max|x_block|, with the
 *    bound derived from the format's step (see type_cases[] below);
 *  - fast == ref: quantize and dequantize bit-identical; dots within
 *    4e-6·Σ|w_i·a_i| (only the float accumulation order differs; the
 *    integer block sums are exact);
 *  - vec_dot_ref equals an independent float dot of the dequantized rows
 *    (same tolerance), so the dot layouts are right, not just consistent;
 *  - lengths 1 block .. 4096 and odd row counts through q_quantize_rows;
 *  - an all-zero block (exact zeros back, no NaN), a block with one huge
 *    outlier, tiny values (no NaN), NaN/Inf detection by q_row_is_finite;
 *  - quantize_imatrix with a non-uniform importance gives a smaller
 *    importance-weighted squared error than plain rounding. */
#include "test.h"
#include "cpu_levels.h" // defines: test_cpu_levels
#include "../quant/quant.h"
#include "../quant/formats.h"
#include "../formats/ggml_types.h"
#include "../core/hq.h"
#include "../core/half.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- deterministic random numbers ---- */
static uint64_t g_rng = 0x9E3779B97F4A7C15ULL;
static uint64_t rng_u64(void) {
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static double rng_unif(void) { return (double)(rng_u64() >> 11) * (1.0 / 9007199254740992.0); }
static float rng_gauss(void) {
    double u1 = rng_unif(), u2 = rng_unif();
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Max-abs round-trip error bound as a fraction of max|x| of the (super-)block:
 *  Q8_0   ½ step (amax/127) + fp16 rounding of d (≤ 2^-11 relative × 127 steps)
 *  Q4_0   1 step (amax/8): the side opposite to the max clamps from +8 to +7
 *  Q5_0   1 step (amax/16), same clamp
 *  Q4_1   ½ step of range/15 (range ≤ 2·amax) + fp16 of d and m
 *  Q5_1   ½ step of range/31 + fp16 of d and m
 *  IQ4_NL ½ of the widest level gap (24 of 127) + end clamp slack → 0.13
 *  Q4_K   the scale search may clamp an edge value by up to one sub-block step
 *         (2·amax/15) plus 6-bit rounding of sub-scale and min (≤ 1/63 each)
 *  Q5_K   the same with 31 levels
 *  Q6_K   one step of 2·amax/64 (clamp at +31) plus int8 scale rounding (1/128)
 *  Q2_K   the absolute-error scale search may clamp an edge value by one step
 *         (range/3 ≤ 2·amax/3) plus 4-bit rounding of sub-scale and min (1/15 each)
 *  Q3_K   one step of amax/4 (clamp at +3) plus 6-bit scale rounding (2/64)
 *  F16/BF16 relative rounding 2^-11 / 2^-8; F32 exact. */
typedef struct {
    uint32_t type;
    double max_err; /* × block amax */
} type_case;

static const type_case type_cases[] = {
    {GGML_T_F32, 0.0},
    {GGML_T_F16, 1.0 / 2048},
    {GGML_T_BF16, 1.0 / 256},
    {GGML_T_Q8_0, 0.5 / 127 + 1.0 / 2048},
    {GGML_T_Q4_0, 1.0 / 8 + 1.0 / 256},
    {GGML_T_Q4_1, 1.0 / 15 + 4.0 / 2048},
    {GGML_T_Q5_0, 1.0 / 16 + 1.0 / 256},
    {GGML_T_Q5_1, 1.0 / 31 + 4.0 / 2048},
    {GGML_T_IQ4_NL, 0.13},
    {GGML_T_Q4_K, 2.0 / 15 + 2.0 / 63},
    {GGML_T_Q5_K, 2.0 / 31 + 2.0 / 63},
    {GGML_T_Q6_K, 2.0 / 64 + 1.0 / 128 + 1.0 / 256},
    {GGML_T_Q2_K, 2.0 / 3 + 2.0 / 15},
    {GGML_T_Q3_K, 1.0 / 4 + 2.0 / 64},
};
#define N_CASES (int)(sizeof type_cases / sizeof type_cases[0])

static int sanitized(void) {
    const char *e = getenv("HQ_SANITIZED");
    return e && *e && strcmp(e, "0") != 0;
}

static uint64_t row_bytes(const q_type_traits *t, int64_t n) { return (uint64_t)(n / t->blck) * t->type_size; }

/* fill: mostly gaussian with per-block scale variety */
static void fill_random(float *x, int64_t n, int64_t blk) {
    for (int64_t b = 0; b < n; b += blk) {
        const float s = (float)exp((rng_unif() - 0.5) * 6.0); /* 0.05 .. 20 */
        const float off = (rng_unif() < 0.3) ? s * (float)(rng_unif() - 0.3) : 0.0f;
        for (int64_t j = b; j < b + blk && j < n; j++) x[j] = s * rng_gauss() + off;
    }
}

static double block_maxerr_ratio(const float *x, const float *y, int64_t n, int64_t blk) {
    double worst = 0;
    for (int64_t b = 0; b < n; b += blk) {
        double amax = 0, err = 0;
        for (int64_t j = b; j < b + blk && j < n; j++) {
            amax = fmax(amax, fabs(x[j]));
            err = fmax(err, fabs((double)x[j] - y[j]));
        }
        if (amax > 0) worst = fmax(worst, err / amax);
        else if (err > 0) worst = INFINITY;
    }
    return worst;
}

static bool all_finite(const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(y[i])) return false;
    return true;
}

/* the block to measure errors over: K-quants use their 256 super-block,
 * legacy their 32 block, floats per element groups of 32 */
static int64_t err_block(const q_type_traits *t) { return t->blck > 1 ? t->blck : 32; }

/* ---- per-type checks ---- */
static void check_roundtrip(const type_case *tc, int64_t n) {
    const q_type_traits *t = q_traits(tc->type);
    float *x = hq_malloc_array((size_t)n, 4), *y = hq_malloc_array((size_t)n, 4), *y2 = hq_malloc_array((size_t)n, 4);
    uint8_t *q = hq_malloc(row_bytes(t, n)), *q2 = hq_malloc(row_bytes(t, n));
    fill_random(x, n, err_block(t));
    t->from_float_ref(x, q, n);
    t->to_float_ref(q, y, n);
    const double r = block_maxerr_ratio(x, y, n, err_block(t));
    if (getenv("HQ_QUANT_VERBOSE")) fprintf(stderr, "%-6s n=%-5lld max err %.5f (bound %.5f)\n", t->name, (long long)n, r, tc->max_err);
    CHECK(r <= tc->max_err, "%s n=%lld: max error %.5f × block max > bound %.5f", t->name, (long long)n, r,
          tc->max_err);
    CHECK(all_finite(y, n), "%s n=%lld: non-finite dequantized value", t->name, (long long)n);
    /* fast == ref, bit for bit */
    t->from_float(x, q2, n);
    CHECK(memcmp(q, q2, row_bytes(t, n)) == 0, "%s n=%lld: from_float differs from from_float_ref", t->name,
          (long long)n);
    t->to_float(q, y2, n);
    CHECK(memcmp(y, y2, (size_t)n * 4) == 0, "%s n=%lld: to_float differs from to_float_ref", t->name, (long long)n);
    hq_free(x), hq_free(y), hq_free(y2), hq_free(q), hq_free(q2);
}

static void check_dot(const type_case *tc, int64_t n) {
    const q_type_traits *t = q_traits(tc->type);
    const q_type_traits *ta = q_traits(t->vec_dot_type);
    CHECK(ta != NULL && ta->from_float != NULL, "%s: vec_dot_type %u has no traits", t->name, t->vec_dot_type);
    if (!ta) return;
    float *w = hq_malloc_array((size_t)n, 4), *a = hq_malloc_array((size_t)n, 4);
    float *wd = hq_malloc_array((size_t)n, 4), *ad = hq_malloc_array((size_t)n, 4);
    uint8_t *wq = hq_malloc(row_bytes(t, n)), *aq = hq_malloc(row_bytes(ta, n));
    fill_random(w, n, err_block(t));
    for (int64_t i = 0; i < n; i++) a[i] = rng_gauss() * 3.0f;
    t->from_float_ref(w, wq, n);
    ta->from_float_ref(a, aq, n);
    t->to_float_ref(wq, wd, n);
    ta->to_float_ref(aq, ad, n);
    double exact = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        exact += (double)wd[i] * ad[i];
        mag += fabs((double)wd[i] * ad[i]);
    }
    float sr = NAN, sf = NAN;
    t->vec_dot_ref(n, &sr, wq, aq);
    t->vec_dot(n, &sf, wq, aq);
    const double tol = 4e-6 * mag + 1e-30;
    CHECK(fabs(sr - exact) <= tol, "%s n=%lld: vec_dot_ref %.9g vs dequantized dot %.9g (tol %.3g)", t->name,
          (long long)n, sr, exact, tol);
    CHECK(fabs(sf - sr) <= tol, "%s n=%lld: vec_dot %.9g vs vec_dot_ref %.9g (tol %.3g)", t->name, (long long)n, sf,
          sr, tol);
    /* the activation fast path is bit-exact too */
    uint8_t *aq2 = hq_malloc(row_bytes(ta, n));
    ta->from_float(a, aq2, n);
    CHECK(memcmp(aq, aq2, row_bytes(ta, n)) == 0, "%s n=%lld: activation %s from_float != ref", t->name,
          (long long)n, ta->name);
    hq_free(aq2);
    hq_free(w), hq_free(a), hq_free(wd), hq_free(ad), hq_free(wq), hq_free(aq);
}

static void check_edge_blocks(const type_case *tc) {
    const q_type_traits *t = q_traits(tc->type);
    const int64_t n = t->blck > 1 ? t->blck * 2 : 64;
    float *x = hq_calloc((size_t)n, 4), *y = hq_malloc_array((size_t)n, 4), *imat = hq_malloc_array((size_t)n, 4);
    uint8_t *q = hq_malloc(row_bytes(t, n));
    for (int64_t i = 0; i < n; i++) imat[i] = 1.0f + (float)rng_unif();
    /* all zero: exact zeros back, from every quantizer */
    t->from_float_ref(x, q, n);
    t->to_float_ref(q, y, n);
    bool zero = true;
    for (int64_t i = 0; i < n; i++) zero &= (y[i] == 0.0f);
    CHECK(zero, "%s: all-zero block does not dequantize to zeros", t->name);
    if (t->quantize_imatrix) {
        t->quantize_imatrix(x, q, n, imat);
        t->to_float_ref(q, y, n);
        zero = true;
        for (int64_t i = 0; i < n; i++) zero &= (y[i] == 0.0f);
        CHECK(zero, "%s: all-zero block (imatrix) does not dequantize to zeros", t->name);
        t->quantize_imatrix(x, q, n, NULL);
        t->to_float_ref(q, y, n);
        CHECK(all_finite(y, n), "%s: all-zero block (default weights) gives non-finite values", t->name);
    }
    /* tiny values: fp16 scale underflows; must stay finite */
    for (int64_t i = 0; i < n; i++) x[i] = 1e-30f * rng_gauss();
    t->from_float_ref(x, q, n);
    t->to_float_ref(q, y, n);
    CHECK(all_finite(y, n), "%s: tiny block gives non-finite values", t->name);
    /* one huge outlier: the bound is relative to the block max, and the
     * outlier itself must come back within one step */
    for (int64_t i = 0; i < n; i++) x[i] = rng_gauss();
    x[5] = 3000.0f;
    t->from_float_ref(x, q, n);
    t->to_float_ref(q, y, n);
    CHECK(all_finite(y, n), "%s: outlier block gives non-finite values", t->name);
    const double r = block_maxerr_ratio(x, y, n, err_block(t));
    CHECK(r <= tc->max_err, "%s: outlier block max error %.5f × block max > %.5f", t->name, r, tc->max_err);
    CHECK(fabs(y[5] - 3000.0) <= 3000.0 * tc->max_err, "%s: outlier 3000 came back as %g", t->name, y[5]);
    hq_free(x), hq_free(y), hq_free(imat), hq_free(q);
}

/* importance-weighted error Σ imat_j (x − x̂)² over rows: imatrix-aware
 * quantization must beat plain rounding on data with non-uniform importance */
static void check_imatrix_gain(const type_case *tc) {
    const q_type_traits *t = q_traits(tc->type);
    if (!t->quantize_imatrix) return;
    const int64_t n = t->blck > 32 ? 1024 : 512, rows = sanitized() ? 4 : 16;
    float *x = hq_malloc_array((size_t)(n * rows), 4), *y = hq_malloc_array((size_t)n, 4);
    float *imat = hq_malloc_array((size_t)n, 4);
    uint8_t *q = hq_malloc(row_bytes(t, n));
    for (int64_t j = 0; j < n; j++) imat[j] = (float)exp(2.0 * rng_gauss()); /* spans orders of magnitude */
    for (int64_t i = 0; i < n * rows; i++) x[i] = rng_gauss();
    double e_plain = 0, e_imat = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        t->from_float_ref(xr, q, n);
        t->to_float_ref(q, y, n);
        for (int64_t j = 0; j < n; j++) e_plain += imat[j] * (double)(xr[j] - y[j]) * (xr[j] - y[j]);
        t->quantize_imatrix(xr, q, n, imat);
        t->to_float_ref(q, y, n);
        for (int64_t j = 0; j < n; j++) e_imat += imat[j] * (double)(xr[j] - y[j]) * (xr[j] - y[j]);
    }
    CHECK(e_imat < 0.97 * e_plain, "%s: imatrix weighted error %.6g not below plain %.6g", t->name, e_imat, e_plain);
    hq_free(x), hq_free(y), hq_free(imat), hq_free(q);
}

static void check_rows(const type_case *tc) {
    const q_type_traits *t = q_traits(tc->type);
    const int64_t n = t->blck > 1 ? t->blck * 3 : 96, rows = 5;
    float *x = hq_malloc_array((size_t)(n * rows), 4), *imat = hq_malloc_array((size_t)n, 4);
    uint8_t *all = hq_malloc(row_bytes(t, n) * rows), *one = hq_malloc(row_bytes(t, n));
    fill_random(x, n * rows, err_block(t));
    for (int64_t j = 0; j < n; j++) imat[j] = 0.5f + (float)rng_unif();
    for (int pass = 0; pass < 2; pass++) {
        const float *im = pass ? imat : NULL;
        const uint64_t got = q_quantize_rows(tc->type, x, all, rows, n, im);
        CHECK(got == row_bytes(t, n) * rows, "%s: q_quantize_rows wrote %llu bytes", t->name,
              (unsigned long long)got);
        bool same = true;
        for (int64_t r = 0; r < rows; r++) {
            if (t->quantize_imatrix) t->quantize_imatrix(x + r * n, one, n, im);
            else t->from_float_ref(x + r * n, one, n);
            same &= memcmp(one, all + r * row_bytes(t, n), row_bytes(t, n)) == 0;
        }
        CHECK(same, "%s: q_quantize_rows rows differ from per-row quantization (imatrix=%d)", t->name, pass);
    }
    if (t->blck > 1)
        CHECK(q_quantize_rows(tc->type, x, all, 1, t->blck + 1, NULL) == 0, "%s: misfit row length accepted", t->name);
    hq_free(x), hq_free(imat), hq_free(all), hq_free(one);
}

/* the importance-weighted quantizers use the SIMD scale searches when the
 * CPU has them: the bytes must not depend on that */
static void check_imatrix_simd_invariant(void) {
    const int64_t n = 1024;
    float *x = hq_malloc_array(n, 4), *imat = hq_malloc_array(n, 4);
    uint8_t *a = hq_malloc(n * 4), *b = hq_malloc(n * 4);
    fill_random(x, n, 256);
    for (int64_t j = 0; j < n; j++) imat[j] = (float)exp(rng_gauss());
    for (int c = 0; c < N_CASES; c++) {
        const q_type_traits *t = q_traits(type_cases[c].type);
        if (!t->quantize_imatrix) continue;
        for (int k = 0; k < 2; k++) {
            const float *im = k ? imat : NULL;
            hq_cpu_set_max(HQ_CPU_SCALAR);
            t->quantize_imatrix(x, b, n, im);
            for (int l = HQ_CPU_AVX2; l < HQ_CPU_LEVEL_COUNT; l++) {
                hq_cpu_set_max((hq_cpu_level)l);
                t->quantize_imatrix(x, a, n, im);
                CHECK(memcmp(a, b, row_bytes(t, n)) == 0, "%s: quantize_imatrix(%s) at %s differs from scalar",
                      t->name, k ? "imatrix" : "NULL", hq_cpu_level_name((hq_cpu_level)l));
            }
        }
    }
    hq_cpu_set_max(HQ_CPU_AVX512);
    hq_free(x), hq_free(imat), hq_free(a), hq_free(b);
}

/* F16 fast conversion (F16C) against core/half.h on the awkward values */
static void check_f16_specials(void) {
    float x[48];
    uint16_t a[48], b[48];
    const uint32_t bits[] = {0x7fc00000u, 0x7f800001u, 0xffc12345u, 0x7f800000u, 0xff800000u, 0x80000000u,
                             0x477ff000u, 0x477fefffu, 0x33000000u, 0x33000001u, 0x387fc000u, 0x38800000u,
                             0x00000001u, 0x7f7fffffu, 0x3f800fffu, 0x3f801000u};
    for (int i = 0; i < 48; i++) x[i] = i < 16 ? hq_bits_f32(bits[i]) : rng_gauss() * (float)ldexp(1.0, i - 30);
    q_f16_quantize_ref(x, a, 48);
    q_f16_quantize_fast(x, b, 48);
    CHECK(memcmp(a, b, sizeof a) == 0, "F16 fast conversion differs from core/half.h on special values");
}

static void check_q8_K(void) {
    const q_type_traits *t = q_traits(GGML_T_Q8_K);
    CHECK(t && t->blck == 256 && t->type_size == 292, "Q8_K traits");
    if (!t) return;
    const int64_t n = 1024;
    float x[1024], y[1024];
    q_block_q8_K q[4], q2[4];
    fill_random(x, n, 256);
    memset(x + 512, 0, 256 * 4); /* one all-zero block */
    t->from_float_ref(x, q, n);
    t->from_float(x, q2, n);
    CHECK(memcmp(q, q2, sizeof q) == 0, "Q8_K from_float != ref");
    bool sums = true;
    for (int b = 0; b < 4; b++)
        for (int k = 0; k < 16; k++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += q[b].qs[16 * k + j];
            sums &= (s == q[b].bsums[k]);
        }
    CHECK(sums, "Q8_K bsums are not the sums of 16 quants");
    t->to_float_ref(q, y, n);
    CHECK(block_maxerr_ratio(x, y, n, 256) <= 0.5 / 127 + 1e-6, "Q8_K round trip error");
}

static void check_finite_detection(void) {
    float x[100];
    for (int i = 0; i < 100; i++) x[i] = rng_gauss();
    CHECK(q_row_is_finite(x, 100), "finite row reported non-finite");
    CHECK(q_row_is_finite(x, 0), "empty row reported non-finite");
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++)
        for (int pos = 0; pos < 100; pos += 33) {
            float save = x[pos];
            x[pos] = bad[k];
            CHECK(!q_row_is_finite(x, 100), "non-finite value %d at %d not detected", k, pos);
            x[pos] = save;
        }
    x[7] = 3.4e38f; /* large but finite */
    CHECK(q_row_is_finite(x, 100), "FLT_MAX-ish value reported non-finite");
}

static void check_table(void) {
    for (uint32_t ty = 0; ty < GGML_T_COUNT; ty++) {
        const q_type_traits *t = q_traits(ty);
        if (!t) continue;
        const ggml_type_info *gi = ggml_type_get(ty);
        CHECK(gi && gi->blck == (uint32_t)t->blck && gi->size == t->type_size, "%s: traits disagree with ggml_types",
              t->name);
        CHECK(t->type == ty && t->from_float_ref && t->from_float && t->to_float_ref && t->to_float,
              "%s: incomplete traits", t->name);
        if (t->vec_dot_ref) CHECK(q_traits(t->vec_dot_type) != NULL, "%s: no traits for vec_dot_type", t->name);
    }
    CHECK(q_traits(GGML_T_COUNT) == NULL && q_traits(4) == NULL && q_traits(0xffffffffu) == NULL,
          "unknown ids must give NULL");
}

/* exact-half ties for the rounding rules: Q8_0 uses roundf (away from zero) */
static void check_rounding_ties(void) {
    float x[32], y[32];
    q_block_q8_0 b, b2;
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16) + 0.5f; /* ±0.5 … 15.5 */
    x[0] = 127.0f;                                               /* amax 127 → d = 1 exactly */
    q_q8_0_quantize_ref(x, &b, 32);
    q_q8_0_quantize_fast(x, &b2, 32);
    q_q8_0_dequantize_ref(&b, y, 32);
    bool ok = true;
    for (int j = 1; j < 32; j++) ok &= (y[j] == roundf(x[j]));
    CHECK(ok, "Q8_0: ties must round away from zero");
    CHECK(memcmp(&b, &b2, sizeof b) == 0, "Q8_0 fast path differs on ties");
}

/* ---- --dump DIR: inputs, our blocks, our dequantization, per type ---- */
static int write_file(const char *dir, const char *name, const char *ext, const void *p, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext);
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    size_t w = fwrite(p, 1, n, f);
    return (fclose(f) != 0 || w != n);
}

static int dump(const char *dir) {
    int bad = 0;
    for (int c = 0; c < N_CASES; c++) {
        const q_type_traits *t = q_traits(type_cases[c].type);
        const int64_t n = 4096;
        float *x = hq_malloc_array(n, 4), *y = hq_malloc_array(n, 4);
        uint8_t *q = hq_malloc(row_bytes(t, n));
        fill_random(x, n, err_block(t));
        memset(x, 0, 256 * 4);                                       /* an all-zero (super-)block */
        for (int j = 256; j < 288; j++) x[j] = (float)(j - 272) + 0.5f; /* exact half ties */
        x[256] = 127.0f;
        x[300] = 5000.0f; /* outlier */
        t->from_float_ref(x, q, n);
        t->to_float_ref(q, y, n);
        bad |= write_file(dir, t->name, "f32", x, (size_t)n * 4);
        bad |= write_file(dir, t->name, "bin", q, row_bytes(t, n));
        bad |= write_file(dir, t->name, "deq", y, (size_t)n * 4);
        hq_free(x), hq_free(y), hq_free(q);
    }
    fprintf(stderr, "test_quant: dumped %d types to %s\n", N_CASES, dir);
    return bad;
}

/* ---- --perf ---- */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int perf(void) {
    const int64_t n = 1 << 20;
    float *x = hq_malloc_array(n, 4);
    uint8_t *q = hq_malloc((size_t)n * 4 + 4096), *aq = hq_malloc((size_t)n * 4 + 4096);
    for (int64_t i = 0; i < n; i++) x[i] = rng_gauss();
    printf("%-7s %14s %14s %14s %12s %12s\n", "type", "quant ref M/s", "quant fast M/s", "imatrix M/s",
           "dequant GB/s", "vec_dot GB/s");
    for (int c = 0; c < N_CASES; c++) {
        const q_type_traits *t = q_traits(type_cases[c].type);
        double r[5] = {0};
        for (int k = 0; k < 5; k++) {
            int reps = 0;
            double t0 = now_s(), el;
            do {
                if (k == 0) t->from_float_ref(x, q, n);
                else if (k == 1) t->from_float(x, q, n);
                else if (k == 2) {
                    if (!t->quantize_imatrix) break;
                    t->quantize_imatrix(x, q, n, NULL);
                } else if (k == 3) t->to_float(q, x, n);
                else {
                    const q_type_traits *ta = q_traits(t->vec_dot_type);
                    if (reps == 0) ta->from_float(x, aq, n);
                    float s;
                    t->vec_dot(n, &s, q, aq);
                    if (s == 12345.678f) printf("!");
                }
                reps++;
                el = now_s() - t0;
            } while (el < 0.2);
            if (reps == 0) continue;
            if (k == 3) t->from_float(x, q, n); /* restore real data after to_float overwrote x */
            r[k] = k < 3 ? reps * (double)n / el / 1e6 : reps * (double)row_bytes(t, n) / el / 1e9;
        }
        printf("%-7s %14.1f %14.1f %14.1f %12.2f %12.2f\n", t->name, r[0], r[1], r[2], r[3], r[4]);
    }
    printf("(one core; targets: Q8_0/Q4_0 quantize >= 200 M/s, Q4_K >= 50 M/s; cpu level %s)\n", hq_cpu_level_name(hq_cpu_level_now()));
    hq_free(x), hq_free(q), hq_free(aq);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--dump") == 0) return dump(argv[2]);
    if (argc == 2 && strcmp(argv[1], "--perf") == 0) return perf();
    const bool san = sanitized();
    check_table();
    check_finite_detection();
    check_rounding_ties();
    check_q8_K();
    check_imatrix_simd_invariant();
    check_f16_specials();
    static const int64_t lens32[] = {32, 64, 96, 160, 1056, 4096};
    static const int64_t lens256[] = {256, 512, 768, 2304, 4096};
    hq_cpu_level levels[HQ_CPU_LEVEL_COUNT];
    const int n_levels = test_cpu_levels(levels, "test_quant");
    for (int pass = 0; pass < n_levels; pass++) {
        /* one pass per CPU level, highest first, the last one scalar: the
         * fast pointers must be right at every level */
        hq_cpu_set_max(levels[pass]);
        for (int c = 0; c < N_CASES; c++) {
            const q_type_traits *t = q_traits(type_cases[c].type);
            CHECK(t != NULL, "no traits for type %u", type_cases[c].type);
            if (!t) continue;
            const int64_t *lens = t->blck == 256 ? lens256 : lens32;
            const int nl = t->blck == 256 ? 5 : 6;
            for (int l = 0; l < nl; l++) {
                if (san && lens[l] > 1100) continue;
                check_roundtrip(&type_cases[c], lens[l]);
                check_dot(&type_cases[c], lens[l]);
            }
            if (t->blck == 1) { /* floats: odd lengths that are not a multiple of 8 */
                check_roundtrip(&type_cases[c], 37);
                check_dot(&type_cases[c], 37);
                check_dot(&type_cases[c], 5);
            }
            if (pass == 0) {
                check_edge_blocks(&type_cases[c]);
                check_imatrix_gain(&type_cases[c]);
                check_rows(&type_cases[c]);
            }
        }
    }
    hq_cpu_set_max(HQ_CPU_AVX512);
    TEST_END();
}
