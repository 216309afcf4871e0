/* runtime/model_internal.h — the loaded model and sequence state (private to
 * runtime/: model.c loads and validates, forward.c runs). Weights point into
 * the GGUF mapping; 1-D tensors (norms, scales, A, D, biases, product keys)
 * are converted to owned fp32 copies at load. */
#ifndef HQ_RT_MODEL_INTERNAL_H
#define HQ_RT_MODEL_INTERNAL_H
#include "backend_ops.h" // defines: rt_backend_ops, rt_state_mirror
#include "ops.h"
#include "otce_ops.h" // defines: rt_mamba_layer, rt_otce_mlp_w, rt_otce_moe_w
#include "runtime.h"
#include "tokenizer.h"
#include "../formats/gguf.h"

typedef enum { RT_MIX_ATTN = 0, RT_MIX_SSD, RT_MIX_MAMBA } rt_mixer_kind;
/* OTCE: the tanh-SwiGLU MLP (gate/up/down and b_* below) and the MoE (otce_moe) */
typedef enum { RT_FFN_MLP = 0, RT_FFN_PK, RT_FFN_ROUTER, RT_FFN_OTCE_MLP, RT_FFN_OTCE_MOE } rt_ffn_kind;

typedef struct {
    rt_mixer_kind mixer;
    rt_ffn_kind ffn;
    float *attn_norm, *attn_res, *ffn_norm, *ffn_res; /* (d) */
    /* DMAttn */
    rt_weight q, k, v, o;        /* (H·P, d) (KV·P, d) (KV·P, d) (d, H·P) */
    float *bq, *bk, *bv, *bo;    /* optional biases */
    float *q_norm, *k_norm;      /* (P) optional */
    rt_weight dt;                /* (M, KV·P) */
    float *b_dt;                 /* (M) optional */
    float *attn_a;               /* (M) */
    int64_t M;                   /* H or KV */
    /* SSD */
    rt_weight sx, sb, sc, sdt, sout; /* (H·P, d) (G·N, d) (G·N, d) (H, d) (d, H·P) */
    float *b_sx, *b_sb, *b_sc, *b_sdt, *b_sout;
    float *ssm_dt_bias, *ssm_a, *ssm_d; /* (H) (H) (H) ; dt_bias, D optional */
    bool ssm_a_pos;              /* some A_h > 0: prefill uses the recurrence (spec §4.5 numerics) */
    /* FFN (MLP part of every FFN kind) */
    rt_weight gate, up, down;    /* (I, d) (I, d) (d, I) */
    float *b_gate, *b_up, *b_down;
    /* CDMoE */
    rt_weight router;            /* (2·Kk, d) */
    float *b_router;             /* (2·Kk) optional */
    rt_weight pk_query;          /* (Hr·R, d) */
    float *pk_keys;              /* (Hr, Kk, 2, R/2) */
    rt_weight ex_down, ex_up;    /* (E, d) */
    int64_t Kk, Hr, R, topk;     /* routing dims of this layer */
    /* OTCE (spec §4.10; runtime/model_otce.c): attn_norm / ffn_norm are
     * input_layernorm / pre_ff_layernorm, with these biases; attention is
     * q/k/v/o above (plain causal GQA: attn_a NULL, β = 0, M = KV) */
    float *attn_norm_b, *ffn_norm_b; /* (d) */
    bool attn_rope;              /* RoPE on q and k (attention_rope) */
    rt_mamba_layer mamba;        /* RT_MIX_MAMBA */
    rt_otce_moe_w moe;           /* RT_FFN_OTCE_MOE (experts: owned array) */
    const rt_weight *moe_gate;   /* expansive: (E) shared_expert_gate (1, d) */
    /* expression layer: h = projection(SiLU(dense(pre_dense_norm(h) + x_in))) */
    bool expr;
    float *pd_norm, *pd_norm_b;  /* (d) */
    rt_weight dense, proj;       /* (d, d) */
    float *b_dense, *b_proj;
} rt_layer;

struct rt_model {
    fmt_gguf *g;
    /* where the forward runs (runtime/backend.c): the backend's table and
     * context, and the table the walk calls (the backend's ops, the CPU's
     * where it has none) */
    const rt_backend_ops *be_ops;
    void *be;
    rt_backend_ops ops;
    /* scratch for one forward call, in the backend's memory: sized when a
     * state is set up (rt_state_new) or the backend changes, never per call */
    struct rt_arena *arena;
    /* settings of this model (rt_model_set_threads / _set_reference):
     * threads 0 and ref −1 follow the process defaults */
    int threads, ref;
    char arch[16];
    int64_t V, d, I, L, H, KV, P, ctx_len;
    float eps;
    int64_t window, keep_window;
    bool keep_topk;
    float rope_theta, rope_factor;
    bool rope_dynamic;
    int64_t rope_orig;
    int64_t ssd_chunk;
    bool tied;
    rt_weight tok_embd, output;  /* (V, d) */
    float *out_norm;             /* (d) */
    rt_layer *layers;            /* (L) */
    /* OTCE: pre-norm blocks without residual scales, norms with bias */
    bool otce;
    float *out_norm_b;           /* (d) */
    float *tok_type0;            /* (d) row 0 of token_types.weight, or NULL */
    float *ones;                 /* (d) 1.0: the unscaled residual */
    rt_tokenizer *tok;
    int32_t bos, eos;
    bool add_bos;
    rt_hooks hooks;
    bool has_hooks;
    /* rt_model_set_hf_prefill: reproduce transformers' multi-token forward */
    bool router_quirk;           /* HF multi-token router reinterpretation (spec §6 item 8) */
    bool keep_hf_call;           /* keep-window top-k over the call's whole mask row (RT_KEEP_HF_CALL) */
    void **owned;                /* fp32 copies to free */
    int64_t n_owned, cap_owned;
};

struct rt_state {
    const rt_model *m;
    int64_t cap, pos;
    float **kc, **vc;            /* per attn layer: (KV, cap, P) */
    float **beta;                /* per attn layer: (M, cap) */
    float **ssm;                 /* per SSD layer: (H, P, N); per Mamba layer: (E, N) */
    float **conv;                /* per Mamba layer: (E, K), the last K conv inputs */
    /* a backend's copy of this state (cuda/backend.c) and whether it holds
     * rows the host arrays lack (state_pull copies them back when the CPU
     * needs them) */
    rt_state_mirror mirror;
};

/* runtime/model_otce.c: the OTCE hyper-parameters and layers of m (arch "otce") */
struct ld_ctx;
hq_status rt_otce_load(struct ld_ctx *c);
int64_t rt_state_floats(const rt_model *m, int64_t li, bool conv); /* recurrent state of layer li */

/* runtime/backend.c */
void rt_backend_model_init(rt_model *m);  /* the CPU backend and default settings (load) */
void rt_backend_model_free(rt_model *m);  /* releases the backend and the arena */
void rt_state_forget_mirror(rt_state *s); /* reset/free: the backend's copy no longer stands for s */
/* grows m's arena to at least bytes (backend memory); drops it when the backend changed */
hq_status rt_arena_reserve(const rt_model *m, uint64_t bytes, char *err);
void *rt_arena_base(const rt_model *m, uint64_t *cap);
uint64_t rt_arena_gen(const rt_model *m);
/* bytes of arena a forward of n tokens, logits from row r0, on a state of cap takes (forward.c) */
uint64_t rt_forward_arena_bytes(const rt_model *m, rt_state *s, int64_t n, int64_t r0);
/* the model's settings for the calling thread, for the length of a call */
typedef struct {
    int threads, ref;
} rt_settings_saved;
void rt_settings_enter(const rt_model *m, rt_settings_saved *sv);
void rt_settings_leave(const rt_settings_saved *sv);
#endif
