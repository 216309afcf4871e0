/* runtime/ops.h — the compute ops of the CPU runtime, one per file
 * (rmsnorm.c, rope.c, matmul.c, act.c, ssd.c, attn.c, cdmoe.c). Each op has a
 * plain scalar `_ref` twin (the reference semantics, spec §4) and an optimized
 * version (OpenMP over rows/heads/tokens, AVX2+FMA+F16C selected at run time,
 * portable fallback) that tests/test_ops.c checks against the twin.
 *
 * Layout conventions (all row-major, fp32 activations):
 *   token-major activations: x[t][i] = x[t*n_in + i]
 *   head-major vectors inside a token: x[t][h][p] = x[(t*H + h)*P + p]
 * Backends (runtime/backend_ops.h) call these through the CPU table and
 * mirror their semantics; runtime/forward.c is the one walk of the model. */
#ifndef HQ_RT_OPS_H
#define HQ_RT_OPS_H
#include "../core/hq.h"
#include "../core/topk_torch.h" // defines: hq_vj, hq_topk_torch
#include "../core/cpu.h" // defines: hq_cpu_has

/* A weight matrix [n_out, n_in] as stored in the GGUF (PyTorch Linear
 * layout): n_out rows of n_in elements in `type` (F32/F16/BF16 or any block
 * type with quant/quant.h traits). data points into the mmap. */
typedef struct {
    const char *name;   /* GGUF tensor name (hooks, messages) */
    const void *data;
    uint32_t type;
    int64_t n_in, n_out;
    uint64_t row_bytes;
} rt_weight;

/* ---- global switches (cpu.c) ---- */
void rt_ops_set_ref(bool on);      /* true: every dispatching op runs its _ref twin */
bool rt_ops_ref(void);
/* avx2 + fma + f16c allowed (core/cpu.h: the one detector and HQ_CPU switch);
 * tests lower the level with hq_cpu_set_max */
static inline bool rt_cpu_has_avx2(void) { return hq_cpu_has(HQ_CPU_AVX2); }
int rt_n_threads(void);            /* threads an op may use */

/* Checks that w's type is runnable (F32/F16/BF16, or traits with vec_dot and
 * to_float) and that rows fit the block size. */
hq_status rt_weight_check(const rt_weight *w, char *err);
/* Row r of w as fp32 (n_in floats). */
void rt_weight_row_f32(const rt_weight *w, int64_t r, float *dst);

/* ---- rmsnorm.c ----
 * y[r] = w ⊙ x[r] / sqrt(mean(x[r]²) + eps)   x, y: [n_rows, d] (may alias); w: [d] */
void rt_rmsnorm_ref(const float *x, const float *w, float *y, int64_t n_rows, int64_t d, float eps);
void rt_rmsnorm(const float *x, const float *w, float *y, int64_t n_rows, int64_t d, float eps);

/* ---- rope.c ----
 * In place on x [n_tok, n_heads, P] (P even), token t at absolute position
 * pos[t]; rotate_half convention (spec §4.3):
 *   x'_j = x_j cos θ_j − x_{j+P/2} sin θ_j, x'_{j+P/2} = x_{j+P/2} cos θ_j + x_j sin θ_j,
 *   θ_j = pos · base^(−2j/P) (fp32). */
void rt_rope_ref(float *x, int64_t n_tok, int64_t n_heads, int64_t P, const int64_t *pos, float base);
void rt_rope(float *x, int64_t n_tok, int64_t n_heads, int64_t P, const int64_t *pos, float base);
/* Dynamic-NTK base for a call whose largest position is max_pos (spec §4.3):
 * T = max_pos+1 > M ? θ·((f·T/M) − (f − 1))^(P/(P−2)) : θ. factor <= 1 or M <= 0: θ. */
float rt_rope_base(float theta, float factor, int64_t M, int64_t P, int64_t max_pos);

/* ---- matmul.c ----
 * y[t][o] = Σ_i x[t][i] · W[o][i] (+ bias[o])   x: [n_tok, n_in], y: [n_tok, n_out]
 * Block types: x row converted by q_traits(vec_dot_type)->from_float, then
 * vec_dot per weight row. Fails (HQ_ERR_UNSUPPORTED) for types without traits. */
hq_status rt_matmul_ref(const rt_weight *w, const float *x, float *y, int64_t n_tok, const float *bias, char *err);
hq_status rt_matmul(const rt_weight *w, const float *x, float *y, int64_t n_tok, const float *bias, char *err);

/* float storage only (F32/F16/BF16): W[r]·x and y += a·W[r] (n_in elements) */
float rt_row_dot(const rt_weight *w, int64_t r, const float *x);
void rt_row_axpy(const rt_weight *w, int64_t r, float a, float *y);

/* ---- act.c ---- */
float rt_silu(float x);                       /* x·σ(x) */
float rt_softplus(float x);                   /* torch: x > 20 ? x : log1p(exp(x)) */
/* g[i] = silu(g[i]) · u[i], n elements (SwiGLU) */
void rt_swiglu_ref(float *g, const float *u, int64_t n);
/* g = ref(g, u) elementwise, in 1024-element blocks over the threads when n
 * is large (each block through the scalar ref: the result does not depend on
 * the threads); the shared body of rt_swiglu and rt_tanh_swiglu */
void rt_gated_blocks(void (*ref)(float *g, const float *u, int64_t n), float *g, const float *u, int64_t n);
void rt_swiglu(float *g, const float *u, int64_t n);

/* ---- ssd.c ----  (spec §4.5)
 * x: [n, H, P]   b, c: [n, G, N] (head h uses group h / (H/G))   dt: [n, H] (after softplus)
 * A: [H]   D: [H] or NULL   state: [H, P, N] in/out (fp32)   y: [n, H, P]
 *   S_h ← exp(dt_h·A_h)·S_h + dt_h·x_h ⊗ b_g;  y_h = S_h·c_g (+ D_h·x_h)
 * rt_ssd_scan: the step recurrence (reference semantics; used for decode);
 * rt_ssd_chunked: the chunked (SSD / quadratic-within-chunk) form, chunk >= 1. */
typedef struct { int64_t H, P, G, N; } rt_ssd_dims;
void rt_ssd_scan_ref(const rt_ssd_dims *dm, int64_t n, const float *x, const float *b, const float *c,
                     const float *dt, const float *A, const float *D, float *state, float *y);
void rt_ssd_scan(const rt_ssd_dims *dm, int64_t n, const float *x, const float *b, const float *c,
                 const float *dt, const float *A, const float *D, float *state, float *y);
/* scratch: rt_ssd_chunked_scratch(dm, chunk) floats per thread × rt_n_threads() */
int64_t rt_ssd_chunked_scratch(const rt_ssd_dims *dm, int64_t chunk);
void rt_ssd_chunked(const rt_ssd_dims *dm, int64_t n, int64_t chunk, const float *x, const float *b,
                    const float *c, const float *dt, const float *A, const float *D, float *state, float *y,
                    float *scratch);

/* ---- topk_torch.c ----  (docs/doge-keep-window.md)
 * Reorders a[0..n) so that a[0..k) is the set torch.topk(v, k, largest=True,
 * sorted=False) returns on the CPU, ties included: libstdc++'s nth_element
 * (k·64 > n) or partial_sort (k·64 <= n) as ATen calls them, step for step.
 * Fill a[i] = {v_i, i} in index order first. NaN counts as the largest. */
typedef hq_vj rt_vj; /* core/topk_torch.h */
void rt_topk_torch(rt_vj *a, int64_t n, int64_t k);

/* ---- attn.c ----  (spec §4.6, DMAttn over a KV cache)
 * q: [n, H, P] (normed+roped) for absolute positions pos0 .. pos0+n−1.
 * kc, vc: [KV, cap, P] caches already holding keys 0 .. pos0+n−1.
 * beta: [M, cap] dynamic bias per key (M = H: per query head, M = KV: per kv head).
 * s_{t,h,j} = q_{t,h}·k_{j,g}·scale + β_{m(h),j}, g = h / (H/KV), allowed j ≤ t
 * (and j > t − window when window > 0); keep_window > 0: only keep_window of
 * the allowed keys stay, the ones with the largest β, chosen by keep_rule
 * (they differ only when β ties at the cut; docs/doge-keep-window.md):
 *   RT_KEEP_TORCH     row = β of the allowed keys of query t (lo..t); when it is
 *                     longer than keep_window, the set torch.topk picks on it.
 *                     = transformers' cached decode (one token per call), and
 *                     independent of how tokens are split into calls.
 *   RT_KEEP_HF_CALL   transformers' multi-token forward of this call: row =
 *                     β_0 .. β_{pos0+n−1} with the disallowed keys at −FLT_MAX,
 *                     torch.topk's set when pos0+n > keep_window, then only the
 *                     allowed keys. Equals RT_KEEP_TORCH when n = 1.
 *   RT_KEEP_LOW_INDEX ties at the cut go to the lower key index (the rule
 *                     cuda/attn.cu implements).
 * p = softmax(s); out_{t,h} = Σ p_j v_{j,g}. out: [n, H, P]. */
typedef enum { RT_KEEP_TORCH = 0, RT_KEEP_HF_CALL, RT_KEEP_LOW_INDEX } rt_keep_rule;
typedef struct {
    int64_t H, KV, P, M, cap;
    int64_t window;       /* sliding window (0 = none) */
    int64_t keep_window;  /* top-k-by-β window (0 = none) */
    float scale;          /* P^-1/2 */
    rt_keep_rule keep_rule;
} rt_attn_params;
void rt_attn_ref(const rt_attn_params *ap, const float *q, const float *kc, const float *vc, const float *beta,
                 int64_t pos0, int64_t n, float *out);
/* floats of scratch rt_attn needs per thread (× rt_n_threads()) */
int64_t rt_attn_scratch(const rt_attn_params *ap);
void rt_attn(const rt_attn_params *ap, const float *q, const float *kc, const float *vc, const float *beta,
             int64_t pos0, int64_t n, float *out, float *scratch);

/* ---- cdmoe.c ----  (spec §4.8)
 * Router version: logits [n, 2Kk] (ℓx = first Kk, ℓy = last Kk, per token);
 * candidate (i, j) has score ℓx_i + ℓy_j and expert id i·Kk + j; the k best
 * candidates → ids [n, k], weights [n, k] = softmax of their scores.
 * _ref enumerates all Kk² candidates; the fast one uses the exact top-k of each
 * half (only those can reach the overall top-k). Ties: lower id first. */
void rt_route_router_ref(const float *logits, int64_t n, int64_t Kk, int64_t k, int32_t *ids, float *w);
void rt_route_router(const float *logits, int64_t n, int64_t Kk, int64_t k, int32_t *ids, float *w);
/* Product-key version: q [n, Hr·R] viewed as q[p][h][r'], p ∈ {0,1}, r' < R/2
 * (flat p·(Hr·R/2) + h·(R/2) + r'); keys [Hr, Kk, 2, R/2].
 * sim[p][h][c] = Σ q[p][h][·]·keys[h][c][p][·]; per head the k best
 * (i, j) by sim0_i + sim1_j → id i·Kk + j, weight softmax over the head's k.
 * ids, w: [n, Hr·k] (head-major). */
void rt_route_pk_ref(const float *q, const float *keys, int64_t n, int64_t Hr, int64_t R, int64_t Kk, int64_t k,
                     int32_t *ids, float *w);
void rt_route_pk(const float *q, const float *keys, int64_t n, int64_t Hr, int64_t R, int64_t Kk, int64_t k,
                 int32_t *ids, float *w);
/* Retrieved single-neuron experts: for each token t and selected m < k_total:
 *   g = silu(down[ids[t][m]] · x[t]) · w[t][m];  out[t] += g · up[ids[t][m]]
 * down, up: [E, d] expert tables (any runnable type); x, out: [n, d].
 * Fails for an id outside [0, E). */
hq_status rt_experts_ref(const rt_weight *down, const rt_weight *up, const float *x, int64_t n, const int32_t *ids,
                         const float *w, int64_t k_total, float *out, char *err);
hq_status rt_experts(const rt_weight *down, const rt_weight *up, const float *x, int64_t n, const int32_t *ids,
                     const float *w, int64_t k_total, float *out, char *err);
#endif
