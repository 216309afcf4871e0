/* quant/float.c — F32 / F16 / BF16 as table entries so the runtime treats
 * every weight type alike: from_float converts (f16/bf16 round to nearest
 * even, core/half.h), to_float widens exactly, and the dot takes an F32
 * activation row (vec_dot_type F32). */
#include "formats.h"
#include "../core/half.h"

#include <string.h>

void q_f32_quantize_ref(const float *restrict x, void *restrict y, int64_t n) { memcpy(y, x, (size_t)n * 4); }
void q_f32_dequantize_ref(const void *restrict x, float *restrict y, int64_t n) { memcpy(y, x, (size_t)n * 4); }

void q_f16_quantize_ref(const float *restrict x, void *restrict vy, int64_t n) {
    uint16_t *y = vy;
    for (int64_t i = 0; i < n; i++) y[i] = hq_f32_to_f16(x[i]);
}
void q_f16_dequantize_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const uint16_t *x = vx;
    for (int64_t i = 0; i < n; i++) y[i] = hq_f16_to_f32(x[i]);
}

void q_bf16_quantize_ref(const float *restrict x, void *restrict vy, int64_t n) {
    uint16_t *y = vy;
    for (int64_t i = 0; i < n; i++) y[i] = hq_f32_to_bf16(x[i]);
}
void q_bf16_dequantize_ref(const void *restrict vx, float *restrict y, int64_t n) {
    const uint16_t *x = vx;
    for (int64_t i = 0; i < n; i++) y[i] = hq_bf16_to_f32(x[i]);
}

/* Sequential float sums: the plain reference the SIMD versions are held to. */
void q_f32_vec_dot_ref(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const float *w = vw, *a = va;
    float sum = 0;
    for (int64_t i = 0; i < n; i++) sum += w[i] * a[i];
    *s = sum;
}
void q_f16_vec_dot_ref(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const uint16_t *w = vw;
    const float *a = va;
    float sum = 0;
    for (int64_t i = 0; i < n; i++) sum += hq_f16_to_f32(w[i]) * a[i];
    *s = sum;
}
void q_bf16_vec_dot_ref(int64_t n, float *restrict s, const void *restrict vw, const void *restrict va) {
    const uint16_t *w = vw;
    const float *a = va;
    float sum = 0;
    for (int64_t i = 0; i < n; i++) sum += hq_bf16_to_f32(w[i]) * a[i];
    *s = sum;
}
