/* fuzz/fuzz_gguf.c — the GGUF reader (fmt_gguf_open_buffer) on arbitrary
 * bytes: every key/value through the typed getters, every tensor located and
 * checked inside the input, and the first row of each small tensor with a
 * block kernel dequantized by the fast path and its scalar _ref twin. */
#include "fuzz_common.h"
#include "../formats/gguf.h"
#include "../quant/quant.h"

#include <math.h>

static void gguf_dequant_check(const fmt_gguf_tensor *t) {
    const q_type_traits *tr = q_traits(t->type);
    if (!tr || !tr->to_float || !tr->to_float_ref || tr->blck <= 0) return;
    uint64_t ne0 = t->ne[0], rb;
    if (ne0 > 4096 || ne0 % (uint64_t)tr->blck || !ggml_row_bytes(t->type, ne0, &rb) || rb > t->nbytes) return;
    float *a = hq_malloc(ne0 * sizeof(float)), *b = hq_malloc(ne0 * sizeof(float));
    if (a && b) {
        tr->to_float(t->data, a, (int64_t)ne0);
        tr->to_float_ref(t->data, b, (int64_t)ne0);
        for (uint64_t i = 0; i < ne0; i++) {
            if (!isfinite(a[i]) || !isfinite(b[i])) continue; /* FMA may differ at overflow */
            float tol = 1e-5f * fmaxf(fabsf(a[i]), fabsf(b[i])) + 1e-30f;
            FZ_ASSERT(fabsf(a[i] - b[i]) <= tol, "tensor '%s' (%s) elem %llu: fast %g vs ref %g", t->name,
                      tr->name, (unsigned long long)i, (double)a[i], (double)b[i]);
        }
    }
    hq_free(a);
    hq_free(b);
}

int fuzz_gguf(const uint8_t *d, size_t n) {
    char err[HQ_ERR_LEN] = "";
    fmt_gguf *g = NULL;
    hq_status st = fmt_gguf_open_buffer(d, n, "fuzz.gguf", &g, err);
    if (st) {
        fz_check_err(st, err);
        FZ_ASSERT(g == NULL, "handle returned on failure");
        return 0;
    }
    for (uint64_t i = 0; i < fmt_gguf_n_kv(g); i++) {
        const fmt_gguf_kv *kv = fmt_gguf_kv_at(g, i);
        FZ_ASSERT(kv && kv->key && fmt_gguf_find_kv(g, kv->key) == kv, "kv %llu not found by key",
                  (unsigned long long)i);
        uint32_t u32;
        uint64_t u64;
        float f;
        bool b;
        fmt_gguf_str s;
        (void)fmt_gguf_get_u32(g, kv->key, &u32);
        (void)fmt_gguf_get_u64(g, kv->key, &u64);
        (void)fmt_gguf_get_f32(g, kv->key, &f);
        (void)fmt_gguf_get_bool(g, kv->key, &b);
        if (fmt_gguf_get_str(g, kv->key, &s))
            FZ_ASSERT((const uint8_t *)s.s >= d && (uint64_t)((const uint8_t *)s.s - d) + s.len <= n,
                      "string value of '%s' outside the input", kv->key);
        if (kv->type == GGUF_VT_ARRAY) {
            FZ_ASSERT(kv->v.arr.nbytes <= n, "array '%s' larger than the input", kv->key);
            if (kv->v.arr.type == GGUF_VT_STRING)
                for (uint64_t k = 0; k < kv->v.arr.n; k++)
                    FZ_ASSERT((const uint8_t *)kv->v.arr.strs[k].s >= d &&
                                  (uint64_t)((const uint8_t *)kv->v.arr.strs[k].s - d) + kv->v.arr.strs[k].len <= n,
                              "string %llu of '%s' outside the input", (unsigned long long)k, kv->key);
        }
    }
    uint32_t align = fmt_gguf_alignment(g);
    FZ_ASSERT(align && !(align & (align - 1)) && align <= HQ_MAX_GGUF_ALIGN, "alignment %u", align);
    /* a file without tensors may end before the data section's padding (as ggml accepts) */
    FZ_ASSERT(fmt_gguf_n_tensors(g) == 0 || fmt_gguf_data_offset(g) <= n, "data offset beyond the input");
    for (uint64_t i = 0; i < fmt_gguf_n_tensors(g); i++) {
        const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
        FZ_ASSERT(t && fmt_gguf_find_tensor(g, t->name) == t, "tensor %llu not found by name",
                  (unsigned long long)i);
        FZ_ASSERT(t->n_dims >= 1 && t->n_dims <= 4, "n_dims %u", t->n_dims);
        FZ_ASSERT(t->nbytes == 0 || ((const uint8_t *)t->data >= d &&
                                     (uint64_t)((const uint8_t *)t->data - d) <= n &&
                                     t->nbytes <= n - (uint64_t)((const uint8_t *)t->data - d)),
                  "tensor '%s' data outside the input", t->name);
        gguf_dequant_check(t);
    }
    fmt_gguf_close(g);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return fuzz_gguf(d, n); }
#endif
