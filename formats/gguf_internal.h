/* formats/gguf_internal.h — what the GGUF reader (gguf.c) and writer
 * (gguf_write.c) share: the byte size of each scalar value type and the
 * little-endian load. */
#ifndef HQ_FORMATS_GGUF_INTERNAL_H
#define HQ_FORMATS_GGUF_INTERNAL_H
#include "gguf.h"

/* 0 for string and array */
static const uint8_t k_vt_size[GGUF_VT_COUNT] = {
    [GGUF_VT_U8] = 1,  [GGUF_VT_I8] = 1,  [GGUF_VT_U16] = 2,  [GGUF_VT_I16] = 2, [GGUF_VT_U32] = 4,
    [GGUF_VT_I32] = 4, [GGUF_VT_F32] = 4, [GGUF_VT_BOOL] = 1, [GGUF_VT_STRING] = 0, [GGUF_VT_ARRAY] = 0,
    [GGUF_VT_U64] = 8, [GGUF_VT_I64] = 8, [GGUF_VT_F64] = 8,
};

static inline uint64_t le_u(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
#endif
