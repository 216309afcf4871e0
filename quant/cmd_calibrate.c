/* quant/cmd_calibrate.c — `hyquant calibrate model.gguf --text FILE -o model.imatrix`
 *
 * Runs the model over calibration text in chunks of --ctx tokens (each chunk
 * a fresh sequence, starting with BOS when the model has one, as
 * llama-imatrix does) and accumulates through rt_hooks, for every matrix
 * product, Σx² per input column and the token count (imatrix.h layout);
 * CDMoE expert tables get one slice per expert with the tokens routed to it.
 * --full-hessian also accumulates Σxxᵀ per plain matrix for GPTQ.
 * Prints a coverage report (tokens, experts never / rarely routed, matrices
 * whose inputs have outlier columns). Output is atomic. */
#include "../cli/commands.h" // defines: hq_cmd_calibrate
#include "../core/opts.h"
#include "../runtime/runtime.h"
#include "../runtime/tokenizer.h"
#include "imatrix.h"
#include "../formats/schema.h" // defines: fmt_schema_lookup, FMT_T_EXPERT_DOWN

#include <math.h>
#include <stdio.h>
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
} q_cal_stat;

typedef struct {
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
} q_cal;

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
#pragma omp parallel for schedule(dynamic, 8)
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
#pragma omp parallel for schedule(static)
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
        if (!q_imatrix_add(c->im, name, ncols, n_mat, xtx)) return NULL;
        i = c->im->n - 1;
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

static void on_matmul(void *ud, const char *name, const float *x, int64_t n_tok, int64_t n_in) {
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
            e->in_sum2[j] += (float)v;
            st->sum_x2 += v;
            if (v > st->max_x2) st->max_x2 = v;
        }
    }
    st->n += (double)n_tok * (double)n_in;
    e->counts[0] += (float)n_tok;
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

static void on_experts(void *ud, int32_t layer, const char *name, const int32_t *ids, int64_t k_total,
                       const float *x, int64_t n_tok, int64_t n_in) {
    q_cal *c = ud;
    (void)layer;
    if (c->oom || c->bad_name[0]) return;
    /* the expert table's row count is the largest id + 1 at most; we size by
     * the model's E, passed as the entry's n_mat on first sight: E is taken
     * from the caller via c->im entries created in calibrate_run */
    q_cal_stat *st;
    const q_imatrix_entry *probe = q_imatrix_find(c->im, name);
    if (!probe) return; /* created up front for every expert table */
    int64_t E = probe->n_mat;
    q_imatrix_entry *e = cal_entry(c, name, n_in, E, false, &st);
    if (!e) {
        if (!c->bad_name[0]) c->oom = true;
        return;
    }
    /* ffn_expert_up: rows are scaled by a scalar gate -> uniform importance */
    char up[HQ_MAX_GGUF_NAME + 1];
    q_imatrix_entry *eu = NULL;
    int64_t blk;
    if (schema_is(name, FMT_T_EXPERT_DOWN, &blk) && fmt_schema_name(FMT_T_EXPERT_UP, blk, up, sizeof up)) {
        q_cal_stat *su;
        if (q_imatrix_find(c->im, up)) eu = cal_entry(c, up, n_in, E, false, &su);
        e = (q_imatrix_entry *)q_imatrix_find(c->im, name); /* cal_entry may have moved the array */
    }
    for (int64_t t = 0; t < n_tok; t++) {
        const float *xt = x + t * n_in;
        for (int64_t k = 0; k < k_total; k++) {
            int32_t id = ids[t * k_total + k];
            if (id < 0 || id >= E) continue;
            float *s = e->in_sum2 + (int64_t)id * n_in;
            for (int64_t j = 0; j < n_in; j++) s[j] += xt[j] * xt[j];
            e->counts[id] += 1;
            if (eu) {
                float *u = eu->in_sum2 + (int64_t)id * n_in;
                for (int64_t j = 0; j < n_in; j++) u[j] += 1;
                eu->counts[id] += 1;
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
static void report(const q_cal *c, uint64_t tokens, uint64_t chunks) {
    const q_imatrix *im = c->im;
    printf("calibration: %llu tokens in %llu chunks, %lld matrices\n", (unsigned long long)tokens,
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
        printf("  %-32s %lld experts, %.0f routings (mean %.1f/expert): %lld never routed, %lld rarely (<10%% of "
               "mean)\n",
               e->name, (long long)e->n_mat, sum, mean, (long long)never, (long long)rare);
        if (r && (never || rare)) {
            qsort(r, (size_t)e->n_mat, sizeof *r, rank_asc);
            printf("    least routed:");
            for (int64_t k = 0; k < e->n_mat && k < 10; k++)
                printf(" #%lld(%.0f)", (long long)r[k].idx, r[k].v);
            printf("\n");
        }
        hq_free(r);
    }
    if (never_total)
        printf("  note: %lld expert(s) saw no calibration token; quantize uses uniform importance for them\n",
               (long long)never_total);
    /* outliers: max x² / mean x² per matrix input */
    q_rank *r = hq_malloc_array((size_t)(im->n ? im->n : 1), sizeof *r);
    int64_t nr = 0;
    for (int64_t i = 0; r && i < im->n; i++)
        if (c->stat[i].n > 0 && c->stat[i].sum_x2 > 0)
            r[nr++] = (q_rank){i, c->stat[i].max_x2 / (c->stat[i].sum_x2 / c->stat[i].n)};
    if (r && nr) {
        qsort(r, (size_t)nr, sizeof *r, rank_desc);
        printf("  activation outliers (max x^2 / mean x^2 of the input), worst first:\n");
        for (int64_t k = 0; k < nr && k < 8; k++)
            printf("    %-34s %10.1f\n", im->e[r[k].idx].name, r[k].v);
    }
    hq_free(r);
}

int hq_cmd_calibrate(int argc, char **argv) {
    const char *text = NULL, *out = NULL;
    int64_t ctx = 512, chunks = 0, threads = 0;
    bool full = false, quiet = false;
    const hq_opt opts[] = {
        {0, "text", HQ_OPT_IN, &text, "FILE", "calibration text (UTF-8)", 0, 0},
        {'o', "output", HQ_OPT_OUT, &out, "FILE", "imatrix file to write", 0, 0},
        {0, "ctx", HQ_OPT_INT, &ctx, "N", "tokens per chunk (default 512)", 2, 1 << 20},
        {0, "chunks", HQ_OPT_INT, &chunks, "K", "use at most K chunks (default: all)", 0, 1 << 30},
        {0, "full-hessian", HQ_OPT_FLAG, &full, NULL, "also store Σxxᵀ per matrix (for --method gptq)", 0, 0},
        {0, "threads", HQ_OPT_INT, &threads, "T", "threads (default: all cores)", 0, 4096},
        {'q', "quiet", HQ_OPT_FLAG, &quiet, NULL, "no progress line", 0, 0},
        {0},
    };
    const char *synopsis = "MODEL.gguf --text FILE -o OUT.imatrix [options]";
    char err[HQ_ERR_LEN] = "";
    const char *pos[1];
    int n_pos = 0, rc = 0;
    bool help = false;
    rt_model *m = NULL;
    rt_state *s = NULL;
    char *buf = NULL;
    int32_t *ids = NULL;
    q_cal c = {.last = -1};
    hq_status st = hq_opts_parse(opts, argc, argv, pos, 1, &n_pos, &help, err);
    if (st) return hq_cmd_error("calibrate", st, err);
    if (help) {
        hq_opts_usage(stdout, "calibrate", synopsis, opts);
        return 0;
    }
    if (n_pos != 1 || !text || !out) {
        hq_opts_usage(stderr, "calibrate", synopsis, opts);
        return hq_cmd_error("calibrate", HQ_ERR_ARG, "need MODEL.gguf, --text FILE and -o FILE");
    }
    if ((st = hq_opts_check_paths(opts, pos, n_pos, 0, err))) return hq_cmd_error("calibrate", st, err);
    if (quiet) hq_quiet = 1;
    rt_set_threads((int)threads);
    c.full_hessian = full;
    c.im = hq_calloc(1, sizeof *c.im);
    if (!c.im) return hq_cmd_error("calibrate", HQ_ERR_NOMEM, "out of memory");
    uint64_t len = 0, n_ids = 0;
    if ((st = hq_read_file(text, HQ_MAX_TEXT, &buf, &len, err))) goto fail;
    if ((st = rt_model_load(pos[0], &m, err))) goto fail;
    struct rt_tokenizer *tok = rt_model_tokenizer(m);
    if (!tok) {
        st = hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: no tokenizer embedded (tokenizer.huggingface.json)", pos[0]);
        goto fail;
    }
    if ((st = rt_tokenize(tok, buf, len, false, &ids, &n_ids, err))) goto fail;
    int64_t mctx = rt_model_ctx_len(m);
    if (mctx > 1 && ctx > mctx) ctx = mctx;
    int32_t bos = rt_model_bos(m);
    /* each chunk: [BOS] + ctx-1 text tokens (or ctx text tokens without BOS) */
    int64_t body = bos >= 0 ? ctx - 1 : ctx;
    int64_t n_chunks = (int64_t)n_ids / body;
    if (n_chunks == 0 && n_ids >= 2) n_chunks = 1;
    if (chunks > 0 && n_chunks > chunks) n_chunks = chunks;
    if (n_chunks == 0) {
        st = hq_fail(err, HQ_ERR_ARG, "%s: only %llu tokens; need at least 2", text, (unsigned long long)n_ids);
        goto fail;
    }
    /* expert tables get their [E, d] entries up front (the hook only sees ids) */
    {
        fmt_gguf *g = NULL;
        if ((st = fmt_gguf_open(pos[0], &g, err))) goto fail;
        c.im->model_fp = q_model_fingerprint(g); /* quantize warns when used on another model */
        for (uint64_t i = 0; i < fmt_gguf_n_tensors(g); i++) {
            const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
            if ((schema_is(t->name, FMT_T_EXPERT_DOWN, NULL) || schema_is(t->name, FMT_T_EXPERT_UP, NULL)) &&
                t->n_dims == 2) {
                q_cal_stat *sp;
                if (!cal_entry(&c, t->name, (int64_t)t->ne[0], (int64_t)t->ne[1], false, &sp)) {
                    fmt_gguf_close(g);
                    st = hq_fail(err, HQ_ERR_NOMEM, "out of memory");
                    goto fail;
                }
            }
        }
        fmt_gguf_close(g);
    }
    if ((st = rt_state_new(m, ctx, &s, err))) goto fail;
    rt_hooks h = {.ud = &c, .on_matmul_input = on_matmul, .on_experts = on_experts};
    rt_model_set_hooks(m, &h);
    int32_t *chunk = hq_malloc_array((size_t)ctx, sizeof(int32_t));
    if (!chunk) {
        st = hq_fail(err, HQ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    uint64_t tokens = 0;
    for (int64_t k = 0; k < n_chunks; k++) {
        int64_t off = k * body, nb = (int64_t)n_ids - off < body ? (int64_t)n_ids - off : body, n = 0;
        if (bos >= 0) chunk[n++] = bos;
        memcpy(chunk + n, ids + off, sizeof(int32_t) * (size_t)nb);
        n += nb;
        rt_state_reset(s);
        st = rt_forward(m, s, chunk, n, NULL, err);
        if (!st && c.oom) st = hq_fail(err, HQ_ERR_NOMEM, "out of memory accumulating statistics");
        if (!st && c.bad_name[0])
            st = hq_fail(err, HQ_ERR_INTERNAL, "matrix '%s' changed shape between calls", c.bad_name);
        if (st) {
            hq_free(chunk);
            goto fail;
        }
        tokens += (uint64_t)n;
        hq_progress("calibrate", (uint64_t)k + 1, (uint64_t)n_chunks, "chunks");
    }
    hq_progress_done();
    hq_free(chunk);
    rt_model_set_hooks(m, NULL);
    c.im->chunk_count = (uint32_t)n_chunks;
    c.im->chunk_size = (uint32_t)ctx;
    c.im->datasets = hq_calloc(1, sizeof(char *));
    if (c.im->datasets && (c.im->datasets[0] = hq_strdup(text))) c.im->n_datasets = 1;
    report(&c, tokens, (uint64_t)n_chunks);
    if ((st = q_imatrix_save(c.im, out, err))) goto fail;
    printf("wrote %s (%lld entries%s)\n", out, (long long)c.im->n, full ? ", with full Σxxᵀ" : "");
    goto done;
fail:
    hq_progress_done();
    rc = hq_cmd_error("calibrate", st, err);
done:
    rt_state_free(s);
    rt_model_free(m);
    hq_free(ids);
    hq_free(buf);
    q_imatrix_free(c.im);
    hq_free(c.stat);
    hq_free(c.last_x);
    hq_free(c.gram);
    return rc;
}
