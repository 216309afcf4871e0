/* formats/schema.h — the one table of GGUF tensor names this project writes
 * and reads (docs/gguf-schema.md): convert produces them, the runtime loads
 * them, quantize picks a type by their role, calibrate and verify group them.
 *
 * Each entry: the name (after "blk.N." for per-layer tensors), the part of
 * the model it belongs to, the quantization role (quant/policy.h names it;
 * NULL = never quantized), whether the runtime requires it when its part is
 * present, and the shape rule in PyTorch order with the symbols of
 * docs/gguf-schema.md (d, V, H, KV, P, I, M, E, K, R, Hr).
 *
 * Adding a tensor (e.g. an OTCE one): append an id before FMT_T_COUNT and an
 * entry in formats/schema.c; tests/test_schema.c checks every id has one. */
#ifndef HQ_FORMATS_SCHEMA_H
#define HQ_FORMATS_SCHEMA_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    FMT_PART_GLOBAL = 0, /* outside the blocks */
    FMT_PART_LAYER,      /* every block: norms and residual scales */
    FMT_PART_ATTN,       /* attention mixer */
    FMT_PART_SSD,        /* SSD (Mamba-2) mixer */
    FMT_PART_MLP,        /* dense MLP */
    FMT_PART_EXPERTS,    /* CDMoE: router / product keys and the expert tables */
    FMT_PART_COUNT
} fmt_part;

typedef enum {
    FMT_T_TOKEN_EMBD = 0, FMT_T_OUTPUT_NORM, FMT_T_OUTPUT,
    FMT_T_ATTN_NORM, FMT_T_ATTN_RES, FMT_T_FFN_NORM, FMT_T_FFN_RES,
    FMT_T_ATTN_Q, FMT_T_ATTN_K, FMT_T_ATTN_V, FMT_T_ATTN_OUT,
    FMT_T_ATTN_Q_B, FMT_T_ATTN_K_B, FMT_T_ATTN_V_B, FMT_T_ATTN_OUT_B,
    FMT_T_ATTN_Q_NORM, FMT_T_ATTN_K_NORM, FMT_T_ATTN_A, FMT_T_ATTN_DT, FMT_T_ATTN_DT_B,
    FMT_T_SSM_X, FMT_T_SSM_B, FMT_T_SSM_C, FMT_T_SSM_DT, FMT_T_SSM_OUT,
    FMT_T_SSM_X_B, FMT_T_SSM_B_B, FMT_T_SSM_C_B, FMT_T_SSM_DT_B, FMT_T_SSM_OUT_B,
    FMT_T_SSM_A, FMT_T_SSM_D,
    FMT_T_FFN_GATE, FMT_T_FFN_UP, FMT_T_FFN_DOWN, FMT_T_FFN_GATE_B, FMT_T_FFN_UP_B, FMT_T_FFN_DOWN_B,
    FMT_T_EXPERT_DOWN, FMT_T_EXPERT_UP, FMT_T_ROUTER, FMT_T_ROUTER_B, FMT_T_PK_KEYS, FMT_T_PK_QUERY,
    FMT_T_COUNT /* append new ids above */
} fmt_tensor_id;

typedef struct {
    fmt_tensor_id id;
    const char *name;   /* "attn_q.weight"; globals: the full name */
    bool per_layer;     /* stored as "blk.N.<name>" */
    fmt_part part;
    const char *quant;  /* q_role_name() of its quantization role, NULL = kept in float */
    bool required;      /* the runtime refuses a model without it (when its part is used) */
    const char *shape;  /* PyTorch order, e.g. "(H*P, d)" */
} fmt_schema_entry;

const fmt_schema_entry *fmt_schema_get(fmt_tensor_id id);
/* the entry of a GGUF name ("blk.3.attn_q.weight" -> FMT_T_ATTN_Q, *layer 3;
 * globals: *layer -1), or NULL for names outside the table. layer may be NULL. */
const fmt_schema_entry *fmt_schema_lookup(const char *gguf_name, int64_t *layer);
/* writes the GGUF name of id in layer (ignored for globals); returns buf, or
 * NULL when it does not fit in cap bytes */
const char *fmt_schema_name(fmt_tensor_id id, int64_t layer, char *buf, size_t cap);
const char *fmt_part_name(fmt_part p);
#endif
