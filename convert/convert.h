/* convert/convert.h — checkpoint -> GGUF: variant detection, name mapping
 * (docs/gguf-schema.md), shape validation against config.json, streaming
 * atomic write. Used by `hyquant convert` / `inspect` and by tests.
 *
 * Pipeline: fmt_ckpt_open -> cv_plan_build (detect the layout from tensor
 * names, read config.json, map every source tensor to its GGUF name and check
 * its shape) -> cv_convert writes metadata + tensors in the plan's canonical
 * order (independent of the source container and its tensor order, so a .bin
 * and a .safetensors of the same model give byte-identical GGUF files). */
#ifndef HQ_CONVERT_H
#define HQ_CONVERT_H
#include "../core/hq.h"
#include "../formats/ckpt.h"

typedef enum { CV_OUT_AUTO = 0, CV_OUT_F32, CV_OUT_F16, CV_OUT_BF16 } cv_outtype;

typedef struct {
    cv_outtype outtype;
    bool quiet;        /* no progress line */
    const char *name;  /* general.name; NULL = base name of the source */
    char *embedded;    /* out, optional (CV_EMBEDDED_LEN bytes): the auxiliary files embedded, ", "-separated */
    /* bytes of output converted per streamed piece; 0 = CV_CHUNK_BYTES (tests
     * lower it to exercise the chunked path). At least one row per piece. */
    uint64_t chunk_bytes;
} cv_options;
#define CV_CHUNK_BYTES (16u << 20)
#define CV_EMBEDDED_LEN 96

/* Converts the checkpoint at src (dir or file) to GGUF at dst (atomically). */
hq_status cv_convert(const char *src, const char *dst, const cv_options *opt, char *err);

/* ---- detection and mapping ---- */
typedef enum { CV_VAR_CHEEMS, CV_VAR_DOGE_OLD, CV_VAR_DOGE_NEW, CV_VAR_DOGE_HF, CV_VAR_OTCE } cv_variant;
typedef enum { CV_MIX_SSD, CV_MIX_ATTN, CV_MIX_MAMBA } cv_mixer;
typedef enum { CV_FFN_MLP, CV_FFN_CDMOE_PK, CV_FFN_CDMOE_ROUTER, CV_FFN_OTCE_MOE } cv_ffn;
/* parameter groups reported by inspect */
typedef enum { CV_CAT_SSD, CV_CAT_ATTN, CV_CAT_MLP, CV_CAT_EXPERTS, CV_CAT_OTHER, CV_CAT_COUNT } cv_cat;
typedef enum { CV_X_COPY, CV_X_NEG_EXP /* ssd.A_log -> -exp(A_log) (spec §6 item 1) */ } cv_xform;

const char *cv_variant_name(cv_variant v);   /* "cheems", "doge-old", "doge-new", "doge-hf", "otce" */
const char *cv_variant_arch(cv_variant v);   /* general.architecture: "cheems" | "doge" | "otce" */
const char *cv_mixer_name(cv_mixer m);       /* "ssd" | "attn" | "mamba" */
const char *cv_ffn_name(cv_ffn f);           /* "mlp" | "cdmoe_pk" | "cdmoe_router" | "otce_moe" */
const char *cv_cat_name(cv_cat c);           /* "ssd" | "attention" | "mlp" | "experts" | "other" */
/* category of a GGUF tensor name (used for GGUF inputs of inspect) */
cv_cat cv_cat_of_gguf_name(const char *name);

/* Hyper-parameters from config.json (spec §2); -1 / 0 where absent. */
typedef struct {
    int64_t vocab, d, inter, n_layer, n_head, n_kv, head_dim, max_pos;
    double eps, rope_theta;
    char rope_type[16];          /* "none" | "dynamic" */
    double rope_factor;          /* 1 when none */
    int64_t rope_orig_ctx;
    int64_t keep_window, sliding_window;
    double dynamic_mask_ratio;
    int64_t ssd_chunk;           /* Cheems; 256 default */
    int64_t attn_period, attn_offset; /* Cheems; -1 when absent */
    int is_moe;                  /* -1 absent, 0, 1 */
    int64_t n_expert, n_expert_used, n_rhead, retrieval_size; /* -1 absent */
    bool norm_topk;
    int tie;                     /* -1 absent, 0, 1 */
    bool hidden_bias, attention_bias, mlp_bias;
    bool is_causal;              /* WM Doge flag: plain causal attention (unsupported) */
    char hidden_act[32];
    int64_t bos, eos, pad;       /* -1 absent */
    /* OTCE (spec §2.3, §6 item 15); set only when a stage count key is present */
    bool otce;                   /* config.json has num_observation_layers etc. */
    int64_t n_stage[4];          /* observation, thinking, conseption, expression layer counts */
    int64_t type_vocab;          /* type_vocab_size; 0 = no token-type embedding */
    int64_t mamba_d_state, mamba_d_conv, mamba_expand, mamba_dt_rank; /* dt_rank "auto" resolved: ceil(d/16) */
    bool mamba_conv_bias, mamba_proj_bias, mamba_rope, attention_rope;
    char mamba_act[32];
    char expert_type[16];        /* "expansive" | "cohesive" | "mlp" (config null) */
} cv_hparams;

/* Parses config.json text (label names it in messages). */
hq_status cv_config_parse(const char *json, const char *label, cv_hparams *hp, char *err);

typedef struct {
    char name[64];               /* GGUF name (<= 63 bytes) */
    const fmt_tensor *src;       /* view in the checkpoint */
    cv_xform xform;
    uint32_t n_dims;
    uint64_t ne[4];              /* GGUF order, innermost first */
    bool keep_f32;               /* never narrowed by --outtype (1-D, routing, dt) */
    cv_cat cat;
} cv_tensor;

typedef struct {
    cv_variant variant;
    cv_hparams hp;
    int64_t n_layer;
    cv_mixer *mixers;            /* (n_layer) */
    cv_ffn *ffns;                /* (n_layer) */
    int64_t n_pk;                /* Kk (product keys per half), 0 for dense */
    int64_t n_rhead, retrieval_size, n_expert, n_expert_used;
    bool has_output;             /* untied lm_head -> output.weight */
    int64_t n_shared_dedup;      /* OTCE: repeated experts.{e}.shared_* copies dropped */
    cv_tensor *tensors;          /* canonical order */
    uint64_t n_tensors;
    uint64_t n_ignored;          /* rotary buffers, tied lm_head */
} cv_plan;

/* Detects the layout of ts[0..n) (spec §3.6), maps and validates every tensor
 * against the config (spec §2/§3/§6). The plan points into ts: keep the
 * tensors alive. label names the checkpoint in messages. */
hq_status cv_plan_build(const fmt_tensor *ts, uint64_t n, const char *config_json, const char *label,
                        cv_plan **out, char *err);
void cv_plan_free(cv_plan *p);

/* The storage type convert writes for t given the requested outtype
 * (CV_OUT_AUTO resolved with cv_plan_default_outtype). Returns a HQ_DT_. */
hq_dtype cv_tensor_out_dtype(const cv_tensor *t, cv_outtype ot);
cv_outtype cv_plan_default_outtype(const cv_plan *p);

/* Reads rows [r0, r0+nr) of dim 0 of t, converted to dt, into dst
 * (xform applied). Lets big tensors stream in bounded pieces. */
hq_status cv_tensor_read_rows(const cv_tensor *t, hq_dtype dt, uint64_t r0, uint64_t nr, void *dst, char *err);
#endif
