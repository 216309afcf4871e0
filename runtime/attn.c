/* runtime/attn.c — dynamic-mask attention over the KV/β caches (spec §4.6).
 * PyTorch (HF Doge): attn = q·kᵀ·scale + attn_mask, where attn_mask holds
 * β_j = exp(A·softplus(dt_proj(v_j))) for allowed keys and finfo.min
 * elsewhere; if kv_len > keep_window_size, only the top keep_window_size
 * entries of the mask row stay (torch.topk); p = softmax(attn) (fp32);
 * out = p·v. Which keys stay when β ties at the cut is keep_rule's business
 * (runtime/ops.h, docs/doge-keep-window.md): by default the set torch.topk
 * picks on query t's own row of allowed keys, which is what transformers'
 * cached decode computes, whatever the split of tokens into calls. */
#include "rt_cpu.h" // defines: RT_OMP, RT_AVX2

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* β descending, then key index ascending (RT_KEEP_LOW_INDEX) */
static int cmp_low_index(const void *pa, const void *pb) {
    const rt_vj *a = pa, *b = pb;
    if (a->v != b->v) return a->v > b->v ? -1 : 1;
    return a->j < b->j ? -1 : (a->j > b->j);
}

static int64_t allowed_lo(const rt_attn_params *ap, int64_t tpos) {
    int64_t lo = 0;
    if (ap->window > 0 && tpos - ap->window + 1 > 0) lo = tpos - ap->window + 1;
    return lo;
}

/* The mask row transformers runs torch.topk on for the query at tpos
 * (allowed keys lo .. tpos), as {β or finfo.min, key index} pairs; returns
 * its length.
 *   RT_KEEP_TORCH: the allowed keys — in the cached decode the cache holds
 *     exactly them (all keys, or with a sliding window the window − 1 keys
 *     DynamicSlidingWindowLayer keeps plus the new one).
 *   RT_KEEP_HF_CALL: every key the call sees, r0 .. pos0 + n − 1 (= L − 1),
 *     r0 = 0, or with a sliding window the oldest key the cache still held;
 *     keys the query may not see are at finfo(float32).min. */
static int64_t torch_row(const rt_attn_params *ap, const float *bm, int64_t lo, int64_t tpos, int64_t pos0,
                         int64_t L, rt_vj *row) {
    int64_t r0 = lo, r1 = tpos;
    if (ap->keep_rule == RT_KEEP_HF_CALL) {
        r0 = ap->window > 0 && pos0 - ap->window + 1 > 0 ? pos0 - ap->window + 1 : 0;
        r1 = L - 1;
    }
    for (int64_t j = r0; j <= r1; j++) row[j - r0] = (rt_vj){j >= lo && j <= tpos ? bm[j] : -FLT_MAX, j};
    return r1 - r0 + 1;
}

/* keep[i] = 1 when key lo + i (of lo .. tpos) stays for this (query, β row).
 * Nothing is dropped while the query has at most keep_window allowed keys: in
 * a longer row of the call the masked ones (finfo.min) lose to every β >= 0. */
static void keep_ref(const rt_attn_params *ap, const float *bm, int64_t lo, int64_t tpos, int64_t pos0, int64_t L,
                     rt_vj *row, char *keep) {
    int64_t cnt = tpos - lo + 1, kw = ap->keep_window;
    memset(keep, 1, (size_t)cnt);
    if (kw <= 0 || cnt <= kw) return;
    memset(keep, 0, (size_t)cnt);
    if (ap->keep_rule == RT_KEEP_LOW_INDEX) { /* β descending, ties to the lower index */
        for (int64_t i = 0; i < cnt; i++) row[i] = (rt_vj){bm[lo + i], lo + i};
        qsort(row, (size_t)cnt, sizeof(rt_vj), cmp_low_index);
        for (int64_t i = 0; i < kw; i++) keep[row[i].j - lo] = 1;
        return;
    }
    int64_t rn = torch_row(ap, bm, lo, tpos, pos0, L, row);
    rt_topk_torch(row, rn, kw);
    for (int64_t i = 0; i < kw; i++)
        if (row[i].j >= lo && row[i].j <= tpos) keep[row[i].j - lo] = 1;
}

void rt_attn_ref(const rt_attn_params *ap, const float *q, const float *kc, const float *vc, const float *beta,
                 int64_t pos0, int64_t n, float *out) {
    int64_t H = ap->H, KV = ap->KV, P = ap->P, G = H / KV;
    int64_t cnt_max = pos0 + n;
    double *s = hq_malloc_array((size_t)cnt_max, sizeof(double));
    rt_vj *row = hq_malloc_array((size_t)cnt_max, sizeof(rt_vj));
    char *keep = hq_malloc((size_t)cnt_max);
    if (!s || !row || !keep) { /* a reference op has no error channel: outputs NaN so tests fail loudly */
        for (int64_t i = 0; i < n * H * P; i++) out[i] = NAN;
        hq_free(s); hq_free(row); hq_free(keep);
        return;
    }
    for (int64_t t = 0; t < n; t++) {
        int64_t tpos = pos0 + t, lo = allowed_lo(ap, tpos), cnt = tpos - lo + 1;
        if (cnt <= 0 || cnt > cnt_max) continue; /* cannot happen: lo <= tpos < cnt_max */
        for (int64_t h = 0; h < H; h++) {
            int64_t g = h / G, m = ap->M == H ? h : g;
            const float *qh = q + (t * H + h) * P, *bm = beta + m * ap->cap;
            keep_ref(ap, bm, lo, tpos, pos0, pos0 + n, row, keep);
            double mx = -INFINITY;
            for (int64_t i = 0; i < cnt; i++) {
                if (!keep[i]) continue;
                const float *kj = kc + (g * ap->cap + lo + i) * P;
                double d = 0;
                for (int64_t p = 0; p < P; p++) d += (double)qh[p] * kj[p];
                s[i] = d * ap->scale + bm[lo + i];
                if (s[i] > mx) mx = s[i];
            }
            double z = 0;
            for (int64_t i = 0; i < cnt; i++)
                if (keep[i]) z += (s[i] = exp(s[i] - mx));
            float *o = out + (t * H + h) * P;
            for (int64_t p = 0; p < P; p++) {
                double acc = 0;
                for (int64_t i = 0; i < cnt; i++)
                    if (keep[i]) acc += s[i] * vc[(g * ap->cap + lo + i) * P + p];
                o[p] = (float)(acc / z);
            }
        }
    }
    hq_free(s);
    hq_free(row);
    hq_free(keep);
}

/* ---- optimized: dots and axpys are core/vec.h's (rt_cpu.h) ---- */

/* k-th largest (1-based) of v[0..n) by quickselect; v is scrambled */
static float kth_largest(float *v, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        float piv = v[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] > piv) i++;
            while (v[j] < piv) j--;
            if (i <= j) {
                float t = v[i]; v[i] = v[j]; v[j] = t;
                i++; j--;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    return v[want];
}

int64_t rt_attn_scratch(const rt_attn_params *ap) {
    /* scores [cap] + β copy [cap] + torch-topk row [cap] of rt_vj (4 floats each) */
    return 6 * ap->cap + 8;
}

/* keep-window of one (query, β row) when β ties straddle the cut at thr:
 * marks keep[i] for keys lo + i (as keep_ref) */
static void keep_slow(const rt_attn_params *ap, const float *bm0, int64_t lo, int64_t tpos, int64_t pos0, float thr,
                      int64_t L, rt_vj *row, char *keep) {
    int64_t cnt = tpos - lo + 1, kw = ap->keep_window;
    if (cnt <= 0) return; /* never (the caller has cnt > kw); inlined without OpenMP, gcc cannot tell */
    memset(keep, 0, (size_t)cnt);
    if (ap->keep_rule == RT_KEEP_LOW_INDEX) { /* β > thr, then ties lowest index first */
        int64_t gt = 0;
        for (int64_t i = 0; i < cnt; i++) gt += bm0[lo + i] > thr;
        int64_t ties_left = kw - gt;
        for (int64_t i = 0; i < cnt; i++) {
            float b = bm0[lo + i];
            if (b > thr) keep[i] = 1;
            else if (b == thr && ties_left > 0) keep[i] = 1, ties_left--;
        }
        return;
    }
    int64_t rn = torch_row(ap, bm0, lo, tpos, pos0, L, row);
    rt_topk_torch(row, rn, kw);
    for (int64_t i = 0; i < kw; i++)
        if (row[i].j >= lo && row[i].j <= tpos) keep[row[i].j - lo] = 1;
}

void rt_attn(const rt_attn_params *ap, const float *q, const float *kc, const float *vc, const float *beta,
             int64_t pos0, int64_t n, float *out, float *scratch) {
    if (rt_ops_ref()) {
        rt_attn_ref(ap, q, kc, vc, beta, pos0, n, out);
        return;
    }
    int64_t H = ap->H, KV = ap->KV, P = ap->P, G = H / KV, per = rt_attn_scratch(ap);
    float (*dot)(const float *, const float *, int64_t) = hq_dot_f32_attn; /* core/vec.h: why its own rounding */
    void (*axpy)(float, const float *, float *, int64_t) = rt_axpy_f32;
    int64_t items = n * H, work = items * (pos0 + n) * P;
    (void)work; /* used by the OpenMP clause only */
    RT_OMP("omp parallel for schedule(dynamic, 4) if(items > 1 && work > (1 << 16))")
    for (int64_t it = 0; it < items; it++) {
        int64_t t = it / H, h = it % H;
        float *s = scratch + (int64_t)rt_thread_id() * per, *tmp = s + ap->cap;
        rt_vj *row = (rt_vj *)(void *)(s + 2 * ap->cap + 2);
        char *keep = (char *)tmp; /* reused once the threshold is known */
        int64_t tpos = pos0 + t, lo = allowed_lo(ap, tpos), cnt = tpos - lo + 1;
        int64_t g = h / G, m = ap->M == H ? h : g;
        const float *qh = q + (t * H + h) * P, *bm0 = beta + m * ap->cap, *bm = bm0 + lo;
        const float *kg = kc + (g * ap->cap + lo) * P, *vg = vc + (g * ap->cap + lo) * P;
        /* keep-window: with thr the keep_window-th largest β, the kept set is
         * {β >= thr} unless β ties straddle the cut; only then does the rule
         * matter (keep_slow) */
        bool win = ap->keep_window > 0 && cnt > ap->keep_window, easy = true;
        float thr = -INFINITY;
        if (win) {
            bool nan = false;
            for (int64_t i = 0; i < cnt; i++) nan |= isnan(tmp[i] = bm[i]);
            int64_t gt = 0, eq = 0;
            if (!nan) {
                thr = kth_largest(tmp, cnt, ap->keep_window);
                for (int64_t i = 0; i < cnt; i++) gt += bm[i] > thr, eq += bm[i] == thr;
            }
            easy = !nan && gt + eq == ap->keep_window;
            if (!easy) keep_slow(ap, bm0, lo, tpos, pos0, thr, pos0 + n, row, keep);
        }
        float mx = -INFINITY;
        for (int64_t i = 0; i < cnt; i++) {
            if (win && (easy ? !(bm[i] >= thr) : !keep[i])) {
                s[i] = -INFINITY;
                continue;
            }
            s[i] = dot(qh, kg + i * P, P) * ap->scale + bm[i];
            if (s[i] > mx) mx = s[i];
        }
        float z = 0;
        for (int64_t i = 0; i < cnt; i++) {
            float e = s[i] == -INFINITY ? 0.0f : expf(s[i] - mx);
            s[i] = e;
            z += e;
        }
        float *o = out + (t * H + h) * P;
        memset(o, 0, (size_t)P * sizeof(float));
        float inv = 1.0f / z;
        for (int64_t i = 0; i < cnt; i++)
            if (s[i] != 0.0f) axpy(s[i] * inv, vg + i * P, o, P);
    }
}
