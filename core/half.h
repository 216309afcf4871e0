/* core/half.h — IEEE fp16 and bfloat16 <-> fp32 conversions (scalar, exact).
 * f16 -> f32 and bf16 -> f32 are exact; f32 -> f16/bf16 round to nearest even,
 * NaN stays NaN (quiet), overflow goes to Inf — the same results as
 * torch.Tensor.to(torch.float16 / torch.bfloat16). */
#ifndef HQ_HALF_H
#define HQ_HALF_H
#include <stdint.h>
#include <string.h>

static inline uint32_t hq_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float hq_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float hq_bf16_to_f32(uint16_t h) { return hq_bits_f32((uint32_t)h << 16); }
static inline uint16_t hq_f32_to_bf16(float f) {
    uint32_t u = hq_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

static inline float hq_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return hq_bits_f32(sign | 0x7f800000u | (man << 13)); /* inf/nan */
    if (exp == 0) {
        if (man == 0) return hq_bits_f32(sign);
        /* subnormal: man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return hq_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

/* f16 -> f32 with a NaN made quiet, as torch's fp16_ieee_to_fp32_value and
 * the F16C instruction both do (hq_f16_to_f32 keeps a signalling NaN
 * signalling) */
static inline float hq_f16_to_f32_quiet(uint16_t h) {
    float f = hq_f16_to_f32(h);
    if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) f = hq_bits_f32(hq_f32_bits(f) | 0x400000u);
    return f;
}

static inline uint16_t hq_f32_to_f16(float f) {
    uint32_t u = hq_f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
    if (a < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (a < 0x33000000u) return (uint16_t)sign; /* < 2^-25 rounds to zero */
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - e; /* 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((a >> 13) - (112u << 10));
    uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
    return (uint16_t)(sign | r);
}
#endif
