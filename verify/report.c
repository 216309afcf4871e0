/* verify/report.c — the verify results as a terminal table, JSON (every
 * figure and the settings) and Markdown; files are written atomically
 * (hq_out). JSON layout (numbers; null where a figure does not exist):
 *   settings {base, quant, text, base_logits, backend, ran_on, backend_note,
 *             arch, ctx, chunks,
 *             scored_per_chunk, scored_tokens, text_tokens, bos, threads,
 *             drift_chunks, n_vocab, n_layers, n_embd}
 *   ppl {base{value,err}, quant{value,err}, ln_ratio{value,err},
 *        ratio{value,err}, diff{value,err}, cor}
 *   kld {mean, err, min, median, p90, p95, p99, p99_9, max}
 *   top1 {value, err}                       (fractions, not percent)
 *   delta_p {mean, err, rms, rms_err, min, p1, p5, median, p95, p99, max, max_abs}
 *   embedding {err, cos}                    (rows of the evaluated tokens: h⁰)
 *   layers [{layer, mixer, ffn, mixer_kind, ffn_kind, err_after_mixer,
 *            cos_after_mixer, max_err_after_mixer, added_by_mixer,
 *            err_after_ffn, cos_after_ffn, max_err_after_ffn, added_by_ffn,
 *            routing null | {tokens, changed_fraction, jaccard}}]
 *   module_kinds {ssd|attention|mlp|experts|other: {sub_blocks, added,
 *            max_err, weight_rel_rms, tensors}} ("other": the embedding as
 *            its one sub-block; its weights: embedding, norms, head)
 *   routing null | {tokens, changed_fraction, jaccard}
 *   weights {tensors, changed, top [{name, kind, type_base, type_quant,
 *            elements, rel_rms}] (10 largest)}
 *   thresholds {max_kld, max_ppl_ratio, min_top1 (null when unset), exceeded [msg]}
 *   seconds */
#include "verify.h" // defines: vf_print_table, vf_write_json, vf_write_markdown, vf_thresholds
#include "../formats/ggml_types.h"

#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#define VF_TOP_WEIGHTS 10

int vf_thresholds(const vf_result *r, const vf_report_ctx *c, char msgs[3][160]) {
    int n = 0;
    char tmp[3][160];
    char (*m)[160] = msgs ? msgs : tmp;
    if (c->max_kld >= 0 && !(r->sum.kld.val <= c->max_kld))
        snprintf(m[n++], 160, "mean KLD %.6f exceeds --max-kld %g", r->sum.kld.val, c->max_kld);
    if (c->max_ppl_ratio >= 0 && !(r->sum.ppl_ratio.val <= c->max_ppl_ratio))
        snprintf(m[n++], 160, "PPL ratio %.6f exceeds --max-ppl-ratio %g", r->sum.ppl_ratio.val, c->max_ppl_ratio);
    if (c->min_top1 >= 0 && !(r->sum.top1.val >= c->min_top1))
        snprintf(m[n++], 160, "top-1 agreement %.6f is below --min-top1 %g", r->sum.top1.val, c->min_top1);
    return n;
}

static const char *tname(uint32_t t) { return ggml_type_name(t); }

/* ---- terminal ---- */
void vf_print_table(FILE *f, const vf_result *r, const vf_report_ctx *c) {
    const vf_summary *s = &r->sum;
    fprintf(f, "verify: %s vs %s\n", c->base, c->quant);
    fprintf(f, "  %lld chunks of %lld tokens, %llu scored; BOS %s; base log-probs %s; ran on %s\n",
            (long long)r->n_chunks, (long long)r->ctx, (unsigned long long)s->count,
            r->use_bos ? "at chunk starts" : "not used",
            r->base_from_file ? "from the saved file" : "computed in process", r->backend[0] ? r->backend : "cpu");
    if (r->hf_prefill) fprintf(f, "  as transformers' model(input_ids) per chunk (--hf-prefill-quirk)\n");
    fprintf(f, "\n  %-22s %14s %12s\n", "", "value", "± error");
    fprintf(f, "  %-22s %14.4f %12.4f\n", "PPL base", s->ppl_b.val, s->ppl_b.err);
    fprintf(f, "  %-22s %14.4f %12.4f\n", "PPL quant", s->ppl_q.val, s->ppl_q.err);
    fprintf(f, "  %-22s %14.6f %12.6f   (cor %.2f%%)\n", "ln(PPL_q/PPL_base)", s->ln_ratio.val, s->ln_ratio.err,
            100 * s->cor);
    fprintf(f, "  %-22s %14.6f %12.6f\n", "PPL ratio", s->ppl_ratio.val, s->ppl_ratio.err);
    fprintf(f, "  %-22s %14.6f %12.6f\n", "KLD mean", s->kld.val, s->kld.err);
    fprintf(f, "  %-22s median %.6f  p90 %.6f  p95 %.6f  p99 %.6f  p99.9 %.6f  max %.6f\n", "KLD", s->kld_median,
            s->kld_p90, s->kld_p95, s->kld_p99, s->kld_p999, s->kld_max);
    fprintf(f, "  %-22s %13.3f%% %11.3f%%\n", "top-1 agreement", 100 * s->top1.val, 100 * s->top1.err);
    fprintf(f, "  %-22s %13.3f%% %11.3f%%   (mean %+.3f%%, max |Δp| %.3f%%)\n", "RMS Δp (correct token)",
            100 * s->dp_rms.val, 100 * s->dp_rms.err, 100 * s->dp.val, 100 * s->dp_max_abs);
    if (r->n_layers > 0) {
        fprintf(f,
                "\n  hidden-state drift over %lld chunk%s: mean ‖h_q−h_b‖/‖h_b‖ after each sub-block, the part it adds, "
                "cosine\n",
                (long long)r->drift_chunks, r->drift_chunks == 1 ? "" : "s");
        fprintf(f, "  %5s  %-8s %9s %9s %9s  %-12s %9s %9s %9s%s\n", "layer", "mixer", "error", "added", "cos", "ffn",
                "error", "added", "cos", r->has_routing ? "  routing≠  Jaccard" : "");
        fprintf(f, "  %5s  %-8s %9.5f %+9.5f %9.6f\n", "-", "embed", r->err_embd, r->err_embd, r->cos_embd);
        for (int64_t l = 0; l < r->n_layers; l++) {
            const vf_layer *y = &r->layers[l];
            fprintf(f, "  %5lld  %-8s %9.5f %+9.5f %9.6f  %-12s %9.5f %+9.5f %9.6f", (long long)l, y->mixer,
                    y->err_mixer, y->add_mixer, y->cos_mixer, y->ffn, y->err_ffn, y->add_ffn, y->cos_ffn);
            if (y->has_routing)
                fprintf(f, "  %7.2f%%  %7.4f", 100.0 * (double)y->route_changed / (double)y->route_tokens,
                        y->route_jaccard);
            fputc('\n', f);
        }
        fprintf(f, "  by module kind (added error summed over sub-blocks; weight relative RMS error):\n");
        for (int k = 0; k < VF_KIND_COUNT; k++) {
            const vf_kind_stats *ks = &r->kinds[k];
            if (!ks->n_layers && !ks->n_tensors) continue;
            double wr = ks->wsum_b2 > 0 ? sqrt(ks->wsum_d2 / ks->wsum_b2) : 0;
            if (k == VF_KIND_OTHER)
                fprintf(f, "    %-10s embedding     added %+9.5f                       weights %.5f (embedding, norms, head)\n",
                        vf_kind_name(k), ks->sum_add, wr);
            else if (ks->n_layers)
                fprintf(f, "    %-10s %2lld sub-blocks  added %+9.5f  max error %9.5f  weights %.5f\n", vf_kind_name(k),
                        (long long)ks->n_layers, ks->sum_add, ks->max_err, wr);
            else
                fprintf(f, "    %-10s %-38s weights %.5f\n", vf_kind_name(k), "(inside the sub-blocks above)", wr);
        }
        if (r->has_routing)
            fprintf(f, "  expert routing: %.2f%% of tokens get a different expert set, mean Jaccard %.4f\n",
                    100.0 * (double)r->route_changed / (double)r->route_tokens, r->route_jaccard);
    }
    fprintf(f, "\n  largest weight errors (relative RMS of dequantized weights; %llu of %llu tensors changed):\n",
            (unsigned long long)r->n_weights_changed, (unsigned long long)r->n_weights);
    for (uint64_t i = 0; i < r->n_weights && i < VF_TOP_WEIGHTS; i++) {
        const vf_weight *w = &r->weights[i];
        if (w->rel_rms == 0) break;
        fprintf(f, "    %-32s %-5s -> %-6s %9.5f\n", w->name, tname(w->type_b), tname(w->type_q), w->rel_rms);
    }
    fprintf(f, "  (%.1f s)\n", r->seconds);
}

/* ---- JSON ---- */
static cJSON *num(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }
static void add(cJSON *o, const char *k, double v) { cJSON_AddItemToObject(o, k, num(v)); }
static void add_pm(cJSON *o, const char *k, vf_pm p) {
    cJSON *x = cJSON_AddObjectToObject(o, k);
    add(x, "value", p.val);
    add(x, "err", p.err);
}
static void add_str(cJSON *o, const char *k, const char *v) {
    if (v) cJSON_AddStringToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}
static void add_opt(cJSON *o, const char *k, double v) {
    if (v >= 0) add(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

/* "routing": {tokens, changed_fraction, jaccard} for one layer or the whole model, null without MoE */
static void add_routing(cJSON *o, bool has, uint64_t tokens, uint64_t changed, double jaccard) {
    if (!has) {
        cJSON_AddNullToObject(o, "routing");
        return;
    }
    cJSON *ro = cJSON_AddObjectToObject(o, "routing");
    add(ro, "tokens", (double)tokens);
    add(ro, "changed_fraction", (double)changed / (double)tokens);
    add(ro, "jaccard", jaccard);
}

static cJSON *build_json(const vf_result *r, const vf_report_ctx *c) {
    const vf_summary *s = &r->sum;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "tool", "hyquant verify");
    cJSON *st = cJSON_AddObjectToObject(j, "settings");
    add_str(st, "base", c->base);
    add_str(st, "quant", c->quant);
    add_str(st, "text", c->text);
    add_str(st, "base_logits", c->base_logits);
    add_str(st, "backend", c->backend ? c->backend : "cpu");
    add_str(st, "ran_on", r->backend[0] ? r->backend : "cpu");
    add_str(st, "backend_note", r->backend_note[0] ? r->backend_note : NULL);
    add_str(st, "arch", r->arch);
    add(st, "ctx", (double)r->ctx);
    add(st, "chunks", (double)r->n_chunks);
    add(st, "scored_per_chunk", (double)r->n_scored);
    add(st, "scored_tokens", (double)s->count);
    add(st, "text_tokens", (double)r->n_text_tokens);
    cJSON_AddBoolToObject(st, "bos", r->use_bos);
    cJSON_AddBoolToObject(st, "hf_prefill_quirk", r->hf_prefill);
    add(st, "threads", (double)r->threads);
    add(st, "drift_chunks", (double)r->drift_chunks);
    add(st, "n_vocab", (double)r->n_vocab);
    add(st, "n_layers", (double)r->n_layers);
    add(st, "n_embd", (double)r->n_embd);
    cJSON *p = cJSON_AddObjectToObject(j, "ppl");
    add_pm(p, "base", s->ppl_b);
    add_pm(p, "quant", s->ppl_q);
    add_pm(p, "ln_ratio", s->ln_ratio);
    add_pm(p, "ratio", s->ppl_ratio);
    add_pm(p, "diff", s->ppl_diff);
    add(p, "cor", s->cor);
    cJSON *k = cJSON_AddObjectToObject(j, "kld");
    add(k, "mean", s->kld.val);
    add(k, "err", s->kld.err);
    add(k, "min", s->kld_min);
    add(k, "median", s->kld_median);
    add(k, "p90", s->kld_p90);
    add(k, "p95", s->kld_p95);
    add(k, "p99", s->kld_p99);
    add(k, "p99_9", s->kld_p999);
    add(k, "max", s->kld_max);
    add_pm(j, "top1", s->top1);
    cJSON *d = cJSON_AddObjectToObject(j, "delta_p");
    add(d, "mean", s->dp.val);
    add(d, "err", s->dp.err);
    add(d, "rms", s->dp_rms.val);
    add(d, "rms_err", s->dp_rms.err);
    add(d, "min", s->dp_min);
    add(d, "p1", s->dp_p01);
    add(d, "p5", s->dp_p05);
    add(d, "median", s->dp_median);
    add(d, "p95", s->dp_p95);
    add(d, "p99", s->dp_p99);
    add(d, "max", s->dp_max);
    add(d, "max_abs", s->dp_max_abs);
    cJSON *em = cJSON_AddObjectToObject(j, "embedding");
    add(em, "err", r->err_embd);
    add(em, "cos", r->cos_embd);
    cJSON *ls = cJSON_AddArrayToObject(j, "layers");
    for (int64_t l = 0; l < r->n_layers; l++) {
        const vf_layer *y = &r->layers[l];
        cJSON *o = cJSON_CreateObject();
        add(o, "layer", (double)l);
        cJSON_AddStringToObject(o, "mixer", y->mixer);
        cJSON_AddStringToObject(o, "ffn", y->ffn);
        cJSON_AddStringToObject(o, "mixer_kind", vf_kind_name(y->mixer_kind));
        cJSON_AddStringToObject(o, "ffn_kind", vf_kind_name(y->ffn_kind));
        add(o, "err_after_mixer", y->err_mixer);
        add(o, "cos_after_mixer", y->cos_mixer);
        add(o, "max_err_after_mixer", y->max_err_mixer);
        add(o, "added_by_mixer", y->add_mixer);
        add(o, "err_after_ffn", y->err_ffn);
        add(o, "cos_after_ffn", y->cos_ffn);
        add(o, "max_err_after_ffn", y->max_err_ffn);
        add(o, "added_by_ffn", y->add_ffn);
        add_routing(o, y->has_routing, y->route_tokens, y->route_changed, y->route_jaccard);
        cJSON_AddItemToArray(ls, o);
    }
    cJSON *mk = cJSON_AddObjectToObject(j, "module_kinds");
    for (int q = 0; q < VF_KIND_COUNT; q++) {
        const vf_kind_stats *ks = &r->kinds[q];
        cJSON *o = cJSON_AddObjectToObject(mk, vf_kind_name(q));
        add(o, "sub_blocks", (double)ks->n_layers);
        add(o, "added", ks->sum_add);
        add(o, "max_err", ks->max_err);
        add(o, "weight_rel_rms", ks->wsum_b2 > 0 ? sqrt(ks->wsum_d2 / ks->wsum_b2) : 0.0);
        add(o, "tensors", (double)ks->n_tensors);
    }
    add_routing(j, r->has_routing, r->route_tokens, r->route_changed, r->route_jaccard);
    cJSON *w = cJSON_AddObjectToObject(j, "weights");
    add(w, "tensors", (double)r->n_weights);
    add(w, "changed", (double)r->n_weights_changed);
    cJSON *top = cJSON_AddArrayToObject(w, "top");
    for (uint64_t i = 0; i < r->n_weights && i < VF_TOP_WEIGHTS; i++) {
        const vf_weight *x = &r->weights[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", x->name);
        cJSON_AddStringToObject(o, "kind", vf_kind_name(x->kind));
        cJSON_AddStringToObject(o, "type_base", tname(x->type_b));
        cJSON_AddStringToObject(o, "type_quant", tname(x->type_q));
        add(o, "elements", (double)x->n);
        add(o, "rel_rms", x->rel_rms);
        cJSON_AddItemToArray(top, o);
    }
    cJSON *th = cJSON_AddObjectToObject(j, "thresholds");
    add_opt(th, "max_kld", c->max_kld);
    add_opt(th, "max_ppl_ratio", c->max_ppl_ratio);
    add_opt(th, "min_top1", c->min_top1);
    char msgs[3][160];
    int n = vf_thresholds(r, c, msgs);
    cJSON *ex = cJSON_AddArrayToObject(th, "exceeded");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(ex, cJSON_CreateString(msgs[i]));
    add(j, "seconds", r->seconds);
    return j;
}

/* data then tail (may be NULL), atomically */
static hq_status write_all(const char *path, const char *data, size_t n, const char *tail, char *err) {
    hq_out o = {0};
    hq_status st = hq_out_open(&o, path, err);
    if (st != HQ_OK) return st;
    if ((st = hq_out_write(&o, data, n, err)) != HQ_OK ||
        (tail && (st = hq_out_write(&o, tail, strlen(tail), err)) != HQ_OK) || (st = hq_out_commit(&o, err)) != HQ_OK) {
        hq_out_abort(&o);
        return st;
    }
    return HQ_OK;
}

hq_status vf_write_json(const char *path, const vf_result *r, const vf_report_ctx *c, char *err) {
    cJSON *j = build_json(r, c);
    char *txt = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    if (!txt) return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory building the JSON report", path);
    hq_status st = write_all(path, txt, strlen(txt), "\n", err);
    cJSON_free(txt);
    return st;
}

/* ---- Markdown ---- */
typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf ? b->buf + b->len : NULL, b->buf ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->buf && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *nb = hq_realloc(b->buf, nc);
        if (!nb) {
            b->oom = true;
            return;
        }
        b->buf = nb;
        b->cap = nc;
    }
}

hq_status vf_write_markdown(const char *path, const vf_result *r, const vf_report_ctx *c, char *err) {
    const vf_summary *s = &r->sum;
    sbuf b = {0};
    sb_printf(&b, "# Quantization drift: `%s` vs `%s`\n\n", c->quant, c->base);
    sb_printf(&b,
              "Text %s%s%s: %lld chunks of %lld tokens, %llu scored tokens (second half of each chunk, "
              "llama-perplexity protocol); BOS %s; base log-probs %s%s%s.\n\n",
              c->text ? "`" : "", c->text ? c->text : "of the saved base", c->text ? "`" : "", (long long)r->n_chunks, (long long)r->ctx,
              (unsigned long long)s->count, r->use_bos ? "at chunk starts" : "not used",
              r->base_from_file ? "from `" : "computed in process", r->base_from_file ? c->base_logits : "",
              r->base_from_file ? "`" : "");
    if (r->hf_prefill)
        sb_printf(&b, "Both models ran as transformers' `model(input_ids)` computes a whole chunk (`--hf-prefill-quirk`).\n\n");
    sb_printf(&b, "## Output drift\n\n| figure | value | ± error |\n|---|---:|---:|\n");
    sb_printf(&b, "| PPL base | %.4f | %.4f |\n| PPL quant | %.4f | %.4f |\n", s->ppl_b.val, s->ppl_b.err,
              s->ppl_q.val, s->ppl_q.err);
    sb_printf(&b, "| ln(PPL_q/PPL_base) | %.6f | %.6f |\n| PPL ratio | %.6f | %.6f |\n", s->ln_ratio.val,
              s->ln_ratio.err, s->ppl_ratio.val, s->ppl_ratio.err);
    sb_printf(&b, "| Cor(ln PPL_q, ln PPL_base) | %.2f%% | |\n", 100 * s->cor);
    sb_printf(&b, "| KLD mean | %.6f | %.6f |\n", s->kld.val, s->kld.err);
    sb_printf(&b, "| KLD median | %.6f | |\n| KLD 90%% | %.6f | |\n| KLD 95%% | %.6f | |\n", s->kld_median,
              s->kld_p90, s->kld_p95);
    sb_printf(&b, "| KLD 99%% | %.6f | |\n| KLD 99.9%% | %.6f | |\n| KLD max | %.6f | |\n", s->kld_p99, s->kld_p999,
              s->kld_max);
    sb_printf(&b, "| same top token | %.3f%% | %.3f%% |\n", 100 * s->top1.val, 100 * s->top1.err);
    sb_printf(&b, "| Δp mean (correct token) | %.3f%% | %.3f%% |\n| RMS Δp | %.3f%% | %.3f%% |\n", 100 * s->dp.val,
              100 * s->dp.err, 100 * s->dp_rms.val, 100 * s->dp_rms.err);
    sb_printf(&b, "| max abs Δp | %.3f%% | |\n\n", 100 * s->dp_max_abs);
    if (r->n_layers > 0) {
        sb_printf(&b,
                  "## Where the drift comes from\n\nHidden states of the quantized model against the base at the same "
                  "positions (%lld chunk%s): mean relative error ‖h_q − h_b‖/‖h_b‖ after each sub-block's residual "
                  "add, the part of it the sub-block adds, and the mean cosine similarity.\n\n",
                  (long long)r->drift_chunks, r->drift_chunks == 1 ? "" : "s");
        sb_printf(&b, "| layer | mixer | error | added | cos | ffn | error | added | cos |%s\n",
                  r->has_routing ? " routing changed | Jaccard |" : "");
        sb_printf(&b, "|---:|---|---:|---:|---:|---|---:|---:|---:|%s\n", r->has_routing ? "---:|---:|" : "");
        sb_printf(&b, "| – | embedding | %.5f | %+.5f | %.6f | | | | |%s\n", r->err_embd, r->err_embd, r->cos_embd,
                  r->has_routing ? " | |" : "");
        for (int64_t l = 0; l < r->n_layers; l++) {
            const vf_layer *y = &r->layers[l];
            sb_printf(&b, "| %lld | %s | %.5f | %+.5f | %.6f | %s | %.5f | %+.5f | %.6f |", (long long)l, y->mixer,
                      y->err_mixer, y->add_mixer, y->cos_mixer, y->ffn, y->err_ffn, y->add_ffn, y->cos_ffn);
            if (r->has_routing) {
                if (y->has_routing)
                    sb_printf(&b, " %.2f%% | %.4f |", 100.0 * (double)y->route_changed / (double)y->route_tokens,
                              y->route_jaccard);
                else
                    sb_printf(&b, " | |");
            }
            sb_printf(&b, "\n");
        }
        sb_printf(&b, "\n| module kind | sub-blocks | added error | max error | weight rel. RMS error | tensors |\n"
                      "|---|---:|---:|---:|---:|---:|\n");
        for (int k = 0; k < VF_KIND_COUNT; k++) {
            const vf_kind_stats *ks = &r->kinds[k];
            if (!ks->n_layers && !ks->n_tensors) continue;
            sb_printf(&b, "| %s%s | %lld | %+.5f | %.5f | %.5f | %llu |\n", vf_kind_name(k),
                      k == VF_KIND_OTHER ? " (embedding; weights: embedding, norms, head)" : "", (long long)ks->n_layers,
                      ks->sum_add, ks->max_err, ks->wsum_b2 > 0 ? sqrt(ks->wsum_d2 / ks->wsum_b2) : 0.0,
                      (unsigned long long)ks->n_tensors);
        }
        if (r->has_routing)
            sb_printf(&b, "\nExpert routing: %.2f%% of tokens get a different expert set than in the base model "
                          "(mean Jaccard similarity %.4f over %llu token-layers).\n",
                      100.0 * (double)r->route_changed / (double)r->route_tokens, r->route_jaccard,
                      (unsigned long long)r->route_tokens);
    }
    sb_printf(&b, "\n## Largest weight errors\n\nRelative RMS error of the dequantized weights (%llu of %llu tensors "
                  "changed).\n\n| tensor | kind | base | quant | elements | rel. RMS error |\n|---|---|---|---|---:|---:|\n",
              (unsigned long long)r->n_weights_changed, (unsigned long long)r->n_weights);
    for (uint64_t i = 0; i < r->n_weights && i < VF_TOP_WEIGHTS; i++) {
        const vf_weight *w = &r->weights[i];
        if (w->rel_rms == 0) break;
        sb_printf(&b, "| `%s` | %s | %s | %s | %llu | %.5f |\n", w->name, vf_kind_name(w->kind), tname(w->type_b),
                  tname(w->type_q), (unsigned long long)w->n, w->rel_rms);
    }
    char msgs[3][160];
    int n = vf_thresholds(r, c, msgs);
    if (c->max_kld >= 0 || c->max_ppl_ratio >= 0 || c->min_top1 >= 0) {
        sb_printf(&b, "\n## Thresholds\n\n");
        if (n == 0) sb_printf(&b, "All thresholds met.\n");
        for (int i = 0; i < n; i++) sb_printf(&b, "- **exceeded**: %s\n", msgs[i]);
    }
    if (b.oom) {
        hq_free(b.buf);
        return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory building the report", path);
    }
    hq_status st = write_all(path, b.buf ? b.buf : "", b.len, NULL, err);
    hq_free(b.buf);
    return st;
}
