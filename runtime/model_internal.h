/* runtime/model_internal.h — the loaded model and sequence state (private to
 * runtime/: model.c loads and validates, forward.c runs). Weights point into
 * the GGUF mapping; 1-D tensors (norms, scales, A, D, biases, product keys)
 * are converted to owned fp32 copies at load. */
#ifndef HQ_RT_MODEL_INTERNAL_H
#define HQ_RT_MODEL_INTERNAL_H
#include "ops.h"
#include "runtime.h"
#include "tokenizer.h"
#include "../formats/gguf.h"

typedef enum { RT_MIX_ATTN = 0, RT_MIX_SSD } rt_mixer_kind;
typedef enum { RT_FFN_MLP = 0, RT_FFN_PK, RT_FFN_ROUTER } rt_ffn_kind;

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
} rt_layer;

struct rt_model {
    fmt_gguf *g;
    rt_backend backend;
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
    float **ssm;                 /* per SSD layer: (H, P, N) */
    /* the CUDA backend's device mirror of this state (cuda/backend.c), or
     * NULL; dev_newer: the mirror holds rows the host arrays lack
     * (cu_state_pull copies them back when the CPU needs them) */
    void *dev_mirror;
    bool dev_newer;
};
#endif
