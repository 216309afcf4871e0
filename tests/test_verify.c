/* tests/test_verify.c — verify/: statistics against an independent naive
 * computation (two-pass variances, per-token differences for the ln-ratio
 * error, insertion-sorted percentiles); on a converted fixture model
 * (tests/fixtures/models/cheems-tiny-random, committed: absent fails): the base
 * against itself gives exactly ratio 1 / KLD 0 / 100% top-1 / zero drift;
 * a copy with one perturbed tensor gives drift that starts exactly at that
 * sub-block, and its weight error equals the perturbation's; quantized
 * copies order Q8_0 < Q4_0 by KLD; base log-probs from a saved file agree
 * with the in-process base; mismatched models, texts, files and contexts are
 * refused; the JSON report has the documented schema; allocation failures
 * are clean. */
#include "test.h"
#include "../verify/verify.h"
#include "../verify/stats.h"
#include "../convert/convert.h"
#include "../formats/gguf.h"
#include "../quant/quantize.h"
#include "../runtime/logits_file.h"
#include "../runtime/ppl.h"
#include "../runtime/runtime.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_tmp[256];
static bool g_san;

/* ---------------------------------------------------------------- stats */
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static double urand(void) { /* xorshift64*, [0, 1) */
    g_rng ^= g_rng >> 12, g_rng ^= g_rng << 25, g_rng ^= g_rng >> 27;
    return (double)((g_rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static void isort(double *v, int n) {
    for (int i = 1; i < n; i++) {
        double x = v[i];
        int j = i - 1;
        while (j >= 0 && v[j] > x) v[j + 1] = v[j], j--;
        v[j + 1] = x;
    }
}

/* rank-based percentile, written from the definition: value at rank f·(n−1) */
static double naive_pct(const double *sorted, int n, double f) {
    double h = f * (n - 1);
    int lo = (int)floor(h);
    if (lo >= n - 1) return sorted[n - 1];
    return sorted[lo] + (h - lo) * (sorted[lo + 1] - sorted[lo]);
}

static double sem(const double *x, int n) { /* two-pass standard error of the mean */
    double m = 0, s = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m /= n;
    for (int i = 0; i < n; i++) s += (x[i] - m) * (x[i] - m);
    return sqrt(s / n / (n - 1));
}

static bool close_rel(double a, double b, double tol) { return fabs(a - b) <= tol * (fabs(a) + fabs(b)) + 1e-300; }

static void test_stats(int n) {
    enum { V = 29 };
    vf_acc a = {0};
    double *kld = calloc((size_t)n, sizeof(double)), *dp = calloc((size_t)n, sizeof(double));
    double *nk = calloc((size_t)n, sizeof(double)), *nd = calloc((size_t)n, sizeof(double));
    double *nq = calloc((size_t)n, sizeof(double)), *nb = calloc((size_t)n, sizeof(double));
    double *diff = calloc((size_t)n, sizeof(double)), *d2 = calloc((size_t)n, sizeof(double));
    int same = 0;
    for (int t = 0; t < n; t++) {
        float lb[V], lq[V], pb[V], pq[V];
        for (int i = 0; i < V; i++) {
            lb[i] = (float)(4 * urand() - 2);
            lq[i] = lb[i] + (float)(0.6 * (urand() - 0.5));
        }
        int tok = (int)(urand() * V);
        int64_t tb = vf_log_softmax(lb, V, pb), tq = vf_log_softmax(lq, V, pq);
        double nll_b = rt_nll_of(lb, V, tok), nll_q = rt_nll_of(lq, V, tok);
        vf_token(pq, pb, V, nll_q, nll_b, tq, tb, &a, NULL, NULL);
        /* independent: softmax in long double, KL in the textbook form */
        long double zb = 0, zq = 0;
        for (int i = 0; i < V; i++) zb += expl(lb[i]), zq += expl(lq[i]);
        long double k = 0;
        int ab = 0, aq = 0;
        for (int i = 0; i < V; i++) {
            long double p = expl(lb[i]) / zb, q = expl(lq[i]) / zq;
            k += p * logl(p / q);
            if (lb[i] > lb[ab]) ab = i;
            if (lq[i] > lq[aq]) aq = i;
        }
        nk[t] = (double)k;
        nq[t] = (double)(logl(zq) - lq[tok]);
        nb[t] = (double)(logl(zb) - lb[tok]);
        nd[t] = exp(-nq[t]) - exp(-nb[t]);
        diff[t] = nq[t] - nb[t];
        d2[t] = nd[t] * nd[t];
        same += ab == aq;
        kld[t] = (double)k; /* vf_summarize sorts the arrays it is given */
        dp[t] = nd[t];
    }
    vf_summary s;
    vf_summarize(&a, kld, dp, &s);
    CHECK(s.count == (uint64_t)n, "count %llu", (unsigned long long)s.count);
    double mq = 0, mb = 0, mk = 0, md = 0, m2 = 0;
    for (int t = 0; t < n; t++) mq += nq[t], mb += nb[t], mk += nk[t], md += nd[t], m2 += d2[t];
    mq /= n, mb /= n, mk /= n, md /= n, m2 /= n;
    CHECK(close_rel(s.ppl_q.val, exp(mq), 1e-9), "PPL_q %.12g vs %.12g", s.ppl_q.val, exp(mq));
    CHECK(close_rel(s.ppl_b.val, exp(mb), 1e-9), "PPL_b %.12g vs %.12g", s.ppl_b.val, exp(mb));
    CHECK(close_rel(s.ppl_q.err, exp(mq) * sem(nq, n), 1e-6), "PPL_q err %.10g vs %.10g", s.ppl_q.err,
          exp(mq) * sem(nq, n));
    /* the ln-ratio error is the SEM of the per-token differences (covariance-aware) */
    CHECK(close_rel(s.ln_ratio.val, mq - mb, 1e-9), "ln ratio %.12g vs %.12g", s.ln_ratio.val, mq - mb);
    CHECK(close_rel(s.ln_ratio.err, sem(diff, n), 1e-5), "ln ratio err %.10g vs %.10g", s.ln_ratio.err, sem(diff, n));
    CHECK(s.ln_ratio.err < sqrt(pow(sem(nq, n), 2) + pow(sem(nb, n), 2)), "correlated runs: error below independent");
    CHECK(close_rel(s.ppl_ratio.val, exp(mq - mb), 1e-9), "PPL ratio");
    CHECK(close_rel(s.kld.val, mk, 1e-5), "KLD mean %.10g vs %.10g", s.kld.val, mk);
    CHECK(close_rel(s.kld.err, sem(nk, n), 1e-4), "KLD err %.10g vs %.10g", s.kld.err, sem(nk, n));
    CHECK(close_rel(s.dp.val, md, 1e-6) && close_rel(s.dp.err, sem(nd, n), 1e-5), "Δp mean/err");
    CHECK(close_rel(s.dp_rms.val, sqrt(m2), 1e-6), "RMS Δp %.10g vs %.10g", s.dp_rms.val, sqrt(m2));
    CHECK(close_rel(s.dp_rms.err, 0.5 / sqrt(m2) * sem(d2, n), 1e-5), "RMS Δp err");
    double p = (double)same / n;
    CHECK(s.top1.val == p, "top-1 %.6f vs %.6f", s.top1.val, p);
    CHECK(close_rel(s.top1.err, sqrt(p * (1 - p) / (n - 1)), 1e-12), "top-1 err");
    isort(nk, n);
    isort(nd, n);
    double med = n % 2 ? nk[n / 2] : 0.5 * (nk[n / 2 - 1] + nk[n / 2]);
    CHECK(close_rel(s.kld_median, med, 1e-5), "KLD median %.10g vs %.10g (n=%d)", s.kld_median, med, n);
    CHECK(close_rel(s.kld_p90, naive_pct(nk, n, 0.90), 1e-5), "KLD p90");
    CHECK(close_rel(s.kld_p95, naive_pct(nk, n, 0.95), 1e-5), "KLD p95");
    CHECK(close_rel(s.kld_p99, naive_pct(nk, n, 0.99), 1e-5), "KLD p99 %.10g vs %.10g", s.kld_p99,
          naive_pct(nk, n, 0.99));
    CHECK(close_rel(s.kld_p999, naive_pct(nk, n, 0.999), 1e-5), "KLD p99.9");
    CHECK(close_rel(s.kld_max, nk[n - 1], 1e-5) && close_rel(s.kld_min, nk[0], 1e-4), "KLD max/min");
    CHECK(close_rel(s.dp_p05, naive_pct(nd, n, 0.05), 1e-6) && close_rel(s.dp_max, nd[n - 1], 1e-6), "Δp pct");
    CHECK(close_rel(s.dp_max_abs, fmax(fabs(nd[0]), fabs(nd[n - 1])), 1e-9), "max |Δp|");
    free(kld), free(dp), free(nk), free(nd), free(nq), free(nb), free(diff), free(d2);
}

static void test_stats_edges(void) {
    double v[5] = {5, 1, 4, 2, 3};
    isort(v, 5);
    CHECK(vf_percentile(v, 5, 0) == 1 && vf_percentile(v, 5, 1) == 5 && vf_percentile(v, 5, 0.5) == 3,
          "percentile ends");
    CHECK(vf_percentile(v, 5, 0.3) == naive_pct(v, 5, 0.3), "percentile 0.3");
    CHECK(vf_median(v, 4) == 2.5 && vf_median(v, 5) == 3, "median even/odd");
    vf_pm m = vf_mean_err(10, 30, 10); /* N ≤ 10: no error, as llama */
    CHECK(m.val == 1 && m.err == 0, "mean_err small N");
    vf_summary s;
    vf_acc a = {0};
    vf_summarize(&a, NULL, NULL, &s);
    CHECK(s.count == 0 && s.ppl_q.val == 0, "empty summary");
}

/* ------------------------------------------------------------ fixtures */
static const char *k_words[] = {"the", "model", "quantized", "weights", "drift", "state", "space", "attention",
                                "expert", "routing", "layer", "token", "of", "and", "a", "is", "in", "to",
                                "hidden", "scale", "block", "error", "small", "large", "mixture", "Cheems"};

static bool write_text(const char *path, int n_words) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    uint64_t r = 12345;
    for (int i = 0; i < n_words; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        fprintf(f, "%s%s", k_words[(r >> 33) % (sizeof k_words / sizeof *k_words)], i % 13 == 12 ? ".\n" : " ");
    }
    return fclose(f) == 0;
}

typedef struct {
    const char *perturb;   /* F32 tensor to perturb, or NULL */
    double rel;            /* noise RMS relative to the tensor's RMS */
    const char *tok_extra; /* appended to the embedded tokenizer.json */
    bool drop_vocab_row;   /* token_embd.weight loses its last row */
    double d2, b2;         /* out: Σ(Δ)², Σx² of the perturbed tensor, computed here */
} copy_opts;

/* a GGUF copy through the gguf writer, optionally with one tensor perturbed */
static hq_status copy_gguf(const char *src, const char *dst, copy_opts *co, char *err) {
    hq_inputs_forget(); /* dst may have been read by an earlier case */
    fmt_gguf *g = NULL;
    fmt_gguf_writer *w = NULL;
    hq_out o = {0};
    float *buf = NULL;
    char *tj = NULL;
    hq_status st = fmt_gguf_open(src, &g, err);
    if (st != HQ_OK) return st;
    if ((st = fmt_gguf_writer_init(&w, fmt_gguf_alignment(g), err)) != HQ_OK) goto out;
    for (uint64_t i = 0; i < fmt_gguf_n_kv(g); i++) {
        const fmt_gguf_kv *kv = fmt_gguf_kv_at(g, i);
        if (co->tok_extra && !strcmp(kv->key, "tokenizer.huggingface.json")) {
            size_t n = kv->v.str.len, m = strlen(co->tok_extra);
            tj = malloc(n + m);
            memcpy(tj, kv->v.str.s, n);
            memcpy(tj + n, co->tok_extra, m);
            st = fmt_gguf_set_str(w, kv->key, tj, n + m, err);
        } else {
            st = fmt_gguf_copy_kv(w, kv, err);
        }
        if (st != HQ_OK) goto out;
    }
    for (uint64_t i = 0; i < fmt_gguf_n_tensors(g); i++) {
        const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
        uint64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        if (co->drop_vocab_row && !strcmp(t->name, "token_embd.weight")) ne[1]--;
        if ((st = fmt_gguf_add_tensor(w, t->name, t->type, t->n_dims, ne, err)) != HQ_OK) goto out;
    }
    if ((st = hq_out_open(&o, dst, err)) != HQ_OK) goto out;
    if ((st = fmt_gguf_write_header(w, &o, err)) != HQ_OK) goto out;
    for (uint64_t i = 0; i < fmt_gguf_n_tensors(g); i++) {
        const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
        const void *data = t->data;
        if (co->perturb && !strcmp(t->name, co->perturb) && t->type == GGML_T_F32) {
            uint64_t n = t->nbytes / 4;
            buf = malloc(t->nbytes);
            memcpy(buf, t->data, t->nbytes);
            double ss = 0;
            for (uint64_t k = 0; k < n; k++) ss += (double)buf[k] * buf[k];
            double sd = co->rel * sqrt(ss / (double)n) * sqrt(3.0); /* uniform(−a, a) has RMS a/√3 */
            co->d2 = 0, co->b2 = ss;
            for (uint64_t k = 0; k < n; k++) {
                float nv = buf[k] + (float)(sd * (2 * urand() - 1));
                double dd = (double)nv - (double)buf[k];
                co->d2 += dd * dd;
                buf[k] = nv;
            }
            data = buf;
        }
        uint64_t nb = fmt_gguf_writer_tensor_nbytes(w, i);
        if ((st = fmt_gguf_write_tensor(w, &o, i, data, nb, err)) != HQ_OK) goto out;
    }
    if ((st = fmt_gguf_writer_finish(w, &o, err)) != HQ_OK) goto out;
    st = hq_out_commit(&o, err);
out:
    if (st != HQ_OK) hq_out_abort(&o);
    free(buf);
    free(tj);
    fmt_gguf_writer_free(w);
    fmt_gguf_close(g);
    return st;
}

/* the perplexity command's --save-logits file, through the runtime's writer */
static hq_status save_logits(const char *model, const char *text_path, int64_t ctx, int64_t chunks, const char *dst,
                             char *err) {
    rt_model *m = NULL;
    rt_state *s = NULL;
    char *text = NULL;
    uint64_t len = 0;
    float *lg = NULL;
    rt_ppl_chunks ch = {0};
    hq_out o = {0};
    hq_status st = hq_read_file(text_path, 1 << 24, &text, &len, err);
    if (st == HQ_OK) st = rt_model_load(model, &m, err);
    if (st == HQ_OK) st = rt_ppl_prepare(m, text, len, text_path, ctx, chunks, &ch, err);
    if (st == HQ_OK) st = rt_state_new(m, ctx, &s, err);
    if (st != HQ_OK) goto out;
    int64_t V = rt_model_n_vocab(m);
    lg = hq_malloc_array((size_t)(ch.n_scored + 1) * (size_t)V, sizeof(float));
    rt_logits_header h = {.n_vocab = (uint32_t)V, .n_ctx = (uint32_t)ctx, .n_chunks = (uint32_t)ch.n_chunks,
                          .first = (uint32_t)ch.first, .n_scored = (uint32_t)ch.n_scored,
                          .bos_id = ch.use_bos ? ch.bos : -1, .flags = ch.use_bos ? 1u : 0u,
                          .text_hash = rt_fnv1a64(text, len), .n_text_tokens = ch.n_text_tokens};
    fmt_gguf *g = NULL;
    if (fmt_gguf_open(model, &g, NULL) == HQ_OK) {
        fmt_gguf_str js;
        if (fmt_gguf_get_str(g, "tokenizer.huggingface.json", &js)) h.tokenizer_hash = rt_fnv1a64(js.s, js.len);
        fmt_gguf_close(g);
    }
    if ((st = hq_out_open(&o, dst, err)) != HQ_OK || (st = rt_logits_write_header(&o, &h, ch.tokens, err)) != HQ_OK)
        goto out;
    double nll = 0;
    for (int64_t c = 0; c < ch.n_chunks && st == HQ_OK; c++) {
        rt_state_reset(s);
        st = rt_forward_from(m, s, ch.tokens + c * ctx, ctx, ch.first, lg, err);
        for (int64_t j = 0; j < ch.n_scored && st == HQ_OK; j++) {
            nll += rt_nll_of(lg + j * V, V, ch.tokens[c * ctx + ch.first + j + 1]);
            st = rt_logits_write_row(&o, lg + j * V, (uint32_t)V, err);
        }
    }
    h.nll_sum = nll;
    if (st == HQ_OK) st = rt_logits_finish(&o, &h, err);
out:
    if (st != HQ_OK && o.fp) hq_out_abort(&o);
    hq_free(lg);
    rt_ppl_free(&ch);
    rt_state_free(s);
    rt_model_free(m);
    hq_free(text);
    return st;
}

static char P_BASE[300], P_TEXT[300], P_TEXT2[300], P_PERT[300], P_PERT2[300], P_Q8[300], P_Q4[300], P_TOK[300],
    P_LOGITS[300], P_OTHER[300], P_OTHER_LOGITS[300];
static const int64_t CTX = 32;
static int64_t g_chunks = 6;

static hq_status run(const char *base, const char *quant, const char *text, const char *logits, int64_t ctx,
                     int64_t chunks, vf_result *r, char *err) {
    vf_opts o = {.base = base, .quant = quant, .text = text, .base_logits = logits, .ctx = ctx, .chunks = chunks,
                 .threads = 0, .progress = false};
    return vf_run(&o, r, err);
}

static void test_self(void) {
    char err[HQ_ERR_LEN] = "";
    vf_result r;
    hq_status st = run(P_BASE, P_BASE, P_TEXT, NULL, CTX, g_chunks, &r, err);
    CHECK(st == HQ_OK, "self run: %s", err);
    if (st != HQ_OK) return;
    const vf_summary *s = &r.sum;
    CHECK(s->count == (uint64_t)(g_chunks * (CTX - 1 - CTX / 2)), "scored %llu", (unsigned long long)s->count);
    CHECK(s->ppl_ratio.val == 1.0 && s->ln_ratio.val == 0.0 && s->ppl_q.val == s->ppl_b.val, "self PPL ratio %.17g",
          s->ppl_ratio.val);
    CHECK(s->kld.val == 0.0 && s->kld_max == 0.0 && s->kld_min == 0.0, "self KLD %.3g max %.3g", s->kld.val,
          s->kld_max);
    CHECK(s->top1.val == 1.0 && s->top1.err == 0.0, "self top-1 %.17g", s->top1.val);
    CHECK(s->dp_rms.val == 0.0 && s->dp_max_abs == 0.0, "self Δp");
    bool zero = true;
    for (int64_t l = 0; l < r.n_layers; l++) {
        const vf_layer *y = &r.layers[l];
        zero &= y->err_mixer == 0 && y->err_ffn == 0 && y->cos_mixer == 1 && y->cos_ffn == 1;
        if (y->has_routing) zero &= y->route_changed == 0 && y->route_jaccard == 1.0;
    }
    CHECK(zero && r.err_embd == 0 && r.cos_embd == 1, "self: zero hidden-state drift and identical routing");
    CHECK(r.has_routing && r.route_changed == 0, "self routing compared (%d)", r.has_routing);
    CHECK(r.n_weights > 0 && r.n_weights_changed == 0 && r.weights[0].rel_rms == 0, "self weights");
    CHECK(r.n_layers == 4 && r.layers[0].mixer_kind == VF_KIND_SSD && r.layers[1].mixer_kind == VF_KIND_ATTN &&
              r.layers[0].ffn_kind == VF_KIND_EXPERTS,
          "layer kinds %s/%s", r.n_layers ? r.layers[0].mixer : "", r.n_layers ? r.layers[0].ffn : "");
    vf_result_free(&r);
}

static void test_perturbed(void) {
    char err[HQ_ERR_LEN] = "";
    copy_opts co = {.perturb = "blk.2.ssm_out.weight", .rel = 0.05};
    hq_status st = copy_gguf(P_BASE, P_PERT, &co, err);
    CHECK(st == HQ_OK, "perturbed copy: %s", err);
    if (st != HQ_OK) return;
    vf_result r;
    st = run(P_BASE, P_PERT, P_TEXT, NULL, CTX, g_chunks, &r, err);
    CHECK(st == HQ_OK, "perturbed run: %s", err);
    if (st != HQ_OK) return;
    const vf_summary *s = &r.sum;
    CHECK(s->kld.val > 0 && s->kld_max > 0 && s->ppl_q.val != s->ppl_b.val && s->dp_rms.val > 0,
          "perturbed: KLD %.3g, PPL %.6g vs %.6g", s->kld.val, s->ppl_q.val, s->ppl_b.val);
    CHECK(s->top1.val <= 1.0, "top-1");
    /* drift starts exactly at layer 2's mixer (SSD) */
    bool before = true;
    for (int l = 0; l < 2; l++)
        before &= r.layers[l].err_mixer == 0 && r.layers[l].err_ffn == 0 && r.layers[l].route_changed == 0;
    CHECK(before && r.err_embd == 0, "no drift before the perturbed sub-block");
    CHECK(r.layers[2].err_mixer > 0 && r.layers[2].add_mixer == r.layers[2].err_mixer && r.layers[2].cos_mixer < 1,
          "drift at layer 2 mixer: %.3g", r.layers[2].err_mixer);
    double expect = sqrt(co.d2 / co.b2);
    CHECK(r.n_weights_changed == 1 && !strcmp(r.weights[0].name, "blk.2.ssm_out.weight") &&
              close_rel(r.weights[0].rel_rms, expect, 1e-9) && r.weights[1].rel_rms == 0,
          "weight error %s %.9g vs %.9g", r.weights[0].name, r.weights[0].rel_rms, expect);
    CHECK(r.kinds[VF_KIND_SSD].sum_add > r.kinds[VF_KIND_ATTN].sum_add, "SSD carries the drift");
    vf_result_free(&r);
    /* an expert table of layer 1: the drift starts after layer 1's FFN */
    copy_opts c2 = {.perturb = "blk.1.ffn_expert_up.weight", .rel = 0.2};
    st = copy_gguf(P_BASE, P_PERT2, &c2, err);
    CHECK(st == HQ_OK, "perturbed copy 2: %s", err);
    if (st != HQ_OK) return;
    st = run(P_BASE, P_PERT2, P_TEXT, NULL, CTX, g_chunks, &r, err);
    CHECK(st == HQ_OK, "perturbed run 2: %s", err);
    if (st != HQ_OK) return;
    CHECK(r.layers[1].err_mixer == 0 && r.layers[1].err_ffn > 0 && r.layers[1].route_changed == 0,
          "expert-table drift begins at layer 1's FFN (%.3g) with layer 1's routing unchanged", r.layers[1].err_ffn);
    CHECK(r.kinds[VF_KIND_EXPERTS].sum_add > 0 && r.sum.kld.val > 0, "experts kind");
    vf_result_free(&r);
}

static void test_quantized(void) {
    char err[HQ_ERR_LEN] = "";
    double kld[2] = {0, 0}, wmax[2] = {0, 0};
    const char *types[2] = {"Q8_0", "Q4_0"};
    const char *paths[2] = {P_Q8, P_Q4};
    for (int i = 0; i < 2; i++) {
        q_policy *pol = NULL;
        hq_status st = q_policy_new(types[i], &pol, err);
        q_quantize_opts qo = {.policy = pol};
        q_quantize_report rep;
        if (st == HQ_OK) st = q_quantize_file(P_BASE, paths[i], &qo, &rep, err);
        q_policy_free(pol);
        CHECK(st == HQ_OK, "quantize %s: %s", types[i], err);
        if (st != HQ_OK) return;
        vf_result r;
        st = run(P_BASE, paths[i], P_TEXT, NULL, CTX, g_chunks, &r, err);
        CHECK(st == HQ_OK, "verify %s: %s", types[i], err);
        if (st != HQ_OK) return;
        kld[i] = r.sum.kld.val;
        wmax[i] = r.weights[0].rel_rms;
        CHECK(r.sum.kld.val > 0 && r.n_weights_changed > 0 && r.layers[0].err_mixer > 0, "%s drifts", types[i]);
        /* the tied embedding is quantized too: h⁰ already differs, and layer 0's
         * mixer is charged only with the increase over it */
        CHECK(r.err_embd > 0 && r.cos_embd < 1 && fabs(r.layers[0].add_mixer - (r.layers[0].err_mixer - r.err_embd)) < 1e-12,
              "%s embedding error %.3g", types[i], r.err_embd);
        vf_result_free(&r);
    }
    CHECK(kld[0] < kld[1] && wmax[0] < wmax[1], "Q8_0 drifts less than Q4_0: KLD %.3g < %.3g, weights %.3g < %.3g",
          kld[0], kld[1], wmax[0], wmax[1]);
}

static void test_saved_logits(void) {
    char err[HQ_ERR_LEN] = "";
    hq_status st = save_logits(P_BASE, P_TEXT, CTX, g_chunks, P_LOGITS, err);
    CHECK(st == HQ_OK, "save logits: %s", err);
    if (st != HQ_OK) return;
    vf_result a, b;
    st = run(P_BASE, P_Q8, P_TEXT, NULL, CTX, g_chunks, &a, err);
    CHECK(st == HQ_OK, "in-process: %s", err);
    if (st != HQ_OK) return;
    st = run(P_BASE, P_Q8, P_TEXT, P_LOGITS, 0, 0, &b, err);
    CHECK(st == HQ_OK, "from file: %s", err);
    if (st != HQ_OK) {
        vf_result_free(&a);
        return;
    }
    CHECK(b.base_from_file && b.drift_chunks == 1 && b.ctx == CTX && b.n_chunks == g_chunks, "file settings");
    CHECK(a.sum.count == b.sum.count, "same scored tokens");
    CHECK(a.sum.ppl_q.val == b.sum.ppl_q.val, "same candidate PPL %.12g %.12g", a.sum.ppl_q.val, b.sum.ppl_q.val);
    CHECK(a.sum.ppl_b.val == b.sum.ppl_b.val, "base PPL from the file's exact NLL sum %.12g vs %.12g", a.sum.ppl_b.val,
          b.sum.ppl_b.val);
    /* 16-bit rows: log-probs within one quantization step (16/65535) */
    CHECK(b.spot_check_max > 0 && b.spot_check_max <= 16.0 / 65535, "file vs in-process log-probs: %.3g",
          b.spot_check_max);
    CHECK(fabs(a.sum.kld.val - b.sum.kld.val) <= 2e-4 + 0.02 * a.sum.kld.val, "KLD %.6g vs %.6g", a.sum.kld.val,
          b.sum.kld.val);
    CHECK(fabs(a.sum.top1.val - b.sum.top1.val) <= 2.0 / (double)a.sum.count, "top-1 %.4f vs %.4f", a.sum.top1.val,
          b.sum.top1.val);
    CHECK(fabs(a.sum.dp_rms.val - b.sum.dp_rms.val) <= 1e-4 + 0.02 * a.sum.dp_rms.val, "RMS Δp");
    CHECK(b.layers[0].err_mixer > 0 && b.route_tokens == (uint64_t)CTX * 4, "drift on the first chunk only (%llu)",
          (unsigned long long)b.route_tokens);
    vf_result_free(&a);
    vf_result_free(&b);
    /* fewer chunks than saved */
    st = run(P_BASE, P_BASE, NULL, P_LOGITS, CTX, 2, &b, err);
    CHECK(st == HQ_OK && b.n_chunks == 2 && b.sum.kld.val < 1e-6 && b.sum.top1.val == 1.0,
          "self vs file, 2 chunks: %s KLD %.3g", err, st == HQ_OK ? b.sum.kld.val : -1.0);
    if (st == HQ_OK) vf_result_free(&b);
}

static void expect_fail(const char *what, hq_status want, const char *needle, const char *base, const char *quant,
                        const char *text, const char *logits, int64_t ctx) {
    char err[HQ_ERR_LEN] = "";
    vf_result r;
    hq_status st = run(base, quant, text, logits, ctx, 2, &r, err);
    CHECK(st == want && strstr(err, needle) != NULL && !strchr(err, '\n'), "%s: got %s '%s', want %s '%s'", what,
          hq_status_name(st), err, hq_status_name(want), needle);
    if (st == HQ_OK) vf_result_free(&r);
}

static void test_errors(void) {
    char err[HQ_ERR_LEN], empty[300];
    copy_opts co = {.tok_extra = " "};
    CHECK(copy_gguf(P_BASE, P_TOK, &co, err) == HQ_OK, "tokenizer copy: %s", err);
    expect_fail("other tokenizer", HQ_ERR_MISMATCH, "tokenizers differ", P_BASE, P_TOK, P_TEXT, NULL, CTX);
    copy_opts cv = {.drop_vocab_row = true};
    CHECK(copy_gguf(P_BASE, P_TOK, &cv, err) == HQ_OK, "vocabulary copy: %s", err);
    expect_fail("other vocabulary", HQ_ERR_MISMATCH, "vocabularies differ", P_BASE, P_TOK, P_TEXT, NULL, CTX);
    snprintf(empty, sizeof empty, "%s/empty.txt", g_tmp);
    FILE *f = fopen(empty, "w");
    if (f) fclose(f);
    expect_fail("empty text", HQ_ERR_ARG, "empty", P_BASE, P_Q8, empty, NULL, CTX);
    expect_fail("ctx beyond the model", HQ_ERR_ARG, "trained context", P_BASE, P_Q8, P_TEXT, NULL, 1 << 18);
    expect_fail("no text", HQ_ERR_ARG, "--text", P_BASE, P_Q8, NULL, NULL, CTX);
    expect_fail("missing model", HQ_ERR_IO, "none.gguf", P_BASE, "/nonexistent/none.gguf", P_TEXT, NULL, CTX);
    expect_fail("file ctx", HQ_ERR_MISMATCH, "--ctx", P_BASE, P_Q8, P_TEXT, P_LOGITS, CTX * 2);
    expect_fail("file text", HQ_ERR_MISMATCH, "another text", P_BASE, P_Q8, P_TEXT2, P_LOGITS, 0);
    expect_fail("file missing", HQ_ERR_IO, "nothing.logits", P_BASE, P_Q8, P_TEXT, "/nonexistent/nothing.logits", 0);
    if (P_OTHER[0])
        expect_fail("file from another model", HQ_ERR_MISMATCH, "not saved from", P_OTHER, P_OTHER, P_TEXT, P_LOGITS, 0);
    if (P_OTHER[0]) /* another architecture entirely */
        expect_fail("other model", HQ_ERR_MISMATCH, "model", P_BASE, P_OTHER, P_TEXT, NULL, CTX);
}

static void test_json(void) {
    char err[HQ_ERR_LEN] = "", path[320];
    vf_result r;
    hq_status st = run(P_BASE, P_PERT, P_TEXT, NULL, CTX, 2, &r, err);
    CHECK(st == HQ_OK, "run: %s", err);
    if (st != HQ_OK) return;
    vf_report_ctx c = {.max_kld = 1e-12, .max_ppl_ratio = -1, .min_top1 = -1, .base = P_BASE, .quant = P_PERT,
                       .text = P_TEXT, .backend = "cpu"};
    snprintf(path, sizeof path, "%s/r.json", g_tmp);
    st = vf_write_json(path, &r, &c, err);
    CHECK(st == HQ_OK, "json: %s", err);
    char *txt = NULL;
    uint64_t len = 0;
    if (st == HQ_OK && hq_read_file(path, 1 << 24, &txt, &len, err) == HQ_OK) {
        cJSON *j = cJSON_Parse(txt);
        CHECK(j != NULL, "JSON parses");
        const char *objs[] = {"settings", "ppl",     "kld",        "top1",      "delta_p",
                              "embedding", "module_kinds", "weights", "thresholds"};
        for (size_t i = 0; j && i < sizeof objs / sizeof *objs; i++)
            CHECK(cJSON_IsObject(cJSON_GetObjectItem(j, objs[i])), "JSON has object %s", objs[i]);
        const char *nums[][2] = {{"ppl", "cor"},         {"kld", "mean"},      {"kld", "err"},  {"kld", "median"},
                                 {"kld", "p90"},         {"kld", "p95"},       {"kld", "p99"},  {"kld", "p99_9"},
                                 {"kld", "max"},         {"top1", "value"},    {"top1", "err"}, {"delta_p", "rms"},
                                 {"delta_p", "rms_err"}, {"delta_p", "max_abs"}, {"settings", "ctx"},
                                 {"settings", "chunks"}, {"settings", "scored_tokens"}, {"weights", "changed"}};
        for (size_t i = 0; j && i < sizeof nums / sizeof *nums; i++)
            CHECK(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(j, nums[i][0]), nums[i][1])),
                  "JSON number %s.%s", nums[i][0], nums[i][1]);
        const char *pms[] = {"base", "quant", "ln_ratio", "ratio", "diff"};
        for (size_t i = 0; j && i < 5; i++) {
            cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "ppl"), pms[i]);
            CHECK(cJSON_IsNumber(cJSON_GetObjectItem(o, "value")) && cJSON_IsNumber(cJSON_GetObjectItem(o, "err")),
                  "ppl.%s {value, err}", pms[i]);
        }
        if (j) {
            cJSON *st_ = cJSON_GetObjectItem(j, "settings");
            CHECK(cJSON_IsString(cJSON_GetObjectItem(st_, "base")) && cJSON_IsNull(cJSON_GetObjectItem(st_, "base_logits")),
                  "settings strings");
            cJSON *pq = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "ppl"), "quant"), "value");
            CHECK(pq && close_rel(pq->valuedouble, r.sum.ppl_q.val, 1e-14), "ppl.quant.value round-trips");
            cJSON *ls = cJSON_GetObjectItem(j, "layers");
            CHECK(cJSON_IsArray(ls) && cJSON_GetArraySize(ls) == r.n_layers, "layers array");
            cJSON *l2 = cJSON_GetArrayItem(ls, 2);
            const char *lk[] = {"err_after_mixer", "cos_after_mixer", "added_by_mixer", "err_after_ffn",
                                "cos_after_ffn", "added_by_ffn", "layer"};
            for (size_t i = 0; i < 7; i++) CHECK(cJSON_IsNumber(cJSON_GetObjectItem(l2, lk[i])), "layer.%s", lk[i]);
            CHECK(cJSON_IsString(cJSON_GetObjectItem(l2, "mixer_kind")) &&
                      cJSON_IsObject(cJSON_GetObjectItem(l2, "routing")),
                  "layer kind / routing");
            cJSON *mk = cJSON_GetObjectItem(j, "module_kinds");
            const char *kinds[] = {"ssd", "attention", "mlp", "experts", "other"};
            for (int i = 0; i < 5; i++)
                CHECK(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(mk, kinds[i]), "weight_rel_rms")),
                      "module_kinds.%s", kinds[i]);
            cJSON *top = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "weights"), "top");
            CHECK(cJSON_IsArray(top) && cJSON_GetArraySize(top) == 10 &&
                      cJSON_IsString(cJSON_GetObjectItem(cJSON_GetArrayItem(top, 0), "name")) &&
                      cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetArrayItem(top, 0), "rel_rms")),
                  "weights.top");
            cJSON *th = cJSON_GetObjectItem(j, "thresholds");
            CHECK(cJSON_IsNumber(cJSON_GetObjectItem(th, "max_kld")) &&
                      cJSON_IsNull(cJSON_GetObjectItem(th, "min_top1")) &&
                      cJSON_GetArraySize(cJSON_GetObjectItem(th, "exceeded")) == 1,
                  "thresholds: one exceeded");
            CHECK(cJSON_IsObject(cJSON_GetObjectItem(j, "routing")), "routing");
        }
        cJSON_Delete(j);
        hq_free(txt);
    }
    char msgs[3][160];
    CHECK(vf_thresholds(&r, &c, msgs) == 1 && strstr(msgs[0], "--max-kld"), "threshold message");
    c.max_kld = 1e9, c.min_top1 = 0, c.max_ppl_ratio = 1e9;
    CHECK(vf_thresholds(&r, &c, NULL) == 0, "thresholds met");
    snprintf(path, sizeof path, "%s/r.md", g_tmp);
    CHECK(vf_write_markdown(path, &r, &c, err) == HQ_OK, "markdown: %s", err);
    snprintf(path, sizeof path, "%s/r.svg", g_tmp);
    CHECK(vf_write_svg(path, &r, &c, err) == HQ_OK, "svg: %s", err);
    txt = NULL;
    if (hq_read_file(path, 1 << 24, &txt, &len, err) == HQ_OK) {
        CHECK(strstr(txt, "<svg") && strstr(txt, "</svg>") && strstr(txt, "<polyline"), "svg content");
        hq_free(txt);
    }
    snprintf(path, sizeof path, "%s/no-such-dir/r.json", g_tmp);
    CHECK(vf_write_json(path, &r, &c, err) == HQ_ERR_IO, "unwritable JSON path refused");
    vf_result_free(&r);
}

/* every allocation of a small run fails once in turn (sampled with a stride
 * through the model/tokenizer loading, each one near the end where verify's
 * own buffers are) and the run must fail cleanly with one line */
static void test_alloc_failures(void) {
    char err[HQ_ERR_LEN];
    vf_result r;
    hq_alloc_fail_at(1ll << 60); /* resets the counter without failing */
    hq_status st = run(P_BASE, P_Q8, P_TEXT, NULL, 16, 1, &r, err);
    int64_t total = hq_alloc_count();
    hq_alloc_fail_at(0);
    CHECK(st == HQ_OK, "counting run: %s", err);
    if (st != HQ_OK) return;
    vf_result_free(&r);
    int fails = 0, bad = 0, runs = g_san ? 15 : 40, head = g_san ? 10 : 30, tail = g_san ? 30 : 60;
    int64_t stride = total / runs > 1 ? total / runs : 1;
    for (int64_t n = 1; n <= total; n += (n < head || n > total - tail) ? 1 : stride) {
        hq_alloc_fail_at(n);
        st = run(P_BASE, P_Q8, P_TEXT, NULL, 16, 1, &r, err);
        hq_alloc_fail_at(0);
        if (st == HQ_OK) {
            vf_result_free(&r);
            continue; /* an allocation whose failure has a fallback */
        }
        fails++;
        if (!err[0] || strchr(err, '\n')) bad++, fprintf(stderr, "alloc %lld: '%s'\n", (long long)n, err);
    }
    CHECK(fails > head && bad == 0, "allocation failures over %lld allocations: %d clean, %d bad", (long long)total,
          fails, bad);
}

int main(void) {
    g_san = getenv("HQ_SANITIZED") != NULL;
    hq_quiet = 1;
    double t0 = hq_now();
    test_stats(1001);
    test_stats(1000);
    test_stats(37);
    test_stats_edges();
    const char *fx = FIXTURE("models/cheems-tiny-random");
    if (!hq_is_dir(fx)) {
        CHECK(0, "committed fixture %s is missing", fx);
        TEST_END();
    }
    snprintf(g_tmp, sizeof g_tmp, "/tmp/hq_test_verify.XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
#define TP(v, name) snprintf(v, sizeof v, "%s/" name, g_tmp)
    TP(P_BASE, "base.gguf");
    TP(P_TEXT, "text.txt");
    TP(P_TEXT2, "text2.txt");
    TP(P_PERT, "pert.gguf");
    TP(P_PERT2, "pert2.gguf");
    TP(P_Q8, "q8.gguf");
    TP(P_Q4, "q4.gguf");
    TP(P_TOK, "tok.gguf");
    TP(P_LOGITS, "base.logits");
    TP(P_OTHER_LOGITS, "other.logits");
    char err[HQ_ERR_LEN] = "";
    cv_options co = {.outtype = CV_OUT_F32, .quiet = true};
    hq_status st = cv_convert(fx, P_BASE, &co, err);
    CHECK(st == HQ_OK, "convert: %s", err);
    CHECK(write_text(P_TEXT, 900) && write_text(P_TEXT2, 950), "texts");
    if (hq_is_dir(FIXTURE("models/doge-dense"))) {
        TP(P_OTHER, "other.gguf");
        if (cv_convert(FIXTURE("models/doge-dense"), P_OTHER, &co, err) != HQ_OK) P_OTHER[0] = 0;
    }
    if (g_san) g_chunks = 3;
    if (st == HQ_OK) {
#define TIMED(f)                                                     \
    do {                                                             \
        double t1 = hq_now();                                        \
        f();                                                         \
        if (getenv("HQ_VERBOSE")) fprintf(stderr, "%s: %.1f s\n", #f, hq_now() - t1); \
    } while (0)
        TIMED(test_self);
        TIMED(test_perturbed);
        TIMED(test_quantized);
        TIMED(test_saved_logits);
        TIMED(test_errors);
        TIMED(test_json);
        TIMED(test_alloc_failures);
    }
    const char *files[] = {P_BASE, P_TEXT, P_TEXT2, P_PERT, P_PERT2, P_Q8, P_Q4, P_TOK, P_LOGITS, P_OTHER,
                           P_OTHER_LOGITS};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (files[i][0]) unlink(files[i]);
    char p[320];
    snprintf(p, sizeof p, "%s/empty.txt", g_tmp), unlink(p);
    snprintf(p, sizeof p, "%s/r.json", g_tmp), unlink(p);
    snprintf(p, sizeof p, "%s/r.md", g_tmp), unlink(p);
    snprintf(p, sizeof p, "%s/r.svg", g_tmp), unlink(p);
    rmdir(g_tmp);
    if (getenv("HQ_VERBOSE")) fprintf(stderr, "total %.1f s\n", hq_now() - t0);
    TEST_END();
}
