/* runtime/matmul.c — y = x·Wᵀ (+ b) for every weight storage type.
 * PyTorch: y = F.linear(x, W, b), W [n_out, n_in].
 *
 * F32/F16/BF16 (optimized):
 *   - n_tok == 1 (decode): matrix-vector, rows split over threads, the weight
 *     row converted on the fly (F16C / bf16 shift) inside the dot product.
 *   - n_tok > 1 (prefill): blocks of RB rows per task; the block is converted
 *     to fp32 once into a per-thread buffer and multiplied with every token
 *     by a 3-row × 4-token AVX2 micro-kernel (12 accumulators), so each weight
 *     byte is read once per call and each activation row once per block.
 * Block-quantized types (quant/quant.h): each activation row is converted to
 * q_traits(type)->vec_dot_type once, then the tiled kernels of gemm_q.c
 * (bit-identical to vec_dot per element) or vec_dot per (weight row, token).
 * Accumulation is fp32 (the _ref twin accumulates in double). */
#include "rt_cpu.h" // defines: RT_OMP, RT_AVX2
#include "gemm_q.h" // defines: rt_gemm_q_rows (tiled block-type kernels)
#include "../core/half.h"
#include "../core/vec.h" // defines: hq_dot_f32, hq_dot_f16_f32, hq_dot_bf16_f32
#include "../quant/quant.h"

#include <string.h>

#define RB 48 /* weight rows per task (multiple of the kernel's 3) */

static bool is_float_type(uint32_t t) { return t == GGML_T_F32 || t == GGML_T_F16 || t == GGML_T_BF16; }

static const uint8_t *wrow(const rt_weight *w, int64_t r) {
    return (const uint8_t *)w->data + (uint64_t)r * w->row_bytes;
}

/* activation conversion for block types: F32 needs none */
static uint64_t act_row_bytes(const q_type_traits *tr, int64_t n_in) {
    if (tr->vec_dot_type == GGML_T_F32) return (uint64_t)n_in * 4;
    const q_type_traits *vt = q_traits(tr->vec_dot_type);
    return (uint64_t)(n_in / vt->blck) * vt->type_size;
}
static void act_convert(const q_type_traits *tr, bool ref, const float *x, void *dst, int64_t n_in) {
    if (tr->vec_dot_type == GGML_T_F32) {
        memcpy(dst, x, (size_t)n_in * 4);
        return;
    }
    const q_type_traits *vt = q_traits(tr->vec_dot_type);
    (ref ? vt->from_float_ref : vt->from_float)(x, dst, n_in);
}

static hq_status quant_matmul(const rt_weight *w, const float *x, float *y, int64_t n_tok, bool ref, char *err) {
    const q_type_traits *tr = q_traits(w->type);
    uint64_t arb = act_row_bytes(tr, w->n_in);
    uint8_t *buf = hq_malloc_array((size_t)n_tok, (size_t)arb);
    if (!buf) return hq_fail(err, HQ_ERR_NOMEM, "matmul '%s': out of memory for %lld activation rows", w->name,
                             (long long)n_tok);
    q_vec_dot_fn dot = ref ? tr->vec_dot_ref : tr->vec_dot;
    if (!dot) dot = tr->vec_dot;
    if (ref) {
        for (int64_t t = 0; t < n_tok; t++) act_convert(tr, true, x + t * w->n_in, buf + t * arb, w->n_in);
        for (int64_t o = 0; o < w->n_out; o++)
            for (int64_t t = 0; t < n_tok; t++) dot(w->n_in, &y[t * w->n_out + o], wrow(w, o), buf + t * arb);
    } else {
        RT_OMP("omp parallel for schedule(static) if(n_tok > 1)")
        for (int64_t t = 0; t < n_tok; t++) act_convert(tr, false, x + t * w->n_in, buf + t * arb, w->n_in);
        int64_t nb = (w->n_out + 15) / 16, work = n_tok * w->n_out * w->n_in;
        (void)work; /* used by the OpenMP clause only */
        bool tiles = rt_gemm_q_supported(w->type);
        RT_OMP("omp parallel for schedule(dynamic, 1) if(work > (1 << 20))")
        for (int64_t b = 0; b < nb; b++) {
            int64_t o0 = b * 16, o1 = o0 + 16 < w->n_out ? o0 + 16 : w->n_out;
            if (tiles) {
                rt_gemm_q_rows(w, buf, arb, y, n_tok, o0, o1);
                continue;
            }
            for (int64_t t = 0; t < n_tok; t++)
                for (int64_t o = o0; o < o1; o++) dot(w->n_in, &y[t * w->n_out + o], wrow(w, o), buf + t * arb);
        }
    }
    hq_free(buf);
    return HQ_OK;
}

static void add_bias(float *y, const float *bias, int64_t n_tok, int64_t n_out) {
    if (!bias) return;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t o = 0; o < n_out; o++) y[t * n_out + o] += bias[o];
}

hq_status rt_matmul_ref(const rt_weight *w, const float *x, float *y, int64_t n_tok, const float *bias, char *err) {
    hq_status st = rt_weight_check(w, err);
    if (st != HQ_OK) return st;
    if (!is_float_type(w->type)) {
        st = quant_matmul(w, x, y, n_tok, true, err);
        if (st == HQ_OK) add_bias(y, bias, n_tok, w->n_out);
        return st;
    }
    float *row = hq_malloc_array((size_t)w->n_in, sizeof(float));
    if (!row) return hq_fail(err, HQ_ERR_NOMEM, "matmul '%s': out of memory", w->name);
    for (int64_t o = 0; o < w->n_out; o++) {
        rt_weight_row_f32(w, o, row);
        for (int64_t t = 0; t < n_tok; t++) {
            const float *xt = x + t * w->n_in;
            double s = 0;
            for (int64_t i = 0; i < w->n_in; i++) s += (double)row[i] * xt[i];
            y[t * w->n_out + o] = (float)s;
        }
    }
    hq_free(row);
    add_bias(y, bias, n_tok, w->n_out);
    return HQ_OK;
}

/* one weight row (any float type) · one fp32 vector (core/vec.h: the level
 * picks scalar or AVX2; the rounding is documented there) */
static float row_dot(const void *r, uint32_t type, const float *x, int64_t n) {
    if (type == GGML_T_F16) return hq_dot_f16_f32(r, x, n);
    if (type == GGML_T_BF16) return hq_dot_bf16_f32(r, x, n);
    return hq_dot_f32(r, x, n);
}

/* ---------------- portable fast path ---------------- */

static void block_generic(const rt_weight *w, const float *x, float *y, int64_t n_tok, int64_t o0, int64_t o1,
                          float *buf) {
    int64_t n = w->n_in;
    for (int64_t o = o0; o < o1; o++) {
        const float *r;
        if (w->type == GGML_T_F32) {
            r = (const float *)wrow(w, o);
        } else {
            rt_weight_row_f32(w, o, buf);
            r = buf;
        }
        for (int64_t t = 0; t < n_tok; t++) y[t * w->n_out + o] = hq_dot_f32(r, x + t * n, n);
    }
}

/* ---------------- AVX2 fast path ---------------- */
#if RT_X86
RT_AVX2 static inline __m256 load8(const void *p, uint32_t type, int64_t i) {
    if (type == GGML_T_F32) return _mm256_loadu_ps((const float *)p + i);
    const uint16_t *h = (const uint16_t *)p + i;
    return type == GGML_T_F16 ? hq_f16x8(h) : hq_bf16x8(h);
}
static inline float load1(const void *p, uint32_t type, int64_t i) {
    if (type == GGML_T_F32) return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return type == GGML_T_F16 ? hq_f16_to_f32(h) : hq_bf16_to_f32(h);
}


/* out[3][4] = rows w0..w2 · tokens x0..x3 (fp32, n elements) */
RT_AVX2 static void kernel_3x4(const float *w0, const float *w1, const float *w2, const float *x0, const float *x1,
                               const float *x2, const float *x3, int64_t n, float out[3][4]) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00;
    __m256 c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m256 c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a0 = _mm256_loadu_ps(w0 + i), a1 = _mm256_loadu_ps(w1 + i), a2 = _mm256_loadu_ps(w2 + i);
        __m256 b = _mm256_loadu_ps(x0 + i);
        c00 = _mm256_fmadd_ps(a0, b, c00); c10 = _mm256_fmadd_ps(a1, b, c10); c20 = _mm256_fmadd_ps(a2, b, c20);
        b = _mm256_loadu_ps(x1 + i);
        c01 = _mm256_fmadd_ps(a0, b, c01); c11 = _mm256_fmadd_ps(a1, b, c11); c21 = _mm256_fmadd_ps(a2, b, c21);
        b = _mm256_loadu_ps(x2 + i);
        c02 = _mm256_fmadd_ps(a0, b, c02); c12 = _mm256_fmadd_ps(a1, b, c12); c22 = _mm256_fmadd_ps(a2, b, c22);
        b = _mm256_loadu_ps(x3 + i);
        c03 = _mm256_fmadd_ps(a0, b, c03); c13 = _mm256_fmadd_ps(a1, b, c13); c23 = _mm256_fmadd_ps(a2, b, c23);
    }
    out[0][0] = hq_hsum_ps(c00); out[0][1] = hq_hsum_ps(c01); out[0][2] = hq_hsum_ps(c02); out[0][3] = hq_hsum_ps(c03);
    out[1][0] = hq_hsum_ps(c10); out[1][1] = hq_hsum_ps(c11); out[1][2] = hq_hsum_ps(c12); out[1][3] = hq_hsum_ps(c13);
    out[2][0] = hq_hsum_ps(c20); out[2][1] = hq_hsum_ps(c21); out[2][2] = hq_hsum_ps(c22); out[2][3] = hq_hsum_ps(c23);
    for (; i < n; i++) {
        const float *ws[3] = {w0, w1, w2}, *xs[4] = {x0, x1, x2, x3};
        for (int r = 0; r < 3; r++)
            for (int t = 0; t < 4; t++) out[r][t] += ws[r][i] * xs[t][i];
    }
}

/* rows o0..o1 (≤ RB) of w times all tokens; buf holds RB converted rows */
RT_AVX2 static void block_avx2(const rt_weight *w, const float *x, float *y, int64_t n_tok, int64_t o0, int64_t o1,
                               float *buf) {
    int64_t n = w->n_in, nr = o1 - o0;
    const float *rows[RB];
    for (int64_t r = 0; r < nr; r++) {
        if (w->type == GGML_T_F32) {
            rows[r] = (const float *)wrow(w, o0 + r);
        } else {
            rt_weight_row_f32(w, o0 + r, buf + r * n);
            rows[r] = buf + r * n;
        }
    }
    for (int64_t t = 0; t < n_tok; t += 4) {
        int64_t nt = n_tok - t < 4 ? n_tok - t : 4;
        const float *xs[4];
        for (int64_t k = 0; k < 4; k++) xs[k] = x + (t + (k < nt ? k : nt - 1)) * n; /* edge: repeat last token */
        for (int64_t r = 0; r < nr; r += 3) {
            int64_t rr = nr - r < 3 ? nr - r : 3;
            const float *w0 = rows[r], *w1 = rows[r + (rr > 1 ? 1 : 0)], *w2 = rows[r + (rr > 2 ? 2 : 0)];
            float out[3][4];
            kernel_3x4(w0, w1, w2, xs[0], xs[1], xs[2], xs[3], n, out);
            for (int64_t a = 0; a < rr; a++)
                for (int64_t k = 0; k < nt; k++) y[(t + k) * w->n_out + o0 + r + a] = out[a][k];
        }
    }
}
#endif

/* gathered-row helpers for float storage (expert tables) */
float rt_row_dot(const rt_weight *w, int64_t r, const float *x) { return row_dot(wrow(w, r), w->type, x, w->n_in); }

#if RT_X86
RT_AVX2 static void axpy_row_avx2(const void *r, uint32_t type, float a, float *y, int64_t n) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, load8(r, type, i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * load1(r, type, i);
}
#endif

void rt_row_axpy(const rt_weight *w, int64_t r, float a, float *y) {
#if RT_X86
    if (rt_cpu_has_avx2()) {
        axpy_row_avx2(wrow(w, r), w->type, a, y, w->n_in);
        return;
    }
#endif
    const void *p = wrow(w, r);
    for (int64_t i = 0; i < w->n_in; i++) {
        float v = w->type == GGML_T_F32 ? ((const float *)p)[i]
                  : w->type == GGML_T_F16 ? hq_f16_to_f32(((const uint16_t *)p)[i])
                                          : hq_bf16_to_f32(((const uint16_t *)p)[i]);
        y[i] += a * v;
    }
}

hq_status rt_matmul(const rt_weight *w, const float *x, float *y, int64_t n_tok, const float *bias, char *err) {
    if (rt_ops_ref()) return rt_matmul_ref(w, x, y, n_tok, bias, err);
    hq_status st = rt_weight_check(w, err);
    if (st != HQ_OK) return st;
    if (n_tok <= 0) return HQ_OK;
    if (!is_float_type(w->type)) {
        st = quant_matmul(w, x, y, n_tok, false, err);
        if (st == HQ_OK) add_bias(y, bias, n_tok, w->n_out);
        return st;
    }
    bool avx2 = false;
#if RT_X86
    avx2 = rt_cpu_has_avx2();
    if (avx2 && n_tok == 1) {
        RT_OMP("omp parallel for schedule(static) if(w->n_out * w->n_in > (1 << 20))") /* small: a fork-join costs more */
        for (int64_t o = 0; o < w->n_out; o++) y[o] = row_dot(wrow(w, o), w->type, x, w->n_in);
        add_bias(y, bias, n_tok, w->n_out);
        return HQ_OK;
    }
#endif
    int nth = rt_n_threads();
    int64_t per = avx2 ? RB : 1;
    float *scratch = NULL;
    if (w->type != GGML_T_F32) {
        uint64_t nfl;
        if (!hq_mul_u64((uint64_t)nth * (uint64_t)per, (uint64_t)w->n_in, &nfl) ||
            !(scratch = hq_malloc_array((size_t)nfl, sizeof(float))))
            return hq_fail(err, HQ_ERR_NOMEM, "matmul '%s': out of memory for conversion buffers", w->name);
    }
    int64_t nb = (w->n_out + RB - 1) / RB, work = n_tok * w->n_out * w->n_in;
    (void)work; /* used by the OpenMP clause only */
    RT_OMP("omp parallel for schedule(dynamic, 1) if(work > (1 << 18))")
    for (int64_t b = 0; b < nb; b++) {
        int64_t o0 = b * RB, o1 = o0 + RB < w->n_out ? o0 + RB : w->n_out;
        float *buf = scratch ? scratch + (int64_t)rt_thread_id() * per * w->n_in : NULL;
#if RT_X86
        if (avx2) {
            block_avx2(w, x, y, n_tok, o0, o1, buf);
            continue;
        }
#endif
        block_generic(w, x, y, n_tok, o0, o1, buf);
    }
    hq_free(scratch);
    add_bias(y, bias, n_tok, w->n_out);
    return HQ_OK;
}
