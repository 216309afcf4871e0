/* verify/verify.h — `hyquant verify`: run a base and a quantized GGUF on the
 * same tokens (llama-perplexity protocol, runtime/ppl.h) and measure how far
 * the quantized model drifts, and where the drift comes from.
 *
 *  - output drift: PPL of both, ln ratio, KLD distribution, top-1 agreement,
 *    Δp of the correct token (stats.h);
 *  - hidden-state drift per layer and sub-block through rt_hooks.on_hidden:
 *    after the mixer and after the FFN of layer l, per token
 *    e = ‖h_q − h_b‖/‖h_b‖ and cos(h_q, h_b), averaged over every position of
 *    the chunks where the base ran in process; the drift a sub-block adds is
 *    the increase of the mean error across it (before layer 0: the error of
 *    the embedding rows of the evaluated tokens);
 *  - expert routing (CDMoE) through rt_hooks.on_experts: fraction of tokens
 *    whose expert set differs from the base's, mean Jaccard |A∩B|/|A∪B|;
 *  - weight error of every tensor: relative RMS ‖W_q − W_b‖/‖W_b‖ of the
 *    dequantized weights (q_traits to_float).
 * With a saved base (`perplexity --save-logits`, runtime/logits_file.h) the
 * base model runs on the first chunk only: to check the file was made by
 * this base model and to measure the hidden-state/routing drift there. */
#ifndef HQ_VF_VERIFY_H
#define HQ_VF_VERIFY_H
#include "../core/hq.h"
#include "../formats/gguf.h"
#include "stats.h"

typedef struct {
    const char *base, *quant; /* GGUF paths */
    const char *text;         /* UTF-8 text; may be NULL with base_logits */
    const char *base_logits;  /* NULL: run the base model on every chunk */
    int64_t ctx;              /* 0: 512, or the saved file's */
    int64_t chunks;           /* 0: all */
    int threads;              /* 0: all cores */
    bool progress;            /* per-chunk line on stderr */
    const char *backend;      /* NULL / "cpu", "cuda", "cuda-emu" (cuda/backend.h) */
    bool hf_prefill;          /* both models as transformers' model(input_ids) (rt_model_set_hf_prefill) */
} vf_opts;

enum { VF_KIND_SSD, VF_KIND_ATTN, VF_KIND_MLP, VF_KIND_EXPERTS, VF_KIND_OTHER, VF_KIND_COUNT };
const char *vf_kind_name(int kind); /* "ssd" "attention" "mlp" "experts" "other" */

typedef struct {
    char mixer[16], ffn[16];     /* layer_mixers / layer_ffns names */
    int mixer_kind, ffn_kind;    /* VF_KIND_* */
    double err_mixer, cos_mixer; /* mean over positions, after the mixer's residual add */
    double err_ffn, cos_ffn;     /* after the FFN's residual add */
    double max_err_mixer, max_err_ffn;
    double add_mixer, add_ffn;   /* increase of the mean error across the sub-block */
    bool has_routing;
    uint64_t route_tokens, route_changed;
    double route_jaccard;        /* mean over tokens */
} vf_layer;

typedef struct {
    char name[64];
    uint32_t type_b, type_q;
    uint64_t n;
    double rel_rms;              /* sqrt(Σ(q−b)² / Σb²) */
    int kind;
} vf_weight;

typedef struct {
    int64_t n_layers;
    double sum_add, max_err;     /* summed sub-block increases; largest error after one of them */
    double wsum_d2, wsum_b2;     /* weight error of the kind: sqrt(wsum_d2/wsum_b2) */
    uint64_t n_tensors;
} vf_kind_stats;

typedef struct {
    /* settings as run */
    int64_t ctx, n_chunks, first, n_scored, n_vocab, n_embd;
    uint64_t n_text_tokens;
    bool use_bos, base_from_file;
    bool hf_prefill;             /* --hf-prefill-quirk */
    int64_t drift_chunks;        /* chunks where hidden states / routing were compared */
    int threads;
    char backend[16];            /* where the models ran: "cpu", "gpu", "emu" */
    char backend_note[256];      /* why a requested CUDA run stayed on the CPU, or "" */
    char arch[32];
    char ftype_b[32], ftype_q[32];
    double seconds;
    /* output drift */
    vf_acc acc;
    vf_summary sum;
    /* per layer */
    int64_t n_layers;
    vf_layer *layers;
    double err_embd, cos_embd;   /* the embedding rows of the evaluated tokens: h⁰ before layer 0 */
    vf_kind_stats kinds[VF_KIND_COUNT];
    uint64_t route_tokens, route_changed;
    double route_jaccard;
    bool has_routing;
    /* weights, sorted by rel_rms descending */
    vf_weight *weights;
    uint64_t n_weights, n_weights_changed;
    double spot_check_max;       /* with base_logits: max |Δ log p| file vs in-process on chunk 0 */
} vf_result;

/* On failure r is left empty (nothing to free). */
hq_status vf_run(const vf_opts *o, vf_result *r, char *err);
void vf_result_free(vf_result *r);

/* Weight error of every tensor of quant against base (same names/shapes
 * required, else HQ_ERR_MISMATCH naming the tensor). Fills r->weights,
 * r->n_weights, r->n_weights_changed and the kinds' wsum_*. */
hq_status vf_weight_errors(const fmt_gguf *base, const fmt_gguf *quant, vf_result *r, char *err);
/* module kind of a GGUF tensor by name (norms, embeddings, head: other) */
int vf_kind_of_tensor(const char *name);

/* ---- reports (report.c, svg.c); each written atomically ---- */
typedef struct {
    double max_kld, max_ppl_ratio, min_top1; /* < 0: not set */
    const char *base, *quant, *text, *base_logits, *backend;
} vf_report_ctx;
void vf_print_table(FILE *f, const vf_result *r, const vf_report_ctx *c);
hq_status vf_write_json(const char *path, const vf_result *r, const vf_report_ctx *c, char *err);
hq_status vf_write_markdown(const char *path, const vf_result *r, const vf_report_ctx *c, char *err);
hq_status vf_write_svg(const char *path, const vf_result *r, const vf_report_ctx *c, char *err);
/* number of thresholds exceeded; each one described in msgs (may be NULL) */
int vf_thresholds(const vf_result *r, const vf_report_ctx *c, char msgs[3][160]);
#endif
