/* runtime/backend_ops.h — the contract between the forward pass and a
 * backend (the public runtime header for backends; cuda/ includes this, not
 * model_internal.h).
 *
 * runtime/forward.c owns the only walk of the model (embedding, mixers, FFN
 * kinds, router quirk, hooks, lm_head) and calls one op table per model:
 * rt_backend_cpu (runtime/backend.c) or a table a backend registers with
 * rt_model_set_backend (cuda/backend.c: "gpu", "emu"). The walk hands an op
 *   - activations in backend memory, carved from the model's scratch arena
 *     (rt_exec_take) — device addresses on a device backend;
 *   - parameters (rt_weight, fp32 vectors) and sequence-state arrays as the
 *     host pointers of the loaded model; a device backend maps them to its
 *     copies (it uploaded them through `upload`, and mirrors the state
 *     buffers listed by rt_state_buf_at).
 * Every op returns HQ_OK or an error; a device op that fails sets x->fail
 * to its name and leaves the message to the backend's `execute`.
 *
 * A NULL op means "not in this backend": on a backend whose activations are
 * host-addressable (host_addressable) the CPU op runs in its place (per-op
 * fallback) unless the op touches the sequence state; otherwise the model
 * stays on the CPU with a note naming the op (whole-model fallback). The
 * *_ok queries (NULL: always supported) let a backend refuse shapes. */
#ifndef HQ_RT_BACKEND_OPS_H
#define HQ_RT_BACKEND_OPS_H
#include "ops.h"     // defines: rt_weight, rt_attn_params, rt_ssd_dims
#include "runtime.h" // defines: rt_model, rt_state, rt_hooks

#include <stddef.h>

typedef struct rt_backend_ops rt_backend_ops;

/* One forward call as the backend's ops see it. */
typedef struct rt_exec {
    void *be;             /* the backend's context (rt_model_set_backend) */
    char *err;            /* HQ_ERR_LEN bytes */
    const char *fail;     /* device backends: the op that failed */
    rt_state *s;
    /* the step: n tokens at positions pos0.., logits rows r0..n−1 */
    const int32_t *tokens; /* host */
    int64_t n, pos0, r0, V;
    float *logits;         /* host, (n − r0) × V, or NULL */
    /* buffers the runtime took from the arena for the backend's copies
     * (device backends; on host-memory backends these are tokens/logits) */
    int32_t *dtok;
    float *dlogits;
    /* one token, logits wanted, no hooks, fixed RoPE base: every such step
     * runs the same ops on the same buffers, so a backend may capture the
     * body once and replay it with the token and position copied in */
    bool graphable;
    uint64_t arena_gen;    /* changes whenever the arena moves */
    /* the runtime's walk of the layers and the head: tokens at tok
     * (backend memory), position pos0, or when dpos != NULL the int64 at
     * that backend address; logits rows into lg (backend memory) */
    hq_status (*body)(struct rt_exec *x, const int32_t *tok, int64_t pos0, const int64_t *dpos, float *lg);
    void *walk;            /* the runtime's, for body */
} rt_exec;

/* The ops of one backend. All activation pointers are backend memory. */
struct rt_backend_ops {
    const char *name;        /* rt_model_backend_name: "cpu", "gpu", "emu" */
    const char *label;       /* for messages: "cpu", "cuda (gpu)", ... */
    bool host_memory;        /* activations are the caller's host memory (no staging, no hook copies) */
    bool host_addressable;   /* backend memory is readable by the CPU ops (per-op fallback) */
    /* ---- lifetime and memory (NULL on the CPU) ---- */
    void (*release)(void *be);                         /* frees be (brings a mirrored state home first) */
    void *(*alloc)(void *be, uint64_t bytes);          /* the arena; NULL on failure */
    void (*free)(void *be, void *p);
    /* a parameter of bytes at host (dedupe: a host pointer seen before maps to its first copy); 0 or −1 */
    int (*upload)(void *be, const void *host, uint64_t bytes, bool dedupe);
    int (*d2h)(void *be, void *dst, const void *src, uint64_t bytes); /* for hooks */
    /* runs x->body once (or replays it); copies tokens in and logits out.
     * NULL: x->body(x, x->tokens, x->pos0, NULL, x->logits) (host memory) */
    hq_status (*execute)(rt_exec *x);
    /* the state's rows newer on the backend than on the host: copy them
     * back / forget them (rt_state_reset, rt_state_free) */
    hq_status (*state_pull)(void *be, rt_state *s, char *err);
    void (*state_forget)(void *be, rt_state *s);
    /* ---- support checks (NULL: supported) ---- */
    bool (*matmul_ok)(void *be, uint32_t type, int64_t n_in);
    bool (*rope_ok)(void *be, int64_t P);
    bool (*attn_ok)(void *be, const rt_attn_params *ap);
    bool (*ssd_ok)(void *be, const rt_ssd_dims *dm);
    bool (*route_ok)(void *be, int64_t Kk, int64_t k);
    /* ---- scratch: bytes of op scratch an op call needs (NULL: none);
     * the walk takes the largest once per call and passes it to every op ---- */
    uint64_t (*matmul_scratch)(void *be, const rt_weight *w, int64_t n);
    uint64_t (*attn_scratch)(void *be, const rt_attn_params *ap, int64_t n);
    uint64_t (*ssd_scratch)(void *be, const rt_ssd_dims *dm, int64_t chunk, int64_t n);
    uint64_t (*route_pk_scratch)(void *be, int64_t n, int64_t Hr, int64_t Kk);
    uint64_t (*experts_scratch)(void *be, const rt_weight *down, int64_t n, int64_t k_total);
    /* ---- ops (semantics: runtime/ops.h) ---- */
    /* out[t] = row tokens[t] of w as fp32 */
    hq_status (*embed)(rt_exec *x, const rt_weight *w, const int32_t *tok, int64_t n, float *out);
    hq_status (*rmsnorm)(rt_exec *x, const float *in, const float *w, float *y, int64_t rows, int64_t d, float eps);
    /* y = in·Wᵀ (+ bias); same_x: the previous matmul read the same in and no
     * op since used the scratch (q/k/v, gate/up, the SSD projections): a
     * backend may reuse the activations it quantized for it */
    hq_status (*matmul)(rt_exec *x, const rt_weight *w, const float *in, float *y, int64_t n, const float *bias,
                        void *scratch, bool same_x);
    /* in place on v [n, heads, P] at positions pos0.. (or *dpos..) */
    hq_status (*rope)(rt_exec *x, float *v, int64_t n, int64_t heads, int64_t P, int64_t pos0, const int64_t *dpos,
                      float base);
    hq_status (*swiglu)(rt_exec *x, float *g, const float *u, int64_t n);
    /* dt[t][h] = softplus(dt[t][h] + bias[h]) (bias may be NULL) */
    hq_status (*softplus_bias)(rt_exec *x, float *dt, const float *bias, int64_t n, int64_t H);
    /* h[t][i] = r[i]·h[t][i] + br[t][i] */
    hq_status (*residual)(rt_exec *x, float *h, const float *r, const float *br, int64_t n, int64_t d);
    hq_status (*copy)(rt_exec *x, void *dst, const void *src, uint64_t bytes);
    /* state: kc/vc [KV, cap, P] ← k/v [n, KV, P]; beta [M, cap] ← exp(A·softplus(dt)),
     * or 0 when A is NULL (plain causal attention: OTCE; dt is not read) */
    hq_status (*kv_append)(rt_exec *x, float *kc, float *vc, float *beta, const float *k, const float *v,
                           const float *dt, const float *A, int64_t n, int64_t KV, int64_t P, int64_t M, int64_t cap,
                           int64_t pos0, const int64_t *dpos);
    hq_status (*attn)(rt_exec *x, const rt_attn_params *ap, const float *q, const float *kc, const float *vc,
                      const float *beta, int64_t pos0, const int64_t *dpos, int64_t n, float *out, void *scratch);
    /* SSD over n tokens, state in/out; chunk: the chunked form's chunk, or
     * 0 where only the recurrence is exact enough (growing heads, A > 0) */
    hq_status (*ssd)(rt_exec *x, const rt_ssd_dims *dm, int64_t n, int64_t chunk, const float *xs, const float *b,
                     const float *c, const float *dt, const float *A, const float *D, float *state, float *y,
                     void *scratch);
    hq_status (*route_router)(rt_exec *x, const float *lg, int64_t n, int64_t Kk, int64_t k, int32_t *ids, float *w);
    hq_status (*route_pk)(rt_exec *x, const float *q, const float *keys, int64_t n, int64_t Hr, int64_t R, int64_t Kk,
                          int64_t k, int32_t *ids, float *w, void *scratch);
    hq_status (*experts)(rt_exec *x, const rt_weight *down, const rt_weight *up, const float *in, int64_t n,
                         const int32_t *ids, const float *w, int64_t k_total, float *out, void *scratch);
    /* ---- OTCE (semantics: runtime/otce_ops.h); only OTCE models need them ---- */
    /* rows of d: y = RMSNorm(in)·w + b, row strides ldi / ldo (in == y allowed when ldi == ldo) */
    hq_status (*norm_bias)(rt_exec *x, const float *in, int64_t ldi, const float *w, const float *b, float *y,
                           int64_t ldo, int64_t rows, int64_t d, float eps);
    hq_status (*tanh_swiglu)(rt_exec *x, float *g, const float *u, int64_t n); /* g = tanh(u)·SiLU(g) */
    hq_status (*silu)(rt_exec *x, float *v, int64_t n);
    /* y = a·xs + b·y over n floats; a == 0: xs not read, b == 0: y not read (a = b = 0 zeroes y) */
    hq_status (*axpby)(rt_exec *x, float *y, const float *xs, float a, float b, int64_t n);
    /* s[t] ← σ(g[t])·s[t] for rows t < n of d (the expansive expert's shared_expert_gate) */
    hq_status (*gate_scale)(rt_exec *x, float *s, const float *g, int64_t n, int64_t d);
    /* softmax over E logits per row, the k largest (ties: lower index), not renormalised */
    hq_status (*otce_route)(rt_exec *x, const float *lg, int64_t n, int64_t E, int64_t k, int32_t *ids, float *w);
    /* state: causal depthwise conv1d + SiLU with the rolling state [C, K] */
    hq_status (*conv1d)(rt_exec *x, const float *in, int64_t ldx, int64_t n, int64_t C, int64_t K, const float *w,
                        const float *b, float *state, float *y);
    /* state: the Mamba-1 selective scan, state [E, N] */
    hq_status (*mamba_scan)(rt_exec *x, const float *u, const float *delta, const float *A, const float *B,
                            const float *C, const float *D, const float *z, int64_t ldz, int64_t n, int64_t E,
                            int64_t N, float *state, float *y);
};

/* The CPU backend (runtime/backend.c); every other table falls back to it op by op. */
extern const rt_backend_ops rt_backend_cpu;

/* Moves m onto ops with context be (NULL ops: back to the CPU). The model
 * takes be: it is released on refusal, on the next change, or with the
 * model. Every op the model needs is checked first: when one is missing or
 * refuses the shape, m stays on the CPU, `why` (why_len bytes) says which,
 * and HQ_OK is returned. Then every parameter is uploaded. */
hq_status rt_model_set_backend(rt_model *m, const rt_backend_ops *ops, void *be, char *why, size_t why_len,
                               char *err);
const char *rt_model_backend_name(const rt_model *m); /* ops->name, "cpu" by default */

/* ---- sequence state as backends see it ---- */
int64_t rt_state_cap(const rt_state *s);
/* The state's arrays, in a fixed order: by_pos buffers hold nseg segments
 * of seg_rows rows (one per position) of row floats; the others (recurrent
 * states) are nseg·seg_rows·row floats copied whole. */
typedef struct {
    float *host;
    int64_t nseg, seg_rows, row;
    bool by_pos;
} rt_state_buf;
int64_t rt_state_n_bufs(const rt_state *s);
rt_state_buf rt_state_buf_at(const rt_state *s, int64_t i);
/* Who holds rows of s newer than its host arrays: the backend context that
 * mirrors s (or NULL once that mirror is gone), and whether it is newer. */
typedef struct {
    const rt_backend_ops *ops;
    void *be;
    bool newer;
} rt_state_mirror;
rt_state_mirror *rt_state_mirror_of(rt_state *s);
#endif
