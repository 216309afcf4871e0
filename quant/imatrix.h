/* quant/imatrix.h — importance matrices ("imatrix") in llama-imatrix's GGUF
 * layout (file-formats.md §6 1.4), read by `quantize`, written by `calibrate`.
 *
 * File layout (GGUF v3, all tensors F32):
 *  - KVs: general.type = "imatrix", imatrix.datasets (string array),
 *    imatrix.chunk_count (u32), imatrix.chunk_size (u32, tokens per chunk).
 *  - per weight matrix W (GGUF name <w>, ne0 = ncols input columns):
 *      <w>.in_sum2  ne = {ncols, n_mat}: Σ over tokens of x_j² per input column
 *      <w>.counts   ne = {1, n_mat}:     tokens accumulated
 *    n_mat = 1 for ordinary matrices; for the CDMoE expert tables
 *    (ffn_expert_down/up, [E, d], one row per expert) n_mat = E and matrix e
 *    holds the tokens routed to expert e (routing weight not applied, as in
 *    llama-imatrix for MUL_MAT_ID).
 *  - hyquant extension, written by `calibrate --full-hessian`:
 *      <w>.in_xtx   ne = {ncols, ncols}: Σ x xᵀ (GPTQ's Hessian up to 2/N),
 *    n_mat = 1 matrices only; llama.cpp ignores tensors it does not know.
 *
 * Importance used by `quantize` for row r of W: in_sum2[m]/counts[m] with
 * m = 0, or m = r for expert tables. A matrix slice with counts 0 (an
 * expert never routed) gets uniform importance (all 1), never 0/0.
 * ffn_expert_up rows are scaled by a per-token scalar gate, so their input
 * columns carry no per-column activation: calibrate stores in_sum2 = counts
 * for them (uniform importance) and keeps the counts for the coverage report.
 */
#ifndef HQ_QUANT_IMATRIX_H
#define HQ_QUANT_IMATRIX_H
#include "../core/hq.h"
#include "../formats/gguf.h"

typedef struct {
    char *name;       /* weight name, e.g. "blk.0.attn_q.weight" */
    int64_t ncols;    /* input columns = the weight's ne0 */
    int64_t n_mat;    /* 1, or E for expert tables */
    float *in_sum2;   /* (n_mat, ncols) */
    float *counts;    /* (n_mat) */
    float *xtx;       /* (ncols, ncols) or NULL */
} q_imatrix_entry;

typedef struct {
    q_imatrix_entry *e;
    int64_t n;
    char **datasets;
    int64_t n_datasets;
    uint32_t chunk_count, chunk_size;
    uint64_t model_fp; /* hyquant.model_fingerprint (q_model_fingerprint of the calibrated model); 0 = none */
} q_imatrix;

hq_status q_imatrix_load(const char *path, q_imatrix **out, char *err);
/* atomic (hq_out) */
hq_status q_imatrix_save(const q_imatrix *im, const char *path, char *err);
void q_imatrix_free(q_imatrix *im);
const q_imatrix_entry *q_imatrix_find(const q_imatrix *im, const char *name);
/* Adds an empty (zeroed) entry; xtx allocated when with_xtx. Returns NULL on OOM. */
q_imatrix_entry *q_imatrix_add(q_imatrix *im, const char *name, int64_t ncols, int64_t n_mat, bool with_xtx);

/* Every entry must name a tensor of the model with ne0 == ncols and n_mat 1
 * (or the tensor's row count for expert tables); HQ_ERR_MISMATCH otherwise. */
hq_status q_imatrix_check_model(const q_imatrix *im, const fmt_gguf *model, const char *im_label, char *err);
/* A cheap identity of a model's weights: FNV-1a over every tensor's name,
 * type, shape and 3 × 64 sampled data bytes (start, middle, end). calibrate
 * stores it as hyquant.model_fingerprint (hex string); quantize warns when an
 * imatrix carries another model's (same tensor names, other weights). Never 0. */
uint64_t q_model_fingerprint(const fmt_gguf *g);

/* Importance of row `row` of e's weight into imp[ncols]. Returns false (and
 * writes uniform 1s) when that slice saw no tokens or has no energy. Values
 * are finite and > 0. */
bool q_imatrix_row_importance(const q_imatrix_entry *e, int64_t row, float *imp);
#endif
