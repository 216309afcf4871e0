/* quant/gptq.c — GPTQ onto ggml block formats; algorithm in gptq.h */
#include "gptq.h" // defines: q_gptq_quantize, q_gptq_loss
#include "../core/omp.h"
#include "../core/half.h"
#include "formats.h"
#include "quant.h"

#include <math.h>
#include <string.h>

/* ---- per-element grids of the block formats (layouts in quant/formats.h) ----
 * grid_set(type, blk, i, w) rounds w to the nearest value representable at
 * element i of the block with the block's scales fixed, stores the code in
 * blk and returns the dequantized value (the same float expression as the
 * format's dequantizer). */

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
static inline int rnd(float v) { return (int)nearbyintf(v); }

static void set_nib(uint8_t *qs, int i, int q) { /* 32-blocks: j low, j+16 high */
    if (i < 16) qs[i] = (uint8_t)((qs[i] & 0xF0) | q);
    else qs[i - 16] = (uint8_t)((qs[i - 16] & 0x0F) | (q << 4));
}

static bool grid_supported(uint32_t t) {
    switch (t) {
    case GGML_T_Q8_0: case GGML_T_Q4_0: case GGML_T_Q4_1: case GGML_T_Q5_0: case GGML_T_IQ4_NL:
    case GGML_T_Q4_K: case GGML_T_Q5_K: case GGML_T_Q6_K: case GGML_T_Q2_K: case GGML_T_Q3_K: return true;
    default: return false;
    }
}

/* the 2 low bits of element i of a Q2_K / Q3_K super-block (formats.h) */
static void set_2bit(uint8_t *qs, int i, int q) {
    uint8_t *p = &qs[32 * (i / 128) + i % 32];
    const int sh = 2 * ((i % 128) / 32);
    *p = (uint8_t)((*p & ~(3u << sh)) | ((unsigned)(q & 3) << sh));
}

static float grid_set(uint32_t t, void *blk, int i, float w) {
    switch (t) {
    case GGML_T_Q8_0: {
        q_block_q8_0 *b = blk;
        float d = hq_f16_to_f32(b->d);
        int q = d != 0 ? clampi(rnd(w / d), -128, 127) : 0;
        b->qs[i] = (int8_t)q;
        return q * d;
    }
    case GGML_T_Q4_0: {
        q_block_q4_0 *b = blk;
        float d = hq_f16_to_f32(b->d);
        int q = d != 0 ? clampi(rnd(w / d) + 8, 0, 15) : 8;
        set_nib(b->qs, i, q);
        return (float)(q - 8) * d;
    }
    case GGML_T_Q4_1: {
        q_block_q4_1 *b = blk;
        float d = hq_f16_to_f32(b->d), m = hq_f16_to_f32(b->m);
        int q = d != 0 ? clampi(rnd((w - m) / d), 0, 15) : 0;
        set_nib(b->qs, i, q);
        return (float)q * d + m;
    }
    case GGML_T_Q5_0: {
        q_block_q5_0 *b = blk;
        float d = hq_f16_to_f32(b->d);
        int q = d != 0 ? clampi(rnd(w / d) + 16, 0, 31) : 16;
        set_nib(b->qs, i, q & 15);
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        qh = (qh & ~(1u << i)) | ((uint32_t)(q >> 4) << i);
        memcpy(b->qh, &qh, 4);
        return (float)(q - 16) * d;
    }
    case GGML_T_IQ4_NL: {
        q_block_iq4_nl *b = blk;
        float d = hq_f16_to_f32(b->d);
        int best = 0;
        float be = INFINITY;
        for (int k = 0; k < 16; k++) {
            float e = fabsf(d * q_iq4nl_values[k] - w);
            if (e < be) be = e, best = k;
        }
        set_nib(b->qs, i, best);
        return d * q_iq4nl_values[best];
    }
    case GGML_T_Q4_K:
    case GGML_T_Q5_K: {
        const bool five = t == GGML_T_Q5_K;
        uint16_t dh, mh;
        const uint8_t *scales;
        uint8_t *qs, *qhp = NULL;
        if (five) {
            q_block_q5_K *b = blk;
            dh = b->d, mh = b->dmin, scales = b->scales, qs = b->qs, qhp = b->qh;
        } else {
            q_block_q4_K *b = blk;
            dh = b->d, mh = b->dmin, scales = b->scales, qs = b->qs;
        }
        uint8_t sc, m;
        q_get_scale_min_k4(i / 32, scales, &sc, &m);
        /* value = d·sc·q − dmin·m */
        const float d1 = hq_f16_to_f32(dh) * sc, m1 = hq_f16_to_f32(mh) * m;
        const int qmax = five ? 31 : 15;
        int q = d1 != 0 ? clampi(rnd((w + m1) / d1), 0, qmax) : 0;
        int c = i / 64, l = i % 32, hi = (i % 64) >= 32;
        uint8_t *p = &qs[32 * c + l];
        *p = hi ? (uint8_t)((*p & 0x0F) | ((q & 15) << 4)) : (uint8_t)((*p & 0xF0) | (q & 15));
        if (five) {
            int bit = 2 * c + hi;
            qhp[l] = (uint8_t)((qhp[l] & ~(1u << bit)) | ((unsigned)(q >> 4) << bit));
        }
        return d1 * (float)q - m1;
    }
    case GGML_T_Q6_K: {
        q_block_q6_K *b = blk;
        const float d = hq_f16_to_f32(b->d);
        const int sc = b->scales[i / 16];
        const float a = d * (float)sc;
        int q = a != 0 ? clampi(rnd(w / a) + 32, 0, 63) : 32;
        int h = i / 128, r = i % 128, k = r / 32, l = r % 32;
        uint8_t *ql = &b->ql[64 * h + (k & 1) * 32 + l];
        *ql = (k < 2) ? (uint8_t)((*ql & 0xF0) | (q & 15)) : (uint8_t)((*ql & 0x0F) | ((q & 15) << 4));
        uint8_t *qh = &b->qh[32 * h + l];
        *qh = (uint8_t)((*qh & ~(3u << (2 * k))) | ((unsigned)(q >> 4) << (2 * k)));
        return d * (float)sc * (float)(q - 32);
    }
    case GGML_T_Q2_K: {
        q_block_q2_K *b = blk;
        const int sc = b->scales[i / 16];
        /* value = d·(sc & 15)·q − dmin·(sc >> 4), as q_q2_K_dequantize_ref */
        const float dl = hq_f16_to_f32(b->d) * (float)(sc & 0xF), ml = hq_f16_to_f32(b->dmin) * (float)(sc >> 4);
        int q = dl != 0 ? clampi(rnd((w + ml) / dl), 0, 3) : 0;
        set_2bit(b->qs, i, q);
        return dl * (float)q - ml;
    }
    case GGML_T_Q3_K: {
        q_block_q3_K *b = blk;
        const int j = i / 16;
        const int lo = j < 8 ? b->scales[j] & 0xF : b->scales[j - 8] >> 4;
        const int s = (lo | (((b->scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
        const float dl = hq_f16_to_f32(b->d) * (float)s;
        int q = dl != 0 ? clampi(rnd(w / dl), -4, 3) : 0; /* value dl·q, q = level − 4 */
        set_2bit(b->qs, i, q + 4);
        const unsigned bit = 1u << (i / 32);
        b->hmask[i % 32] = (uint8_t)((q + 4) & 4 ? b->hmask[i % 32] | bit : b->hmask[i % 32] & ~bit);
        return dl * (float)q;
    }
    default: return w;
    }
}

/* ---- dense linear algebra in double (n = ncols, row-major n×n) ---- */

/* Σ a_k·b_k with four accumulators (lets the compiler pipeline / vectorize
 * without -ffast-math) */
static double dot(const double *a, const double *b, int64_t n) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
        s0 += a[k] * b[k];
        s1 += a[k + 1] * b[k + 1];
        s2 += a[k + 2] * b[k + 2];
        s3 += a[k + 3] * b[k + 3];
    }
    for (; k < n; k++) s0 += a[k] * b[k];
    return (s0 + s1) + (s2 + s3);
}

/* in place lower Cholesky A = L Lᵀ (upper part zeroed); false if not positive definite */
static bool chol_lower(double *A, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double s = A[j * n + j] - dot(A + j * n, A + j * n, j);
        if (!(s > 0)) return false;
        double ljj = sqrt(s);
        A[j * n + j] = ljj;
        HQ_OMP("omp parallel for schedule(static) if (n - j > 256)")
        for (int64_t i = j + 1; i < n; i++) A[i * n + j] = (A[i * n + j] - dot(A + i * n, A + j * n, j)) / ljj;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) A[i * n + j] = 0;
    return true;
}

/* U upper with UᵀU = H⁻¹ (torch.linalg.cholesky(H⁻¹, upper=True)) without
 * forming H⁻¹: with P the reversal, P H P = M Mᵀ (M lower) gives H = V Vᵀ
 * for V = P M P (upper), so H⁻¹ = V⁻ᵀ V⁻¹ and U = V⁻¹.
 * H (n×n) is overwritten; U is returned in `out`. */
static bool chol_inverse_upper(double *H, double *out, int64_t n) {
    /* out = P H P */
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b < n; b++) out[a * n + b] = H[(n - 1 - a) * n + (n - 1 - b)];
    if (!chol_lower(out, n)) return false;
    /* H = V = P M P (upper) */
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b < n; b++) H[a * n + b] = out[(n - 1 - a) * n + (n - 1 - b)];
    /* out = V⁻¹, row by row: U_ij = −Σ_{k=i}^{j−1} U_ik V_kj / V_jj, accumulated
     * as axpys over the rows of V */
    memset(out, 0, sizeof(double) * (size_t)(n * n));
    HQ_OMP("omp parallel for schedule(dynamic, 8)")
    for (int64_t i = 0; i < n; i++) {
        double *u = out + i * n; /* u[j] holds the running Σ until j is reached */
        for (int64_t k = i; k < n; k++) {
            const double *v = H + k * n;
            u[k] = k == i ? 1.0 / v[k] : -u[k] / v[k];
            const double uk = u[k];
            for (int64_t j = k + 1; j < n; j++) u[j] += uk * v[j];
        }
    }
    return true;
}

hq_status q_gptq_quantize(uint32_t type, float *W, int64_t rows, int64_t ncols, const float *H, double damp,
                          void *out, char *err) {
    const q_type_traits *tr = q_traits(type);
    if (!tr || !tr->is_quantized || !tr->from_float_ref || !grid_supported(type))
        return hq_fail(err, HQ_ERR_UNSUPPORTED, "gptq: no grid for type %s", ggml_type_name(type));
    const int64_t B = tr->blck, nb = ncols / B;
    if (ncols <= 0 || ncols % B || rows <= 0)
        return hq_fail(err, HQ_ERR_UNSUPPORTED, "gptq: %lld columns do not fit %s blocks", (long long)ncols,
                       tr->name);
    if (damp <= 0) damp = 0.01;
    const uint64_t n2 = (uint64_t)ncols * (uint64_t)ncols;
    const size_t bs = (size_t)tr->type_size;
    double *Hd = hq_malloc_array(n2, sizeof(double));
    double *tmp = hq_malloc_array(n2, sizeof(double));
    int64_t *perm = hq_malloc_array((size_t)nb, sizeof(int64_t));
    float *diag = hq_malloc_array((size_t)ncols, sizeof(float));
    float *rowbuf = hq_malloc_array((size_t)ncols, sizeof(float));
    float *err1 = hq_malloc_array((size_t)(rows * B), sizeof(float));
    uint8_t *blk = hq_malloc_array((size_t)rows, bs);
    hq_status st = HQ_OK;
    if (!Hd || !tmp || !perm || !diag || !rowbuf || !err1 || !blk) {
        st = hq_fail(err, HQ_ERR_NOMEM, "gptq: out of memory (%lld columns)", (long long)ncols);
        goto done;
    }
    /* 1. dead columns, damping */
    double mean = 0;
    for (int64_t j = 0; j < ncols; j++) mean += H[j * ncols + j];
    mean /= (double)ncols;
    if (!(mean > 0) || !isfinite(mean)) mean = 1;
    /* 2. block act-order: descending Σ diag(H) per block (stable) */
    for (int64_t b = 0; b < nb; b++) perm[b] = b;
    for (int64_t b = 1; b < nb; b++) { /* insertion sort: nb is small */
        int64_t v = perm[b], k = b;
        double sv = 0;
        for (int64_t j = 0; j < B; j++) sv += H[(v * B + j) * ncols + v * B + j];
        while (k > 0) {
            double sk = 0;
            int64_t u = perm[k - 1];
            for (int64_t j = 0; j < B; j++) sk += H[(u * B + j) * ncols + u * B + j];
            if (sk >= sv) break;
            perm[k] = u;
            k--;
        }
        perm[k] = v;
    }
    /* permuted column index p -> original column */
#define ORIG(p) (perm[(p) / B] * B + (p) % B)
    for (int64_t a = 0; a < ncols; a++)
        for (int64_t b = 0; b < ncols; b++) Hd[a * ncols + b] = H[ORIG(a) * ncols + ORIG(b)];
    for (int64_t a = 0; a < ncols; a++) {
        if (Hd[a * ncols + a] <= 0) { /* never-active input: weight cannot matter */
            Hd[a * ncols + a] = 1;
            int64_t o = ORIG(a);
            for (int64_t r = 0; r < rows; r++) W[r * ncols + o] = 0;
        }
        diag[a] = (float)Hd[a * ncols + a];
        Hd[a * ncols + a] += damp * mean;
    }
    /* permute W's columns in place, row by row */
    for (int64_t r = 0; r < rows; r++) {
        float *w = W + r * ncols;
        for (int64_t p = 0; p < ncols; p++) rowbuf[p] = w[ORIG(p)];
        memcpy(w, rowbuf, sizeof(float) * (size_t)ncols);
    }
    /* 3. U = chol(H⁻¹) upper */
    if (!chol_inverse_upper(Hd, tmp, ncols)) {
        st = hq_fail(err, HQ_ERR_INTERNAL, "gptq: Hessian (%lld columns) not positive definite after damping",
                     (long long)ncols);
        goto done;
    }
    /* U as float for the row updates (vectorizable axpys) */
    float *U = (float *)Hd; /* reuses Hd's storage: n² floats fit in n² doubles */
    for (uint64_t i = 0; i < n2; i++) U[i] = (float)tmp[i];
    const uint64_t row_bytes = (uint64_t)nb * bs;
    /* 4. block by block */
    for (int64_t pb = 0; pb < nb; pb++) {
        const int64_t p0 = pb * B;
        int bad = 0;
        HQ_OMP("omp parallel for schedule(static) reduction(| : bad)")
        for (int64_t r = 0; r < rows; r++) {
            float *w = W + r * ncols + p0;
            uint8_t *bk = blk + (size_t)r * bs;
            /* scales from the current (error-compensated) weights, diag(H)-weighted */
            if (tr->quantize_imatrix) tr->quantize_imatrix(w, bk, B, diag + p0);
            else tr->from_float_ref(w, bk, B);
            float *e = err1 + r * B;
            for (int64_t j = 0; j < B; j++) {
                const float ujj = U[(p0 + j) * ncols + p0 + j];
                float q = grid_set(type, bk, (int)j, w[j]);
                float ej = (float)((w[j] - q) / ujj);
                e[j] = ej;
                w[j] = q;
                const float *urow = U + (p0 + j) * ncols;
                for (int64_t k = j + 1; k < B; k++) w[k] -= ej * urow[p0 + k];
            }
            /* check: the block dequantizes to exactly the values we compensated for */
            float chk[256];
            tr->to_float_ref(bk, chk, B);
            for (int64_t j = 0; j < B; j++)
                if (!(fabsf(chk[j] - w[j]) <= 1e-5f * fabsf(w[j]) + 1e-30f)) bad |= 1;
            memcpy((uint8_t *)out + (uint64_t)r * row_bytes + (uint64_t)perm[pb] * bs, bk, bs);
        }
        if (bad) {
            st = hq_fail(err, HQ_ERR_INTERNAL, "gptq: %s grid does not match its dequantizer", tr->name);
            goto done;
        }
        /* lazy batch update of the remaining columns: W[:, p0+B:] -= Err · U[p0:p0+B, p0+B:] */
        if (p0 + B < ncols) {
            HQ_OMP("omp parallel for schedule(static)")
            for (int64_t r = 0; r < rows; r++) {
                float *w = W + r * ncols;
                const float *e = err1 + r * B;
                for (int64_t j = 0; j < B; j++) {
                    const float *urow = U + (p0 + j) * ncols;
                    const float ej = e[j];
                    for (int64_t k = p0 + B; k < ncols; k++) w[k] -= ej * urow[k];
                }
            }
        }
    }
#undef ORIG
done:
    hq_free(Hd);
    hq_free(tmp);
    hq_free(perm);
    hq_free(diag);
    hq_free(rowbuf);
    hq_free(err1);
    hq_free(blk);
    return st;
}

double q_gptq_loss(uint32_t type, const float *W, const void *q, int64_t rows, int64_t ncols, const float *H) {
    const q_type_traits *tr = q_traits(type);
    uint64_t rb = 0;
    if (!tr || !ggml_row_bytes(type, (uint64_t)ncols, &rb)) return NAN;
    float *d = hq_malloc_array((size_t)ncols, sizeof(float));
    if (!d) return NAN;
    double loss = 0;
    for (int64_t r = 0; r < rows; r++) {
        tr->to_float_ref((const uint8_t *)q + (uint64_t)r * rb, d, ncols);
        for (int64_t j = 0; j < ncols; j++) d[j] = W[r * ncols + j] - d[j];
        for (int64_t a = 0; a < ncols; a++) {
            double s = 0;
            for (int64_t b = 0; b < ncols; b++) s += (double)H[a * ncols + b] * d[b];
            loss += s * d[a];
        }
    }
    hq_free(d);
    return loss;
}
