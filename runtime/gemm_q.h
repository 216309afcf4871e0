/* runtime/gemm_q.h — tiled y = x·Wᵀ for block-quantized W (runtime/gemm_q.c).
 *
 * The activations are converted once per matmul to the weight type's
 * vec_dot_type (Q8_0 or Q8_K), act_bytes per token row. A call computes
 * y[t][o] for o in [o0, o1) and every token t < n_tok; y is [n_tok, n_out].
 *
 * Contract: on the fast path each y[t][o] is bit-identical to
 * q_traits(type)->vec_dot(n_in, &y, W[o], act[t]) — same integer block sums,
 * same float operations in the same order — so switching between the tiled
 * kernels and the per-element dots never changes a result. What the tiles
 * change is the work around the sums: a weight block is unpacked once for up
 * to 8 tokens (prefill), the types are inlined (no call per row and token)
 * and the fp16 scales are widened by F16C instead of in software. */
#ifndef HQ_RT_GEMM_Q_H
#define HQ_RT_GEMM_Q_H
#include "ops.h"

/* the instruction set the tiled kernels use: one function, so a shared CPU
 * detector can take it over ("none": the caller keeps its vec_dot loop) */
typedef enum { RT_GEMM_NONE = 0, RT_GEMM_AVX2, RT_GEMM_AVX512VNNI, RT_GEMM_COUNT } rt_gemm_isa;
rt_gemm_isa rt_gemm_q_isa(void);
/* test hook: use at most `isa` (RT_GEMM_COUNT - 1: the best the CPU has) */
void rt_gemm_q_cap_isa(rt_gemm_isa isa);
const char *rt_gemm_q_isa_name(rt_gemm_isa isa);

/* whether `type` has tiled kernels on this CPU (fast path usable) */
bool rt_gemm_q_supported(uint32_t type);

/* rows o0..o1 of w times n_tok activation rows (act + t·act_bytes).
 * Requires rt_gemm_q_supported(w->type). */
void rt_gemm_q_rows(const rt_weight *w, const void *act, uint64_t act_bytes, float *y, int64_t n_tok, int64_t o0,
                    int64_t o1);
/* scalar twin: vec_dot_ref per (row, token) */
void rt_gemm_q_rows_ref(const rt_weight *w, const void *act, uint64_t act_bytes, float *y, int64_t n_tok,
                        int64_t o0, int64_t o1);

/* test hook: false forces rt_gemm_q_supported to report no kernels (the
 * environment variable HQ_NO_GEMM=1 does the same for a whole run, so
 * bench/bench_gemm.py can time before and after with one binary) */
void rt_gemm_q_enable(bool on);
#endif
