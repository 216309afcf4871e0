/* quant/quantize.h — the streaming GGUF quantizer behind `hyquant quantize`.
 *
 * Flow: mmap the input; choose every tensor's type (policy.h); compute all
 * output tensor infos and the exact file size first (so --dry-run reports
 * the size the real run writes); then tensor by tensor: convert to f32
 * (q_traits(in)->to_float), refuse NaN/Inf naming the tensor, quantize rows
 * (OpenMP), check the dequantized rows are finite, write. Memory is bounded
 * by the largest tensor (one f32 copy + its output bytes). Tensors whose type
 * does not change are copied bit for bit. Output is atomic (hq_out).
 *
 * Methods:
 *  - rtn:     the format's quantizer without importance (from_float).
 *  - imatrix: quantize_imatrix with per-column importance in_sum2/counts
 *             (imatrix.h); expert tables use their row's expert slice, an
 *             expert with no tokens gets uniform importance; tensors the
 *             imatrix does not cover (e.g. output.weight) fall back to rtn.
 *  - gptq:    quant/gptq.h for matrices with a full Σxxᵀ in the imatrix
 *             (calibrate --full-hessian); others fall back to imatrix.
 */
#ifndef HQ_QUANT_QUANTIZE_H
#define HQ_QUANT_QUANTIZE_H
#include "../core/hq.h"
#include "imatrix.h"
#include "policy.h"

typedef enum { Q_METHOD_RTN = 0, Q_METHOD_IMATRIX, Q_METHOD_GPTQ } q_method;
const char *q_method_name(q_method m);

typedef struct {
    char name[HQ_MAX_GGUF_NAME + 1];
    q_role role;
    q_group group;
    uint32_t n_dims;
    uint64_t ne[4];
    uint64_t n_elems;
    uint32_t in_type, out_type, wanted_type;
    uint64_t in_bytes, out_bytes;
    bool fallback, overridden, converted;
    q_method method; /* what was (or will be) applied to this tensor */
    int64_t uniform_rows; /* expert rows quantized with uniform importance (no tokens) */
} q_tensor_plan;

typedef struct {
    uint64_t params, in_bytes, out_bytes;
} q_group_stats;

typedef struct {
    uint64_t n_tensors, n_converted, n_fallback, n_no_imatrix, n_gptq, n_uniform_rows;
    uint64_t in_file_bytes, out_file_bytes; /* whole files */
    uint64_t in_data_bytes, out_data_bytes, params;
    q_group_stats group[Q_GROUP_COUNT];
    uint32_t ftype;
    double seconds;
    bool imatrix_other_model; /* the imatrix's model fingerprint is not this model's */
} q_quantize_report;

typedef struct {
    const q_policy *policy;
    q_method method;
    const q_imatrix *imatrix;   /* required for imatrix / gptq */
    const char *imatrix_label;  /* for messages */
    bool allow_requantize;
    bool dry_run;               /* plan + sizes only, no output file */
    double gptq_damp;           /* fraction of mean diag(H) added (0 = default 0.01) */
    /* called for each tensor once planned (i of n), then again after it was written (done = true) */
    void (*on_tensor)(void *ud, const q_tensor_plan *t, uint64_t i, uint64_t n, bool done);
    void *ud;
} q_quantize_opts;

hq_status q_quantize_file(const char *in_path, const char *out_path, const q_quantize_opts *o,
                          q_quantize_report *rep, char *err);
#endif
