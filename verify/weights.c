/* verify/weights.c — per-tensor weight error of the quantized model:
 * relative RMS error of the dequantized weights, sqrt(Σ(W_q − W_b)²/ΣW_b²),
 * both sides converted row by row with q_row_to_f32 (quant/quant.h). Tensors
 * stored identically (same type and bytes) are 0 without decoding. */
#include "verify.h" // defines: vf_weight_errors, vf_kind_of_tensor
#include "../core/omp.h"
#include "../quant/quant.h"
#include "../formats/schema.h" // defines: fmt_schema_lookup, fmt_part

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

const char *vf_kind_name(int k) {
    static const char *const names[VF_KIND_COUNT] = {"ssd", "attention", "mlp", "experts", "other"};
    return k >= 0 && k < VF_KIND_COUNT ? names[k] : "other";
}

static bool has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

int vf_kind_of_tensor(const char *name) {
    const fmt_schema_entry *e = fmt_schema_lookup(name, NULL); /* formats/schema.h */
    if (e) {
        static const int by_part[FMT_PART_COUNT] = {[FMT_PART_GLOBAL] = VF_KIND_OTHER, [FMT_PART_LAYER] = VF_KIND_OTHER,
                                                    [FMT_PART_ATTN] = VF_KIND_ATTN,    [FMT_PART_SSD] = VF_KIND_SSD,
                                                    [FMT_PART_MLP] = VF_KIND_MLP,      [FMT_PART_EXPERTS] = VF_KIND_EXPERTS};
        return by_part[e->part];
    }
    /* names outside the schema (OTCE module paths kept under blk.N.) */
    if (!has_prefix(name, "blk.")) return VF_KIND_OTHER;
    const char *dot = strchr(name + 4, '.');
    if (!dot) return VF_KIND_OTHER;
    const char *t = dot + 1;
    /* OTCE: Mamba mixer, attention (thinking / expression), MoE or MLP */
    if (has_prefix(t, "mamba.")) return VF_KIND_SSD;
    if (has_prefix(t, "self_attn.") || has_prefix(t, "self_attention.")) return VF_KIND_ATTN;
    if (has_prefix(t, "feed_forward.experts.") || has_prefix(t, "feed_forward.router.") ||
        has_prefix(t, "feed_forward.shared_"))
        return VF_KIND_EXPERTS;
    if (has_prefix(t, "feed_forward.")) return VF_KIND_MLP;
    if (has_prefix(t, "ssm_")) return VF_KIND_SSD;
    if (has_prefix(t, "attn_norm") || has_prefix(t, "attn_residual")) return VF_KIND_OTHER;
    if (has_prefix(t, "attn_")) return VF_KIND_ATTN;
    if (has_prefix(t, "ffn_expert_") || has_prefix(t, "ffn_pk_") || has_prefix(t, "ffn_gate_inp"))
        return VF_KIND_EXPERTS;
    if (has_prefix(t, "ffn_gate") || has_prefix(t, "ffn_up") || has_prefix(t, "ffn_down")) return VF_KIND_MLP;
    return VF_KIND_OTHER;
}

static int cmp_weight(const void *a, const void *b) {
    const vf_weight *x = a, *y = b;
    if (x->rel_rms != y->rel_rms) return x->rel_rms < y->rel_rms ? 1 : -1;
    return strcmp(x->name, y->name);
}

/* Σ(q−b)² and Σb² over one tensor, rows decoded in parallel */
static hq_status tensor_error(const fmt_gguf_tensor *tb, const fmt_gguf_tensor *tq, double *d2, double *b2,
                              char *err) {
    const q_type_traits *qb = q_traits(tb->type), *qq = q_traits(tq->type);
    if (!q_row_can_to_f32(tb->type) || !q_row_can_to_f32(tq->type))
        return hq_fail(err, HQ_ERR_UNSUPPORTED, "tensor '%s': cannot decode type %s / %s", tb->name,
                       ggml_type_name(tb->type), ggml_type_name(tq->type));
    int64_t n0 = (int64_t)tb->ne[0];
    if (n0 % qb->blck || n0 % qq->blck)
        return hq_fail(err, HQ_ERR_FORMAT, "tensor '%s': row of %lld elements is not a whole number of blocks",
                       tb->name, (long long)n0);
    uint64_t rows = tb->ne[1] * tb->ne[2] * tb->ne[3]; /* ne checked by the reader */
    uint64_t rb = (uint64_t)(n0 / qb->blck) * qb->type_size, rq = (uint64_t)(n0 / qq->blck) * qq->type_size;
    if (rb * rows > tb->nbytes || rq * rows > tq->nbytes)
        return hq_fail(err, HQ_ERR_FORMAT, "tensor '%s': data shorter than its shape", tb->name);
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    float *buf = hq_malloc_array((size_t)nt * 2, (size_t)n0 * sizeof(float));
    if (!buf) return hq_fail(err, HQ_ERR_NOMEM, "tensor '%s': out of memory for two rows", tb->name);
    double sd = 0, sb = 0;
    const uint8_t *pb = tb->data, *pq = tq->data;
    HQ_OMP("omp parallel for reduction(+ : sd, sb) schedule(static) num_threads(nt)")
    for (int64_t r = 0; r < (int64_t)rows; r++) {
        int th = 0;
#ifdef _OPENMP
        th = omp_get_thread_num();
#endif
        float *xb = buf + (size_t)th * 2 * (size_t)n0, *xq = xb + n0;
        q_row_to_f32(tb->type, pb + (uint64_t)r * rb, xb, n0); /* quant.h: the one row -> f32 */
        q_row_to_f32(tq->type, pq + (uint64_t)r * rq, xq, n0);
        for (int64_t i = 0; i < n0; i++) {
            double d = (double)xq[i] - (double)xb[i];
            sd += d * d;
            sb += (double)xb[i] * xb[i];
        }
    }
    hq_free(buf);
    *d2 = sd;
    *b2 = sb;
    return HQ_OK;
}

hq_status vf_weight_errors(const fmt_gguf *gb, const fmt_gguf *gq, vf_result *r, char *err) {
    uint64_t nb = fmt_gguf_n_tensors(gb), nq = fmt_gguf_n_tensors(gq);
    for (uint64_t i = 0; i < nq; i++) {
        const fmt_gguf_tensor *t = fmt_gguf_tensor_at(gq, i);
        if (!fmt_gguf_find_tensor(gb, t->name))
            return hq_fail(err, HQ_ERR_MISMATCH, "%s has tensor '%s' that %s lacks: not a quantization of it",
                           fmt_gguf_label(gq), t->name, fmt_gguf_label(gb));
    }
    vf_weight *w = hq_calloc(nb ? nb : 1, sizeof *w);
    if (!w) return hq_fail(err, HQ_ERR_NOMEM, "out of memory for %llu tensor records", (unsigned long long)nb);
    uint64_t changed = 0;
    for (uint64_t i = 0; i < nb; i++) {
        const fmt_gguf_tensor *tb = fmt_gguf_tensor_at(gb, i);
        const fmt_gguf_tensor *tq = fmt_gguf_find_tensor(gq, tb->name);
        if (!tq) {
            hq_free(w);
            return hq_fail(err, HQ_ERR_MISMATCH, "%s lacks tensor '%s' of %s: not a quantization of it",
                           fmt_gguf_label(gq), tb->name, fmt_gguf_label(gb));
        }
        if (tq->n_dims != tb->n_dims || memcmp(tq->ne, tb->ne, sizeof tb->ne) != 0) {
            hq_free(w);
            return hq_fail(err, HQ_ERR_MISMATCH,
                           "tensor '%s' is [%llu, %llu, %llu, %llu] in %s but [%llu, %llu, %llu, %llu] in %s", tb->name,
                           (unsigned long long)tb->ne[0], (unsigned long long)tb->ne[1], (unsigned long long)tb->ne[2],
                           (unsigned long long)tb->ne[3], fmt_gguf_label(gb), (unsigned long long)tq->ne[0],
                           (unsigned long long)tq->ne[1], (unsigned long long)tq->ne[2], (unsigned long long)tq->ne[3],
                           fmt_gguf_label(gq));
        }
        vf_weight *x = &w[i];
        snprintf(x->name, sizeof x->name, "%s", tb->name);
        x->type_b = tb->type;
        x->type_q = tq->type;
        x->n = tb->ne[0] * tb->ne[1] * tb->ne[2] * tb->ne[3];
        x->kind = vf_kind_of_tensor(tb->name);
        double d2 = 0, b2 = 0;
        bool same = tb->type == tq->type && tb->nbytes == tq->nbytes && memcmp(tb->data, tq->data, tb->nbytes) == 0;
        if (same) {
            /* identical storage: no error; Σb² still counts for the kind's total */
            if (q_row_can_to_f32(tb->type)) {
                hq_status st = tensor_error(tb, tb, &d2, &b2, err);
                if (st != HQ_OK) {
                    hq_free(w);
                    return st;
                }
            }
            d2 = 0;
        } else {
            hq_status st = tensor_error(tb, tq, &d2, &b2, err);
            if (st != HQ_OK) {
                hq_free(w);
                return st;
            }
            changed++;
        }
        x->rel_rms = b2 > 0 ? sqrt(d2 / b2) : (d2 > 0 ? INFINITY : 0.0);
        r->kinds[x->kind].wsum_d2 += d2;
        r->kinds[x->kind].wsum_b2 += b2;
        r->kinds[x->kind].n_tensors++;
    }
    qsort(w, nb, sizeof *w, cmp_weight);
    r->weights = w;
    r->n_weights = nb;
    r->n_weights_changed = changed;
    return HQ_OK;
}
