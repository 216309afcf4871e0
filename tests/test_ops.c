/* tests/test_ops.c — runtime op tester in the style of ggml's
 * test-backend-ops: every case {op, type, shape, seed} runs the optimized op
 * (AVX2 path and portable path) against its plain scalar _ref twin and
 * compares with NMSE under a per-op limit; any NaN fails; outputs carry guard
 * floats on both sides that must stay untouched. Odd sizes (1, 2, 3, 5, 7,
 * 33, 129, ...) and MoE edge cases (an expert no token uses, an expert every
 * token uses) are included. The _ref twins are independent straightforward
 * loops (double accumulation), so they are the reference.
 * Usage: test_ops [op-substring]   (HQ_SANITIZED=1 shrinks the big cases) */
#include "test.h"
#include "cpu_levels.h" // defines: test_cpu_levels
#include "../runtime/ops.h"
#include "../core/half.h"
#include "../quant/quant.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *g_filter;
static bool g_small;
#define GUARD 16
static const uint32_t GUARD_BITS = 0x7fa5a5a5u; /* a NaN pattern no op produces */

static uint64_t g_rng;
static void seed(uint64_t s) { g_rng = s * 0x9E3779B97F4A7C15ull + 1; }
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}
static float frand(void) { return (float)((rnd() & 0xffffff) / 16777216.0 * 2.0 - 1.0); }
static void fill(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = frand() * scale;
}

/* guarded output buffer */
static float *gnew(int64_t n) {
    float *p = malloc((size_t)(n + 2 * GUARD) * sizeof(float));
    for (int64_t i = 0; i < n + 2 * GUARD; i++) memcpy(&p[i], &GUARD_BITS, 4);
    return p + GUARD;
}
static bool gok(const float *p, int64_t n) {
    for (int64_t i = -GUARD; i < 0; i++)
        if (memcmp(&p[i], &GUARD_BITS, 4)) return false;
    for (int64_t i = n; i < n + GUARD; i++)
        if (memcmp(&p[i], &GUARD_BITS, 4)) return false;
    return true;
}
static void gfree(float *p) { free(p - GUARD); }

static bool run(const char *op) { return !g_filter || strstr(op, g_filter); }

/* NMSE = Σ(a−b)² / Σb²; NaN anywhere → +inf */
static double nmse(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? num / den : num;
}

static void check_case(const char *op, const char *desc, const float *got, const float *ref, int64_t n, double lim) {
    double e = nmse(got, ref, n);
    CHECK(e <= lim, "%s %s: NMSE %.3g > %.3g", op, desc, e, lim);
    CHECK(gok(got, n), "%s %s: guard bytes overwritten", op, desc);
}

/* the optimized paths: one per CPU level this machine allows (core/cpu.h),
 * highest first, down to the portable (scalar) one */
static hq_cpu_level g_levels[HQ_CPU_LEVEL_COUNT];
static int g_n_levels;
static int n_paths(void) { return g_n_levels; }
static const char *set_path(int p) {
    hq_cpu_set_max(g_levels[p]);
    return hq_cpu_level_name(g_levels[p]);
}

/* ---------------- rmsnorm ---------------- */
static void test_rmsnorm(void) {
    if (!run("rmsnorm")) return;
    int64_t shapes[][2] = {{1, 1}, {3, 5}, {7, 33}, {2, 129}, {5, 1023}, {1, 8}, {4, 256}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t r = shapes[s][0], d = shapes[s][1];
        seed(100 + s);
        float *x = malloc(r * d * 4), *w = malloc(d * 4), *ref = gnew(r * d), *got = gnew(r * d);
        fill(x, r * d, 3.0f);
        fill(w, d, 1.5f);
        rt_rmsnorm_ref(x, w, ref, r, d, 1e-6f);
        for (int p = 0; p < n_paths(); p++) {
            char desc[64];
            snprintf(desc, sizeof desc, "[%lld,%lld] %s", (long long)r, (long long)d, set_path(p));
            rt_rmsnorm(x, w, got, r, d, 1e-6f);
            check_case("rmsnorm", desc, got, ref, r * d, 1e-12);
        }
        free(x); free(w); gfree(ref); gfree(got);
    }
}

/* ---------------- rope ---------------- */
static void test_rope(void) {
    if (!run("rope")) return;
    int64_t shapes[][3] = {{1, 1, 2}, {3, 2, 6}, {5, 3, 34}, {7, 1, 128}, {2, 4, 64}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t n = shapes[s][0], H = shapes[s][1], P = shapes[s][2];
        seed(200 + s);
        float *x = malloc(n * H * P * 4), *ref = gnew(n * H * P), *got = gnew(n * H * P);
        int64_t pos[8];
        for (int64_t t = 0; t < n; t++) pos[t] = t == 0 ? 0 : (int64_t)(rnd() % 5000);
        fill(x, n * H * P, 2.0f);
        memcpy(ref, x, n * H * P * 4);
        rt_rope_ref(ref, n, H, P, pos, 10000.0f);
        memcpy(got, x, n * H * P * 4);
        rt_rope(got, n, H, P, pos, 10000.0f);
        check_case("rope", "fast", got, ref, n * H * P, 1e-14);
        /* independent check in double of one rotated pair: position pos[n-1], j = P/2-1 */
        int64_t t = n - 1, j = P / 2 - 1;
        double ang = (double)pos[t] * pow(10000.0, -(double)(2 * j) / (double)P);
        double a = x[(t * H) * P + j], b = x[(t * H) * P + j + P / 2];
        double e0 = a * cos(ang) - b * sin(ang);
        CHECK(fabs(e0 - ref[(t * H) * P + j]) < 2e-3 * (1 + fabs(e0)), "rope pair: %g vs %g", e0,
              ref[(t * H) * P + j]);
        /* position 0 is the identity */
        CHECK(fabsf(ref[1 % P] - x[1 % P]) == 0.0f, "rope: position 0 must not rotate");
        free(x); gfree(ref); gfree(got);
    }
    /* dynamic NTK: below the limit the base stays, above it grows per the formula */
    CHECK(rt_rope_base(10000.0f, 4.0f, 2048, 128, 2047) == 10000.0f, "rope_base: T <= M must keep theta");
    double want = 10000.0 * pow(4.0 * 4096 / 2048 - 3.0, 128.0 / 126.0);
    CHECK(fabs(rt_rope_base(10000.0f, 4.0f, 2048, 128, 4095) - want) < 1e-3 * want, "rope_base: dynamic NTK");
}

/* ---------------- matmul ---------------- */
typedef struct {
    void *data;
    rt_weight w;
} wbuf;

static bool make_weight(wbuf *b, uint32_t type, int64_t n_out, int64_t n_in, float scale) {
    float *f = malloc(n_out * n_in * 4);
    fill(f, n_out * n_in, scale);
    uint64_t rb;
    if (!ggml_row_bytes(type, n_in, &rb)) {
        free(f);
        return false;
    }
    b->data = malloc(rb * n_out + 1);
    for (int64_t r = 0; r < n_out; r++) {
        uint8_t *dst = (uint8_t *)b->data + r * rb;
        const float *src = f + r * n_in;
        if (type == GGML_T_F32) memcpy(dst, src, n_in * 4);
        else if (type == GGML_T_F16)
            for (int64_t i = 0; i < n_in; i++) ((uint16_t *)dst)[i] = hq_f32_to_f16(src[i]);
        else if (type == GGML_T_BF16)
            for (int64_t i = 0; i < n_in; i++) ((uint16_t *)dst)[i] = hq_f32_to_bf16(src[i]);
        else q_traits(type)->from_float_ref(src, dst, n_in);
    }
    free(f);
    b->w = (rt_weight){"test.weight", b->data, type, n_in, n_out, rb};
    return true;
}

static void test_matmul(void) {
    if (!run("matmul")) return;
    int64_t shapes[][3] = {{1, 1, 1}, {1, 7, 3},    {2, 33, 5},   {3, 129, 7},  {5, 64, 50},
                           {17, 100, 97}, {1, 1023, 33}, {64, 256, 129}, {4, 8, 1}, {33, 5, 2}};
    uint32_t ftypes[] = {GGML_T_F32, GGML_T_F16, GGML_T_BF16};
    int n_sh = g_small ? 8 : (int)(sizeof shapes / sizeof shapes[0]);
    for (int s = 0; s < n_sh; s++)
        for (size_t ti = 0; ti < 3; ti++) {
            int64_t n = shapes[s][0], ni = shapes[s][1], no = shapes[s][2];
            seed(300 + s * 7 + ti);
            wbuf wb;
            make_weight(&wb, ftypes[ti], no, ni, 1.0f);
            float *x = malloc(n * ni * 4), *bias = malloc(no * 4), *ref = gnew(n * no), *got = gnew(n * no);
            fill(x, n * ni, 1.0f);
            fill(bias, no, 0.5f);
            const float *bb = (s & 1) ? bias : NULL;
            CHECK(rt_matmul_ref(&wb.w, x, ref, n, bb, NULL) == HQ_OK, "matmul_ref failed");
            for (int p = 0; p < n_paths(); p++) {
                char desc[96];
                snprintf(desc, sizeof desc, "%s n=%lld in=%lld out=%lld %s", ggml_type_name(ftypes[ti]), (long long)n,
                         (long long)ni, (long long)no, set_path(p));
                CHECK(rt_matmul(&wb.w, x, got, n, bb, NULL) == HQ_OK, "matmul %s failed", desc);
                check_case("matmul", desc, got, ref, n * no, 1e-10);
            }
            free(wb.data); free(x); free(bias); gfree(ref); gfree(got);
        }
    /* block-quantized types through quant/quant.h traits: fast vs ref */
    uint32_t qtypes[] = {GGML_T_Q8_0, GGML_T_Q4_0, GGML_T_Q4_K, GGML_T_Q6_K};
    int64_t qshapes[][3] = {{1, 256, 3}, {3, 512, 7}, {9, 256, 33}};
    for (size_t ti = 0; ti < sizeof qtypes / sizeof qtypes[0]; ti++) {
        CHECK(q_traits(qtypes[ti]) != NULL, "no quant traits for %s", ggml_type_name(qtypes[ti]));
        if (!q_traits(qtypes[ti])) continue;
        for (size_t s = 0; s < 3; s++) {
            int64_t n = qshapes[s][0], ni = qshapes[s][1], no = qshapes[s][2];
            seed(400 + ti * 5 + s);
            wbuf wb;
            make_weight(&wb, qtypes[ti], no, ni, 1.0f);
            float *x = malloc(n * ni * 4), *ref = gnew(n * no), *got = gnew(n * no);
            fill(x, n * ni, 1.0f);
            CHECK(rt_matmul_ref(&wb.w, x, ref, n, NULL, NULL) == HQ_OK, "matmul_ref %s", ggml_type_name(qtypes[ti]));
            CHECK(rt_matmul(&wb.w, x, got, n, NULL, NULL) == HQ_OK, "matmul %s", ggml_type_name(qtypes[ti]));
            char desc[64];
            snprintf(desc, sizeof desc, "%s n=%lld in=%lld out=%lld", ggml_type_name(qtypes[ti]), (long long)n,
                     (long long)ni, (long long)no);
            check_case("matmul", desc, got, ref, n * no, 1e-6); /* fast vec_dot may round differently */
            free(wb.data); free(x); gfree(ref); gfree(got);
        }
    }
    /* an unsupported type is a clear error, not a crash */
    rt_weight bad = {"blk.0.attn_q.weight", "", GGML_T_IQ2_XXS, 256, 1, 66};
    char err[HQ_ERR_LEN] = "";
    float x[256] = {0}, y[1];
    hq_status st = rt_matmul(&bad, x, y, 1, NULL, err);
    CHECK(st == HQ_ERR_UNSUPPORTED && strstr(err, "not supported") && strstr(err, "attn_q"),
          "unsupported type: st %d err '%s'", st, err);
}

/* ---------------- swiglu ---------------- */
static void test_swiglu(void) {
    if (!run("swiglu")) return;
    int64_t sizes[] = {1, 7, 33, 5000};
    for (size_t s = 0; s < 4; s++) {
        int64_t n = sizes[s];
        seed(500 + s);
        float *g = malloc(n * 4), *u = malloc(n * 4), *ref = gnew(n), *got = gnew(n);
        fill(g, n, 8.0f);
        fill(u, n, 2.0f);
        memcpy(ref, g, n * 4);
        memcpy(got, g, n * 4);
        rt_swiglu_ref(ref, u, n);
        rt_swiglu(got, u, n);
        check_case("swiglu", "fast", got, ref, n, 1e-14);
        /* independent: silu(g)·u in double */
        double e = g[0] / (1.0 + exp(-(double)g[0])) * u[0];
        CHECK(fabs(e - ref[0]) <= 1e-5 * (1 + fabs(e)), "swiglu value %g vs %g", e, ref[0]);
        free(g); free(u); gfree(ref); gfree(got);
    }
    CHECK(rt_softplus(30.0f) == 30.0f && fabsf(rt_softplus(0.0f) - 0.6931472f) < 1e-6f, "softplus");
}

/* ---------------- ssd ---------------- */
static void test_ssd(void) {
    if (!run("ssd")) return;
    rt_ssd_dims dims[] = {{2, 4, 2, 4}, {4, 8, 1, 6}, {3, 5, 3, 5}, {1, 1, 1, 1}, {2, 16, 2, 16}};
    int64_t lens[] = {1, 5, 33, 129};
    int64_t chunks[] = {1, 3, 7, 64};
    int n_len = g_small ? 3 : 4;
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
        for (int li = 0; li < n_len; li++)
            for (int withD = 0; withD < 2; withD++) {
                rt_ssd_dims dm = dims[di];
                int64_t n = lens[li], H = dm.H, P = dm.P, G = dm.G, N = dm.N;
                seed(600 + di * 31 + li * 3 + withD);
                float *x = malloc(n * H * P * 4), *b = malloc(n * G * N * 4), *c = malloc(n * G * N * 4);
                float *dt = malloc(n * H * 4), *A = malloc(H * 4), *D = malloc(H * 4);
                fill(x, n * H * P, 1.0f);
                fill(b, n * G * N, 0.5f);
                fill(c, n * G * N, 0.5f);
                for (int64_t i = 0; i < n * H; i++) dt[i] = 0.05f + 0.5f * (frand() + 1.0f);
                /* mostly decaying heads, one growing head (A > 0 as Cheems' init) */
                for (int64_t h = 0; h < H; h++) A[h] = h == H - 1 && H > 1 ? 0.05f : -(0.2f + 2.0f * (frand() + 1.0f));
                fill(D, H, 1.0f);
                const float *Dp = withD ? D : NULL;
                int64_t sn = H * P * N;
                float *s_ref = calloc(sn, 4), *s_got = calloc(sn, 4), *s_ch = gnew(sn);
                memset(s_ch, 0, sn * 4);
                float *y_ref = gnew(n * H * P), *y_got = gnew(n * H * P), *y_ch = gnew(n * H * P);
                /* start from a non-zero carried state */
                float *s_init = malloc(sn * 4);
                for (int64_t i = 0; i < sn; i++) s_init[i] = s_ref[i] = s_got[i] = s_ch[i] = 0.1f * frand();
                rt_ssd_scan_ref(&dm, n, x, b, c, dt, A, Dp, s_ref, y_ref);
                char desc[96];
                snprintf(desc, sizeof desc, "H=%lld P=%lld G=%lld N=%lld n=%lld D=%d", (long long)H, (long long)P,
                         (long long)G, (long long)N, (long long)n, withD);
                rt_ssd_scan(&dm, n, x, b, c, dt, A, Dp, s_got, y_got);
                check_case("ssd_scan", desc, y_got, y_ref, n * H * P, 1e-12);
                CHECK(nmse(s_got, s_ref, sn) <= 1e-12, "ssd_scan state %s", desc);
                for (size_t ci = 0; ci < 4; ci++) {
                    int64_t scr_n = rt_ssd_chunked_scratch(&dm, chunks[ci]) * rt_n_threads();
                    float *scr = malloc(scr_n * 4);
                    float *st = gnew(sn);
                    memcpy(st, s_init, sn * 4);
                    /* split in two calls: the carried state must bridge them */
                    int64_t n1 = n / 2;
                    if (n1 > 0)
                        rt_ssd_chunked(&dm, n1, chunks[ci], x, b, c, dt, A, Dp, st, y_ch, scr);
                    rt_ssd_chunked(&dm, n - n1, chunks[ci], x + n1 * H * P, b + n1 * G * N, c + n1 * G * N,
                                   dt + n1 * H, A, Dp, st, y_ch + n1 * H * P, scr);
                    char d2[128];
                    snprintf(d2, sizeof d2, "%s chunk=%lld", desc, (long long)chunks[ci]);
                    check_case("ssd_chunked=recurrence", d2, y_ch, y_ref, n * H * P, 1e-9);
                    check_case("ssd_chunked state", d2, st, s_ref, sn, 1e-9);
                    free(scr); gfree(st);
                }
                free(x); free(b); free(c); free(dt); free(A); free(D);
                free(s_ref); free(s_got); free(s_init); gfree(s_ch); gfree(y_ref); gfree(y_got); gfree(y_ch);
            }
}

/* ---------------- torch.topk's choice among ties ---------------- */
static void topk_set(const float *v, int64_t n, int64_t k, char *in) {
    rt_vj *a = malloc((size_t)n * sizeof *a);
    for (int64_t i = 0; i < n; i++) a[i] = (rt_vj){v[i], i};
    rt_topk_torch(a, n, k);
    memset(in, 0, (size_t)n);
    for (int64_t i = 0; i < k && i < n; i++) in[a[i].j] = 1;
    free(a);
}
static bool same_set(const char *in, int64_t n, const int64_t *want, int64_t k) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += in[i];
    if (c != k) return false;
    for (int64_t i = 0; i < k; i++)
        if (!in[want[i]]) return false;
    return true;
}

static void test_topk_torch(void) {
    if (!run("topk_torch")) return;
    /* the hand cases of docs/doge-keep-window.md: 6 keys, keep 3, every β 1;
     * rows as transformers builds them (F = finfo(float32).min) */
    const float F = -3.4028234663852886e38f;
    struct { float v[6]; int64_t n, want[3]; } hc[] = {
        {{1, 1, 1, 1}, 4, {0, 2, 3}},          /* cached decode, query 3 */
        {{1, 1, 1, 1, 1}, 5, {2, 3, 4}},       /* cached decode, query 4 */
        {{1, 1, 1, 1, 1, 1}, 6, {3, 4, 5}},    /* cached decode, query 5 */
        {{1, 1, 1, 1, F, F}, 6, {0, 1, 3}},    /* full forward, query 3 */
        {{1, 1, 1, 1, 1, F}, 6, {1, 3, 4}},    /* full forward, query 4 */
        {{2, 1, 1, 2, 1}, 5, {0, 2, 3}},       /* cached decode, β = 2 1 1 2 1 */
        {{2, 1, 1, 2, 1, F}, 6, {0, 3, 4}},    /* full forward, same */
    };
    for (size_t i = 0; i < sizeof hc / sizeof hc[0]; i++) {
        char in[6];
        topk_set(hc[i].v, hc[i].n, 3, in);
        CHECK(same_set(in, hc[i].n, hc[i].want, 3), "topk_torch hand case %zu: {%d%d%d%d%d%d}", i, in[0], in[1],
              in[2], in[3], in[4], in[5 < hc[i].n ? 5 : 0]);
    }
    /* rows with many ties, answers recorded from torch.topk by
     * tools/make_keep_window_fixtures.py (both libstdc++ paths) */
    char *js = NULL;
    uint64_t len = 0;
    char err[HQ_ERR_LEN];
    if (hq_read_file(FIXTURE("topk/torch_topk_ties.json"), 1 << 22, &js, &len, err) != HQ_OK) {
        CHECK(0, "topk_torch: %s", err);
        return;
    }
    cJSON *root = cJSON_Parse(js);
    hq_free(js);
    cJSON *vals = cJSON_GetObjectItem(root, "values"), *cases = cJSON_GetObjectItem(root, "cases"), *c;
    int64_t n_ok = 0, n_all = 0, n_partial = 0;
    cJSON_ArrayForEach(c, cases) {
        const char *x = cJSON_GetObjectItem(c, "x")->valuestring;
        int64_t n = (int64_t)strlen(x), k = (int64_t)cJSON_GetObjectItem(c, "k")->valuedouble;
        cJSON *want = cJSON_GetObjectItem(c, "topk");
        float *v = malloc((size_t)n * sizeof(float));
        int64_t *w = malloc((size_t)k * sizeof(int64_t));
        char *in = malloc((size_t)n);
        for (int64_t i = 0; i < n; i++) v[i] = (float)cJSON_GetArrayItem(vals, x[i] - 'a')->valuedouble;
        for (int64_t i = 0; i < k; i++) w[i] = (int64_t)cJSON_GetArrayItem(want, (int)i)->valuedouble;
        topk_set(v, n, k, in);
        bool okc = same_set(in, n, w, k);
        CHECK(okc, "topk_torch case %lld (n=%lld k=%lld): set differs from torch.topk's", (long long)n_all,
              (long long)n, (long long)k);
        n_ok += okc;
        n_partial += k * 64 <= n;
        n_all++;
        free(v); free(w); free(in);
    }
    CHECK(n_all >= 100 && n_partial >= 10, "topk_torch: fixture has %lld cases (%lld partial_sort)", (long long)n_all,
          (long long)n_partial);
    printf("topk_torch: %lld/%lld torch.topk tie sets reproduced (%lld on the partial_sort path)\n", (long long)n_ok,
           (long long)n_all, (long long)n_partial);
    cJSON_Delete(root);
}

/* ---------------- attention ---------------- */
static void test_attn(void) {
    if (!run("attn")) return;
    /* H, KV, P, M(0 = H, 1 = KV), window, keep_window, pos0, n */
    int64_t cases[][8] = {{1, 1, 2, 0, 0, 0, 0, 1},   {2, 1, 4, 0, 0, 0, 0, 5},    {4, 2, 8, 1, 0, 0, 3, 7},
                          {3, 3, 5, 0, 0, 0, 0, 33},  {4, 2, 16, 0, 4, 0, 2, 9},   {2, 2, 8, 1, 0, 3, 0, 17},
                          {4, 1, 6, 0, 5, 3, 10, 6},  {2, 1, 32, 0, 0, 0, 40, 1},  {8, 4, 64, 1, 0, 16, 0, 65},
                          {2, 2, 4, 0, 0, 2, 5, 1},   {2, 1, 8, 0, 0, 1, 0, 70},   {4, 2, 8, 1, 0, 5, 7, 24}};
    static const char *const rules[] = {"torch", "hf-call", "low-index"};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int ties = 0; ties < 3; ties++)
            for (int rule = 0; rule < 3; rule++) {
                int64_t H = cases[ci][0], KV = cases[ci][1], P = cases[ci][2], M = cases[ci][3] ? KV : H;
                int64_t pos0 = cases[ci][6], n = cases[ci][7], cap = pos0 + n + 3;
                rt_attn_params ap = {H, KV, P, M, cap, cases[ci][4], cases[ci][5], 1.0f / sqrtf((float)P),
                                     (rt_keep_rule)rule};
                seed(700 + ci * 3 + ties);
                float *q = malloc(n * H * P * 4), *kc = malloc(KV * cap * P * 4), *vc = malloc(KV * cap * P * 4);
                float *beta = malloc(M * cap * 4);
                fill(q, n * H * P, 1.0f);
                fill(kc, KV * cap * P, 1.0f);
                fill(vc, KV * cap * P, 1.0f);
                /* ties 1: β from a 3-value set; ties 2: every β 1 (A = 0, as transformers initialises) */
                for (int64_t i = 0; i < M * cap; i++)
                    beta[i] = ties == 1 ? (float)(rnd() % 3) * 0.5f : ties == 2 ? 1.0f : expf(frand());
                float *ref = gnew(n * H * P), *got = gnew(n * H * P);
                float *scr = malloc(rt_attn_scratch(&ap) * rt_n_threads() * 4);
                rt_attn_ref(&ap, q, kc, vc, beta, pos0, n, ref);
                char desc[160];
                for (int p = 0; p < n_paths(); p++) {
                    snprintf(desc, sizeof desc,
                             "H=%lld KV=%lld P=%lld M=%lld win=%lld keep=%lld pos0=%lld n=%lld ties=%d rule=%s %s",
                             (long long)H, (long long)KV, (long long)P, (long long)M, (long long)ap.window,
                             (long long)ap.keep_window, (long long)pos0, (long long)n, ties, rules[rule], set_path(p));
                    rt_attn(&ap, q, kc, vc, beta, pos0, n, got, scr);
                    check_case("attn", desc, got, ref, n * H * P, 1e-10);
                }
                /* prefill == one token at a time over the same cache; hf-call
                 * depends on the call, and its one-token calls are the torch rule */
                float *inc = gnew(n * H * P);
                for (int64_t t = 0; t < n; t++) rt_attn(&ap, q + t * H * P, kc, vc, beta, pos0 + t, 1, inc + t * H * P, scr);
                if (rule == RT_KEEP_HF_CALL) {
                    rt_attn_params a1 = ap;
                    a1.keep_rule = RT_KEEP_TORCH;
                    rt_attn_ref(&a1, q, kc, vc, beta, pos0, n, got);
                    check_case("attn hf-call one token = torch rule", desc, inc, got, n * H * P, 1e-10);
                } else {
                    check_case("attn prefill=decode", desc, inc, ref, n * H * P, 1e-10);
                }
                free(q); free(kc); free(vc); free(beta); free(scr); gfree(ref); gfree(got); gfree(inc);
            }
}

/* ---------------- CDMoE routing and experts ---------------- */
static void test_route(void) {
    if (!run("route")) return;
    int64_t cases[][2] = {{1, 1}, {2, 1}, {2, 3}, {3, 4}, {5, 5}, {8, 16}, {33, 8}, {7, 49}, {32, 16}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int ties = 0; ties < 2; ties++) {
            int64_t Kk = cases[ci][0], k = cases[ci][1], n = 9;
            seed(800 + ci * 2 + ties);
            float *lg = malloc(n * 2 * Kk * 4);
            for (int64_t i = 0; i < n * 2 * Kk; i++) lg[i] = ties ? (float)(rnd() % 4) : 3.0f * frand();
            int32_t *i_ref = malloc(n * k * 4), *i_got = malloc(n * k * 4);
            float *w_ref = gnew(n * k), *w_got = gnew(n * k);
            rt_route_router_ref(lg, n, Kk, k, i_ref, w_ref);
            rt_route_router(lg, n, Kk, k, i_got, w_got);
            CHECK(memcmp(i_ref, i_got, n * k * 4) == 0, "route_router Kk=%lld k=%lld ties=%d: ids differ from brute force",
                  (long long)Kk, (long long)k, ties);
            check_case("route_router", "weights", w_got, w_ref, n * k, 1e-12);
            double sum = 0;
            for (int64_t m = 0; m < k; m++) sum += w_ref[m];
            CHECK(fabs(sum - 1.0) < 1e-5, "route weights sum to %g", sum);
            free(lg); free(i_ref); free(i_got); gfree(w_ref); gfree(w_got);
        }
    /* product keys: Hr, R, Kk, k */
    int64_t pk[][4] = {{1, 2, 1, 1}, {2, 4, 3, 2}, {4, 8, 5, 8}, {3, 6, 8, 8}, {2, 16, 16, 4}};
    for (size_t ci = 0; ci < sizeof pk / sizeof pk[0]; ci++) {
        int64_t Hr = pk[ci][0], R = pk[ci][1], Kk = pk[ci][2], k = pk[ci][3], n = 7;
        seed(900 + ci);
        float *q = malloc(n * Hr * R * 4), *keys = malloc(Hr * Kk * R * 4);
        fill(q, n * Hr * R, 1.0f);
        fill(keys, Hr * Kk * R, 1.0f);
        int32_t *i_ref = malloc(n * Hr * k * 4), *i_got = malloc(n * Hr * k * 4);
        float *w_ref = gnew(n * Hr * k), *w_got = gnew(n * Hr * k);
        rt_route_pk_ref(q, keys, n, Hr, R, Kk, k, i_ref, w_ref);
        rt_route_pk(q, keys, n, Hr, R, Kk, k, i_got, w_got);
        CHECK(memcmp(i_ref, i_got, n * Hr * k * 4) == 0, "route_pk Hr=%lld R=%lld Kk=%lld k=%lld: ids differ",
              (long long)Hr, (long long)R, (long long)Kk, (long long)k);
        check_case("route_pk", "weights", w_got, w_ref, n * Hr * k, 1e-12);
        free(q); free(keys); free(i_ref); free(i_got); gfree(w_ref); gfree(w_got);
    }
}

static void test_experts(void) {
    if (!run("experts")) return;
    uint32_t types[] = {GGML_T_F32, GGML_T_F16, GGML_T_BF16, GGML_T_Q8_0, GGML_T_Q4_K};
    int64_t shapes[][4] = {{1, 32, 4, 1}, {5, 64, 9, 3}, {17, 256, 16, 4}, {3, 256, 50, 7}}; /* n, d, E, k */
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t si = 0; si < 4; si++) {
            int64_t n = shapes[si][0], d = shapes[si][1], E = shapes[si][2], k = shapes[si][3];
            uint64_t rb;
            if (!ggml_row_bytes(types[ti], d, &rb)) continue;
            if (types[ti] != GGML_T_F32 && types[ti] != GGML_T_F16 && types[ti] != GGML_T_BF16 && !q_traits(types[ti]))
                continue;
            seed(1000 + ti * 11 + si);
            wbuf dn, up;
            make_weight(&dn, types[ti], E, d, 0.3f);
            make_weight(&up, types[ti], E, d, 0.3f);
            float *x = malloc(n * d * 4), *w = malloc(n * k * 4);
            int32_t *ids = malloc(n * k * 4);
            fill(x, n * d, 1.0f);
            for (int64_t i = 0; i < n * k; i++) {
                /* slot 0: expert 0 for every token; the last expert is never chosen */
                ids[i] = (i % k == 0) ? 0 : (int32_t)(rnd() % (E > 1 ? E - 1 : 1));
                w[i] = frand();
            }
            float *ref = gnew(n * d), *got = gnew(n * d);
            fill(ref, n * d, 0.1f);
            memcpy(got, ref, n * d * 4); /* accumulates into out */
            CHECK(rt_experts_ref(&dn.w, &up.w, x, n, ids, w, k, ref, NULL) == HQ_OK, "experts_ref");
            for (int p = 0; p < n_paths(); p++) {
                float *g2 = gnew(n * d);
                memcpy(g2, got, n * d * 4);
                char desc[96];
                snprintf(desc, sizeof desc, "%s n=%lld d=%lld E=%lld k=%lld %s", ggml_type_name(types[ti]), (long long)n,
                         (long long)d, (long long)E, (long long)k, set_path(p));
                CHECK(rt_experts(&dn.w, &up.w, x, n, ids, w, k, g2, NULL) == HQ_OK, "experts %s", desc);
                /* block types: same arithmetic (quantized activation); the fast
                 * vec_dot may only reorder sums */
                check_case("experts", desc, g2, ref, n * d, types[ti] <= GGML_T_F16 || types[ti] == GGML_T_BF16 ? 1e-10 : 1e-8);
                gfree(g2);
            }
            /* an id outside the table is refused */
            ids[0] = (int32_t)E;
            char err[HQ_ERR_LEN] = "";
            CHECK(rt_experts(&dn.w, &up.w, x, n, ids, w, k, got, err) != HQ_OK && strstr(err, "outside"),
                  "experts: out-of-range id accepted (%s)", err);
            free(dn.data); free(up.data); free(x); free(w); free(ids); gfree(ref); gfree(got);
        }
}

/* the harness itself must be able to fail: a perturbed output is caught */
static void test_selfcheck(void) {
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4.1f};
    CHECK(nmse(a, b, 4) > 1e-7, "selfcheck: NMSE misses a perturbation");
    b[3] = NAN;
    CHECK(isinf(nmse(a, b, 4)), "selfcheck: NaN not detected");
}

int main(int argc, char **argv) {
    g_filter = argc > 1 ? argv[1] : NULL;
    g_small = getenv("HQ_SANITIZED") != NULL;
    g_n_levels = test_cpu_levels(g_levels, "test_ops");
    test_selfcheck();
    test_rmsnorm();
    test_rope();
    test_matmul();
    test_swiglu();
    test_ssd();
    test_topk_torch();
    test_attn();
    test_route();
    test_experts();
    hq_cpu_set_max(HQ_CPU_AVX512);
    TEST_END();
}
