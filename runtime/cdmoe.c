/* runtime/cdmoe.c — CDMoE expert retrieval and the retrieved experts
 * (spec §4.8). Router version (SD ≥ 2025-03-17 / HF DogeCDMoE):
 *   router_logits = router_gate(x).view(2, -1, Kk)   (per token: ℓx, ℓy)
 *   (sx, ix), (sy, iy) = topk(ℓx), topk(ℓy); all = sx[:,None] + sy[None,:]
 *   idx = ix[:,None]·Kk + iy[None,:]; scores, pos = all.topk(k); w = softmax(scores)
 *   g = act(down_embed[idx] · x) · w;  experts = Σ g · up_embed[idx]
 * Product-key version (Cheems / WM): per retrieval head, sim halves from q and
 * keys, the same top-k-of-sums, softmax per head.
 * Ordering everywhere: score descending, then expert id ascending, which makes
 * the top-k-of-top-k shortcut exactly equal to the brute force (ties included). */
#include "rt_cpu.h" // defines: RT_OMP
#include "../quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float s;
    int32_t id;
} cand;

static bool better(cand a, cand b) { return a.s > b.s || (a.s == b.s && a.id < b.id); }
static int cmp_cand(const void *pa, const void *pb) {
    cand a = *(const cand *)pa, b = *(const cand *)pb;
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

/* keeps the best k of a stream in top[0..k) sorted best-first; returns count */
static int64_t push_top(cand *top, int64_t cnt, int64_t k, cand c) {
    if (cnt == k && !better(c, top[k - 1])) return cnt;
    int64_t i = cnt < k ? cnt++ : k - 1;
    while (i > 0 && better(c, top[i - 1])) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = c;
    return cnt;
}

static void softmax_out(const cand *top, int64_t k, int32_t *ids, float *w) {
    double z = 0;
    for (int64_t m = 0; m < k; m++) z += exp((double)top[m].s - top[0].s);
    for (int64_t m = 0; m < k; m++) {
        ids[m] = top[m].id;
        w[m] = (float)(exp((double)top[m].s - top[0].s) / z);
    }
}

/* brute force over the Kk² candidates of two score halves */
static void route_brute(const float *lx, const float *ly, int64_t Kk, int64_t k, int32_t *ids, float *w, cand *all) {
    for (int64_t i = 0; i < Kk; i++)
        for (int64_t j = 0; j < Kk; j++) all[i * Kk + j] = (cand){lx[i] + ly[j], (int32_t)(i * Kk + j)};
    qsort(all, (size_t)(Kk * Kk), sizeof(cand), cmp_cand);
    softmax_out(all, k, ids, w);
}

/* top-k' of each half, k'² sums, top-k */
static void route_fast(const float *lx, const float *ly, int64_t Kk, int64_t k, int32_t *ids, float *w, cand *buf) {
    int64_t kk = k < Kk ? k : Kk;
    cand *tx = buf, *ty = buf + kk, *top = buf + 2 * kk;
    int64_t nx = 0, ny = 0, nt = 0;
    for (int64_t i = 0; i < Kk; i++) nx = push_top(tx, nx, kk, (cand){lx[i], (int32_t)i});
    for (int64_t j = 0; j < Kk; j++) ny = push_top(ty, ny, kk, (cand){ly[j], (int32_t)j});
    for (int64_t a = 0; a < kk; a++)
        for (int64_t b = 0; b < kk; b++)
            nt = push_top(top, nt, k, (cand){tx[a].s + ty[b].s, (int32_t)(tx[a].id * Kk + ty[b].id)});
    softmax_out(top, k, ids, w);
}

void rt_route_router_ref(const float *logits, int64_t n, int64_t Kk, int64_t k, int32_t *ids, float *w) {
    cand *all = hq_malloc_array((size_t)(Kk * Kk), sizeof(cand));
    if (!all) {
        for (int64_t i = 0; i < n * k; i++) ids[i] = -1; /* rt_experts rejects -1 */
        return;
    }
    for (int64_t t = 0; t < n; t++) route_brute(logits + t * 2 * Kk, logits + t * 2 * Kk + Kk, Kk, k, ids + t * k,
                                                w + t * k, all);
    hq_free(all);
}

void rt_route_router(const float *logits, int64_t n, int64_t Kk, int64_t k, int32_t *ids, float *w) {
    if (rt_ops_ref()) {
        rt_route_router_ref(logits, n, Kk, k, ids, w);
        return;
    }
    RT_OMP("omp parallel for schedule(static) if(n > 8)")
    for (int64_t t = 0; t < n; t++) {
        cand buf[3 * 4096]; /* k <= 4096 is checked at model load */
        route_fast(logits + t * 2 * Kk, logits + t * 2 * Kk + Kk, Kk, k, ids + t * k, w + t * k, buf);
    }
}

/* sim[p][c] for one token and retrieval head h */
static void pk_sims(const float *qt, const float *keys, int64_t Hr, int64_t R, int64_t Kk, int64_t h, float *s0,
                    float *s1) {
    int64_t half = R / 2;
    for (int64_t p = 0; p < 2; p++) {
        const float *qp = qt + p * (Hr * half) + h * half;
        float *dst = p ? s1 : s0;
        for (int64_t c = 0; c < Kk; c++) {
            const float *kv = keys + ((h * Kk + c) * 2 + p) * half;
            double s = 0;
            for (int64_t r = 0; r < half; r++) s += (double)qp[r] * kv[r];
            dst[c] = (float)s;
        }
    }
}

void rt_route_pk_ref(const float *q, const float *keys, int64_t n, int64_t Hr, int64_t R, int64_t Kk, int64_t k,
                     int32_t *ids, float *w) {
    cand *all = hq_malloc_array((size_t)(Kk * Kk), sizeof(cand));
    float *s = hq_malloc_array((size_t)(2 * Kk), sizeof(float));
    if (!all || !s) {
        for (int64_t i = 0; i < n * Hr * k; i++) ids[i] = -1;
        hq_free(all); hq_free(s);
        return;
    }
    for (int64_t t = 0; t < n; t++)
        for (int64_t h = 0; h < Hr; h++) {
            pk_sims(q + t * Hr * R, keys, Hr, R, Kk, h, s, s + Kk);
            route_brute(s, s + Kk, Kk, k, ids + (t * Hr + h) * k, w + (t * Hr + h) * k, all);
        }
    hq_free(all);
    hq_free(s);
}

void rt_route_pk(const float *q, const float *keys, int64_t n, int64_t Hr, int64_t R, int64_t Kk, int64_t k,
                 int32_t *ids, float *w) {
    if (rt_ops_ref()) {
        rt_route_pk_ref(q, keys, n, Hr, R, Kk, k, ids, w);
        return;
    }
    int64_t items = n * Hr;
    RT_OMP("omp parallel for schedule(static) if(items > 8)")
    for (int64_t it = 0; it < items; it++) {
        int64_t t = it / Hr, h = it % Hr;
        cand buf[3 * 4096];
        float s[2 * 4096]; /* Kk <= 4096 checked at model load */
        pk_sims(q + t * Hr * R, keys, Hr, R, Kk, h, s, s + Kk);
        route_fast(s, s + Kk, Kk, k, ids + it * k, w + it * k, buf);
    }
}

/* ---- retrieved experts ---- */
static bool float_type(uint32_t t) { return t == GGML_T_F32 || t == GGML_T_F16 || t == GGML_T_BF16; }

static hq_status check_ids(const rt_weight *down, const rt_weight *up, const int32_t *ids, int64_t cnt, char *err) {
    if (down->n_out != up->n_out || down->n_in != up->n_in)
        return hq_fail(err, HQ_ERR_FORMAT, "experts: '%s' and '%s' differ in shape", down->name, up->name);
    for (int64_t i = 0; i < cnt; i++)
        if (ids[i] < 0 || ids[i] >= down->n_out)
            return hq_fail(err, HQ_ERR_INTERNAL, "experts '%s': expert id %d outside [0, %lld)", down->name, ids[i],
                           (long long)down->n_out);
    return HQ_OK;
}

/* Reference: float tables in exact fp32/double; block types with the same
 * arithmetic definition as the matmul reference (activation converted by
 * from_float_ref to vec_dot_type, then vec_dot_ref; up rows by to_float_ref). */
hq_status rt_experts_ref(const rt_weight *down, const rt_weight *up, const float *x, int64_t n, const int32_t *ids,
                         const float *w, int64_t k_total, float *out, char *err) {
    hq_status st = check_ids(down, up, ids, n * k_total, err);
    if (st != HQ_OK) return st;
    if ((st = rt_weight_check(down, err)) != HQ_OK || (st = rt_weight_check(up, err)) != HQ_OK) return st;
    int64_t d = down->n_in;
    const q_type_traits *td = float_type(down->type) ? NULL : q_traits(down->type);
    const q_type_traits *tu = float_type(up->type) ? NULL : q_traits(up->type);
    const q_type_traits *vt = td && td->vec_dot_type != GGML_T_F32 ? q_traits(td->vec_dot_type) : NULL;
    float *row = hq_malloc_array((size_t)d, sizeof(float));
    uint8_t *xa = hq_malloc((size_t)d * 4 + 64);
    if (!row || !xa) {
        hq_free(row);
        hq_free(xa);
        return hq_fail(err, HQ_ERR_NOMEM, "experts '%s': out of memory", down->name);
    }
    for (int64_t t = 0; t < n; t++) {
        if (td) {
            if (vt) (vt->from_float_ref ? vt->from_float_ref : vt->from_float)(x + t * d, xa, d);
            else memcpy(xa, x + t * d, (size_t)d * 4);
        }
        for (int64_t m = 0; m < k_total; m++) {
            int32_t e = ids[t * k_total + m];
            float s;
            if (td) {
                (td->vec_dot_ref ? td->vec_dot_ref : td->vec_dot)(d, &s, (const uint8_t *)down->data +
                                                                           (uint64_t)e * down->row_bytes, xa);
            } else {
                rt_weight_row_f32(down, e, row);
                double acc = 0;
                for (int64_t i = 0; i < d; i++) acc += (double)row[i] * x[t * d + i];
                s = (float)acc;
            }
            float g = rt_silu(s) * w[t * k_total + m];
            if (tu && tu->to_float_ref) tu->to_float_ref((const uint8_t *)up->data + (uint64_t)e * up->row_bytes, row, d);
            else rt_weight_row_f32(up, e, row);
            for (int64_t i = 0; i < d; i++) out[t * d + i] += g * row[i];
        }
    }
    hq_free(row);
    hq_free(xa);
    return HQ_OK;
}

hq_status rt_experts(const rt_weight *down, const rt_weight *up, const float *x, int64_t n, const int32_t *ids,
                     const float *w, int64_t k_total, float *out, char *err) {
    if (rt_ops_ref()) return rt_experts_ref(down, up, x, n, ids, w, k_total, out, err);
    hq_status st = check_ids(down, up, ids, n * k_total, err);
    if (st != HQ_OK) return st;
    if ((st = rt_weight_check(down, err)) != HQ_OK || (st = rt_weight_check(up, err)) != HQ_OK) return st;
    int64_t d = down->n_in;
    const q_type_traits *td = float_type(down->type) ? NULL : q_traits(down->type);
    const q_type_traits *vt = td && td->vec_dot_type != GGML_T_F32 ? q_traits(td->vec_dot_type) : NULL;
    uint64_t arb = !td ? 0 : vt ? (uint64_t)(d / vt->blck) * vt->type_size : (uint64_t)d * 4;
    /* per thread: d floats for an up row + one converted activation row */
    uint64_t per = ((uint64_t)d * 4 + arb + 63) & ~(uint64_t)63, tot; /* keeps each thread's floats aligned */
    int nth = rt_n_threads();
    uint8_t *scr = NULL;
    if (!hq_mul_u64(per, (uint64_t)nth, &tot) || !(scr = hq_malloc((size_t)tot + 64)))
        return hq_fail(err, HQ_ERR_NOMEM, "experts '%s': out of memory for scratch", down->name);
    RT_OMP("omp parallel for schedule(dynamic, 1) if(n > 1)")
    for (int64_t t = 0; t < n; t++) {
        uint8_t *mine = scr + (uint64_t)rt_thread_id() * per;
        float *row = (float *)mine;
        void *xa = mine + (uint64_t)d * 4;
        const float *xt = x + t * d;
        if (td) {
            if (vt) vt->from_float(xt, xa, d);
            else memcpy(xa, xt, (size_t)d * 4);
        }
        for (int64_t m = 0; m < k_total; m++) {
            int32_t e = ids[t * k_total + m];
            float s;
            if (td) td->vec_dot(d, &s, (const uint8_t *)down->data + (uint64_t)e * down->row_bytes, xa);
            else s = rt_row_dot(down, e, xt);
            float g = rt_silu(s) * w[t * k_total + m];
            if (float_type(up->type)) {
                rt_row_axpy(up, e, g, out + t * d);
            } else {
                rt_weight_row_f32(up, e, row);
                for (int64_t i = 0; i < d; i++) out[t * d + i] += g * row[i];
            }
        }
    }
    hq_free(scr);
    return HQ_OK;
}
