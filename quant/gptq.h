/* quant/gptq.h — GPTQ (Frantar et al. 2022, "Accurate Post-Training
 * Quantization for Generative Pre-trained Transformers") producing the
 * ordinary ggml block formats.
 *
 * Minimises ‖(W − Ŵ) X‖² row by row with H = Σ x xᵀ (the Hessian up to a
 * constant). Steps:
 *  1. dead columns (H_jj = 0) are zeroed in W and get H_jj = 1;
 *     H += λ·I with λ = damp · mean(diag H) (damp 0.01).
 *  2. act-order at block granularity: the format's quantization blocks
 *     (32 or 256 columns) are processed in descending Σ diag(H) order; a
 *     block's columns stay contiguous, so the output layout is unchanged.
 *  3. U = chol(H⁻¹) upper (H⁻¹ = UᵀU), in the permuted order.
 *  4. for each block B (lazy batches as in the paper, error propagated to the
 *     rest of the matrix): quantize B's current (already error-compensated)
 *     weights with the format's quantizer weighted by diag(H) — this fixes
 *     the block's scales/mins from the updated weights at the block's start;
 *     then for each column j of B in order, re-round the current w_j onto
 *     the block's grid (formats with a known grid: Q8_0, Q4_0, Q4_1, Q5_0,
 *     IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K; others keep the block quantizer's codes) and
 *     propagate err_j = (w_j − ŵ_j)/U_jj to later columns:
 *     W[:, k] −= err_j · U_jk for k after j.
 *  5. the codes are written into the block and the block is re-checked by
 *     dequantizing it (to_float must reproduce ŵ exactly).
 */
#ifndef HQ_QUANT_GPTQ_H
#define HQ_QUANT_GPTQ_H
#include "../core/hq.h"

/* W: (rows, ncols) f32, overwritten (error-compensated work copy).
 * H: (ncols, ncols) Σ x xᵀ, symmetric; not modified. damp: fraction of the
 * mean diagonal added (0 → 0.01). out: rows × row_bytes(type, ncols).
 * HQ_ERR_UNSUPPORTED if the type has no quantizer or ncols does not fit its
 * block; HQ_ERR_INTERNAL if H is not positive definite even after damping. */
hq_status q_gptq_quantize(uint32_t type, float *W, int64_t rows, int64_t ncols, const float *H, double damp,
                          void *out, char *err);

/* ‖(W − Ŵ) X‖² / ‖W X‖²-style helper for tests and reports:
 * Σ_r (w_r − ŵ_r)ᵀ H (w_r − ŵ_r), with Ŵ dequantized from q (type). */
double q_gptq_loss(uint32_t type, const float *W, const void *q, int64_t rows, int64_t ncols, const float *H);
#endif
