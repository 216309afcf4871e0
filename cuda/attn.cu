/* cuda/attn.cu — dynamic-mask attention over the KV/β caches (runtime/attn.c):
 *   s_{t,h,j} = q_{t,h}·k_{j,g}·scale + β_{m(h),j} for allowed j (j ≤ t, and
 *   j > t − window when window > 0; with keep_window, only the keep_window
 *   allowed keys with the largest β, ties to the lower index);
 *   out_{t,h} = softmax(s)·v.
 * Flash-decoding style: one block of nw warps per (token, head) (16 for a
 * single token, else 4); warp w walks every nw-th tile of 32 keys — lane = key for the scores (q
 * staged in shared memory), an online softmax update (running max and sum,
 * rescaling the accumulator), then lane = output dimension for Σ p_j v_j (p
 * staged in shared memory) — and the block merges the warps' (max, sum,
 * accumulator) triples at the end:
 *   M = max_w m_w,  out = Σ_w e^{m_w−M}·acc_w / Σ_w e^{m_w−M}·l_w.
 * Splitting the keys keeps a decode step (one token, few heads) from running
 * on a handful of warps. fp32 (the _ref uses double). The keep-window
 * threshold is found first by k_attn_keep (one warp per (token, β row)): a
 * 32-step bisection on the order-preserving bit pattern of β gives the
 * keep_window-th largest value thr; the kept set is {β >= thr} unless β ties
 * straddle the cut. Then the rule decides (cu_attn_params.keep_rule): the
 * lower index (a bisection on the key index gives the last kept tie), or
 * torch.topk's set, which k_attn_keep_torch computes for those rows only,
 * one thread per row running core/topk_torch.h (libstdc++'s nth_element /
 * partial_sort as ATen calls them) into a bitmask of kept keys.
 * With dpos the first position is read from device memory.
 * Limits: P <= 128, KV divides H, M ∈ {H, KV}, cap < 2^31. */
#include "cu_kern.h"
#define HQ_TT_FN HQ_DEVICE
#include "../core/topk_torch.h"

#define ATT_WARPS 4 /* k_attn_keep: rows per block */
#define ATT_SPLIT 16 /* k_attn: most warps per (token, head): 16 for one token (decode), 4 otherwise */
#define ATT_PMAX 128

typedef struct {
    int64_t H, KV, P, M, cap, window, keep_window, pos0, n;
    const int64_t *dpos;
    float scale;
    const float *q, *kc, *vc, *beta;
    float *out;
    float *thr; /* [n, M] keep threshold (or NULL: keep all) */
    int *jcut;  /* [n, M] last kept index among keys with β == thr; ATT_MASKED: see mask */
    int rule;   /* cu_attn_params.keep_rule */
    uint32_t *mask; /* [n, M, words] bit j: key j kept (rows with jcut == ATT_MASKED) */
    hq_vj *vj;      /* [workers, cap] torch.topk rows */
    int64_t words, workers;
} k_attn_args;
#define ATT_MASKED (-1)
#define ATT_TT_BYTES (32ll << 20) /* torch.topk rows in flight: workers = this / (16·cap) */

HQ_DEVICE int64_t att_lo(const k_attn_args *a, int64_t tpos) {
    return a->window > 0 && tpos - a->window + 1 > 0 ? tpos - a->window + 1 : 0;
}
/* float -> unsigned key with the same order (no NaN expected) */
HQ_DEVICE uint32_t att_key(float f) {
    uint32_t u = cu_fbits(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
HQ_DEVICE float att_unkey(uint32_t k) {
    union { uint32_t u; float f; } c;
    c.u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    return c.f;
}

/* one warp per (t, m): warp-level counts only (no block barriers) */
HQ_KERNEL(k_attn_keep, k_attn_args) {
    int lane = (int)threadIdx.x & 31;
    int64_t row = (int64_t)blockIdx.x * ATT_WARPS + (threadIdx.x >> 5);
    if (row >= a.n * a.M) return; /* warp-uniform */
    int64_t t = row / a.M, m = row % a.M, tpos = (a.dpos ? *a.dpos : a.pos0) + t, lo = att_lo(&a, tpos);
    int64_t cnt = tpos - lo + 1, kw = a.keep_window;
    const float *bm = a.beta + m * a.cap;
    if (kw <= 0 || cnt <= kw) {
        if (lane == 0) a.thr[row] = -INFINITY, a.jcut[row] = 2147483647;
        return;
    }
    uint32_t key = 0;
    for (int bit = 31; bit >= 0; bit--) {
        uint32_t cand = key | (1u << bit);
        int c = 0;
        for (int64_t j = lo + lane; j <= tpos; j += 32) c += att_key(bm[j]) >= cand;
        if (cu_warp_sum_i(c) >= kw) key = cand;
    }
    float thr = att_unkey(key);
    int gt = 0, eq = 0, nan = 0;
    for (int64_t j = lo + lane; j <= tpos; j += 32) gt += bm[j] > thr, eq += bm[j] == thr, nan += isnan(bm[j]);
    int64_t ngt = cu_warp_sum_i(gt), neq = cu_warp_sum_i(eq), ties_left = kw - ngt;
    if (cu_warp_sum_i(nan) == 0 && ngt + neq == kw) { /* no ties straddle the cut: keep β >= thr */
        if (lane == 0) a.thr[row] = thr, a.jcut[row] = 2147483647;
        return;
    }
    if (a.rule != 2) { /* torch.topk's choice among the ties (and NaN): k_attn_keep_torch */
        if (lane == 0) a.thr[row] = thr, a.jcut[row] = ATT_MASKED;
        return;
    }
    /* smallest jc with #{j ≤ jc : β_j == thr} >= ties_left */
    int64_t lo_j = lo, hi_j = tpos;
    while (lo_j < hi_j) { /* warp-uniform bounds */
        int64_t mid = lo_j + (hi_j - lo_j) / 2;
        int c = 0;
        for (int64_t j = lo + lane; j <= mid; j += 32) c += bm[j] == thr;
        if (cu_warp_sum_i(c) >= ties_left) hi_j = mid;
        else lo_j = mid + 1;
    }
    if (lane == 0) a.thr[row] = thr, a.jcut[row] = (int)lo_j;
}

/* one thread per worker, rows strided: the rows k_attn_keep left to
 * torch.topk's order. The row is the query's allowed keys lo .. tpos (rule
 * 0), or every key of the call r0 .. pos0+n−1 with the disallowed ones at
 * finfo(float32).min (rule 1; runtime/attn.c torch_row) */
HQ_KERNEL(k_attn_keep_torch, k_attn_args) {
    int64_t w = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (w >= a.workers) return;
    int64_t pos0 = a.dpos ? *a.dpos : a.pos0;
    hq_vj *vj = a.vj + w * a.cap;
    for (int64_t row = w; row < a.n * a.M; row += a.workers) {
        if (a.jcut[row] != ATT_MASKED) continue;
        int64_t t = row / a.M, m = row % a.M, tpos = pos0 + t, lo = att_lo(&a, tpos), r0 = lo, r1 = tpos;
        if (a.rule == 1) {
            r0 = a.window > 0 && pos0 - a.window + 1 > 0 ? pos0 - a.window + 1 : 0;
            r1 = pos0 + a.n - 1;
        }
        const float *bm = a.beta + m * a.cap;
        for (int64_t j = r0; j <= r1; j++) {
            vj[j - r0].v = j >= lo && j <= tpos ? bm[j] : -3.40282347e+38f;
            vj[j - r0].j = j;
        }
        hq_topk_torch(vj, r1 - r0 + 1, a.keep_window);
        uint32_t *mk = a.mask + row * a.words;
        for (int64_t wd = lo >> 5; wd <= tpos >> 5; wd++) mk[wd] = 0;
        for (int64_t i = 0; i < a.keep_window; i++) {
            int64_t j = vj[i].j;
            if (j >= lo && j <= tpos) mk[j >> 5] |= 1u << (j & 31);
        }
    }
}

HQ_KERNEL(k_attn, k_attn_args) {
    HQ_SHARED(float, qsh, ATT_PMAX);
    HQ_SHARED(float, psh, ATT_SPLIT * 32);
    HQ_SHARED(float, accsh, ATT_SPLIT * ATT_PMAX);
    HQ_SHARED(float, msh, ATT_SPLIT * 2); /* per warp: running max, sum */
    int lane = (int)threadIdx.x & 31, w = (int)threadIdx.x >> 5, nw = (int)blockDim.x >> 5;
    int64_t item = blockIdx.x;
    if (item >= a.n * a.H) return; /* block-uniform */
    int64_t t = item / a.H, h = item % a.H, g = h / (a.H / a.KV), m = a.M == a.H ? h : g;
    int64_t tpos = (a.dpos ? *a.dpos : a.pos0) + t, lo = att_lo(&a, tpos), P = a.P;
    float thr = a.thr ? a.thr[t * a.M + m] : -INFINITY;
    int64_t jcut = a.jcut ? a.jcut[t * a.M + m] : 2147483647;
    const uint32_t *mk = jcut == ATT_MASKED ? a.mask + (t * a.M + m) * a.words : NULL;
    const float *bm = a.beta + m * a.cap, *kg = a.kc + g * a.cap * P, *vg = a.vc + g * a.cap * P;
    float *pw = psh + w * 32;
    for (int64_t p = threadIdx.x; p < P; p += blockDim.x) qsh[p] = a.q[item * P + p];
    __syncthreads();
    float mrun = -INFINITY, l = 0.0f, acc[ATT_PMAX / 32];
    HQ_UNROLL
    for (int i = 0; i < ATT_PMAX / 32; i++) acc[i] = 0.0f;
    for (int64_t j0 = lo + 32 * w; j0 <= tpos; j0 += 32 * nw) { /* warp-uniform */
        int64_t j = j0 + lane;
        float s = -INFINITY;
        bool kept = mk ? j <= tpos && ((mk[j >> 5] >> (j & 31)) & 1u)
                       : j <= tpos && (bm[j] > thr || (bm[j] == thr && j <= jcut));
        if (kept) {
            const float *kj = kg + j * P;
            float d = 0.0f;
            if ((P & 3) == 0) { /* 16-byte loads of the key row (caches are 256-byte aligned, rows 4·P bytes) */
                const float4 *k4 = (const float4 *)(const void *)kj;
                for (int64_t p4 = 0; p4 < P / 4; p4++) {
                    float4 kv = k4[p4];
                    d += qsh[4 * p4] * kv.x + qsh[4 * p4 + 1] * kv.y + qsh[4 * p4 + 2] * kv.z + qsh[4 * p4 + 3] * kv.w;
                }
            } else {
                for (int64_t p = 0; p < P; p++) d += qsh[p] * kj[p];
            }
            s = d * a.scale + bm[j];
        }
        float mnew = fmaxf(mrun, cu_warp_max(s));
        float pj = s == -INFINITY ? 0.0f : expf(s - mnew);
        float corr = mrun == -INFINITY ? 0.0f : expf(mrun - mnew);
        l = l * corr + cu_warp_sum(pj);
        pw[lane] = pj;
        __syncwarp(CU_FULL);
        int64_t nj = tpos - j0 + 1 < 32 ? tpos - j0 + 1 : 32;
        HQ_UNROLL
        for (int i = 0; i < ATT_PMAX / 32; i++) {
            int64_t p = lane + 32 * i;
            if (p < P) {
                float v = acc[i] * corr;
                for (int64_t jj = 0; jj < nj; jj++) v += pw[jj] * vg[(j0 + jj) * P + p];
                acc[i] = v;
            }
        }
        __syncwarp(CU_FULL); /* pw is rewritten by the next tile */
        mrun = mnew;
    }
    HQ_UNROLL
    for (int i = 0; i < ATT_PMAX / 32; i++) {
        int64_t p = lane + 32 * i;
        if (p < P) accsh[w * ATT_PMAX + p] = acc[i];
    }
    if (lane == 0) msh[2 * w] = mrun, msh[2 * w + 1] = l;
    __syncthreads();
    float M = -INFINITY, L = 0.0f;
    for (int ww = 0; ww < nw; ww++) M = fmaxf(M, msh[2 * ww]);
    for (int ww = 0; ww < nw; ww++)
        if (msh[2 * ww] != -INFINITY) L += msh[2 * ww + 1] * expf(msh[2 * ww] - M);
    for (int64_t p = threadIdx.x; p < P; p += blockDim.x) {
        float v = 0.0f;
        for (int ww = 0; ww < nw; ww++)
            if (msh[2 * ww] != -INFINITY) v += accsh[ww * ATT_PMAX + p] * expf(msh[2 * ww] - M);
        a.out[item * P + p] = v / L;
    }
}

CU_API int CU_SYM(cu_attn_supported)(const cu_attn_params *ap) {
    return ap->P >= 1 && ap->P <= ATT_PMAX && ap->KV >= 1 && ap->H % ap->KV == 0 &&
           (ap->M == ap->H || ap->M == ap->KV) && ap->cap >= 1 && ap->cap < 2147483647;
}

/* the layout of the keep-window scratch: thr, jcut [n, M] each; with a
 * torch rule also the topk rows [workers, cap] and the masks [n, M, words] */
typedef struct { uint64_t jcut, vj, mask, total; int64_t workers, words; } att_layout;
static int att_plan(const cu_attn_params *ap, int64_t n, att_layout *l) {
    int64_t rows = n * ap->M;
    l->words = (ap->cap + 31) / 32;
    l->workers = ATT_TT_BYTES / (16 * ap->cap);
    if (l->workers < 1) l->workers = 1;
    if (l->workers > rows) l->workers = rows;
    if (n > 2147483647 || ap->M > 65536 || ap->cap >= 2147483647) return -1; /* every product below fits 2^63 */
    l->jcut = ((uint64_t)rows * 4u + 15u) & ~15ull;
    l->vj = l->jcut + (((uint64_t)rows * 4u + 15u) & ~15ull);
    l->mask = l->vj;
    if (ap->keep_rule != 2) l->mask += (uint64_t)l->workers * (uint64_t)ap->cap * sizeof(hq_vj);
    l->total = l->mask + (ap->keep_rule != 2 ? (uint64_t)rows * (uint64_t)l->words * 4u : 0u) + 16u;
    return 0;
}

CU_API uint64_t CU_SYM(cu_attn_scratch)(const cu_attn_params *ap, int64_t n) {
    att_layout l;
    if (ap->keep_window <= 0) return 0;
    return att_plan(ap, n, &l) == 0 ? l.total : UINT64_MAX;
}

CU_API int CU_SYM(cu_attn)(const cu_attn_params *ap, const float *q, const float *kc, const float *vc,
                           const float *beta, int64_t pos0, const int64_t *dpos, int64_t n, float *out,
                           void *scratch) {
    if (n <= 0) return 0;
    if (!CU_SYM(cu_attn_supported)(ap) || (!dpos && (pos0 < 0 || pos0 + n > ap->cap)) || n * ap->H > 2147483647)
        return -1;
    k_attn_args a = {ap->H, ap->KV, ap->P, ap->M, ap->cap, ap->window, ap->keep_window, pos0, n, dpos, ap->scale,
                     q, kc, vc, beta, out, NULL, NULL, ap->keep_rule, NULL, NULL, 0, 0};
    if (ap->keep_window > 0) {
        att_layout l;
        if (!scratch || att_plan(ap, n, &l) != 0) return -1;
        char *base = (char *)scratch;
        a.thr = (float *)scratch;
        a.jcut = (int *)(void *)(base + l.jcut);
        a.vj = (hq_vj *)(void *)(base + l.vj);
        a.mask = (uint32_t *)(void *)(base + l.mask);
        a.words = l.words, a.workers = l.workers;
        if (CU_GO(k_attn_keep, k_attn_args, hq_dim3(cu_blocks(n * ap->M, ATT_WARPS), 1, 1),
                  hq_dim3(32 * ATT_WARPS, 1, 1), a) != 0)
            return -1;
        if (ap->keep_rule != 2 && CU_GO(k_attn_keep_torch, k_attn_args, hq_dim3(cu_blocks(l.workers, 64), 1, 1),
                                        hq_dim3(64, 1, 1), a) != 0)
            return -1;
    }
    /* one token (decode): few (token, head) blocks, so each gets 16 warps; a
     * prefill has n·H blocks to fill the device with 4 */
    unsigned warps = n == 1 ? ATT_SPLIT : 4;
    return CU_GO(k_attn, k_attn_args, hq_dim3((unsigned)(n * ap->H), 1, 1), hq_dim3(32 * warps, 1, 1), a);
}
