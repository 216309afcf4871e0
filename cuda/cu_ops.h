/* cuda/cu_ops.h — the CUDA backend's op interface, plain C.
 *
 * Every kernel file cuda/<op>.cu exposes host wrappers cu_<op>(...) and
 * cu_<op>_supported(...). They are built twice — by nvcc for a real GPU and
 * by gcc against the SIMT emulator (cuda/emu.c) — and each build fills one
 * table: cu_table_gpu() (only when nvcc built the objects; a weak symbol
 * otherwise) and cu_table_emu() (always). Callers (cuda/backend.c, tests)
 * go through a table, so the same code drives the GPU and the emulator.
 *
 * All pointers passed to ops are DEVICE pointers (on the emulator device
 * memory is host memory); allocate with t->alloc and copy with h2d/d2h.
 * Wrappers return 0, or -1 when the launch failed (emulator: a rule
 * violation already printed; GPU: a CUDA error — call t->sync for text).
 * Semantics and layouts mirror runtime/ops.h; the differences:
 *   rope: positions are pos0 .. pos0+n_tok−1 (no array);
 *   matmul: block types quantize the activations on the device to the
 *     type's vec_dot_type (Q8_0 / Q8_K, bit-identical to from_float_ref) and
 *     dot with int8 products (__dp4a); fp32 sums in a different order than
 *     the CPU, so results differ at rounding level;
 *   routing: the same top-k (score desc, then id asc) as rt_route_*.
 */
#ifndef HQ_CU_OPS_H
#define HQ_CU_OPS_H
#include <stdint.h>
#include "../formats/ggml_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* a weight matrix on the device, [n_out, n_in] rows of row_bytes */
typedef struct {
    const void *data;
    uint32_t type;
    int64_t n_in, n_out;
    uint64_t row_bytes;
} cu_wt;

typedef struct { int64_t H, P, G, N; } cu_ssd_dims;

typedef struct {
    int64_t H, KV, P, M, cap;
    int64_t window, keep_window;
    float scale;
    /* which keys stay when β ties at the keep-window cut, as rt_keep_rule
     * (runtime/ops.h): 0 torch.topk per query (transformers' cached decode),
     * 1 torch.topk over the call's mask row (its multi-token forward),
     * 2 the lower key index */
    int keep_rule;
} cu_attn_params;

typedef struct cu_ops {
    const char *name; /* "gpu" | "emu" */
    /* ---- memory ---- */
    void *(*alloc)(uint64_t bytes); /* NULL on failure */
    void (*free)(void *p);
    int (*h2d)(void *dst, const void *src, uint64_t bytes);
    int (*d2h)(void *dst, const void *src, uint64_t bytes);
    int (*d2d)(void *dst, const void *src, uint64_t bytes);
    int (*zero)(void *p, uint64_t bytes);
    /* waits for the device; 0, or -1 with a one-line message in err */
    int (*sync)(char *err, int err_len);
    /* ---- the decode step as a CUDA graph (GPU only; the emulator's
     * graph_begin returns -1 and the backend runs the same ops eagerly).
     * host_alloc: page-locked host memory (plain memory on the emulator);
     * h2d_async/d2h_async: copies ordered with the kernels on the backend's
     * stream, capturable when the host side is host_alloc memory. */
    void *(*host_alloc)(uint64_t bytes);
    void (*host_free)(void *p);
    int (*h2d_async)(void *dst, const void *src, uint64_t bytes);
    int (*d2h_async)(void *dst, const void *src, uint64_t bytes);
    int (*graph_begin)(void);              /* start capturing the stream's work */
    int (*graph_end)(void **exec);         /* stop, instantiate; *exec or -1 */
    int (*graph_launch)(void *exec);
    void (*graph_free)(void *exec);

    /* ---- rmsnorm.cu: y = w ⊙ x / sqrt(mean(x²) + eps), rows of d (x may alias y) */
    int (*rmsnorm)(const float *x, const float *w, float *y, int64_t rows, int64_t d, float eps);
    int (*rmsnorm_supported)(int64_t d);
    /* Position arguments: pos0, or when dpos != NULL the int64 at device
     * address dpos, read when the kernel runs (a captured decode graph is
     * replayed at each new position; the caller checks the range). */
    /* ---- rope.cu: in place on x [n_tok, n_heads, P], positions pos0.. */
    int (*rope)(float *x, int64_t n_tok, int64_t n_heads, int64_t P, int64_t pos0, const int64_t *dpos, float base);
    int (*rope_supported)(int64_t P);
    /* ---- matmul_f.cu / matmul_q.cu: y[t][o] = Σ_i x[t][i]·W[o][i] (+ bias[o])
     * scratch: matmul_scratch(w, n_tok) bytes (0 for float types).
     * act_ready: the scratch already holds x quantized for a weight of the
     * same activation type (Q8_0 or Q8_K) by the previous block-type matmul
     * on this x (q/k/v, gate/up share one quantization) */
    int (*matmul)(const cu_wt *w, const float *x, float *y, int64_t n_tok, const float *bias, void *scratch,
                  int act_ready);
    uint64_t (*matmul_scratch)(const cu_wt *w, int64_t n_tok);
    int (*matmul_supported)(uint32_t type, int64_t n_in);
    /* the activation step of a block-type matmul alone (tests): n_tok rows of
     * n_in into scratch (cu_q8_act_bytes layout) for weight type `type` */
    int (*quant_act)(uint32_t type, const float *x, int64_t n_tok, int64_t n_in, void *scratch);
    /* ---- elementwise.cu ---- */
    int (*swiglu)(float *g, const float *u, int64_t n);                  /* g = silu(g)·u */
    int (*softplus_bias)(float *dt, const float *bias, int64_t n, int64_t H); /* dt[t][h] = softplus(dt + bias[h]) */
    /* h[t][i] = r[i]·h[t][i] + br[t][i] */
    int (*residual)(float *h, const float *r, const float *br, int64_t n, int64_t d);
    /* attention cache append for tokens at pos0..: kc/vc [KV, cap, P] ← k/v [n, KV, P];
     * beta [M, cap] ← exp(A[m]·softplus(dt[t][m])) */
    int (*kv_append)(float *kc, float *vc, float *beta, const float *k, const float *v, const float *dt,
                     const float *A, int64_t n, int64_t KV, int64_t P, int64_t M, int64_t cap, int64_t pos0,
                     const int64_t *dpos);
    /* ---- embed.cu: out[t] = row tokens[t] of w as fp32 (tokens: device int32) */
    int (*embed)(const cu_wt *w, const int32_t *tokens, int64_t n, float *out);
    /* ---- ssd.cu: the recurrence over n tokens, state [H, P, N] in/out */
    int (*ssd_scan)(const cu_ssd_dims *dm, int64_t n, const float *x, const float *b, const float *c,
                    const float *dt, const float *A, const float *D, float *state, float *y);
    int (*ssd_supported)(const cu_ssd_dims *dm);
    /* ---- attn.cu: DMAttn with β over the caches (rt_attn semantics);
     * scratch: attn_scratch(ap, n) bytes (the keep-window thresholds) */
    int (*attn)(const cu_attn_params *ap, const float *q, const float *kc, const float *vc, const float *beta,
                int64_t pos0, const int64_t *dpos, int64_t n, float *out, void *scratch);
    uint64_t (*attn_scratch)(const cu_attn_params *ap, int64_t n);
    int (*attn_supported)(const cu_attn_params *ap);
    /* ---- cdmoe.cu ---- */
    int (*route_router)(const float *logits, int64_t n, int64_t Kk, int64_t k, int32_t *ids, float *w);
    /* scratch: route_pk_scratch(n, Hr, Kk) bytes (the similarities) */
    int (*route_pk)(const float *q, const float *keys, int64_t n, int64_t Hr, int64_t R, int64_t Kk, int64_t k,
                    int32_t *ids, float *w, void *scratch);
    uint64_t (*route_pk_scratch)(int64_t n, int64_t Hr, int64_t Kk);
    int (*route_supported)(int64_t Kk, int64_t k);
    /* out[t] += Σ_m silu(down[id]·x[t])·w[t][m]·up[id]; ids must be in range
     * (the caller checks). scratch: experts_scratch(down, n, k_total) bytes */
    int (*experts)(const cu_wt *down, const cu_wt *up, const float *x, int64_t n, const int32_t *ids,
                   const float *w, int64_t k_total, float *out, void *scratch);
    uint64_t (*experts_scratch)(const cu_wt *down, int64_t n, int64_t k_total);
    /* ---- logsoftmax.cu: y[r] = x[r] − max − log Σ exp(x[r] − max) (may alias) */
    int (*logsoftmax)(const float *x, float *y, int64_t rows, int64_t V);
    /* nll[r] = −log softmax(x[r])[target[r]] (targets: device int32) */
    int (*nll)(const float *x, const int32_t *target, float *nll, int64_t rows, int64_t V);
    /* ---- kl.cu: kl[r] = Σ_i p_i (log p_i − log q_i), p = softmax(a[r]), q = softmax(b[r]) */
    int (*kl)(const float *a, const float *b, float *kl, int64_t rows, int64_t V);
} cu_ops;

const cu_ops *cu_table_emu(void);
/* Defined only when nvcc built the objects (cuda/cuda.mk); C callers see
 * weak declarations, so test `cu_table_gpu != NULL` before calling. A table
 * does not mean a device is present: ask cu_gpu_devices. */
#ifndef __CUDACC__
#define CU_WEAK __attribute__((weak))
#else
#define CU_WEAK
#endif
CU_WEAK const cu_ops *cu_table_gpu(void);
/* number of CUDA devices, or −1 with the runtime's message (no driver:
 * error 35 "CUDA driver version is insufficient"; 100: no device) */
CU_WEAK int cu_gpu_devices(char *msg, int msg_len);
/* device 0's name and peak memory bandwidth (GB/s, from the memory clock and
 * bus width); 0 or −1 */
CU_WEAK int cu_gpu_info(char *name, int name_len, double *peak_gbs);

/* What a matmul with weights of type t does to its activations: GGML_T_F32
 * for float weights (x is used as is), GGML_T_Q8_K for the K-quants,
 * GGML_T_Q8_0 for the 32-element block types (matmul_q.cu). */
static inline uint32_t cu_act_type(uint32_t t) {
    if (t == GGML_T_F32 || t == GGML_T_F16 || t == GGML_T_BF16) return GGML_T_F32;
    return t == GGML_T_Q4_K || t == GGML_T_Q5_K || t == GGML_T_Q6_K || t == GGML_T_Q2_K || t == GGML_T_Q3_K
               ? GGML_T_Q8_K
               : GGML_T_Q8_0;
}

/* device-side storage of the quantized activations of one matmul call
 * (matmul_q.cu): int8 qs [n_tok][n_in] | float d [n_tok][n_in/32] |
 * int32 sums [n_tok][n_in/32]  (per 32-element sub-block) */
static inline uint64_t cu_q8_act_bytes(int64_t n_tok, int64_t n_in) {
    uint64_t qs = ((uint64_t)n_tok * (uint64_t)n_in + 15u) & ~(uint64_t)15u;
    return qs + 2u * 4u * (uint64_t)n_tok * (uint64_t)(n_in / 32) + 16u;
}

#ifdef __cplusplus
}
#endif
#endif
