/* core/vec.h — row conversions between f32 and f16/bf16 and the f32 dot
 * products, one copy for formats/, quant/ and runtime/, dispatched at run
 * time on core/cpu.h's level (scalar, AVX2, AVX-512).
 *
 * Conversions are exact at every level (bit-identical results):
 *  - f16 -> f32: a NaN comes out quiet (payload kept), as F16C and torch's
 *    fp16_ieee_to_fp32_value do; core/half.h's scalar hq_f16_to_f32 keeps a
 *    signalling NaN signalling, which is why the row helper has its own tail.
 *  - f32 -> f16 / bf16: round to nearest even, NaN quiet, overflow to Inf
 *    (core/half.h).
 * Dots (Σ a_i·b_i in float) differ between levels only in rounding:
 *  - scalar: one accumulator, in index order.
 *  - avx2 and avx512: two 8-lane FMA accumulators over 16 elements, one over
 *    a last 8, hq_hsum_ps, then the scalar tail. avx512 uses the same AVX2
 *    kernel on purpose: one rounding for every x86 SIMD machine (EPYC AVX2
 *    and Xeon AVX-512 give the same logits), and the dot is memory-bound.
 * The _ref twins live with each op and accumulate in double; tests compare
 * these against them with a tolerance. */
#ifndef HQ_VEC_H
#define HQ_VEC_H
#include <stdint.h>

/* src/dst may be unaligned (checkpoint bytes); rows must not overlap */
void hq_f16_to_f32_row(const void *src, void *dst, int64_t n);
void hq_bf16_to_f32_row(const void *src, void *dst, int64_t n);
void hq_f32_to_f16_row(const void *src, void *dst, int64_t n);
void hq_f32_to_bf16_row(const void *src, void *dst, int64_t n);

float hq_dot_f32(const float *a, const float *b, int64_t n);
/* The attention's q·k and its older rounding: avx2/avx512 one 8-lane FMA
 * accumulator, scalar two interleaved sums. Kept apart from hq_dot_f32 on
 * purpose: moving attention to hq_dot_f32 changes `make demo`'s perplexity
 * in the 4th decimal and the calibrated imatrix bytes (measured), and the
 * demo's numbers are part of the contract. */
float hq_dot_f32_attn(const float *a, const float *b, int64_t n);
/* w: n F16 (BF16) values, a: n floats */
float hq_dot_f16_f32(const void *w, const float *a, int64_t n);
float hq_dot_bf16_f32(const void *w, const float *a, int64_t n);
/* The one log-sum-exp (ppl NLL, saved logits, verify's log-softmax):
 * *mx = max x_i (float), returns log Σ exp((double)x_i − *mx), so
 * log p_i = (double)x_i − *mx − lse. Scalar at every level: callers
 * compare these numbers byte for byte across runs and machines. */
double hq_lse(const float *x, int64_t n, float *mx);
/* y += a·x (one FMA per element at the SIMD levels) */
void hq_axpy_f32(float a, const float *x, float *y, int64_t n);
#endif
