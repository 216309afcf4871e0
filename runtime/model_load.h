/* runtime/model_load.h — the loader's helpers shared by model.c (Cheems,
 * Doge) and model_otce.c (OTCE): bind a tensor by name with its shape
 * checked (marking it used), read an fp32 copy of a vector, read a key of
 * the architecture's namespace. Errors collect in the context: the first
 * hard error in st, missing required tensors listed. Private to runtime/. */
#ifndef HQ_RT_MODEL_LOAD_H
#define HQ_RT_MODEL_LOAD_H
#include "model_internal.h"

typedef struct ld_ctx {
    rt_model *m;
    fmt_gguf *g;
    char *err;
    uint8_t *used;        /* per tensor index: bound by the loader */
    char missing[320];
    int n_missing;
    hq_status st;         /* first hard error */
} ld_ctx;

/* matrix (n_out, n_in); absent and not required: w zeroed (w->data NULL) */
void rt_ld_mat(ld_ctx *c, const char *name, int64_t n_out, int64_t n_in, bool required, rt_weight *w);
/* tensor of PyTorch shape dims[0..nd) as an owned fp32 array; NULL when absent */
float *rt_ld_arr(ld_ctx *c, const char *name, int nd, const int64_t *dims, bool required);
bool rt_ld_has(ld_ctx *c, const char *name);
/* keys "<arch>.<suffix>" */
bool rt_ld_u64(ld_ctx *c, const char *suffix, uint64_t *v);
bool rt_ld_bool(ld_ctx *c, const char *suffix, bool *v);
bool rt_ld_str(ld_ctx *c, const char *suffix, fmt_gguf_str *v);
/* p (hq_malloc'ed) freed with the model; false (and c->st set) when out of memory */
bool rt_ld_own(ld_ctx *c, void *p);
#endif
