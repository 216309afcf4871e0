/* cuda/embed.cu — embedding gather h⁰_t = Emb[token_t] (any weight storage
 * type, dequantized element-wise as quant/ to_float_ref does): one thread per
 * output element. Tokens must be in [0, n_out) (the forward checks them). */
#include "cu_kern.h"

typedef struct {
    const uint8_t *w;
    uint32_t type;
    int64_t d;
    uint64_t rb;
    const int32_t *tok;
    int64_t n;
    float *out;
} k_embed_args;

HQ_KERNEL(k_embed, k_embed_args) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= a.n * a.d) return;
    int64_t t = i / a.d, e = i % a.d;
    a.out[i] = cu_deq1(a.type, a.w + (uint64_t)a.tok[t] * a.rb, e);
}

CU_API int CU_SYM(cu_embed)(const cu_wt *w, const int32_t *tokens, int64_t n, float *out) {
    if (n <= 0) return 0;
    k_embed_args a = {(const uint8_t *)w->data, w->type, w->n_in, w->row_bytes, tokens, n, out};
    return CU_GO(k_embed, k_embed_args, hq_dim3(cu_blocks(n * w->n_in, 256), 1, 1), hq_dim3(256, 1, 1), a);
}
