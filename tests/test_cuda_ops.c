/* tests/test_cuda_ops.c — every CUDA kernel (cuda/<op>.cu) against the CPU
 * runtime's _ref ops (runtime/ops.h) or an independent double computation,
 * modelled on ggml's test-backend-ops: odd shapes, every weight type, MoE
 * edge cases, and a normalized-mean-squared-error limit written next to
 * each case (NMSE = Σ(got − ref)² / Σ ref²).
 *
 * Emulator pass (always): each case runs in the forward, reverse and
 * seeded-random thread orders (forward + reverse under HQ_SANITIZED=1); the
 * first order is checked against the reference, the others must be
 * bit-identical to it (no kernel may depend on scheduling).
 * GPU pass: when nvcc built the real kernels into this binary and a device
 * is present, the same cases run on it; otherwise it prints why it skips. */
#include "../cuda/cu_ops.h"
#include "../cuda/hq_cuda.h" // defines: cu_emu_set_order
#include "../quant/quant.h"
#include "../runtime/ops.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cu_ops *T;
static int g_emu, g_small, n_orders;
static const int k_orders[3] = {CU_EMU_ORDER_FORWARD, CU_EMU_ORDER_REVERSE, CU_EMU_ORDER_RANDOM};
static int g_cases;

static uint32_t g_rng = 12345u;
static float frand(void) { /* uniform [-1, 1) */
    g_rng = g_rng * 1664525u + 1013904223u;
    return (float)((g_rng >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}
static float *rnd(int64_t n, float scale) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * 4);
    for (int64_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}
static void *dup_dev(const void *h, uint64_t bytes) {
    void *d = T->alloc(bytes ? bytes : 4);
    if (d && bytes) T->h2d(d, h, bytes);
    return d;
}
static float *dev_f(const float *h, int64_t n) { return dup_dev(h, (uint64_t)n * 4); }
static void get(void *h, const void *d, uint64_t bytes) {
    char err[200] = "";
    CHECK(T->sync(err, sizeof err) == 0, "sync: %s", err);
    T->d2h(h, d, bytes);
}
static void set_order(int o) {
    if (g_emu) cu_emu_set_order(k_orders[o], 7u + (unsigned)o);
}

static double nmse(const float *got, const float *ref, int64_t n) {
    double e = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - ref[i];
        if (got[i] != got[i]) return INFINITY; /* NaN */
        e += d * d;
        r += (double)ref[i] * ref[i];
    }
    return r > 0 ? e / r : e;
}

/* order 0: NMSE against ref; later orders: bit-identical to order 0 */
static void expect(const char *what, int o, const float *got, const float *ref, int64_t n, double lim, float *first) {
    if (o == 0) {
        double e = nmse(got, ref, n);
        CHECK(e <= lim, "%s: NMSE %.3g > %.1g", what, e, lim);
        memcpy(first, got, (size_t)n * 4);
        g_cases++;
    } else {
        CHECK(memcmp(got, first, (size_t)n * 4) == 0, "%s: thread order %d changes the result", what, o);
    }
}

/* ---------------- rmsnorm ---------------- */
static void t_rmsnorm(void) {
    static const int64_t sh[][2] = {{1, 1}, {3, 7}, {7, 33}, {2, 129}, {1, 1000}, {2, 4097}};
    for (size_t c = 0; c < sizeof sh / sizeof sh[0]; c++) {
        int64_t R = sh[c][0], d = sh[c][1];
        if (g_small && d > 1000) continue;
        float *x = rnd(R * d, 3), *w = rnd(d, 1), *ref = malloc((size_t)(R * d) * 4), *got = malloc((size_t)(R * d) * 4);
        float *first = malloc((size_t)(R * d) * 4);
        rt_rmsnorm_ref(x, w, ref, R, d, 1e-6f);
        char what[64];
        snprintf(what, sizeof what, "rmsnorm %lldx%lld", (long long)R, (long long)d);
        for (int o = 0; o < n_orders; o++) {
            set_order(o);
            float *dx = dev_f(x, R * d), *dw = dev_f(w, d);
            CHECK(T->rmsnorm(dx, dw, dx, R, d, 1e-6f) == 0, "%s: launch", what); /* in place */
            get(got, dx, (uint64_t)(R * d) * 4);
            expect(what, o, got, ref, R * d, 1e-12, first); /* fp32 vs double sum of squares */
            T->free(dx);
            T->free(dw);
        }
        free(x), free(w), free(ref), free(got), free(first);
    }
}

/* ---------------- rope ---------------- */
static void t_rope(void) {
    static const int64_t sh[][4] = {{1, 1, 2, 0}, {3, 2, 8, 5}, {7, 3, 34, 1000}, {2, 1, 128, 70000}, {33, 2, 16, 0}};
    for (size_t c = 0; c < sizeof sh / sizeof sh[0]; c++) {
        int64_t n = sh[c][0], H = sh[c][1], P = sh[c][2], p0 = sh[c][3], N = n * H * P;
        float base = c == 3 ? rt_rope_base(10000.0f, 4.0f, 2048, P, p0 + n - 1) : 10000.0f;
        float *x = rnd(N, 2), *ref = malloc((size_t)N * 4), *got = malloc((size_t)N * 4), *first = malloc((size_t)N * 4);
        int64_t *pos = malloc((size_t)n * 8);
        for (int64_t t = 0; t < n; t++) pos[t] = p0 + t;
        memcpy(ref, x, (size_t)N * 4);
        rt_rope_ref(ref, n, H, P, pos, base);
        char what[64];
        snprintf(what, sizeof what, "rope n%lld H%lld P%lld pos%lld", (long long)n, (long long)H, (long long)P,
                 (long long)p0);
        for (int o = 0; o < n_orders; o++) {
            set_order(o);
            float *dx = dev_f(x, N);
            CHECK(T->rope(dx, n, H, P, p0, NULL, base) == 0, "%s: launch", what);
            get(got, dx, (uint64_t)N * 4);
            expect(what, o, got, ref, N, 1e-11, first); /* device sin/cos/pow within ~1 ulp */
            T->free(dx);
        }
        free(x), free(ref), free(got), free(first), free(pos);
    }
    CHECK(!T->rope_supported(7) && !T->rope_supported(2048) && T->rope_supported(128), "rope limits");
}

/* ---------------- matmul (float + every block type) ---------------- */
static void *make_weight(uint32_t type, int64_t n_in, int64_t n_out, uint64_t *rb, const float *src) {
    CHECK(ggml_row_bytes(type, (uint64_t)n_in, rb), "row bytes of %s", ggml_type_name(type));
    void *w = malloc((size_t)(*rb * (uint64_t)n_out) + 4);
    if (type == GGML_T_F32) memcpy(w, src, (size_t)(n_in * n_out) * 4);
    else CHECK(q_quantize_rows(type, src, w, n_out, n_in, NULL) == *rb * (uint64_t)n_out, "quantize %s",
               ggml_type_name(type));
    return w;
}

static void one_matmul(uint32_t type, int64_t n_in, int64_t n_out, int64_t n_tok, int bias, double lim) {
    if (g_small && n_in >= 1000 && type != GGML_T_F32 && type != GGML_T_Q4_0) return; /* ASan: keep it short */
    float *wf = rnd(n_in * n_out, 1), *x = rnd(n_in * n_tok, 2), *b = bias ? rnd(n_out, 1) : NULL;
    if (n_in >= 64 && n_tok > 1) /* a zero activation block (d = 0 path) and |x| ties of both signs */
        for (int64_t i = 0; i < 32; i++) x[n_in + i] = 0.0f;
    if (n_in >= 8) x[3] = 1.75f, x[5] = -1.75f, x[0] = 0.5f;
    uint64_t rb;
    void *w = make_weight(type, n_in, n_out, &rb, wf);
    rt_weight rw = {"w", w, type, n_in, n_out, rb};
    float *ref = malloc((size_t)(n_out * n_tok) * 4), *got = malloc((size_t)(n_out * n_tok) * 4);
    float *first = malloc((size_t)(n_out * n_tok) * 4);
    char err[HQ_ERR_LEN] = "";
    CHECK(rt_matmul_ref(&rw, x, ref, n_tok, b, err) == HQ_OK, "ref matmul: %s", err);
    char what[96];
    snprintf(what, sizeof what, "matmul %s %lldx%lld n_tok %lld%s", ggml_type_name(type), (long long)n_out,
             (long long)n_in, (long long)n_tok, bias ? " +bias" : "");
    CHECK(T->matmul_supported(type, n_in), "%s: unsupported", what);
    for (int o = 0; o < n_orders; o++) {
        set_order(o);
        void *dw = dup_dev(w, rb * (uint64_t)n_out);
        float *dx = dev_f(x, n_in * n_tok), *dy = T->alloc((uint64_t)(n_out * n_tok) * 4);
        float *db = b ? dev_f(b, n_out) : NULL;
        cu_wt cw = {dw, type, n_in, n_out, rb};
        uint64_t sb = T->matmul_scratch(&cw, n_tok);
        void *scr = sb ? T->alloc(sb) : NULL;
        CHECK(T->matmul(&cw, dx, dy, n_tok, db, scr, 0) == 0, "%s: launch", what);
        get(got, dy, (uint64_t)(n_out * n_tok) * 4);
        expect(what, o, got, ref, n_out * n_tok, lim, first);
        T->free(dw), T->free(dx), T->free(dy), T->free(db), T->free(scr);
    }
    free(wf), free(x), free(b), free(w), free(ref), free(got), free(first);
}

/* activation quantization must be bit-identical to the CPU's from_float_ref */
static void t_quant_act(uint32_t wtype, int64_t n_in, int64_t n_tok) {
    const q_type_traits *tr = q_traits(wtype), *vt = q_traits(tr->vec_dot_type);
    float *x = rnd(n_in * n_tok, 4);
    for (int64_t i = 0; i < 32; i++) x[i] = 0.0f; /* zero block */
    x[40] = 3.5f, x[41] = -3.5f;                     /* tie of |x| with opposite signs */
    uint64_t cb = (uint64_t)(n_in / vt->blck) * vt->type_size;
    uint8_t *cpu = malloc((size_t)(cb * (uint64_t)n_tok));
    for (int64_t t = 0; t < n_tok; t++) vt->from_float_ref(x + t * n_in, cpu + (uint64_t)t * cb, n_in);
    uint64_t ab = cu_q8_act_bytes(n_tok, n_in);
    uint8_t *got = malloc((size_t)ab);
    float *dx = dev_f(x, n_in * n_tok);
    void *scr = T->alloc(ab);
    CHECK(T->quant_act(wtype, dx, n_tok, n_in, scr) == 0, "quant_act launch");
    get(got, scr, ab);
    uint64_t qb = ((uint64_t)(n_tok * n_in) + 15u) & ~(uint64_t)15u;
    const int8_t *qs = (const int8_t *)got;
    const float *dd = (const float *)(const void *)(got + qb);
    const int *sums = (const int *)(const void *)(got + qb + 4u * (uint64_t)(n_tok * (n_in / 32)));
    int bad = 0;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t i = 0; i < n_in / 32; i++) {
            int64_t it = t * (n_in / 32) + i;
            const int8_t *cq;
            float cd;
            int cs = 0;
            if (vt->blck == 32) {
                const uint8_t *blk = cpu + (uint64_t)t * cb + (uint64_t)i * 34;
                uint16_t h;
                memcpy(&h, blk, 2);
                union { uint32_t u; float f; } cv;
                cv.u = 0;
                /* fp16 -> fp32 through the quant traits of F16 */
                q_traits(GGML_T_F16)->to_float_ref(&h, &cv.f, 1);
                cd = cv.f;
                cq = (const int8_t *)(blk + 2);
            } else {
                const uint8_t *blk = cpu + (uint64_t)t * cb + (uint64_t)(i / 8) * 292;
                memcpy(&cd, blk, 4);
                cq = (const int8_t *)(blk + 4) + (i % 8) * 32;
            }
            for (int j = 0; j < 32; j++) cs += cq[j];
            if (memcmp(cq, qs + it * 32, 32) != 0 || cd != dd[it] || cs != sums[it]) bad++;
        }
    CHECK(bad == 0, "quant_act for %s (%s): %d of %lld sub-blocks differ from from_float_ref", ggml_type_name(wtype),
          vt->name, bad, (long long)(n_tok * (n_in / 32)));
    g_cases++;
    T->free(dx), T->free(scr);
    free(x), free(cpu), free(got);
}

static void t_matmul(void) {
    static const uint32_t ft[] = {GGML_T_F32, GGML_T_F16, GGML_T_BF16};
    static const int64_t fsh[][3] = {{1, 1, 1}, {7, 3, 1}, {33, 5, 3}, {129, 7, 5}, {1000, 3, 2}, {264, 9, 6}};
    for (size_t i = 0; i < 3; i++)
        for (size_t c = 0; c < sizeof fsh / sizeof fsh[0]; c++)
            one_matmul(ft[i], fsh[c][0], fsh[c][1], fsh[c][2], (int)(c & 1), 1e-11);
    static const uint32_t q32[] = {GGML_T_Q8_0, GGML_T_Q4_0, GGML_T_Q4_1, GGML_T_Q5_0, GGML_T_Q5_1, GGML_T_IQ4_NL};
    static const int64_t qsh[][3] = {{32, 1, 1}, {96, 7, 3}, {1024, 3, 5}};
    for (size_t i = 0; i < sizeof q32 / sizeof q32[0]; i++)
        for (size_t c = 0; c < 3; c++) one_matmul(q32[i], qsh[c][0], qsh[c][1], qsh[c][2], (int)(c == 1), 1e-10);
    static const uint32_t qk[] = {GGML_T_Q4_K, GGML_T_Q5_K, GGML_T_Q6_K, GGML_T_Q2_K, GGML_T_Q3_K};
    static const int64_t ksh[][3] = {{256, 1, 1}, {512, 3, 5}, {1280, 7, 2}};
    for (size_t i = 0; i < sizeof qk / sizeof qk[0]; i++)
        for (size_t c = 0; c < 3; c++) one_matmul(qk[i], ksh[c][0], ksh[c][1], ksh[c][2], (int)(c == 2), 1e-10);
    t_quant_act(GGML_T_Q4_0, 96, 3);
    t_quant_act(GGML_T_Q6_K, 512, 2);
    CHECK(!T->matmul_supported(GGML_T_Q4_K, 96) && !T->matmul_supported(GGML_T_Q4_0, 33) &&
              !T->matmul_supported(GGML_T_Q3_K, 128) && !T->matmul_supported(GGML_T_IQ2_XXS, 256),
          "matmul refuses misfit rows and types without kernels");
}

/* ---------------- elementwise + embed ---------------- */
static void t_elementwise(void) {
    int64_t n = 1000, H = 7, tn = n / H;
    float *g = rnd(n, 4), *u = rnd(n, 2), *ref = malloc((size_t)n * 4), *got = malloc((size_t)n * 4),
          *first = malloc((size_t)n * 4), *first2 = malloc((size_t)n * 4), *first3 = malloc((size_t)n * 4),
          *bias = rnd(H, 2);
    for (int o = 0; o < n_orders; o++) {
        set_order(o);
        memcpy(ref, g, (size_t)n * 4);
        rt_swiglu_ref(ref, u, n);
        float *dg = dev_f(g, n), *du = dev_f(u, n);
        CHECK(T->swiglu(dg, du, n) == 0, "swiglu launch");
        get(got, dg, (uint64_t)n * 4);
        expect("swiglu 1000", o, got, ref, n, 1e-13, first);
        /* softplus(dt + bias[h]) over [tn, H] (values beyond the threshold 20 included) */
        for (int64_t i = 0; i < tn * H; i++) ref[i] = rt_softplus(g[i] * 8.0f + bias[i % H]);
        float *scaled = malloc((size_t)n * 4);
        for (int64_t i = 0; i < n; i++) scaled[i] = g[i] * 8.0f;
        T->h2d(dg, scaled, (uint64_t)n * 4);
        float *db = dev_f(bias, H);
        CHECK(T->softplus_bias(dg, db, tn, H) == 0, "softplus launch");
        get(got, dg, (uint64_t)(tn * H) * 4);
        expect("softplus_bias 142x7", o, got, ref, tn * H, 1e-13, first2);
        /* residual h = r ⊙ h + br over [tn, H] */
        for (int64_t i = 0; i < tn * H; i++) ref[i] = bias[i % H] * scaled[i] + u[i];
        T->h2d(dg, scaled, (uint64_t)n * 4);
        CHECK(T->residual(dg, db, du, tn, H) == 0, "residual launch");
        get(got, dg, (uint64_t)(tn * H) * 4);
        expect("residual 142x7", o, got, ref, tn * H, 1e-14, first3);
        free(scaled);
        T->free(dg), T->free(du), T->free(db);
    }
    free(g), free(u), free(ref), free(got), free(first), free(first2), free(first3), free(bias);
}

static void t_embed(void) {
    static const uint32_t ty[] = {GGML_T_F32, GGML_T_F16, GGML_T_BF16, GGML_T_Q8_0, GGML_T_Q4_0, GGML_T_Q4_1,
                                  GGML_T_Q5_0, GGML_T_Q5_1, GGML_T_IQ4_NL, GGML_T_Q4_K, GGML_T_Q5_K, GGML_T_Q6_K,
                                  GGML_T_Q2_K, GGML_T_Q3_K};
    int64_t V = 9, d = 256, n = 5;
    int32_t tok[5] = {8, 0, 3, 3, 7};
    for (size_t i = 0; i < sizeof ty / sizeof ty[0]; i++) {
        float *src = rnd(V * d, 1), *ref = malloc((size_t)(n * d) * 4), *got = malloc((size_t)(n * d) * 4);
        float *first = malloc((size_t)(n * d) * 4);
        uint64_t rb;
        void *w = make_weight(ty[i], d, V, &rb, src);
        rt_weight rw = {"emb", w, ty[i], d, V, rb};
        for (int64_t t = 0; t < n; t++) rt_weight_row_f32(&rw, tok[t], ref + t * d);
        char what[64];
        snprintf(what, sizeof what, "embed %s", ggml_type_name(ty[i]));
        for (int o = 0; o < (g_small ? 1 : n_orders); o++) {
            set_order(o);
            void *dw = dup_dev(w, rb * (uint64_t)V);
            int32_t *dt = dup_dev(tok, sizeof tok);
            float *dout = T->alloc((uint64_t)(n * d) * 4);
            cu_wt cw = {dw, ty[i], d, V, rb};
            CHECK(T->embed(&cw, dt, n, dout) == 0, "%s launch", what);
            get(got, dout, (uint64_t)(n * d) * 4);
            expect(what, o, got, ref, n * d, 1e-14, first);
            T->free(dw), T->free(dt), T->free(dout);
        }
        free(src), free(ref), free(got), free(first), free(w);
    }
}

/* ---------------- SSD ---------------- */
static void t_ssd(void) {
    static const int64_t sh[][5] = {{1, 1, 1, 1, 1}, {3, 5, 1, 7, 3}, {4, 16, 2, 33, 9}, {2, 3, 2, 128, 2}, {2, 8, 1, 16, 40}};
    for (size_t c = 0; c < sizeof sh / sizeof sh[0]; c++) {
        rt_ssd_dims dm = {sh[c][0], sh[c][1], sh[c][2], sh[c][3]};
        cu_ssd_dims cd = {dm.H, dm.P, dm.G, dm.N};
        int64_t n = sh[c][4], H = dm.H, P = dm.P, G = dm.G, N = dm.N, SN = H * P * N;
        if (g_small && n > 10) continue;
        float *x = rnd(n * H * P, 1), *b = rnd(n * G * N, 1), *cc = rnd(n * G * N, 1), *dt = rnd(n * H, 1);
        float *A = rnd(H, 1), *D = c % 2 ? rnd(H, 1) : NULL, *S0 = rnd(SN, 1);
        for (int64_t i = 0; i < n * H; i++) dt[i] = rt_softplus(dt[i] * 2.0f);
        for (int64_t h = 0; h < H; h++) A[h] = -fabsf(A[h]) * 3.0f - 0.1f;
        float *Sr = malloc((size_t)SN * 4), *yr = malloc((size_t)(n * H * P) * 4);
        memcpy(Sr, S0, (size_t)SN * 4);
        rt_ssd_scan_ref(&dm, n, x, b, cc, dt, A, D, Sr, yr);
        float *got = malloc((size_t)(SN + n * H * P) * 4), *first = malloc((size_t)(SN + n * H * P) * 4);
        float *ref = malloc((size_t)(SN + n * H * P) * 4);
        memcpy(ref, yr, (size_t)(n * H * P) * 4);
        memcpy(ref + n * H * P, Sr, (size_t)SN * 4);
        char what[80];
        snprintf(what, sizeof what, "ssd H%lld P%lld G%lld N%lld n%lld%s", (long long)H, (long long)P, (long long)G,
                 (long long)N, (long long)n, D ? " D" : "");
        CHECK(T->ssd_supported(&cd), "%s supported", what);
        for (int o = 0; o < n_orders; o++) {
            set_order(o);
            float *dx = dev_f(x, n * H * P), *db = dev_f(b, n * G * N), *dc = dev_f(cc, n * G * N);
            float *ddt = dev_f(dt, n * H), *dA = dev_f(A, H), *dD = D ? dev_f(D, H) : NULL, *dS = dev_f(S0, SN);
            float *dy = T->alloc((uint64_t)(n * H * P) * 4);
            CHECK(T->ssd_scan(&cd, n, dx, db, dc, ddt, dA, dD, dS, dy) == 0, "%s launch", what);
            get(got, dy, (uint64_t)(n * H * P) * 4);
            get(got + n * H * P, dS, (uint64_t)SN * 4);
            expect(what, o, got, ref, n * H * P + SN, 1e-11, first);
            if (o == 0 && n > 1) { /* decode: one token at a time == the whole sequence, bit for bit */
                T->h2d(dS, S0, (uint64_t)SN * 4);
                for (int64_t t = 0; t < n; t++)
                    T->ssd_scan(&cd, 1, dx + t * H * P, db + t * G * N, dc + t * G * N, ddt + t * H, dA, dD, dS,
                                dy + t * H * P);
                float *g2 = malloc((size_t)(SN + n * H * P) * 4);
                get(g2, dy, (uint64_t)(n * H * P) * 4);
                get(g2 + n * H * P, dS, (uint64_t)SN * 4);
                CHECK(memcmp(g2, got, (size_t)(SN + n * H * P) * 4) == 0, "%s: step-by-step != scan", what);
                free(g2);
            }
            T->free(dx), T->free(db), T->free(dc), T->free(ddt), T->free(dA), T->free(dD), T->free(dS), T->free(dy);
        }
        free(x), free(b), free(cc), free(dt), free(A), free(D), free(S0), free(Sr), free(yr), free(got), free(first),
            free(ref);
    }
    cu_ssd_dims big = {2, 4, 1, 129};
    CHECK(!T->ssd_supported(&big), "ssd refuses N > 128");
}

/* ---------------- attention ---------------- */
static void one_attn(int64_t H, int64_t KV, int64_t P, int64_t M, int64_t pos0, int64_t n, int64_t window,
                     int64_t keep, int ties, rt_keep_rule rule, double lim) {
    int64_t cap = pos0 + n + 3;
    rt_attn_params ap = {H, KV, P, M, cap, window, keep, 1.0f / sqrtf((float)P), rule};
    cu_attn_params cp = {H, KV, P, M, cap, window, keep, ap.scale, (int)rule};
    float *q = rnd(n * H * P, 1.5f), *kc = rnd(KV * cap * P, 1.5f), *vc = rnd(KV * cap * P, 1), *beta = rnd(M * cap, 2);
    if (ties) /* few distinct β values: the keep rule decides which tied keys stay */
        for (int64_t i = 0; i < M * cap; i++) beta[i] = floorf(beta[i] * 2.0f) * 0.5f;
    float *ref = malloc((size_t)(n * H * P) * 4), *got = malloc((size_t)(n * H * P) * 4), *first = malloc((size_t)(n * H * P) * 4);
    rt_attn_ref(&ap, q, kc, vc, beta, pos0, n, ref);
    char what[140];
    static const char *rules[] = {"torch", "hf-call", "low-index"};
    snprintf(what, sizeof what, "attn H%lld KV%lld P%lld M%lld pos0 %lld n%lld win %lld keep %lld%s rule %s", (long long)H,
             (long long)KV, (long long)P, (long long)M, (long long)pos0, (long long)n, (long long)window, (long long)keep,
             ties ? " ties" : "", rules[rule]);
    CHECK(T->attn_supported(&cp), "%s supported", what);
    for (int o = 0; o < n_orders; o++) {
        set_order(o);
        float *dq = dev_f(q, n * H * P), *dk = dev_f(kc, KV * cap * P), *dv = dev_f(vc, KV * cap * P);
        float *dbeta = dev_f(beta, M * cap), *dout = T->alloc((uint64_t)(n * H * P) * 4);
        uint64_t sb = T->attn_scratch(&cp, n);
        void *scr = sb ? T->alloc(sb) : NULL;
        CHECK(T->attn(&cp, dq, dk, dv, dbeta, pos0, NULL, n, dout, scr) == 0, "%s launch", what);
        get(got, dout, (uint64_t)(n * H * P) * 4);
        expect(what, o, got, ref, n * H * P, lim, first);
        T->free(dq), T->free(dk), T->free(dv), T->free(dbeta), T->free(dout), T->free(scr);
    }
    free(q), free(kc), free(vc), free(beta), free(ref), free(got), free(first);
}

static void t_attn(void) {
    one_attn(1, 1, 1, 1, 0, 1, 0, 0, 0, RT_KEEP_TORCH, 1e-11);
    one_attn(4, 2, 16, 4, 0, 33, 0, 0, 0, RT_KEEP_TORCH, 1e-11);  /* prefill over two key tiles */
    one_attn(4, 2, 33, 2, 40, 3, 0, 0, 0, RT_KEEP_TORCH, 1e-11);  /* β per kv head, odd P */
    one_attn(2, 1, 7, 2, 5, 9, 5, 0, 0, RT_KEEP_TORCH, 1e-11);    /* sliding window */
    one_attn(2, 2, 128, 2, 70, 2, 0, 50, 0, RT_KEEP_TORCH, 1e-11); /* P = 128, keep window */
    /* keep-window ties: every rule the CPU has, on both of ATen's paths
     * (nth_element when keep·64 > row, partial_sort otherwise) */
    for (int r = RT_KEEP_TORCH; r <= RT_KEEP_LOW_INDEX; r++) {
        one_attn(4, 4, 8, 4, 10, 12, 0, 7, 1, (rt_keep_rule)r, 1e-11);  /* top-k by β with ties */
        one_attn(2, 1, 12, 1, 20, 5, 9, 4, 1, (rt_keep_rule)r, 1e-11);  /* window and keep window together */
        one_attn(2, 1, 8, 2, 150, 4, 0, 2, 1, (rt_keep_rule)r, 1e-11);  /* partial_sort path */
        one_attn(2, 2, 16, 2, 0, 40, 0, 9, 1, (rt_keep_rule)r, 1e-11);  /* prefill from 0 past the window */
        one_attn(3, 1, 4, 3, 60, 1, 0, 17, 1, (rt_keep_rule)r, 1e-11);  /* decode */
    }
    cu_attn_params bad = {4, 2, 129, 4, 10, 0, 0, 1.0f, 0};
    CHECK(!T->attn_supported(&bad), "attn refuses P > 128");
}

/* ---------------- CDMoE ---------------- */
static void t_route(void) {
    static const int64_t sh[][4] = {{1, 1, 1, 0}, {3, 4, 3, 1}, {5, 8, 4, 0}, {2, 33, 16, 1}, {1, 100, 64, 0}, {4, 3, 9, 1}};
    for (size_t c = 0; c < sizeof sh / sizeof sh[0]; c++) {
        int64_t n = sh[c][0], Kk = sh[c][1], k = sh[c][2];
        float *lg = rnd(n * 2 * Kk, 3);
        if (sh[c][3]) /* integer logits: many equal scores, the id order decides */
            for (int64_t i = 0; i < n * 2 * Kk; i++) lg[i] = floorf(lg[i]);
        int32_t *ir = malloc((size_t)(n * k) * 4), *ig = malloc((size_t)(n * k) * 4);
        float *wr = malloc((size_t)(n * k) * 4), *wg = malloc((size_t)(n * k) * 4), *first = malloc((size_t)(n * k) * 4);
        rt_route_router_ref(lg, n, Kk, k, ir, wr);
        char what[80];
        snprintf(what, sizeof what, "route_router n%lld Kk%lld k%lld%s", (long long)n, (long long)Kk, (long long)k,
                 sh[c][3] ? " ties" : "");
        for (int o = 0; o < n_orders; o++) {
            set_order(o);
            float *dl = dev_f(lg, n * 2 * Kk), *dw = T->alloc((uint64_t)(n * k) * 4);
            int32_t *di = T->alloc((uint64_t)(n * k) * 4);
            CHECK(T->route_router(dl, n, Kk, k, di, dw) == 0, "%s launch", what);
            get(ig, di, (uint64_t)(n * k) * 4);
            get(wg, dw, (uint64_t)(n * k) * 4);
            CHECK(memcmp(ig, ir, (size_t)(n * k) * 4) == 0, "%s: expert ids differ", what);
            expect(what, o, wg, wr, n * k, 1e-13, first);
            T->free(dl), T->free(dw), T->free(di);
        }
        free(lg), free(ir), free(ig), free(wr), free(wg), free(first);
    }
    static const int64_t pk[][5] = {{1, 1, 2, 1, 1}, {3, 2, 16, 8, 4}, {2, 3, 10, 33, 5}};
    for (size_t c = 0; c < 3; c++) {
        int64_t n = pk[c][0], Hr = pk[c][1], R = pk[c][2], Kk = pk[c][3], k = pk[c][4];
        float *q = rnd(n * Hr * R, 1), *keys = rnd(Hr * Kk * R, 1);
        int32_t *ir = malloc((size_t)(n * Hr * k) * 4), *ig = malloc((size_t)(n * Hr * k) * 4);
        float *wr = malloc((size_t)(n * Hr * k) * 4), *wg = malloc((size_t)(n * Hr * k) * 4);
        float *first = malloc((size_t)(n * Hr * k) * 4);
        rt_route_pk_ref(q, keys, n, Hr, R, Kk, k, ir, wr);
        char what[80];
        snprintf(what, sizeof what, "route_pk n%lld Hr%lld R%lld Kk%lld k%lld", (long long)n, (long long)Hr,
                 (long long)R, (long long)Kk, (long long)k);
        for (int o = 0; o < n_orders; o++) {
            set_order(o);
            float *dq = dev_f(q, n * Hr * R), *dk = dev_f(keys, Hr * Kk * R), *dw = T->alloc((uint64_t)(n * Hr * k) * 4);
            int32_t *di = T->alloc((uint64_t)(n * Hr * k) * 4);
            void *scr = T->alloc(T->route_pk_scratch(n, Hr, Kk));
            CHECK(T->route_pk(dq, dk, n, Hr, R, Kk, k, di, dw, scr) == 0, "%s launch", what);
            get(ig, di, (uint64_t)(n * Hr * k) * 4);
            get(wg, dw, (uint64_t)(n * Hr * k) * 4);
            CHECK(memcmp(ig, ir, (size_t)(n * Hr * k) * 4) == 0, "%s: expert ids differ", what);
            expect(what, o, wg, wr, n * Hr * k, 1e-13, first);
            T->free(dq), T->free(dk), T->free(dw), T->free(di), T->free(scr);
        }
        free(q), free(keys), free(ir), free(ig), free(wr), free(wg), free(first);
    }
    CHECK(!T->route_supported(8, 65) && !T->route_supported(2, 5) && T->route_supported(8, 64), "route limits");
}

/* mode 0: random ids; 1: every token uses expert 0 (and no other); 2: repeated id inside a token */
static void one_experts(uint32_t dtype, uint32_t utype, int64_t E, int64_t d, int64_t n, int64_t kt, int mode) {
    float *src = rnd(E * d, 1), *x = rnd(n * d, 1), *w = rnd(n * kt, 1), *out0 = rnd(n * d, 1);
    int32_t *ids = malloc((size_t)(n * kt) * 4);
    for (int64_t i = 0; i < n * kt; i++)
        ids[i] = mode == 1 ? 0 : mode == 2 ? (int32_t)((i / 2) % E) : (int32_t)((g_rng = g_rng * 1664525u + 1013904223u) >> 8) % (int32_t)(E - 1);
    uint64_t rbd, rbu;
    void *dw = make_weight(dtype, d, E, &rbd, src);
    void *uw = make_weight(utype, d, E, &rbu, src);
    rt_weight rd = {"down", dw, dtype, d, E, rbd}, ru = {"up", uw, utype, d, E, rbu};
    float *ref = malloc((size_t)(n * d) * 4), *got = malloc((size_t)(n * d) * 4), *first = malloc((size_t)(n * d) * 4);
    memcpy(ref, out0, (size_t)(n * d) * 4);
    char err[HQ_ERR_LEN] = "";
    CHECK(rt_experts_ref(&rd, &ru, x, n, ids, w, kt, ref, err) == HQ_OK, "experts ref: %s", err);
    char what[96];
    snprintf(what, sizeof what, "experts %s/%s E%lld d%lld n%lld k%lld mode %d", ggml_type_name(dtype),
             ggml_type_name(utype), (long long)E, (long long)d, (long long)n, (long long)kt, mode);
    for (int o = 0; o < n_orders; o++) {
        set_order(o);
        void *ddw = dup_dev(dw, rbd * (uint64_t)E), *duw = dup_dev(uw, rbu * (uint64_t)E);
        float *dx = dev_f(x, n * d), *dwt = dev_f(w, n * kt), *dout = dev_f(out0, n * d);
        int32_t *di = dup_dev(ids, (uint64_t)(n * kt) * 4);
        cu_wt cd = {ddw, dtype, d, E, rbd}, cu = {duw, utype, d, E, rbu};
        void *scr = T->alloc(T->experts_scratch(&cd, n, kt));
        CHECK(T->experts(&cd, &cu, dx, n, di, dwt, kt, dout, scr) == 0, "%s launch", what);
        get(got, dout, (uint64_t)(n * d) * 4);
        expect(what, o, got, ref, n * d, 1e-11, first);
        T->free(ddw), T->free(duw), T->free(dx), T->free(dwt), T->free(dout), T->free(di), T->free(scr);
    }
    free(src), free(x), free(w), free(out0), free(ids), free(dw), free(uw), free(ref), free(got), free(first);
}

static void t_experts(void) {
    one_experts(GGML_T_F32, GGML_T_F32, 5, 7, 3, 4, 0);
    one_experts(GGML_T_F16, GGML_T_BF16, 9, 33, 2, 3, 2);
    one_experts(GGML_T_Q8_0, GGML_T_Q8_0, 16, 64, 5, 4, 0);
    one_experts(GGML_T_Q4_0, GGML_T_Q5_1, 6, 96, 4, 2, 1); /* every token → expert 0; experts 1..5 idle */
    one_experts(GGML_T_Q4_K, GGML_T_Q6_K, 7, 256, 3, 5, 0);
    one_experts(GGML_T_Q6_K, GGML_T_Q4_K, 4, 256, 2, 8, 1);
    one_experts(GGML_T_Q3_K, GGML_T_Q2_K, 5, 256, 3, 4, 0);
}

/* ---------------- log-softmax / NLL / KL (double references) ---------------- */
static void t_lsm(void) {
    static const int64_t sh[][2] = {{1, 1}, {3, 7}, {2, 1000}, {1, 4097}};
    for (size_t c = 0; c < sizeof sh / sizeof sh[0]; c++) {
        int64_t R = sh[c][0], V = sh[c][1];
        float *a = rnd(R * V, 8), *b = rnd(R * V, 8), *ref = malloc((size_t)(R * V) * 4), *got = malloc((size_t)(R * V) * 4);
        float *first = malloc((size_t)(R * V) * 4), *nr = malloc((size_t)R * 4), *kr = malloc((size_t)R * 4);
        float *first_n = malloc((size_t)R * 4), *first_k = malloc((size_t)R * 4);
        for (int64_t i = 0; i < R * V; i++) b[i] = a[i] + 0.3f * b[i]; /* close distributions, as verify sees */
        int32_t *tg = malloc((size_t)R * 4);
        for (int64_t r = 0; r < R; r++) {
            tg[r] = (int32_t)((r * 7919) % V);
            double ma = -INFINITY, mb = -INFINITY, za = 0, zb = 0;
            for (int64_t i = 0; i < V; i++) ma = fmax(ma, a[r * V + i]), mb = fmax(mb, b[r * V + i]);
            for (int64_t i = 0; i < V; i++) za += exp(a[r * V + i] - ma), zb += exp(b[r * V + i] - mb);
            double kl = 0;
            for (int64_t i = 0; i < V; i++) {
                double la = a[r * V + i] - ma - log(za), lb = b[r * V + i] - mb - log(zb);
                ref[r * V + i] = (float)la;
                kl += exp(la) * (la - lb);
            }
            nr[r] = -ref[r * V + tg[r]];
            kr[r] = (float)kl;
        }
        char what[64];
        snprintf(what, sizeof what, "logsoftmax %lldx%lld", (long long)R, (long long)V);
        for (int o = 0; o < n_orders; o++) {
            set_order(o);
            float *da = dev_f(a, R * V), *db = dev_f(b, R * V), *dy = T->alloc((uint64_t)(R * V) * 4);
            float *dn = T->alloc((uint64_t)R * 4);
            int32_t *dt = dup_dev(tg, (uint64_t)R * 4);
            CHECK(T->logsoftmax(da, dy, R, V) == 0, "%s launch", what);
            get(got, dy, (uint64_t)(R * V) * 4);
            expect(what, o, got, ref, R * V, 1e-12, first);
            CHECK(T->nll(da, dt, dn, R, V) == 0, "nll launch");
            get(got, dn, (uint64_t)R * 4);
            snprintf(what, sizeof what, "nll %lldx%lld", (long long)R, (long long)V);
            expect(what, o, got, nr, R, 1e-12, first_n);
            CHECK(T->kl(da, db, dn, R, V) == 0, "kl launch");
            get(got, dn, (uint64_t)R * 4);
            snprintf(what, sizeof what, "kl %lldx%lld", (long long)R, (long long)V);
            /* KL is a small difference of large terms: absolute check, scaled by V */
            if (o == 0) {
                double me = 0;
                for (int64_t r = 0; r < R; r++) me = fmax(me, fabs((double)got[r] - kr[r]));
                CHECK(me <= 2e-6 * (1.0 + kr[0]) + 1e-7 * (double)V / 100.0, "%s: |Δ| %.3g", what, me);
                memcpy(first_k, got, (size_t)R * 4);
                g_cases++;
            } else {
                CHECK(memcmp(got, first_k, (size_t)R * 4) == 0, "%s: order changes the result", what);
            }
            snprintf(what, sizeof what, "logsoftmax %lldx%lld", (long long)R, (long long)V);
            T->free(da), T->free(db), T->free(dy), T->free(dn), T->free(dt);
        }
        free(a), free(b), free(ref), free(got), free(first), free(nr), free(kr), free(tg), free(first_n), free(first_k);
    }
}

static void run_all(const cu_ops *t, int emu) {
    T = t;
    g_emu = emu;
    n_orders = emu ? (g_small ? 2 : 3) : 1;
    int before = g_cases;
    unsigned long long sw0 = emu ? cu_emu_switches() : 0;
    g_rng = 12345u;
    static void (*const groups[])(void) = {t_rmsnorm, t_rope, t_matmul, t_elementwise, t_embed,
                                           t_ssd,     t_attn, t_route,  t_experts,     t_lsm};
    static const char *const names[] = {"rmsnorm", "rope", "matmul", "elementwise", "embed",
                                        "ssd",     "attn", "route",  "experts",     "logsoftmax/kl"};
    const char *verbose = getenv("HQ_VERBOSE");
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        unsigned long long s0 = emu ? cu_emu_switches() : 0;
        groups[i]();
        if (emu && verbose) printf("  %-14s %llu switches\n", names[i], cu_emu_switches() - s0);
    }
    if (emu) cu_emu_set_order(CU_EMU_ORDER_FORWARD, 1);
    printf("%s: %d cases (x%d thread orders)%s", t->name, g_cases - before, n_orders, emu ? "" : "\n");
    if (emu) printf(", %llu emulated context switches\n", cu_emu_switches() - sw0);
}

int main(void) {
    const char *san = getenv("HQ_SANITIZED");
    g_small = san && *san == '1';
    const char *go = getenv("HQ_TEST_GPU_ONLY"); /* the device check: the emulator half already ran in CI */
    if (go && *go == '1') printf("skip emu: HQ_TEST_GPU_ONLY=1\n");
    else run_all(cu_table_emu(), 1);
    if (cu_table_gpu && cu_gpu_devices) {
        char msg[256] = "";
        int nd = cu_gpu_devices(msg, sizeof msg);
        if (nd > 0) run_all(cu_table_gpu(), 0);
        else printf("skip gpu: built with nvcc but no CUDA device: %s\n", nd < 0 ? msg : "0 devices");
    } else {
        printf("skip gpu: this binary has no nvcc-built kernels (nvcc absent or NO_CUDA=1)\n");
    }
    TEST_END();
}
