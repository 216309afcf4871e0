/* runtime/runtime.h — CPU verification runtime: load a GGUF written by
 * `hyquant convert` / `quantize` (mmap, no copy of weights) and run the
 * hybrid model (spec §4–§5). This header is the contract used by
 * quant/ (calibrate), verify/ and cuda/; the runtime owns the rest. */
#ifndef HQ_RUNTIME_H
#define HQ_RUNTIME_H
#include "../core/hq.h"

typedef struct rt_model rt_model;
typedef struct rt_state rt_state; /* KV/β caches and SSD states of one sequence */

hq_status rt_model_load(const char *gguf_path, rt_model **out, char *err);
void rt_model_free(rt_model *m);
int32_t rt_model_n_vocab(const rt_model *m);
int32_t rt_model_n_layers(const rt_model *m);
int32_t rt_model_n_embd(const rt_model *m);
struct rt_tokenizer *rt_model_tokenizer(const rt_model *m); /* NULL if none embedded */

hq_status rt_state_new(const rt_model *m, int64_t max_tokens, rt_state **out, char *err);
void rt_state_reset(rt_state *s);
void rt_state_free(rt_state *s);
int64_t rt_state_pos(const rt_state *s);

/* Runs n tokens at the next positions of s (prefill when n > 1, decode when
 * n == 1). logits: NULL, or n × n_vocab floats (one row per token). */
hq_status rt_forward(rt_model *m, rt_state *s, const int32_t *tokens, int64_t n, float *logits, char *err);

/* Observation hooks for calibrate (imatrix) and verify (per-layer drift).
 * Any member may be NULL. Called from the forward pass on the calling thread. */
typedef struct {
    void *ud;
    /* input rows of every quantizable matrix product, before the product:
     * x is n_tokens × n_in (row-major); weight_name is the GGUF tensor name */
    void (*on_matmul_input)(void *ud, const char *weight_name, const float *x, int64_t n_tokens, int64_t n_in);
    /* expert-table rows gathered for each token (CDMoE): ids is
     * n_tokens × k_total expert ids; x is n_tokens × n_in (the FFN input) */
    void (*on_experts)(void *ud, int32_t layer, const char *weight_name, const int32_t *ids, int64_t k_total,
                       const float *x, int64_t n_tokens, int64_t n_in);
    /* residual stream after each sub-block: where = "mixer" or "ffn" */
    void (*on_hidden)(void *ud, int32_t layer, const char *where, const float *h, int64_t n_tokens, int64_t d);
} rt_hooks;
void rt_model_set_hooks(rt_model *m, const rt_hooks *h);

void rt_set_threads(int n); /* 0 = all cores */

/* ---- additions (runtime-owned; additive) ---- */
/* As rt_forward, but logits (n_vocab floats, may be NULL) only for the last
 * of the n tokens: the lm_head runs on one row (generate's prefill). */
hq_status rt_forward_last(rt_model *m, rt_state *s, const int32_t *tokens, int64_t n, float *logits, char *err);
/* logits for rows first_row .. n-1 only ((n - first_row) × n_vocab floats):
 * perplexity scores only the second half of each chunk. */
hq_status rt_forward_from(rt_model *m, rt_state *s, const int32_t *tokens, int64_t n, int64_t first_row,
                          float *logits, char *err);
int64_t rt_model_ctx_len(const rt_model *m);     /* {arch}.context_length */
const char *rt_model_path(const rt_model *m);    /* the file it was loaded from */
/* The metadata checks of rt_model_load (hyper-parameter ranges, eps, rope,
 * context length, bos/eos ids) without loading tensors: quantize runs them
 * so it never writes a GGUF the runtime would refuse for its metadata. HQ_OK
 * for architectures the runtime does not run and for files without the
 * basic sizes (vocab, width, layers, heads), which are no runnable model. */
struct fmt_gguf;
hq_status rt_model_check_metadata(struct fmt_gguf *g, char *err);
int32_t rt_model_bos(const rt_model *m);         /* tokenizer.ggml.bos_token_id, -1 if none */
int32_t rt_model_eos(const rt_model *m);         /* -1 if none */
bool rt_model_add_bos(const rt_model *m);        /* tokenizer.ggml.add_bos_token */
const char *rt_model_arch(const rt_model *m);    /* "cheems" | "doge" */
/* true: every op runs its plain scalar _ref twin (tests; verify's
 * "reference kernels only" run). Global, not thread-safe against a running forward. */
void rt_use_reference_kernels(bool on);
/* Reproduce transformers' multi-token forward, model(input_ids), instead of
 * its cached decode (docs/doge-keep-window.md). Off by default: every token
 * is computed as HF computes it when decoding one token per call, so the
 * result does not depend on how the tokens are split into calls. On, for a
 * call of N > 1 tokens:
 *  - router CDMoE (spec §6 item 8): token n routes with ℓx = flat[n·Kk ..]
 *    and ℓy = flat[(N+n)·Kk ..] of the call's [N, 2Kk] router logits, as HF's
 *    raw view does;
 *  - DMAttn keep window: the keep_window_size keys are picked by torch.topk
 *    over the call's whole mask row (keys 0 .. pos+N−1, future keys at
 *    finfo.min) rather than over the query's own row (RT_KEEP_HF_CALL); the
 *    two differ only when β ties at the cut.
 * The CUDA backend honours the router part only (cuda/attn.cu keeps ties at
 * the lower key index). */
void rt_model_set_hf_prefill(rt_model *m, bool on);
/* Hook notes: on_matmul_input is called for every matrix product with a
 * weight (quantizable or not: attn_dt, ssm_dt, ffn_gate_inp, ffn_pk_query
 * included); the lm_head reports "output.weight", or "token_embd.weight"
 * when the embedding is tied. attn_dt's input is the v_proj output. on_experts
 * reports weight_name "blk.N.ffn_expert_down.weight" (the same ids index
 * ffn_expert_up). */
#endif
