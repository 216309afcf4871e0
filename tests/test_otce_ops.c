/* tests/test_otce_ops.c — the OTCE ops (runtime/otce_ops.h):
 *  1. fast vs _ref for conv1d, the selective scan, RMSNorm with bias,
 *     tanh-SwiGLU and the MoE of every expert type (odd sizes, experts that
 *     receive no token, every token on one expert);
 *  2. prefill (n tokens in one call) vs n one-token steps for conv1d, the scan
 *     and the whole Mamba mixer: outputs and carried states;
 *  3. the composed mixer, MoE and MLP against tools/otce_ref.py: inputs and
 *     float64 outputs in tests/fixtures/otce/<name>/ops.safetensors
 *     (tools/make_otce_fixtures.py), weights from the fixture's checkpoint. */
#include "../runtime/otce_ops.h"
#include "../formats/ckpt.h"
#include "../formats/ggml_types.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t g_rng = 88172645463325252ull;
static float frand(void) { /* uniform in [-1, 1) */
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (float)((g_rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static float *rnd(int64_t n, float scale) {
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = frand() * scale;
    return v;
}
static float maxdiff(const float *a, const float *b, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}
static float maxabs(const float *a, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fabsf(a[i]) > m ? fabsf(a[i]) : m;
    return m;
}
static rt_weight wf32(const char *name, const float *data, int64_t n_out, int64_t n_in) {
    return (rt_weight){name, data, GGML_T_F32, n_in, n_out, (uint64_t)n_in * 4};
}

/* ---- 1 + 2: random inputs ---- */
static void test_conv1d(void) {
    const int64_t C = 37, K = 4, n = 29, ld = 2 * C;
    for (int bias = 0; bias < 2; bias++) {
        float *x = rnd(n * ld, 1), *w = rnd(C * K, 0.7f), *b = bias ? rnd(C, 0.3f) : NULL;
        float *s0 = rnd(C * K, 1), *s1 = malloc(C * K * 4), *s2 = malloc(C * K * 4);
        memcpy(s1, s0, C * K * 4), memcpy(s2, s0, C * K * 4);
        float *y0 = malloc(n * C * 4), *y1 = malloc(n * C * 4), *y2 = malloc(n * C * 4);
        rt_conv1d_ref(x, ld, n, C, K, w, b, s0, true, y0);
        rt_conv1d(x, ld, n, C, K, w, b, s1, true, y1);
        for (int64_t t = 0; t < n; t++) rt_conv1d(x + t * ld, ld, 1, C, K, w, b, s2, true, y2 + t * C);
        CHECK(maxdiff(y0, y1, n * C) <= 1e-6f && maxdiff(s0, s1, C * K) == 0, "conv1d fast vs ref (bias %d): %g", bias,
              maxdiff(y0, y1, n * C));
        CHECK(maxdiff(y0, y2, n * C) <= 1e-6f && maxdiff(s0, s2, C * K) == 0, "conv1d prefill vs steps (bias %d)",
              bias);
        /* state = the last K inputs, oldest first */
        CHECK(s0[5 * K + K - 1] == x[(n - 1) * ld + 5] && s0[5 * K] == x[(n - K) * ld + 5], "conv1d state content");
        /* a conv of a zero state is the zero-padded causal conv: y[0][c] = w[c][K-1]·x[0][c] + b */
        float *z = calloc(C * K, 4);
        rt_conv1d_ref(x, ld, 1, C, K, w, b, z, false, y2);
        CHECK(fabsf(y2[3] - (w[3 * K + K - 1] * x[3] + (b ? b[3] : 0))) < 1e-6f, "conv1d zero padding");
        free(z), free(x), free(w), free(b), free(s0), free(s1), free(s2), free(y0), free(y1), free(y2);
    }
}

static void test_scan(void) {
    const int64_t E = 19, N = 16, n = 23, ldz = 2 * E;
    float *u = rnd(n * E, 1), *dl = rnd(n * E, 1), *A = rnd(E * N, 1), *B = rnd(n * N, 1), *C = rnd(n * N, 1);
    float *D = rnd(E, 1), *z = rnd(n * ldz, 2);
    for (int64_t i = 0; i < n * E; i++) dl[i] = rt_softplus(dl[i] * 2);
    for (int64_t i = 0; i < E * N; i++) A[i] = -expf(A[i] * 2);
    float *s0 = rnd(E * N, 0.5f), *s1 = malloc(E * N * 4), *s2 = malloc(E * N * 4);
    memcpy(s1, s0, E * N * 4), memcpy(s2, s0, E * N * 4);
    float *y0 = malloc(n * E * 4), *y1 = malloc(n * E * 4), *y2 = malloc(n * E * 4);
    rt_mamba_scan_ref(u, dl, A, B, C, D, z, ldz, n, E, N, s0, y0);
    rt_mamba_scan(u, dl, A, B, C, D, z, ldz, n, E, N, s1, y1);
    for (int64_t t = 0; t < n; t++)
        rt_mamba_scan(u + t * E, dl + t * E, A, B + t * N, C + t * N, D, z + t * ldz, ldz, 1, E, N, s2, y2 + t * E);
    CHECK(maxdiff(y0, y1, n * E) <= 1e-6f && maxdiff(s0, s1, E * N) <= 1e-6f, "scan fast vs ref: %g",
          maxdiff(y0, y1, n * E));
    CHECK(maxdiff(y0, y2, n * E) <= 1e-6f && maxdiff(s0, s2, E * N) <= 1e-6f, "scan prefill vs steps: %g",
          maxdiff(y0, y2, n * E));
    /* one hand-computed step: N = 1, E = 1 */
    float su = 0.5f, sdl = 0.25f, sA = -2.0f, sB = 3.0f, sC = -1.5f, sD = 0.75f, sz = 1.0f, st = 2.0f, sy;
    rt_mamba_scan_ref(&su, &sdl, &sA, &sB, &sC, &sD, &sz, 1, 1, 1, 1, &st, &sy);
    float s_exp = expf(0.25f * -2.0f) * 2.0f + 0.25f * 3.0f * 0.5f;
    CHECK(fabsf(st - s_exp) < 1e-6f && fabsf(sy - (s_exp * -1.5f + 0.375f) * rt_silu(1.0f)) < 1e-6f,
          "scan one step by hand");
    free(u), free(dl), free(A), free(B), free(C), free(D), free(z), free(s0), free(s1), free(s2);
    free(y0), free(y1), free(y2);
}

static void test_small_ops(void) {
    const int64_t rows = 5, ds[3] = {37, 48, 1};
    for (int i = 0; i < 3; i++) {
        int64_t d = ds[i];
        float *x = rnd(rows * d, 2), *w = rnd(d, 1), *b = rnd(d, 0.5f), *y0 = malloc(rows * d * 4),
              *y1 = malloc(rows * d * 4);
        rt_otce_rmsnorm_ref(x, w, b, y0, rows, d, 1e-6f);
        rt_otce_rmsnorm(x, w, b, y1, rows, d, 1e-6f);
        CHECK(maxdiff(y0, y1, rows * d) <= 1e-6f, "otce rmsnorm d=%lld: %g", (long long)d, maxdiff(y0, y1, rows * d));
        /* (x·r)·w + b with w = 1, b = 0 has unit mean square */
        for (int64_t j = 0; j < d; j++) w[j] = 1, b[j] = 0;
        rt_otce_rmsnorm(x, w, b, y1, 1, d, 0);
        double ss = 0;
        for (int64_t j = 0; j < d; j++) ss += (double)y1[j] * y1[j];
        CHECK(fabs(ss / d - 1) < 1e-5, "otce rmsnorm unit rms");
        free(x), free(w), free(b), free(y0), free(y1);
    }
    const int64_t n = 5003;
    float *g = rnd(n, 4), *u = rnd(n, 4), *g2 = malloc(n * 4);
    memcpy(g2, g, n * 4);
    rt_tanh_swiglu_ref(g, u, n);
    rt_tanh_swiglu(g2, u, n);
    CHECK(maxdiff(g, g2, n) == 0, "tanh_swiglu fast vs ref");
    float hg = 0.5f, hu = 1.0f;
    rt_tanh_swiglu_ref(&hg, &hu, 1);
    CHECK(fabsf(hg - tanhf(1.0f) * 0.5f / (1.0f + expf(-0.5f))) < 1e-7f, "tanh_swiglu by hand");
    free(g), free(u), free(g2);
}

/* random MoE of each type; fast vs ref; n tokens where some experts get none */
static void test_moe_random(void) {
    const int64_t d = 13, I = 10, E = 5;
    for (int type = 0; type < 3; type++)
        for (int64_t k = 1; k <= 2; k++) {
            float *bufs[64];
            int nb = 0;
#define R(n, s) (bufs[nb++] = rnd((n), (s)))
            rt_otce_moe_w m = {.type = (rt_otce_expert_type)type, .d = d, .E = E, .k = k};
            m.router = wf32("router", R(E * d, 1.5f), E, d);
            int64_t Ish = type == RT_OTCE_EXPANSIVE ? I : I / 2, Ie = type == RT_OTCE_PLAIN ? I : I / 2;
            if (type != RT_OTCE_PLAIN) {
                m.shared.up = wf32("su", R(Ish * d, 0.3f), Ish, d);
                m.shared.up_b = R(Ish, 0.1f);
                m.shared.gate = wf32("sg", R(Ish * d, 0.3f), Ish, d);
                m.shared.down = wf32("sd", R(d * Ish, 0.3f), d, Ish);
            }
            rt_otce_mlp_w ex[5];
            const float *eg[5];
            for (int64_t e = 0; e < E; e++) {
                ex[e] = (rt_otce_mlp_w){.gate = wf32("g", R(Ie * d, 0.3f), Ie, d),
                                        .up = wf32("u", R(Ie * d, 0.3f), Ie, d),
                                        .down = wf32("dn", R(d * Ie, 0.3f), d, Ie),
                                        .gate_b = R(Ie, 0.1f), .down_b = R(d, 0.1f)};
                eg[e] = R(d, 0.5f);
            }
            m.experts = ex;
            m.expert_gate = eg;
            for (int64_t n = 1; n <= 7; n += 3) {
                float *x = R(n * d, 1);
                int64_t sc = rt_otce_moe_scratch(&m, n);
                float *scr = malloc(sc * 4), *o0 = malloc(n * d * 4), *o1 = malloc(n * d * 4), w0[64], w1[64];
                int32_t i0[64], i1[64];
                char err[HQ_ERR_LEN] = "";
                CHECK(rt_otce_moe(&m, x, n, o0, i0, w0, scr, true, err) == HQ_OK, "moe ref: %s", err);
                CHECK(rt_otce_moe(&m, x, n, o1, i1, w1, scr, false, err) == HQ_OK, "moe fast: %s", err);
                CHECK(maxdiff(o0, o1, n * d) <= 1e-5f && !memcmp(i0, i1, n * k * 4), "moe type %d k %lld n %lld: %g",
                      type, (long long)k, (long long)n, maxdiff(o0, o1, n * d));
                /* per token, one token at a time gives the same as the batch */
                float *o2 = malloc(n * d * 4);
                for (int64_t t = 0; t < n; t++) rt_otce_moe(&m, x + t * d, 1, o2 + t * d, NULL, NULL, scr, false, err);
                CHECK(maxdiff(o1, o2, n * d) <= 1e-5f, "moe batch vs per token");
                /* probabilities are sorted and not renormalised */
                bool ok = true;
                for (int64_t t = 0; t < n; t++) {
                    float s = 0;
                    for (int64_t j = 0; j < k; j++) s += w0[t * k + j], ok = ok && (j == 0 || w0[t * k + j] <= w0[t * k + j - 1]);
                    ok = ok && (k == E || s < 1.0f);
                }
                CHECK(ok, "moe weights sorted, not renormalised");
                free(scr), free(o0), free(o1), free(o2);
            }
            /* top-k outside 1..E is refused */
            char err[HQ_ERR_LEN] = "";
            m.k = E + 1;
            CHECK(rt_otce_moe(&m, bufs[0], 1, NULL, NULL, NULL, NULL, false, err) == HQ_ERR_FORMAT, "moe bad k");
            for (int i = 0; i < nb; i++) free(bufs[i]);
#undef R
        }
}

/* ---- 3: against tools/otce_ref.py ---- */
typedef struct {
    fmt_ckpt *ck, *ops;
    float *bufs[512];
    int nb;
    char dir[256];
} fx;

static float *ld(fx *f, fmt_ckpt *ck, const char *fmt, long long l) {
    char name[256];
    snprintf(name, sizeof name, fmt, l);
    const fmt_tensor *t = fmt_ckpt_find(ck, name);
    if (!t || f->nb >= 512) return NULL;
    float *v = malloc(fmt_tensor_nelem(t) * 4 + 4);
    char err[HQ_ERR_LEN];
    if (fmt_tensor_read(t, HQ_DT_F32, v, err) != HQ_OK) {
        free(v);
        return NULL;
    }
    return f->bufs[f->nb++] = v;
}
static rt_weight lw(fx *f, const char *fmt, long long l, int64_t n_out, int64_t n_in) {
    return wf32(fmt, ld(f, f->ck, fmt, l), n_out, n_in);
}
static int64_t tn(fmt_ckpt *ck, const char *name, int dim) {
    const fmt_tensor *t = fmt_ckpt_find(ck, name);
    return t && dim < t->ndim ? t->shape[dim] : -1;
}

static void fixture(const char *name) {
    fx f = {0};
    char path[300], err[HQ_ERR_LEN] = "";
    snprintf(f.dir, sizeof f.dir, FIXTURE("otce/%s"), name);
    snprintf(path, sizeof path, "%s/ops.safetensors", f.dir);
    if (fmt_ckpt_open(f.dir, &f.ck, err) != HQ_OK || fmt_ckpt_open(path, &f.ops, err) != HQ_OK) {
        CHECK(0, "%s: %s (run tools/make_otce_fixtures.py)", name, err);
        fmt_ckpt_close(f.ck);
        return;
    }
    cJSON *cfg = cJSON_Parse(f.ck->config_json);
    int64_t d = (int64_t)cJSON_GetObjectItem(cfg, "hidden_size")->valuedouble;
    int64_t E_in = d * (int64_t)cJSON_GetObjectItem(cfg, "mamba_expand")->valuedouble;
    int64_t N = (int64_t)cJSON_GetObjectItem(cfg, "mamba_d_state")->valuedouble;
    int64_t K = (int64_t)cJSON_GetObjectItem(cfg, "mamba_d_conv")->valuedouble;
    int64_t I = (int64_t)cJSON_GetObjectItem(cfg, "intermediate_size")->valuedouble;
    int64_t R = (d + 15) / 16; /* all fixtures: dt_rank "auto" (written as the integer or as "auto") */
    float eps = (float)cJSON_GetObjectItem(cfg, "rms_norm_eps")->valuedouble;
    float theta = (float)cJSON_GetObjectItem(cfg, "rope_theta")->valuedouble;
    bool rope = cJSON_IsTrue(cJSON_GetObjectItem(cfg, "mamba_rope"));
    bool hb = cJSON_IsTrue(cJSON_GetObjectItem(cfg, "hidden_bias"));
    const cJSON *et = cJSON_GetObjectItem(cfg, "expert_type");
    int64_t nexp = (int64_t)cJSON_GetObjectItem(cfg, "num_experts")->valuedouble;
    int64_t topk = (int64_t)cJSON_GetObjectItem(cfg, "num_experts_per_tok")->valuedouble;
    rt_otce_expert_type etype = cJSON_IsNull(et) ? RT_OTCE_PLAIN
                                : !strcmp(et->valuestring, "cohesive") ? RT_OTCE_COHESIVE
                                                                       : RT_OTCE_EXPANSIVE;
    int64_t n = tn(f.ops, "mamba.x", 0);
    CHECK(n > 1 && tn(f.ops, "mamba.x", 1) == d && tn(f.ck, "model.layers.0.mamba.x_proj.weight", 0) == R + 2 * N,
          "%s: fixture shapes", name);
    /* the mixer */
    float *lay = ld(&f, f.ops, "mamba.layer", 0);
    long long L = lay ? (long long)lay[0] : 0;
    rt_mamba_layer ml = {.d = d, .E = E_in, .N = N, .R = R, .K = K, .eps = eps, .rope_base = theta, .rope = rope};
    ml.in_proj = lw(&f, "model.layers.%lld.mamba.in_proj.weight", L, 2 * E_in, d);
    ml.in_proj_b = ld(&f, f.ck, "model.layers.%lld.mamba.in_proj.bias", L);
    ml.conv_w = ld(&f, f.ck, "model.layers.%lld.mamba.conv1d.weight", L);
    ml.conv_b = ld(&f, f.ck, "model.layers.%lld.mamba.conv1d.bias", L);
    ml.x_proj = lw(&f, "model.layers.%lld.mamba.x_proj.weight", L, R + 2 * N, E_in);
    ml.dt_proj = lw(&f, "model.layers.%lld.mamba.dt_proj.weight", L, E_in, R);
    ml.dt_proj_b = ld(&f, f.ck, "model.layers.%lld.mamba.dt_proj.bias", L);
    float *A = ld(&f, f.ck, "model.layers.%lld.mamba.A_log", L);
    for (int64_t i = 0; A && i < E_in * N; i++) A[i] = -expf(A[i]); /* A = -exp(A_log), at load */
    ml.A = A;
    ml.D = ld(&f, f.ck, "model.layers.%lld.mamba.D", L);
    ml.out_proj = lw(&f, "model.layers.%lld.mamba.out_proj.weight", L, d, E_in);
    ml.out_proj_b = ld(&f, f.ck, "model.layers.%lld.mamba.out_proj.bias", L);
    ml.dt_norm_w = ld(&f, f.ck, "model.layers.%lld.mamba.dt_layernorm.weight", L);
    ml.dt_norm_b = ld(&f, f.ck, "model.layers.%lld.mamba.dt_layernorm.bias", L);
    ml.B_norm_w = ld(&f, f.ck, "model.layers.%lld.mamba.B_layernorm.weight", L);
    ml.B_norm_b = ld(&f, f.ck, "model.layers.%lld.mamba.B_layernorm.bias", L);
    ml.C_norm_w = ld(&f, f.ck, "model.layers.%lld.mamba.C_layernorm.weight", L);
    ml.C_norm_b = ld(&f, f.ck, "model.layers.%lld.mamba.C_layernorm.bias", L);
    float *x = ld(&f, f.ops, "mamba.x", 0), *yref = ld(&f, f.ops, "mamba.y", 0);
    float *csref = ld(&f, f.ops, "mamba.conv_state", 0), *ssref = ld(&f, f.ops, "mamba.ssm_state", 0);
    bool have = x && yref && csref && ssref && A && ml.conv_w && ml.D && ml.in_proj.data && ml.out_proj.data &&
                ml.C_norm_b && n > 1;
    CHECK(have, "%s: mixer tensors of layer %lld", name, L);
    if (have) {
        int64_t *pos = malloc(n * sizeof *pos);
        for (int64_t t = 0; t < n; t++) pos[t] = t;
        float *scr = malloc(rt_mamba_mixer_scratch(&ml, n) * 4);
        float *out = malloc(n * d * 4), *out2 = malloc(n * d * 4);
        float *cs = calloc(E_in * K, 4), *ss = calloc(E_in * N, 4);
        for (int pass = 0; pass < 2; pass++) {
            memset(cs, 0, E_in * K * 4), memset(ss, 0, E_in * N * 4);
            CHECK(rt_mamba_mixer(&ml, x, n, pos, 0, cs, ss, out, scr, pass == 0, err) == HQ_OK, "%s", err);
            float tol = 2e-5f * (1 + maxabs(yref, n * d));
            CHECK(maxdiff(out, yref, n * d) <= tol, "%s: mixer %s vs otce_ref: %g (tol %g)", name,
                  pass ? "fast" : "ref", maxdiff(out, yref, n * d), tol);
            CHECK(maxdiff(cs, csref, E_in * K) <= 1e-5f * (1 + maxabs(csref, E_in * K)), "%s: conv state: %g", name,
                  maxdiff(cs, csref, E_in * K));
            CHECK(maxdiff(ss, ssref, E_in * N) <= 2e-5f * (1 + maxabs(ssref, E_in * N)), "%s: ssm state: %g", name,
                  maxdiff(ss, ssref, E_in * N));
        }
        /* decode: one token per call (call index 0 each time) == the prefill */
        memset(cs, 0, E_in * K * 4), memset(ss, 0, E_in * N * 4);
        for (int64_t t = 0; t < n; t++)
            rt_mamba_mixer(&ml, x + t * d, 1, pos + t, 0, cs, ss, out2 + t * d, scr, false, err);
        CHECK(maxdiff(out, out2, n * d) <= 1e-5f * (1 + maxabs(out, n * d)), "%s: mixer prefill vs decode: %g", name,
              maxdiff(out, out2, n * d));
        /* the logn scale of C: 1 up to call index 4031 (ln 4096 / ln 4096), above from 4032 */
        CHECK(rt_otce_logn(0) == 1.0f && rt_otce_logn(4030) == 1.0f && fabsf(rt_otce_logn(4031) - 1.0f) < 1e-6f &&
                  rt_otce_logn(4032) > 1.0f && fabsf(rt_otce_logn(65536 - 65) - 4.0f / 3.0f) < 1e-5f,
              "logn threshold");
        free(pos), free(scr), free(out), free(out2), free(cs), free(ss);
    }
    /* layer 0's MLP */
    float *mx = ld(&f, f.ops, "mlp.x", 0), *my = ld(&f, f.ops, "mlp.y", 0);
    rt_otce_mlp_w mlp = {.gate = lw(&f, "model.layers.%lld.feed_forward.gate_proj.weight", 0, I, d),
                         .up = lw(&f, "model.layers.%lld.feed_forward.up_proj.weight", 0, I, d),
                         .down = lw(&f, "model.layers.%lld.feed_forward.down_proj.weight", 0, d, I),
                         .gate_b = ld(&f, f.ck, "model.layers.%lld.feed_forward.gate_proj.bias", 0),
                         .up_b = ld(&f, f.ck, "model.layers.%lld.feed_forward.up_proj.bias", 0),
                         .down_b = ld(&f, f.ck, "model.layers.%lld.feed_forward.down_proj.bias", 0)};
    CHECK(mx && my && mlp.gate.data && (!hb || mlp.down_b), "%s: mlp tensors", name);
    if (mx && my && mlp.gate.data) {
        float *scr = malloc(rt_otce_mlp_scratch(&mlp, n) * 4), *out = malloc(n * d * 4);
        for (int pass = 0; pass < 2; pass++) {
            rt_otce_mlp(&mlp, mx, n, out, scr, pass == 0, err);
            CHECK(maxdiff(out, my, n * d) <= 2e-5f * (1 + maxabs(my, n * d)), "%s: mlp vs otce_ref: %g", name,
                  maxdiff(out, my, n * d));
        }
        free(scr), free(out);
    }
    /* the MoE */
    float *ml_ = ld(&f, f.ops, "moe.layer", 0);
    if (nexp > 1) CHECK(ml_ != NULL, "%s: moe fixture", name);
    if (ml_) {
        long long l = (long long)ml_[0];
        rt_otce_moe_w m = {.type = etype, .d = d, .E = nexp, .k = topk};
        m.router = lw(&f, "model.layers.%lld.feed_forward.router.weight", l, nexp, d);
        int64_t Ish = etype == RT_OTCE_EXPANSIVE ? I : I / 2, Ie = etype == RT_OTCE_PLAIN ? I : I / 2;
        if (etype == RT_OTCE_EXPANSIVE) {
            m.shared.gate = lw(&f, "model.layers.%lld.feed_forward.shared_gate_proj.weight", l, Ish, d);
            m.shared.down = lw(&f, "model.layers.%lld.feed_forward.shared_down_proj.weight", l, d, Ish);
            m.shared.gate_b = ld(&f, f.ck, "model.layers.%lld.feed_forward.shared_gate_proj.bias", l);
            m.shared.down_b = ld(&f, f.ck, "model.layers.%lld.feed_forward.shared_down_proj.bias", l);
        }
        if (etype != RT_OTCE_PLAIN) {
            m.shared.up = lw(&f, "model.layers.%lld.feed_forward.shared_up_proj.weight", l, Ish, d);
            m.shared.up_b = ld(&f, f.ck, "model.layers.%lld.feed_forward.shared_up_proj.bias", l);
        }
        rt_otce_mlp_w ex[16];
        const float *eg[16];
        for (int64_t e = 0; e < nexp && e < 16; e++) {
            char b[160];
#define EXW(part, o, i) (snprintf(b, sizeof b, "model.layers.%%lld.feed_forward.experts.%lld." part, (long long)e), lw(&f, b, l, o, i))
#define EXB(part) (snprintf(b, sizeof b, "model.layers.%%lld.feed_forward.experts.%lld." part, (long long)e), ld(&f, f.ck, b, l))
            ex[e] = (rt_otce_mlp_w){0};
            ex[e].gate = EXW("gate_proj.weight", Ie, d);
            ex[e].gate_b = EXB("gate_proj.bias");
            if (etype != RT_OTCE_COHESIVE) {
                ex[e].up = EXW("up_proj.weight", Ie, d);
                ex[e].up_b = EXB("up_proj.bias");
            }
            ex[e].down = EXW("down_proj.weight", d, Ie);
            ex[e].down_b = EXB("down_proj.bias");
            eg[e] = etype == RT_OTCE_EXPANSIVE ? EXB("shared_expert_gate.weight") : NULL;
#undef EXW
#undef EXB
        }
        m.experts = ex;
        m.expert_gate = eg;
        float *qx = ld(&f, f.ops, "moe.x", 0), *qy = ld(&f, f.ops, "moe.y", 0), *qi = ld(&f, f.ops, "moe.ids", 0),
              *qw = ld(&f, f.ops, "moe.w", 0);
        CHECK(qx && qy && qi && qw && m.router.data, "%s: moe tensors", name);
        if (qx && qy && qi && qw) {
            float *scr = malloc(rt_otce_moe_scratch(&m, n) * 4), *out = malloc(n * d * 4), *w = malloc(n * topk * 4);
            int32_t *ids = malloc(n * topk * 4);
            for (int pass = 0; pass < 2; pass++) {
                CHECK(rt_otce_moe(&m, qx, n, out, ids, w, scr, pass == 0, err) == HQ_OK, "%s", err);
                bool same = true;
                for (int64_t i = 0; i < n * topk; i++) same = same && ids[i] == (int32_t)qi[i];
                CHECK(same, "%s: moe routing equals otce_ref", name);
                CHECK(maxdiff(w, qw, n * topk) <= 1e-6f, "%s: moe weights: %g", name, maxdiff(w, qw, n * topk));
                CHECK(maxdiff(out, qy, n * d) <= 2e-5f * (1 + maxabs(qy, n * d)), "%s: moe %s vs otce_ref: %g", name,
                      pass ? "fast" : "ref", maxdiff(out, qy, n * d));
            }
            free(scr), free(out), free(w), free(ids);
        }
    }
    cJSON_Delete(cfg);
    for (int i = 0; i < f.nb; i++) free(f.bufs[i]);
    fmt_ckpt_close(f.ck);
    fmt_ckpt_close(f.ops);
}

int main(void) {
    test_conv1d();
    test_scan();
    test_small_ops();
    test_moe_random();
    static const char *const fx_names[] = {"otce-expansive", "otce-cohesive", "otce-plain", "otce-dense",
                                           "otce-expansive-bin"};
    for (size_t i = 0; i < sizeof fx_names / sizeof fx_names[0]; i++) fixture(fx_names[i]);
    TEST_END();
}
