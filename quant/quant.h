/* quant/quant.h — quantization block formats as data: one traits entry per
 * ggml type id (formats/ggml_types.h). The runtime's matmul reaches every
 * block type through this table; quantize/calibrate build on it.
 *
 * Contract used by runtime/ (do not change without updating it):
 *  - q_traits(type) returns NULL for types without kernels.
 *  - A weight row of n elements (n % blck == 0) in `type` is multiplied with
 *    an activation row that was first converted by
 *    q_traits(vec_dot_type)->from_float(x, buf, n).
 *  - vec_dot(n, &s, w_row, a_row) sets s = Σ w_i·a_i. vec_dot_ref is the plain
 *    scalar twin every fast path is tested against.
 */
#ifndef HQ_QUANT_H
#define HQ_QUANT_H
#include <stdbool.h>
#include <stdint.h>
#include "../formats/ggml_types.h"

typedef void (*q_from_float_fn)(const float *restrict x, void *restrict y, int64_t n);
typedef void (*q_to_float_fn)(const void *restrict x, float *restrict y, int64_t n);
typedef void (*q_quantize_imatrix_fn)(const float *restrict x, void *restrict y, int64_t n,
                                      const float *restrict imatrix /* n weights or NULL */);
typedef void (*q_vec_dot_fn)(int64_t n, float *restrict s, const void *restrict w, const void *restrict a);

typedef struct {
    uint32_t type;                     /* ggml id */
    const char *name;
    int64_t blck;                      /* elements per block */
    uint64_t type_size;                /* bytes per block */
    bool is_quantized;
    q_from_float_fn from_float_ref;    /* plain scalar quantizer (round to nearest) */
    q_from_float_fn from_float;        /* fast path of the same */
    q_quantize_imatrix_fn quantize_imatrix; /* importance-weighted scale search; NULL = from_float_ref */
    q_to_float_fn to_float_ref;        /* dequantize, scalar */
    q_to_float_fn to_float;            /* dequantize, fast */
    uint32_t vec_dot_type;             /* type activations are converted to */
    q_vec_dot_fn vec_dot_ref;
    q_vec_dot_fn vec_dot;              /* AVX2 / AVX-512 VNNI chosen at run time, portable fallback */
} q_type_traits;

const q_type_traits *q_traits(uint32_t type);
/* ---- helpers (additive; quant/traits.c) ---- */
/* true when all n values are finite: callers refuse NaN/Inf input with the
 * tensor name before quantizing (quantizers do not check). */
bool q_row_is_finite(const float *x, int64_t n);
/* The one row -> f32 routine (quantize, runtime weights, verify): n elements
 * (n % blck == 0) of `type` decoded with its traits' to_float (the fast path;
 * to_float_ref where there is none). F16/BF16 decode exactly at every CPU
 * level (core/vec.h). q_row_can_to_f32: whether the type has a decoder. */
bool q_row_can_to_f32(uint32_t type);
void q_row_to_f32(uint32_t type, const void *src, float *dst, int64_t n);
/* Quantize nrows rows of n_per_row elements (n_per_row % blck == 0) from x
 * into y (rows packed back to back). imatrix: n_per_row importance weights
 * shared by every row, or NULL (ggml's default weighting; for types without
 * an importance search this is from_float_ref). Returns bytes written, 0 if
 * the type has no quantizer or n_per_row does not fit the block size. */
uint64_t q_quantize_rows(uint32_t type, const float *x, void *y, int64_t nrows, int64_t n_per_row,
                         const float *imatrix);
/* Whether the AVX2+FMA kernels are in use: core/cpu.h's level (HQ_CPU, or
 * hq_cpu_set_max(HQ_CPU_SCALAR) in tests, sends every fast path to its
 * scalar twin). Kept as a name so quant/ reads as before. */
#include "../core/cpu.h" // defines: hq_cpu_has
static inline bool q_simd_avx2(void) { return hq_cpu_has(HQ_CPU_AVX2); }
#endif
