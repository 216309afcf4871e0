/* formats/ggml_types.c — see ggml_types.h */
#include "ggml_types.h" // defines: ggml_type_get, ggml_row_bytes
#include "../core/hq.h"

#include <strings.h>

static const ggml_type_info k_types[GGML_T_COUNT] = {
    [GGML_T_F32] = {"F32", 1, 4},         [GGML_T_F16] = {"F16", 1, 2},
    [GGML_T_Q4_0] = {"Q4_0", 32, 18},     [GGML_T_Q4_1] = {"Q4_1", 32, 20},
    [GGML_T_Q5_0] = {"Q5_0", 32, 22},     [GGML_T_Q5_1] = {"Q5_1", 32, 24},
    [GGML_T_Q8_0] = {"Q8_0", 32, 34},     [GGML_T_Q8_1] = {"Q8_1", 32, 36},
    [GGML_T_Q2_K] = {"Q2_K", 256, 84},    [GGML_T_Q3_K] = {"Q3_K", 256, 110},
    [GGML_T_Q4_K] = {"Q4_K", 256, 144},   [GGML_T_Q5_K] = {"Q5_K", 256, 176},
    [GGML_T_Q6_K] = {"Q6_K", 256, 210},   [GGML_T_Q8_K] = {"Q8_K", 256, 292},
    [GGML_T_IQ2_XXS] = {"IQ2_XXS", 256, 66}, [GGML_T_IQ2_XS] = {"IQ2_XS", 256, 74},
    [GGML_T_IQ3_XXS] = {"IQ3_XXS", 256, 98}, [GGML_T_IQ1_S] = {"IQ1_S", 256, 50},
    [GGML_T_IQ4_NL] = {"IQ4_NL", 32, 18}, [GGML_T_IQ3_S] = {"IQ3_S", 256, 110},
    [GGML_T_IQ2_S] = {"IQ2_S", 256, 82},  [GGML_T_IQ4_XS] = {"IQ4_XS", 256, 136},
    [GGML_T_I8] = {"I8", 1, 1},           [GGML_T_I16] = {"I16", 1, 2},
    [GGML_T_I32] = {"I32", 1, 4},         [GGML_T_I64] = {"I64", 1, 8},
    [GGML_T_F64] = {"F64", 1, 8},         [GGML_T_IQ1_M] = {"IQ1_M", 256, 56},
    [GGML_T_BF16] = {"BF16", 1, 2},       [GGML_T_TQ1_0] = {"TQ1_0", 256, 54},
    [GGML_T_TQ2_0] = {"TQ2_0", 256, 66},  [GGML_T_MXFP4] = {"MXFP4", 32, 17},
};

const ggml_type_info *ggml_type_get(uint32_t type) {
    if (type >= GGML_T_COUNT || !k_types[type].name) return NULL;
    return &k_types[type];
}

const char *ggml_type_name(uint32_t type) {
    const ggml_type_info *t = ggml_type_get(type);
    return t ? t->name : "?";
}

int ggml_type_from_name(const char *name) {
    for (int i = 0; i < GGML_T_COUNT; i++)
        if (k_types[i].name && strcasecmp(k_types[i].name, name) == 0) return i;
    return -1;
}

bool ggml_row_bytes(uint32_t type, uint64_t ne0, uint64_t *bytes) {
    const ggml_type_info *t = ggml_type_get(type);
    if (!t || ne0 % t->blck) return false;
    return hq_mul_u64(ne0 / t->blck, t->size, bytes);
}

bool ggml_tensor_bytes(uint32_t type, uint64_t ne0, uint64_t nrows, uint64_t *bytes) {
    uint64_t rb;
    return ggml_row_bytes(type, ne0, &rb) && hq_mul_u64(rb, nrows, bytes);
}
