/* runtime/otce_ops.h — the OTCE ops (spec §4.10, §5, §6 items 14-15): causal
 * depthwise conv1d with a rolling state (conv1d.c), the Mamba-1 selective
 * scan and the whole Mamba mixer (mamba.c), OTCE's RMSNorm with bias, the
 * tanh-SwiGLU MLP and the MoE with its three expert types (otce_moe.c).
 * Every op has a scalar `_ref` twin; tests/test_otce_ops.c checks the fast
 * versions against them, prefill (n > 1) against one-token steps, and the
 * composed mixer / MoE / MLP against tools/otce_ref.py (tests/fixtures/otce).
 * Same layout conventions as ops.h (token-major fp32 activations). The
 * forward pass (runtime/forward.c, otce_layer) calls the single ops through
 * the backend table; rt_mamba_mixer / rt_otce_mlp / rt_otce_moe compose
 * them the same way for the op tests. */
#ifndef HQ_RT_OTCE_OPS_H
#define HQ_RT_OTCE_OPS_H
#include "ops.h"

/* ---- conv1d.c ----  causal depthwise conv1d, kernel K, C channels
 * (PyTorch nn.Conv1d(C, C, K, groups=C, padding=K-1)[..., :n]).
 * x: [n, C] with row stride ldx (floats); w: [C, K] (conv1d.weight [C,1,K]);
 * b: [C] or NULL; state: [C, K] in/out, the last K inputs of each channel,
 * oldest first (the authors' conv_states; zeros before the first token).
 * Per token t: state_c ← roll left, state_c[K−1] = x[t][c];
 *   y[t][c] = Σ_j w[c][j]·state_c[j] + b[c], then SiLU when silu.
 * y: [n, C] contiguous. A prefill is exactly n one-token steps. */
void rt_conv1d_ref(const float *x, int64_t ldx, int64_t n, int64_t C, int64_t K, const float *w, const float *b,
                   float *state, bool silu, float *y);
void rt_conv1d(const float *x, int64_t ldx, int64_t n, int64_t C, int64_t K, const float *w, const float *b,
               float *state, bool silu, float *y);

/* ---- mamba.c ----  Mamba-1 selective scan (CheemsMambaMixer.slow_forward)
 * u: [n, E] (conv output), delta: [n, E] (after softplus), A: [E, N]
 * (= −exp(A_log)), B, C: [n, N] (shared by all channels), D: [E],
 * z: [n, E] gate with row stride ldz, state: [E, N] in/out (fp32).
 *   s_c ← exp(Δ_c·A_c) ⊙ s_c + Δ_c·u_c·B;  y_c = (s_c·C + D_c·u_c)·SiLU(z_c)
 * y: [n, E]. n = 1 is the decode step. */
void rt_mamba_scan_ref(const float *u, const float *delta, const float *A, const float *B, const float *C,
                       const float *D, const float *z, int64_t ldz, int64_t n, int64_t E, int64_t N, float *state,
                       float *y);
void rt_mamba_scan(const float *u, const float *delta, const float *A, const float *B, const float *C, const float *D,
                   const float *z, int64_t ldz, int64_t n, int64_t E, int64_t N, float *state, float *y);

/* C's length scale (modeling_cheems_OTCE.py l.1341-1349): max(1, ln(65+i)/ln 4096)
 * for i = index of the token within the forward call (1 below i = 4031). */
float rt_otce_logn(int64_t i);

/* One Mamba mixer (spec §4.10). Weights as stored in the GGUF (any runnable
 * type for the projections); 1-D tensors fp32; NULL biases are absent. */
typedef struct {
    int64_t d, E, N, R, K;        /* hidden, inner (expand·d), state, dt rank, conv kernel */
    float eps, rope_base;         /* rms_norm_eps; rope_theta */
    bool rope;                    /* mamba_rope: RoPE (dim N) on B and C */
    rt_weight in_proj;            /* (2E, d) */
    const float *in_proj_b;       /* (2E) */
    const float *conv_w;          /* (E, K) */
    const float *conv_b;          /* (E) */
    rt_weight x_proj;             /* (R+2N, E) */
    rt_weight dt_proj;            /* (E, R) */
    const float *dt_proj_b;       /* (E) */
    const float *A;               /* (E, N) = −exp(A_log), computed at load */
    const float *D;               /* (E) */
    rt_weight out_proj;           /* (d, E) */
    const float *out_proj_b;      /* (d) */
    const float *dt_norm_w, *dt_norm_b; /* (R) */
    const float *B_norm_w, *B_norm_b;   /* (N) */
    const float *C_norm_w, *C_norm_b;   /* (N) */
} rt_mamba_layer;

/* floats of scratch rt_mamba_mixer needs for n tokens (0 on overflow) */
int64_t rt_mamba_mixer_scratch(const rt_mamba_layer *L, int64_t n);
/* x: [n, d] (the input_layernorm output) at absolute positions pos[0..n);
 * call_idx0: index within the forward call of x's first token (0 for a
 * prefill call; the logn scale of C depends on it). conv_state [E, K] and
 * ssm_state [E, N] carry over between calls. out: [n, d].
 * ref: every op its _ref twin. */
hq_status rt_mamba_mixer(const rt_mamba_layer *L, const float *x, int64_t n, const int64_t *pos, int64_t call_idx0,
                         float *conv_state, float *ssm_state, float *out, float *scratch, bool ref, char *err);

/* ---- otce_moe.c ---- */
/* OTCE RMSNorm (l.335-382): y = (x·r)·w + b, r = 1/sqrt(mean(x²) + eps). x, y: [n_rows, d] (may alias). */
void rt_otce_rmsnorm_ref(const float *x, const float *w, const float *b, float *y, int64_t n_rows, int64_t d,
                         float eps);
void rt_otce_rmsnorm(const float *x, const float *w, const float *b, float *y, int64_t n_rows, int64_t d, float eps);
/* g[i] = tanh(u[i]) · SiLU(g[i])   (CheemsMLP: tanh(up x) * act(gate x)) */
void rt_tanh_swiglu_ref(float *g, const float *u, int64_t n);
void rt_tanh_swiglu(float *g, const float *u, int64_t n);

/* out = down(tanh(up x + bu) ⊙ SiLU(gate x + bg)) + bd ; biases may be NULL */
typedef struct {
    rt_weight gate, up, down;     /* (I, d), (I, d), (d, I) */
    const float *gate_b, *up_b, *down_b;
} rt_otce_mlp_w;
int64_t rt_otce_mlp_scratch(const rt_otce_mlp_w *m, int64_t n); /* floats */
hq_status rt_otce_mlp(const rt_otce_mlp_w *m, const float *x, int64_t n, float *out, float *scratch, bool ref,
                      char *err);

/* The MoE (CheemsSharedMoeLayer): p = softmax(router x), the k largest
 * (ties: lower expert first), NO renormalisation; out = Σ p_e · expert_e(x).
 *   RT_OTCE_EXPANSIVE: s = shared(x) (an MLP of size I); s ← σ(gate_e·s)·s; expert_e = MLP_e(s)
 *   RT_OTCE_COHESIVE:  expert_e = down_e(tanh(shared_up x) ⊙ SiLU(gate_e x)) (no up_e)
 *   RT_OTCE_PLAIN:     expert_e = MLP_e(x) (expert_type null) */
typedef enum { RT_OTCE_EXPANSIVE = 0, RT_OTCE_COHESIVE, RT_OTCE_PLAIN } rt_otce_expert_type;
typedef struct {
    rt_otce_expert_type type;
    int64_t d, E, k;
    rt_weight router;             /* (E, d) */
    rt_otce_mlp_w shared;         /* expansive: gate/up/down (I); cohesive: only up (I/2) and up_b */
    rt_otce_mlp_w *experts;       /* (E); cohesive: no up */
    const float *const *expert_gate; /* expansive: (E) pointers to shared_expert_gate [d] */
} rt_otce_moe_w;
int64_t rt_otce_moe_scratch(const rt_otce_moe_w *m, int64_t n); /* floats */
/* the MoE's routing alone, per row of E logits: softmax (in double), the k
 * largest (ties: lower expert first), no renormalisation. Scalar only: it is
 * its own reference (O(E·k) per token next to the experts' matmuls). */
void rt_otce_route(const float *logits, int64_t n, int64_t E, int64_t k, int32_t *ids, float *w);
/* x, out: [n, d]; ids, w: [n, k] (the selected experts and their probabilities; may be NULL) */
hq_status rt_otce_moe(const rt_otce_moe_w *m, const float *x, int64_t n, float *out, int32_t *ids, float *w,
                      float *scratch, bool ref, char *err);
#endif
