/* quant/traits.c — the q_traits table (quant/quant.h): one designated
 * initializer per ggml type id, plus the small row helpers. */
#include "quant.h"
#include "formats.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define Q_ENTRY(ID, NAME, BLCK, SIZE, QUANT, T, IMAT, DQFAST, QFAST, VDT, DOTFAST)                     \
    [ID] = {.type = ID, .name = NAME, .blck = BLCK, .type_size = SIZE, .is_quantized = QUANT,           \
            .from_float_ref = q_##T##_quantize_ref, .from_float = QFAST, .quantize_imatrix = IMAT,      \
            .to_float_ref = q_##T##_dequantize_ref, .to_float = DQFAST, .vec_dot_type = VDT,            \
            .vec_dot_ref = q_##T##_vec_dot_ref, .vec_dot = DOTFAST}

static const q_type_traits g_traits[GGML_T_COUNT] = {
    Q_ENTRY(GGML_T_F32, "F32", 1, 4, false, f32, NULL, q_f32_dequantize_ref, q_f32_quantize_ref, GGML_T_F32,
            q_f32_vec_dot_fast),
    Q_ENTRY(GGML_T_F16, "F16", 1, 2, false, f16, NULL, q_f16_dequantize_fast, q_f16_quantize_fast, GGML_T_F32,
            q_f16_vec_dot_fast),
    Q_ENTRY(GGML_T_BF16, "BF16", 1, 2, false, bf16, NULL, q_bf16_dequantize_fast, q_bf16_quantize_ref,
            GGML_T_F32, q_bf16_vec_dot_fast),
    Q_ENTRY(GGML_T_Q8_0, "Q8_0", 32, 34, true, q8_0, NULL, q_q8_0_dequantize_fast, q_q8_0_quantize_fast,
            GGML_T_Q8_0, q_q8_0_vec_dot_fast),
    Q_ENTRY(GGML_T_Q4_0, "Q4_0", 32, 18, true, q4_0, q_q4_0_quantize_imatrix, q_q4_0_dequantize_fast,
            q_q4_0_quantize_fast, GGML_T_Q8_0, q_q4_0_vec_dot_fast),
    Q_ENTRY(GGML_T_Q4_1, "Q4_1", 32, 20, true, q4_1, q_q4_1_quantize_imatrix, q_q4_1_dequantize_ref,
            q_q4_1_quantize_ref, GGML_T_Q8_0, q_q4_1_vec_dot_fast),
    Q_ENTRY(GGML_T_Q5_0, "Q5_0", 32, 22, true, q5_0, q_q5_0_quantize_imatrix, q_q5_0_dequantize_ref,
            q_q5_0_quantize_ref, GGML_T_Q8_0, q_q5_0_vec_dot_fast),
    Q_ENTRY(GGML_T_Q5_1, "Q5_1", 32, 24, true, q5_1, q_q5_1_quantize_imatrix, q_q5_1_dequantize_ref,
            q_q5_1_quantize_ref, GGML_T_Q8_0, q_q5_1_vec_dot_fast),
    Q_ENTRY(GGML_T_IQ4_NL, "IQ4_NL", 32, 18, true, iq4_nl, q_iq4_nl_quantize_imatrix, q_iq4_nl_dequantize_ref,
            q_iq4_nl_quantize_ref, GGML_T_Q8_0, q_iq4_nl_vec_dot_fast),
    Q_ENTRY(GGML_T_Q4_K, "Q4_K", 256, 144, true, q4_K, q_q4_K_quantize_imatrix, q_q4_K_dequantize_fast,
            q_q4_K_quantize_fast, GGML_T_Q8_K, q_q4_K_vec_dot_fast),
    Q_ENTRY(GGML_T_Q5_K, "Q5_K", 256, 176, true, q5_K, q_q5_K_quantize_imatrix, q_q5_K_dequantize_ref,
            q_q5_K_quantize_fast, GGML_T_Q8_K, q_q5_K_vec_dot_fast),
    Q_ENTRY(GGML_T_Q6_K, "Q6_K", 256, 210, true, q6_K, q_q6_K_quantize_imatrix, q_q6_K_dequantize_fast,
            q_q6_K_quantize_fast, GGML_T_Q8_K, q_q6_K_vec_dot_fast),
    Q_ENTRY(GGML_T_Q2_K, "Q2_K", 256, 84, true, q2_K, q_q2_K_quantize_imatrix, q_q2_K_dequantize_ref,
            q_q2_K_quantize_ref, GGML_T_Q8_K, q_q2_K_vec_dot_fast),
    Q_ENTRY(GGML_T_Q3_K, "Q3_K", 256, 110, true, q3_K, q_q3_K_quantize_imatrix, q_q3_K_dequantize_ref,
            q_q3_K_quantize_ref, GGML_T_Q8_K, q_q3_K_vec_dot_fast),
    /* Q8_K is an activation type only: no dot of its own */
    [GGML_T_Q8_K] = {.type = GGML_T_Q8_K, .name = "Q8_K", .blck = 256, .type_size = 292, .is_quantized = true,
                     .from_float_ref = q_q8_K_quantize_ref, .from_float = q_q8_K_quantize_fast,
                     .quantize_imatrix = NULL, .to_float_ref = q_q8_K_dequantize_ref,
                     .to_float = q_q8_K_dequantize_ref, .vec_dot_type = GGML_T_Q8_K, .vec_dot_ref = NULL,
                     .vec_dot = NULL},
};

const q_type_traits *q_traits(uint32_t type) {
    if (type >= GGML_T_COUNT || !g_traits[type].name) return NULL;
    return &g_traits[type];
}

bool q_row_is_finite(const float *x, int64_t n) {
    /* exponent all ones = Inf or NaN; integer test so -ffast-math-proof */
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        bad |= ((u & 0x7f800000u) == 0x7f800000u);
    }
    return !bad;
}

bool q_row_can_to_f32(uint32_t type) {
    const q_type_traits *t = q_traits(type);
    return t && (t->to_float || t->to_float_ref);
}

void q_row_to_f32(uint32_t type, const void *src, float *dst, int64_t n) {
    const q_type_traits *t = q_traits(type);
    (t->to_float ? t->to_float : t->to_float_ref)(src, dst, n);
}

uint64_t q_quantize_rows(uint32_t type, const float *x, void *y, int64_t nrows, int64_t n_per_row,
                         const float *imatrix) {
    const q_type_traits *t = q_traits(type);
    if (!t || !t->from_float_ref || nrows < 0 || n_per_row <= 0 || n_per_row % t->blck) return 0;
    const uint64_t row_bytes = (uint64_t)(n_per_row / t->blck) * t->type_size;
    uint8_t *out = y;
    for (int64_t r = 0; r < nrows; r++) {
        const float *xr = x + r * n_per_row;
        if (t->quantize_imatrix) t->quantize_imatrix(xr, out + (uint64_t)r * row_bytes, n_per_row, imatrix);
        else t->from_float(xr, out + (uint64_t)r * row_bytes, n_per_row);
    }
    return row_bytes * (uint64_t)nrows;
}
