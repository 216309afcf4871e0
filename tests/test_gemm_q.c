/* tests/test_gemm_q.c — the tiled block-type matmul (runtime/gemm_q.c)
 * against the per-element dots, every block type, odd shapes.
 *
 *  - fast path: every output must equal q_traits(type)->vec_dot bit for bit
 *    (the contract of gemm_q.h), for row ranges that start and end off the
 *    4-row decode group and token counts off the 8/4 prefill groups;
 *  - rt_gemm_q_rows_ref (vec_dot_ref per element) within 1e-5 relative to
 *    the largest output, the tolerance the fast vec_dot has against it;
 *  - rt_matmul through the tiles equals rt_matmul with the tiles disabled;
 *  - guard values around y catch writes outside the asked rows.
 * The output names the instruction set exercised; on a CPU without AVX2 the
 * tiled path is reported as not exercised (the fallback is still checked). */
#include "test.h"
#include "../core/hq.h"
#include "../quant/quant.h"
#include "../runtime/gemm_q.h"
#include "../runtime/ops.h"
#include "../runtime/runtime.h" // defines: rt_set_threads

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t g_rng = 0x9E3779B97F4A7C15ULL;
static float frand(void) { /* xorshift, uniform in [-1, 1) */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) / (double)(1ULL << 23)) - 1.0f;
}

#define GUARD 8
#define GUARD_V 12345.0f

static void one_case(uint32_t type, int64_t n_in, int64_t n_out, int64_t n_tok, int64_t o0, int64_t o1) {
    const q_type_traits *tr = q_traits(type), *vt = q_traits(tr->vec_dot_type);
    const uint64_t wrb = (uint64_t)(n_in / tr->blck) * tr->type_size, arb = (uint64_t)(n_in / vt->blck) * vt->type_size;
    float *wf = malloc(sizeof(float) * (size_t)(n_in * n_out)), *xf = malloc(sizeof(float) * (size_t)(n_in * n_tok));
    uint8_t *wq = malloc((size_t)(wrb * n_out)), *xq = malloc((size_t)(arb * n_tok));
    const size_t ny = (size_t)(n_tok * n_out) + 2 * GUARD;
    float *got = malloc(sizeof(float) * ny), *want = malloc(sizeof(float) * ny), *ref = malloc(sizeof(float) * ny);
    for (int64_t i = 0; i < n_in * n_out; i++) wf[i] = frand() * (1.0f + (float)(i % 7)); /* uneven block scales */
    for (int64_t i = 0; i < n_in * n_tok; i++) xf[i] = frand();
    q_quantize_rows(type, wf, wq, n_out, n_in, NULL);
    for (int64_t t = 0; t < n_tok; t++) vt->from_float(xf + t * n_in, xq + (uint64_t)t * arb, n_in);
    for (size_t i = 0; i < ny; i++) got[i] = want[i] = ref[i] = GUARD_V;
    rt_weight w = {.name = "t", .data = wq, .type = type, .n_in = n_in, .n_out = n_out, .row_bytes = wrb};
    float *g = got + GUARD, *wa = want + GUARD, *rf = ref + GUARD;
    rt_gemm_q_rows(&w, xq, arb, g, n_tok, o0, o1);
    rt_gemm_q_rows_ref(&w, xq, arb, rf, n_tok, o0, o1);
    for (int64_t o = o0; o < o1; o++)
        for (int64_t t = 0; t < n_tok; t++) tr->vec_dot(n_in, &wa[t * n_out + o], wq + (uint64_t)o * wrb, xq + (uint64_t)t * arb);
    int64_t bad = 0, near = 0;
    float amax = 0;
    for (int64_t i = 0; i < n_tok * n_out; i++) amax = fmaxf(amax, fabsf(rf[i] == GUARD_V ? 0 : rf[i]));
    for (int64_t i = 0; i < n_tok * n_out; i++) {
        if (memcmp(&g[i], &wa[i], 4) != 0) bad++;
        if (!(fabsf(g[i] - rf[i]) <= 1e-5f * amax + 1e-6f)) near++;
    }
    int guard_ok = 1;
    for (int k = 0; k < GUARD; k++)
        guard_ok &= got[k] == GUARD_V && got[ny - 1 - k] == GUARD_V;
    CHECK(bad == 0, "%s n_in=%lld n_out=%lld n_tok=%lld rows %lld..%lld: %lld outputs differ from vec_dot",
          tr->name, (long long)n_in, (long long)n_out, (long long)n_tok, (long long)o0, (long long)o1, (long long)bad);
    CHECK(near == 0, "%s n_in=%lld n_out=%lld n_tok=%lld: %lld outputs off the _ref by > 1e-5·max", tr->name,
          (long long)n_in, (long long)n_out, (long long)n_tok, (long long)near);
    CHECK(guard_ok, "%s n_in=%lld n_out=%lld n_tok=%lld: write outside y", tr->name, (long long)n_in,
          (long long)n_out, (long long)n_tok);
    free(wf), free(xf), free(wq), free(xq), free(got), free(want), free(ref);
}

/* rt_matmul with tiles vs without: identical bytes */
static void matmul_case(uint32_t type, int64_t n_in, int64_t n_out, int64_t n_tok) {
    const q_type_traits *tr = q_traits(type);
    const uint64_t wrb = (uint64_t)(n_in / tr->blck) * tr->type_size;
    float *wf = malloc(sizeof(float) * (size_t)(n_in * n_out)), *x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
    float *a = malloc(sizeof(float) * (size_t)(n_out * n_tok)), *b = malloc(sizeof(float) * (size_t)(n_out * n_tok));
    uint8_t *wq = malloc((size_t)(wrb * n_out));
    for (int64_t i = 0; i < n_in * n_out; i++) wf[i] = frand();
    for (int64_t i = 0; i < n_in * n_tok; i++) x[i] = frand() * 3.0f;
    q_quantize_rows(type, wf, wq, n_out, n_in, NULL);
    rt_weight w = {.name = "t", .data = wq, .type = type, .n_in = n_in, .n_out = n_out, .row_bytes = wrb};
    char err[256];
    CHECK(rt_matmul(&w, x, a, n_tok, NULL, err) == HQ_OK, "%s", err);
    rt_gemm_q_enable(false);
    CHECK(rt_matmul(&w, x, b, n_tok, NULL, err) == HQ_OK, "%s", err);
    rt_gemm_q_enable(true);
    CHECK(memcmp(a, b, sizeof(float) * (size_t)(n_out * n_tok)) == 0,
          "rt_matmul %s %lldx%lld, %lld tokens: tiles change the result", tr->name, (long long)n_out, (long long)n_in,
          (long long)n_tok);
    free(wf), free(x), free(a), free(b), free(wq);
}

/* --perf [threads]: rt_matmul of a 2048×768 weight (and 768×2048), 512 tokens and 1,
 * tiles off / on interleaved (5 rounds, best of each); not part of the suite */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static void run_all(bool san, rt_gemm_isa isa) {
    static const uint32_t types[] = {GGML_T_Q8_0, GGML_T_Q4_0, GGML_T_Q4_1, GGML_T_Q5_0, GGML_T_Q5_1,
                                     GGML_T_IQ4_NL, GGML_T_Q4_K, GGML_T_Q5_K, GGML_T_Q6_K};
    static const int64_t toks[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 17, 20};
    static const int64_t outs[] = {1, 3, 4, 5, 7, 9, 17};
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        const uint32_t ty = types[ti];
        if (!q_traits(ty) || !q_traits(ty)->vec_dot) {
            printf("skip %s: no traits\n", ggml_type_name(ty));
            continue;
        }
        CHECK(rt_gemm_q_supported(ty) == (isa != RT_GEMM_NONE) && rt_gemm_q_isa() == isa,
              "%s: supported()/isa() disagree with the %s path", ggml_type_name(ty), rt_gemm_q_isa_name(isa));
        const int64_t blk = q_traits(ty)->blck;
        const int64_t ins[] = {blk, 3 * blk, blk == 32 ? 800 : 768};
        for (size_t ii = 0; ii < 3; ii++)
            for (size_t oi = 0; oi < sizeof outs / sizeof *outs; oi++)
                for (size_t k = 0; k < sizeof toks / sizeof *toks; k++) {
                    if (san && (k % 3 != 0 || ii == 2)) continue; /* ASan: a third of the shapes */
                    const int64_t no = outs[oi];
                    one_case(ty, ins[ii], no, toks[k], 0, no);
                    if (no > 2) one_case(ty, ins[ii], no, toks[k], 1, no - 1); /* a range inside the matrix */
                }
        if (blk == 32) { /* more than 512 blocks: the activation scales go to the heap */
            one_case(ty, 32 * 520, 3, 9, 0, 3);
            one_case(ty, 32 * 520, 2, 1, 0, 2);
        }
        matmul_case(ty, blk == 32 ? 1024 : 1536, 37, 1);
        matmul_case(ty, blk == 32 ? 1024 : 1536, 37, 11);
        if (!san) matmul_case(ty, 2048, 1100, 1); /* parallel over row chunks */
    }
}

static int perf(void) {
    static const uint32_t types[] = {GGML_T_Q8_0, GGML_T_Q4_0, GGML_T_Q4_K, GGML_T_Q5_K, GGML_T_Q6_K};
    const int64_t n_in = 768, n_out = 2048, big_out = 16384;
    printf("type   tokens  vec_dot    tiles-avx2 tiles-best avx2/vd best/vd  (best = %s; n_in %lld, n_out %lld; 1 token: n_out %lld, GB/s of weights)\n",
           rt_gemm_q_isa_name(rt_gemm_q_isa()),
           (long long)n_in, (long long)n_out, (long long)big_out);
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        const q_type_traits *tr = q_traits(types[ti]);
        for (int pass = 0; pass < 2; pass++) {
            const int64_t n_tok = pass ? 1 : 512, no = pass ? big_out : n_out;
            const uint64_t wrb = (uint64_t)(n_in / tr->blck) * tr->type_size;
            float *wf = malloc(sizeof(float) * (size_t)n_in), *x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
            float *y = malloc(sizeof(float) * (size_t)(no * n_tok));
            uint8_t *wq = malloc((size_t)(wrb * no));
            for (int64_t r = 0; r < no; r++) { /* one row at a time: the weight may be large */
                for (int64_t i = 0; i < n_in; i++) wf[i] = frand();
                q_quantize_rows(types[ti], wf, wq + (uint64_t)r * wrb, 1, n_in, NULL);
            }
            for (int64_t i = 0; i < n_in * n_tok; i++) x[i] = frand();
            rt_weight w = {.name = "p", .data = wq, .type = types[ti], .n_in = n_in, .n_out = no, .row_bytes = wrb};
            double best[3] = {1e30, 1e30, 1e30};
            for (int rep = 0; rep < 5; rep++)
                for (int on = 0; on < 3; on++) {
                    rt_gemm_q_enable(on > 0);
                    rt_gemm_q_cap_isa(on == 1 ? RT_GEMM_AVX2 : RT_GEMM_COUNT - 1);
                    int inner = pass ? 20 : 1;
                    double t0 = now_s();
                    for (int k = 0; k < inner; k++) rt_matmul(&w, x, y, n_tok, NULL, NULL);
                    double dt = (now_s() - t0) / inner;
                    if (dt < best[on]) best[on] = dt;
                }
            rt_gemm_q_enable(true);
            rt_gemm_q_cap_isa(RT_GEMM_COUNT - 1);
            double fl = 2.0 * (double)n_in * (double)no * (double)n_tok;
            const double u = pass ? (double)(wrb * no) * 1e-9 : fl * 1e-9;
            printf("%-6s %6lld  %9.2f  %9.2f  %9.2f  %5.2fx  %5.2fx %s\n", tr->name, (long long)n_tok, u / best[0],
                   u / best[1], u / best[2], best[0] / best[1], best[0] / best[2], pass ? "GB/s" : "GFLOP/s");
            free(wf), free(x), free(y), free(wq);
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--perf") == 0) {
        if (argc > 2) rt_set_threads(atoi(argv[2]));
        return perf();
    }
    const bool san = getenv("HQ_SANITIZED") != NULL;
    rt_gemm_q_enable(true);
    const rt_gemm_isa best = rt_gemm_q_isa();
    for (int lv = RT_GEMM_AVX2; lv < RT_GEMM_COUNT; lv++)
        printf("gemm_q path %s: %s\n", rt_gemm_q_isa_name((rt_gemm_isa)lv),
               lv <= (int)best ? "exercised" : "NOT exercised (this CPU lacks it, or SIMD is off)");
    /* every path the CPU has, the best one last (left in place for rt_matmul) */
    for (int lv = best == RT_GEMM_NONE ? RT_GEMM_NONE : RT_GEMM_AVX2; lv <= (int)best; lv++) {
        rt_gemm_q_cap_isa((rt_gemm_isa)lv);
        run_all(san, (rt_gemm_isa)lv);
    }
    TEST_END();
}
