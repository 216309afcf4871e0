/* quant/calibrate.c — the imatrix collector behind `hyquant calibrate` (see
 * calibrate.h): through the runtime's hooks it accumulates, for every matrix
 * product, Σx² per input column and the token count (imatrix.h layout);
 * CDMoE expert tables get one slice per expert with the tokens routed to it.
 * With full_hessian it also accumulates Σxxᵀ per plain matrix for GPTQ. */
#include "calibrate.h" // defines: q_cal_*
#include "../core/omp.h"
#include "../core/par.h"
#include "../formats/schema.h" // defines: fmt_schema_lookup, FMT_T_EXPERT_DOWN

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* whether a GGUF name is schema tensor id (its layer into *layer) */
static bool schema_is(const char *name, fmt_tensor_id id, int64_t *layer) {
    const fmt_schema_entry *e = fmt_schema_lookup(name, layer);
    return e && e->id == id;
}

typedef struct {
    double max_x2;  /* largest single x² seen */
    double sum_x2;  /* Σ x² over all columns and tokens */
    double n;       /* tokens × columns */
    /* the entry's in_sum2 and counts, accumulated in double and stored as
     * float by q_cal_finish: sums over millions of tokens keep their digits,
     * and MPI ranks' sums add up to the one-process numbers (core/par.h) */
    double *sum2;   /* (n_mat, ncols) */
    double *cnt;    /* (n_mat) */
} q_cal_stat;

struct q_cal {
    q_imatrix *im;
    q_cal_stat *stat; /* parallel to im->e, same capacity */
    int64_t cap_stat;
    bool full_hessian;
    int64_t last;     /* cache of the last looked-up entry */
    bool oom;
    char bad_name[HQ_MAX_GGUF_NAME + 1];
    /* Σxxᵀ of the last input: q/k/v (gate/up, ssm_x/b/c/dt) share one input,
     * so the n_in² work is done once per distinct input (checked by content) */
    float *last_x, *gram;
    int64_t last_tok, last_in;
    uint64_t cap_x, cap_gram;
};

static bool cal_grow(float **p, uint64_t *cap, uint64_t n) {
    if (n <= *cap) return true;
    float *q = hq_realloc(*p, (size_t)n * sizeof(float));
    if (!q) return false;
    *p = q;
    *cap = n;
    return true;
}

/* gram = Σ_t x_t x_tᵀ (full symmetric), reusing the previous one when x is unchanged */
static bool cal_gram(q_cal *c, const float *x, int64_t n_tok, int64_t n_in) {
    uint64_t nx = (uint64_t)n_tok * (uint64_t)n_in, ng = (uint64_t)n_in * (uint64_t)n_in;
    if (c->last_tok == n_tok && c->last_in == n_in && !memcmp(c->last_x, x, nx * sizeof(float))) return true;
    if (!cal_grow(&c->last_x, &c->cap_x, nx) || !cal_grow(&c->gram, &c->cap_gram, ng)) return false;
    memcpy(c->last_x, x, nx * sizeof(float));
    c->last_tok = n_tok;
    c->last_in = n_in;
    float *restrict G = c->gram;
    HQ_OMP("omp parallel for schedule(dynamic, 8)")
    for (int64_t a = 0; a < n_in; a++) {
        float *restrict ga = G + a * n_in;
        memset(ga, 0, sizeof(float) * (size_t)n_in);
        for (int64_t t = 0; t < n_tok; t++) {
            const float *restrict xt = x + t * n_in;
            const float xa = xt[a];
            if (xa == 0) continue;
            for (int64_t b = a; b < n_in; b++) ga[b] += xa * xt[b];
        }
    }
    HQ_OMP("omp parallel for schedule(static)")
    for (int64_t a = 0; a < n_in; a++)
        for (int64_t b = 0; b < a; b++) G[a * n_in + b] = G[b * n_in + a];
    return true;
}

/* entry for name (created on first use); NULL on OOM or shape change */
static q_imatrix_entry *cal_entry(q_cal *c, const char *name, int64_t ncols, int64_t n_mat, bool xtx,
                                  q_cal_stat **st) {
    int64_t i = -1;
    if (c->last >= 0 && c->last < c->im->n && !strcmp(c->im->e[c->last].name, name)) i = c->last;
    for (int64_t k = 0; i < 0 && k < c->im->n; k++)
        if (!strcmp(c->im->e[k].name, name)) i = k;
    if (i < 0) {
        if (c->im->n >= c->cap_stat) {
            int64_t nc = c->cap_stat ? 2 * c->cap_stat : 64;
            q_cal_stat *ns = hq_realloc(c->stat, sizeof *ns * (size_t)nc);
            if (!ns) return NULL;
            memset(ns + c->cap_stat, 0, sizeof *ns * (size_t)(nc - c->cap_stat));
            c->stat = ns;
            c->cap_stat = nc;
        }
        uint64_t na;
        if (!hq_mul_u64((uint64_t)n_mat, (uint64_t)ncols + 1u, &na)) return NULL;
        double *acc = hq_calloc((size_t)na, sizeof(double));
        if (!acc) return NULL;
        if (!q_imatrix_add(c->im, name, ncols, n_mat, xtx)) {
            hq_free(acc);
            return NULL;
        }
        i = c->im->n - 1;
        c->stat[i].sum2 = acc;
        c->stat[i].cnt = acc + n_mat * ncols;
    }
    q_imatrix_entry *e = &c->im->e[i];
    if (e->ncols != ncols || e->n_mat != n_mat) {
        snprintf(c->bad_name, sizeof c->bad_name, "%s", name);
        return NULL;
    }
    c->last = i;
    *st = &c->stat[i];
    return e;
}

void q_cal_on_matmul(void *ud, const char *name, const float *x, int64_t n_tok, int64_t n_in) {
    q_cal *c = ud;
    if (c->oom || c->bad_name[0] || n_tok <= 0 || n_in <= 0) return;
    q_cal_stat *st;
    q_imatrix_entry *e = cal_entry(c, name, n_in, 1, c->full_hessian, &st);
    if (!e) {
        if (!c->bad_name[0]) c->oom = true;
        return;
    }
    /* in_sum2[j] += Σ_t x_tj² (llama-imatrix) */
    for (int64_t t = 0; t < n_tok; t++) {
        const float *xt = x + t * n_in;
        for (int64_t j = 0; j < n_in; j++) {
            double v = (double)xt[j] * xt[j];
            st->sum2[j] += v;
            st->sum_x2 += v;
            if (v > st->max_x2) st->max_x2 = v;
        }
    }
    st->n += (double)n_tok * (double)n_in;
    st->cnt[0] += (double)n_tok;
    if (e->xtx) {
        /* xtx += Σ_t x_t x_tᵀ */
        if (!cal_gram(c, x, n_tok, n_in)) {
            c->oom = true;
            return;
        }
        float *restrict H = e->xtx;
        const float *restrict G = c->gram;
        for (int64_t i = 0; i < n_in * n_in; i++) H[i] += G[i];
    }
}

void q_cal_on_experts(void *ud, int32_t layer, const char *name, const int32_t *ids, int64_t k_total,
                      const float *x, int64_t n_tok, int64_t n_in) {
    q_cal *c = ud;
    (void)layer;
    if (c->oom || c->bad_name[0]) return;
    /* the expert table's row count is the largest id + 1 at most; we size by
     * the model's E, passed as the entry's n_mat on first sight: E is taken
     * from the entries q_cal_prepare created */
    q_cal_stat *st;
    const q_imatrix_entry *probe = q_imatrix_find(c->im, name);
    if (!probe) return; /* created up front for every expert table */
    int64_t E = probe->n_mat;
    q_imatrix_entry *e = cal_entry(c, name, n_in, E, false, &st);
    if (!e) {
        if (!c->bad_name[0]) c->oom = true;
        return;
    }
    q_cal_stat *su = NULL;
    /* ffn_expert_up: rows are scaled by a scalar gate -> uniform importance */
    char up[HQ_MAX_GGUF_NAME + 1];
    q_imatrix_entry *eu = NULL;
    int64_t blk;
    if (schema_is(name, FMT_T_EXPERT_DOWN, &blk) && fmt_schema_name(FMT_T_EXPERT_UP, blk, up, sizeof up)) {
        if (q_imatrix_find(c->im, up)) eu = cal_entry(c, up, n_in, E, false, &su);
        e = (q_imatrix_entry *)q_imatrix_find(c->im, name); /* cal_entry may have moved the array */
        st = &c->stat[e - c->im->e];
    }
    for (int64_t t = 0; t < n_tok; t++) {
        const float *xt = x + t * n_in;
        for (int64_t k = 0; k < k_total; k++) {
            int32_t id = ids[t * k_total + k];
            if (id < 0 || id >= E) continue;
            double *sm = st->sum2 + (int64_t)id * n_in;
            for (int64_t j = 0; j < n_in; j++) sm[j] += (double)(xt[j] * xt[j]);
            st->cnt[id] += 1;
            if (eu && su) {
                double *u = su->sum2 + (int64_t)id * n_in;
                for (int64_t j = 0; j < n_in; j++) u[j] += 1;
                su->cnt[id] += 1;
            }
        }
    }
}

typedef struct {
    int64_t idx;
    double v;
} q_rank;
static int rank_desc(const void *a, const void *b) {
    double x = ((const q_rank *)a)->v, y = ((const q_rank *)b)->v;
    return x < y ? 1 : x > y ? -1 : 0;
}
static int rank_asc(const void *a, const void *b) { return -rank_desc(a, b); }

/* coverage of expert tables and activation outliers */
void q_cal_report(const q_cal *c, FILE *f, uint64_t tokens, uint64_t chunks) {
    const q_imatrix *im = c->im;
    fprintf(f, "calibration: %llu tokens in %llu chunks, %lld matrices\n", (unsigned long long)tokens,
           (unsigned long long)chunks, (long long)im->n);
    int64_t never_total = 0;
    for (int64_t i = 0; i < im->n; i++) {
        const q_imatrix_entry *e = &im->e[i];
        if (e->n_mat == 1 || !schema_is(e->name, FMT_T_EXPERT_DOWN, NULL)) continue;
        double sum = 0;
        int64_t never = 0, rare = 0;
        for (int64_t m = 0; m < e->n_mat; m++) sum += e->counts[m];
        double mean = sum / (double)e->n_mat;
        q_rank *r = hq_malloc_array((size_t)e->n_mat, sizeof *r);
        for (int64_t m = 0; m < e->n_mat; m++) {
            if (e->counts[m] == 0) never++;
            else if (e->counts[m] < 0.1 * mean) rare++;
            if (r) r[m] = (q_rank){m, e->counts[m]};
        }
        never_total += never;
        fprintf(f, "  %-32s %lld experts, %.0f routings (mean %.1f/expert): %lld never routed, %lld rarely (<10%% of "
               "mean)\n",
               e->name, (long long)e->n_mat, sum, mean, (long long)never, (long long)rare);
        if (r && (never || rare)) {
            qsort(r, (size_t)e->n_mat, sizeof *r, rank_asc);
            fprintf(f, "    least routed:");
            for (int64_t k = 0; k < e->n_mat && k < 10; k++)
                fprintf(f, " #%lld(%.0f)", (long long)r[k].idx, r[k].v);
            fprintf(f, "\n");
        }
        hq_free(r);
    }
    if (never_total)
        fprintf(f, "  note: %lld expert(s) saw no calibration token; quantize uses uniform importance for them\n",
               (long long)never_total);
    /* outliers: max x² / mean x² per matrix input */
    q_rank *r = hq_malloc_array((size_t)(im->n ? im->n : 1), sizeof *r);
    int64_t nr = 0;
    for (int64_t i = 0; r && i < im->n; i++)
        if (c->stat[i].n > 0 && c->stat[i].sum_x2 > 0)
            r[nr++] = (q_rank){i, c->stat[i].max_x2 / (c->stat[i].sum_x2 / c->stat[i].n)};
    if (r && nr) {
        qsort(r, (size_t)nr, sizeof *r, rank_desc);
        fprintf(f, "  activation outliers (max x^2 / mean x^2 of the input), worst first:\n");
        for (int64_t k = 0; k < nr && k < 8; k++)
            fprintf(f, "    %-34s %10.1f\n", im->e[r[k].idx].name, r[k].v);
    }
    hq_free(r);
}

q_cal *q_cal_new(bool full_hessian) {
    q_cal *c = hq_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->last = -1;
    c->full_hessian = full_hessian;
    c->im = hq_calloc(1, sizeof *c->im);
    if (!c->im) {
        hq_free(c);
        return NULL;
    }
    return c;
}

hq_status q_cal_prepare(q_cal *c, const char *model_path, char *err) {
    fmt_gguf *g = NULL;
    hq_status st = fmt_gguf_open(model_path, &g, err);
    if (st) return st;
    c->im->model_fp = q_model_fingerprint(g); /* quantize warns when used on another model */
    for (uint64_t i = 0; i < fmt_gguf_n_tensors(g); i++) {
        const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
        if ((schema_is(t->name, FMT_T_EXPERT_DOWN, NULL) || schema_is(t->name, FMT_T_EXPERT_UP, NULL)) &&
            t->n_dims == 2) {
            q_cal_stat *sp;
            if (!cal_entry(c, t->name, (int64_t)t->ne[0], (int64_t)t->ne[1], false, &sp)) {
                fmt_gguf_close(g);
                return hq_fail(err, HQ_ERR_NOMEM, "out of memory");
            }
        }
    }
    fmt_gguf_close(g);
    return HQ_OK;
}

hq_status q_cal_check(const q_cal *c, char *err) {
    if (c->oom) return hq_fail(err, HQ_ERR_NOMEM, "out of memory accumulating statistics");
    if (c->bad_name[0]) return hq_fail(err, HQ_ERR_INTERNAL, "matrix '%s' changed shape between calls", c->bad_name);
    return HQ_OK;
}

q_imatrix *q_cal_imatrix(q_cal *c) { return c->im; }

void q_cal_finish(q_cal *c) {
    for (int64_t i = 0; i < c->im->n; i++) {
        q_imatrix_entry *e = &c->im->e[i];
        const q_cal_stat *st = &c->stat[i];
        for (int64_t k = 0; k < e->n_mat * e->ncols; k++) e->in_sum2[k] = (float)st->sum2[k];
        for (int64_t k = 0; k < e->n_mat; k++) e->counts[k] = (float)st->cnt[k];
    }
}

/* v[0..n) floats summed over the ranks in rank order, in double, in pieces */
static hq_status par_sum_floats(float *v, int64_t n, double *tmp, int64_t piece, char *err) {
    for (int64_t o = 0; o < n; o += piece) {
        int64_t k = n - o < piece ? n - o : piece;
        for (int64_t i = 0; i < k; i++) tmp[i] = v[o + i];
        hq_status st = hq_par_sum_f64(tmp, k, err);
        if (st != HQ_OK) return st;
        for (int64_t i = 0; i < k; i++) v[o + i] = (float)tmp[i];
    }
    return HQ_OK;
}

/* Each rank calibrated its share of the chunks: add the statistics of all
 * ranks in rank order (the same entries in the same order on every rank:
 * each ran ≥ 1 chunk of the same model, checked). Σx² and counts are doubles
 * until q_cal_finish, so the file equals the one-process file (the float
 * roundings happen after the sum); Σxxᵀ stays float per rank (its size) and
 * its sum can differ from the one-process sum in the last bits. max_x2: each
 * rank's maximum in its slot of a P-vector, summed, then the largest. */
hq_status q_cal_reduce(q_cal *c, char *err) {
    if (!hq_par_active()) return HQ_OK;
    q_imatrix *im = c->im;
    uint64_t names = 1469598103934665603ull;
    for (int64_t i = 0; i < im->n; i++)
        for (const char *p = im->e[i].name; *p; p++) names = (names ^ (unsigned char)*p) * 1099511628211ull;
    uint64_t same[2] = {names, (uint64_t)im->n};
    hq_status st = hq_par_check_same(same, sizeof same, "the set of calibrated matrices", err);
    if (st != HQ_OK) return st;
    const int64_t piece = 1 << 20;
    int P = hq_par_size(), R = hq_par_rank();
    double *tmp = hq_malloc_array((size_t)piece, sizeof(double)), *mx = hq_calloc((size_t)P, sizeof(double));
    if (!tmp || !mx) st = hq_fail(err, HQ_ERR_NOMEM, "out of memory for the reduction");
    st = hq_par_agree(st, err);
    for (int64_t i = 0; st == HQ_OK && i < im->n; i++) {
        q_imatrix_entry *e = &im->e[i];
        q_cal_stat *cs = &c->stat[i];
        for (int64_t o = 0, na = e->n_mat * (e->ncols + 1); st == HQ_OK && o < na; o += piece)
            st = hq_par_sum_f64(cs->sum2 + o, na - o < piece ? na - o : piece, err);
        if (st == HQ_OK && e->xtx) st = par_sum_floats(e->xtx, e->ncols * e->ncols, tmp, piece, err);
        double sn[2] = {cs->sum_x2, cs->n};
        if (st == HQ_OK) st = hq_par_sum_f64(sn, 2, err);
        memset(mx, 0, (size_t)P * sizeof(double));
        mx[R] = cs->max_x2;
        if (st == HQ_OK) st = hq_par_sum_f64(mx, P, err);
        cs->sum_x2 = sn[0], cs->n = sn[1];
        for (int r = 0; r < P; r++) cs->max_x2 = mx[r] > cs->max_x2 ? mx[r] : cs->max_x2;
    }
    hq_free(tmp);
    hq_free(mx);
    return st;
}

void q_cal_free(q_cal *c) {
    if (!c) return;
    for (int64_t i = 0; c->im && i < c->im->n; i++) hq_free(c->stat[i].sum2);
    q_imatrix_free(c->im);
    hq_free(c->stat);
    hq_free(c->last_x);
    hq_free(c->gram);
    hq_free(c);
}
