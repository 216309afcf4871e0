/* cuda/cdmoe.cu — CDMoE expert retrieval and the retrieved experts
 * (runtime/cdmoe.c semantics):
 *   router:  (ℓx, ℓy) = logits[t] halves; candidate (i, j) scores ℓx_i + ℓy_j, id i·Kk + j
 *   pk:      sim[p][h][c] = q[p][h]·keys[h][c][p] (double, as the _ref), then the same per head
 *   top-k of the candidates (score desc, then id asc), w = softmax of their scores
 *   experts: out[t] += Σ_m silu(down[id_m]·x[t])·w_m·up[id_m]
 * Retrieval: one warp per (token[, head]). Only the top-min(k, Kk) of each
 * half can reach the overall top-k, so the warp selects those (k rounds of
 * a warp arg-best, each round taking the best candidate ranked after the
 * previous pick — no "taken" flags), then k rounds over the kk² sums.
 * Experts: the down row dot products use matmul_q's int8 item dots (block
 * types, activation row quantized once per token) or fp32 lanes (float
 * types), one warp per (token, slot); then one thread per output element
 * sums its slots in order (as the CPU does). Experts with no token or with
 * every token need no special case (a gather, not a dispatch).
 * Limits: 1 <= k <= 64, k <= Kk², Kk <= 46340 (ids fit int32), ids in [0, E) (checked by
 * the caller, as rt_experts does). */
#include "cu_q8dot.h"

#define RT_KMAX 64

typedef struct {
    const float *logits; /* item i: ℓx = logits + i·2Kk, ℓy = ℓx + Kk */
    int64_t n_items, Kk, k;
    int32_t *ids;
    float *w;
} k_route_args;

/* candidate a (sa, ia) ranks before b */
HQ_DEVICE int rt_better(float sa, int ia, float sb, int ib) { return sa > sb || (sa == sb && ia < ib); }

/* warp-wide best (score, id); every lane gets it */
HQ_DEVICE void rt_warp_best(float *s, int *id) {
    for (int o = 16; o > 0; o >>= 1) {
        float os = __shfl_xor_sync(CU_FULL, *s, o);
        int oi = __shfl_xor_sync(CU_FULL, *id, o);
        if (rt_better(os, oi, *s, *id)) *s = os, *id = oi;
    }
}

/* best `cnt` of v[0..n) (ids 0..n−1) into ts/ti, best first */
HQ_DEVICE void rt_topk_half(const float *v, int n, int cnt, float *ts, int *ti) {
    float ps = INFINITY;
    int pi = -1; /* previous pick: everything ranks after (+inf, −1) */
    for (int r = 0; r < cnt; r++) {
        float bs = -INFINITY;
        int bi = 2147483647;
        for (int i = (int)threadIdx.x; i < n; i += 32)
            if (rt_better(ps, pi, v[i], i) && rt_better(v[i], i, bs, bi)) bs = v[i], bi = i;
        rt_warp_best(&bs, &bi);
        if (threadIdx.x == 0) ts[r] = bs, ti[r] = bi;
        ps = bs, pi = bi;
    }
}

/* one warp per item (token, or token × retrieval head) */
HQ_KERNEL(k_route, k_route_args) {
    HQ_SHARED(float, txs, RT_KMAX);
    HQ_SHARED(int, txi, RT_KMAX);
    HQ_SHARED(float, tys, RT_KMAX);
    HQ_SHARED(int, tyi, RT_KMAX);
    HQ_SHARED(float, tops, RT_KMAX);
    HQ_SHARED(int, topi, RT_KMAX);
    int64_t item = blockIdx.x;
    int Kk = (int)a.Kk, k = (int)a.k, kk = k < Kk ? k : Kk;
    const float *lx = a.logits + item * 2 * a.Kk, *ly = lx + a.Kk;
    rt_topk_half(lx, Kk, kk, txs, txi);
    rt_topk_half(ly, Kk, kk, tys, tyi);
    __syncwarp(CU_FULL); /* txs.. written by lane 0 */
    float ps = INFINITY;
    int pi = -1;
    for (int r = 0; r < k; r++) {
        float bs = -INFINITY;
        int bi = 2147483647;
        for (int c = (int)threadIdx.x; c < kk * kk; c += 32) {
            float s = txs[c / kk] + tys[c % kk];
            int id = txi[c / kk] * Kk + tyi[c % kk];
            if (rt_better(ps, pi, s, id) && rt_better(s, id, bs, bi)) bs = s, bi = id;
        }
        rt_warp_best(&bs, &bi);
        if (threadIdx.x == 0) tops[r] = bs, topi[r] = bi;
        ps = bs, pi = bi;
    }
    if (threadIdx.x == 0) { /* softmax in double, as the CPU */
        double z = 0;
        for (int m = 0; m < k; m++) z += exp((double)tops[m] - tops[0]);
        for (int m = 0; m < k; m++) {
            a.ids[item * k + m] = topi[m];
            a.w[item * k + m] = (float)(exp((double)tops[m] - tops[0]) / z);
        }
    }
}

CU_API int CU_SYM(cu_route_supported)(int64_t Kk, int64_t k) {
    return Kk >= 1 && Kk <= 46340 && k >= 1 && k <= RT_KMAX && k <= Kk * Kk;
}

CU_API int CU_SYM(cu_route_router)(const float *logits, int64_t n, int64_t Kk, int64_t k, int32_t *ids, float *w) {
    if (n <= 0) return 0;
    if (!CU_SYM(cu_route_supported)(Kk, k) || n > 2147483647) return -1;
    k_route_args a = {logits, n, Kk, k, ids, w};
    return CU_GO(k_route, k_route_args, hq_dim3((unsigned)n, 1, 1), hq_dim3(32, 1, 1), a);
}

/* ---- product-key similarities: one thread per (t, h, p, c) ---- */
typedef struct {
    const float *q, *keys;
    int64_t n, Hr, R, Kk;
    float *sims; /* [n·Hr][2][Kk] */
} k_pk_args;

HQ_KERNEL(k_pk_sims, k_pk_args) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= a.n * a.Hr * 2 * a.Kk) return;
    int64_t c = i % a.Kk, p = (i / a.Kk) % 2, th = i / (2 * a.Kk), h = th % a.Hr, t = th / a.Hr, half = a.R / 2;
    const float *qp = a.q + t * a.Hr * a.R + p * (a.Hr * half) + h * half;
    const float *kv = a.keys + ((h * a.Kk + c) * 2 + p) * half;
    double s = 0;
    for (int64_t r = 0; r < half; r++) s += (double)qp[r] * kv[r];
    a.sims[i] = (float)s;
}

CU_API uint64_t CU_SYM(cu_route_pk_scratch)(int64_t n, int64_t Hr, int64_t Kk) {
    return (uint64_t)n * (uint64_t)Hr * 2u * (uint64_t)Kk * 4u + 16u;
}

CU_API int CU_SYM(cu_route_pk)(const float *q, const float *keys, int64_t n, int64_t Hr, int64_t R, int64_t Kk,
                               int64_t k, int32_t *ids, float *w, void *scratch) {
    if (n <= 0) return 0;
    if (!CU_SYM(cu_route_supported)(Kk, k) || !scratch || R < 2 || R % 2 || n * Hr > 2147483647) return -1;
    k_pk_args pa = {q, keys, n, Hr, R, Kk, (float *)scratch};
    if (CU_GO(k_pk_sims, k_pk_args, hq_dim3(cu_blocks(n * Hr * 2 * Kk, 128), 1, 1), hq_dim3(128, 1, 1), pa) != 0)
        return -1;
    k_route_args a = {(const float *)scratch, n * Hr, Kk, k, ids, w};
    return CU_GO(k_route, k_route_args, hq_dim3((unsigned)(n * Hr), 1, 1), hq_dim3(32, 1, 1), a);
}

/* ---- retrieved experts ---- */
typedef struct {
    const uint8_t *down;
    uint32_t dtype;
    uint64_t drb;
    const uint8_t *up;
    uint32_t utype;
    uint64_t urb;
    int64_t d, n, kt;
    const float *x;
    const int8_t *qs; /* quantized x (block types) */
    const float *qd;
    const int *qsum;
    const int32_t *ids;
    const float *w;
    float *g; /* [n·kt] gate values */
    float *out;
} k_ex_args;

/* g[t][m] = silu(down[id]·x[t])·w[t][m]; one warp per (t, m) */
HQ_KERNEL(k_ex_gate, k_ex_args) {
    int lane = (int)threadIdx.x & 31;
    int64_t item = (int64_t)blockIdx.x * 4 + (threadIdx.x >> 5);
    if (item >= a.n * a.kt) return; /* warp-uniform */
    int64_t t = item / a.kt;
    const uint8_t *row = a.down + (uint64_t)a.ids[item] * a.drb;
    float s = 0.0f;
    if (a.dtype == GGML_T_F32 || a.dtype == GGML_T_F16 || a.dtype == GGML_T_BF16) {
        for (int64_t i = lane; i < a.d; i += 32) s += cu_deq1(a.dtype, row, i) * a.x[t * a.d + i];
    } else {
        int64_t ni = a.d / 32;
        for (int64_t it = lane; it < ni; it += 32) {
            cu_witem wi;
            cu_q8_unpack(a.dtype, row, it, &wi);
            int64_t ai = t * ni + it;
            s += cu_q8_contrib(&wi, a.qs + ai * 32, a.qd[ai], a.qsum[ai]);
        }
    }
    s = cu_warp_sum(s);
    if (lane == 0) a.g[item] = cu_silu(s) * a.w[item];
}

/* out[t][i] += Σ_m g[t][m]·up[id_m][i], slots in order */
HQ_KERNEL(k_ex_up, k_ex_args) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= a.n * a.d) return;
    int64_t t = i / a.d, e = i % a.d;
    float o = a.out[i];
    for (int64_t m = 0; m < a.kt; m++) {
        int64_t s = t * a.kt + m;
        o += a.g[s] * cu_deq1(a.utype, a.up + (uint64_t)a.ids[s] * a.urb, e);
    }
    a.out[i] = o;
}

CU_API int CU_SYM(cu_quant_act)(uint32_t type, const float *x, int64_t n_tok, int64_t n_in, void *scratch);
CU_API int CU_SYM(cu_matmul_q_supported)(uint32_t type, int64_t n_in);

static int ex_float(uint32_t t) { return cu_act_type(t) == GGML_T_F32; }

CU_API uint64_t CU_SYM(cu_experts_scratch)(const cu_wt *down, int64_t n, int64_t k_total) {
    uint64_t g = ((uint64_t)n * (uint64_t)k_total * 4u + 15u) & ~(uint64_t)15u;
    return g + (ex_float(down->type) ? 0u : cu_q8_act_bytes(n, down->n_in));
}

CU_API int CU_SYM(cu_experts)(const cu_wt *down, const cu_wt *up, const float *x, int64_t n, const int32_t *ids,
                              const float *w, int64_t k_total, float *out, void *scratch) {
    if (n <= 0 || k_total <= 0) return 0;
    if (!scratch || down->n_in != up->n_in || down->n_out != up->n_out) return -1;
    if (!ex_float(down->type) && !CU_SYM(cu_matmul_q_supported)(down->type, down->n_in)) return -1;
    int64_t d = down->n_in;
    uint64_t gb = ((uint64_t)n * (uint64_t)k_total * 4u + 15u) & ~(uint64_t)15u;
    k_ex_args a = {(const uint8_t *)down->data, down->type, down->row_bytes, (const uint8_t *)up->data, up->type,
                   up->row_bytes, d, n, k_total, x, NULL, NULL, NULL, ids, w, (float *)scratch, out};
    if (!ex_float(down->type)) {
        uint8_t *act = (uint8_t *)scratch + gb;
        if (CU_SYM(cu_quant_act)(down->type, x, n, d, act) != 0) return -1;
        uint64_t qb = ((uint64_t)n * (uint64_t)d + 15u) & ~(uint64_t)15u;
        a.qs = (const int8_t *)act;
        a.qd = (const float *)(const void *)(act + qb);
        a.qsum = (const int *)(const void *)(act + qb + 4u * (uint64_t)n * (uint64_t)(d / 32));
    }
    if (CU_GO(k_ex_gate, k_ex_args, hq_dim3(cu_blocks(n * k_total, 4), 1, 1), hq_dim3(128, 1, 1), a) != 0) return -1;
    return CU_GO(k_ex_up, k_ex_args, hq_dim3(cu_blocks(n * d, 256), 1, 1), hq_dim3(256, 1, 1), a);
}
