/* formats/ggml_types.h — ggml tensor type ids and their storage sizes
 * (ggml-org/ggml include/ggml.h enum ggml_type; ggml-common.h block sizes).
 * Ids are part of the GGUF format: never renumber. Block layouts and
 * quantize/dequantize code live in quant/ (quant/quant.h). */
#ifndef HQ_GGML_TYPES_H
#define HQ_GGML_TYPES_H
#include <stdbool.h>
#include <stdint.h>

enum {
    GGML_T_F32 = 0, GGML_T_F16 = 1, GGML_T_Q4_0 = 2, GGML_T_Q4_1 = 3,
    GGML_T_Q5_0 = 6, GGML_T_Q5_1 = 7, GGML_T_Q8_0 = 8, GGML_T_Q8_1 = 9,
    GGML_T_Q2_K = 10, GGML_T_Q3_K = 11, GGML_T_Q4_K = 12, GGML_T_Q5_K = 13,
    GGML_T_Q6_K = 14, GGML_T_Q8_K = 15, GGML_T_IQ2_XXS = 16, GGML_T_IQ2_XS = 17,
    GGML_T_IQ3_XXS = 18, GGML_T_IQ1_S = 19, GGML_T_IQ4_NL = 20, GGML_T_IQ3_S = 21,
    GGML_T_IQ2_S = 22, GGML_T_IQ4_XS = 23, GGML_T_I8 = 24, GGML_T_I16 = 25,
    GGML_T_I32 = 26, GGML_T_I64 = 27, GGML_T_F64 = 28, GGML_T_IQ1_M = 29,
    GGML_T_BF16 = 30, GGML_T_TQ1_0 = 34, GGML_T_TQ2_0 = 35, GGML_T_MXFP4 = 39,
    GGML_T_COUNT = 40
};

typedef struct {
    const char *name;   /* "Q4_K"; NULL for ids that are unused/removed */
    uint32_t blck;      /* elements per block (1 for plain types) */
    uint32_t size;      /* bytes per block */
} ggml_type_info;

/* NULL for unknown or removed ids */
const ggml_type_info *ggml_type_get(uint32_t type);
const char *ggml_type_name(uint32_t type); /* "?" when unknown */
/* type id for a name like "q4_k"/"Q4_K"/"f16"; -1 when unknown */
int ggml_type_from_name(const char *name);
/* bytes for one row of ne0 elements; false if ne0 is not a multiple of the
 * block size or on overflow */
bool ggml_row_bytes(uint32_t type, uint64_t ne0, uint64_t *bytes);
/* bytes for a tensor of nrows rows of ne0; false on misfit/overflow */
bool ggml_tensor_bytes(uint32_t type, uint64_t ne0, uint64_t nrows, uint64_t *bytes);
#endif
