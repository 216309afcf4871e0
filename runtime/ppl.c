/* runtime/ppl.c — tokenization and chunk layout of the llama-perplexity
 * protocol (see ppl.h). */
#include "ppl.h"       // defines: rt_ppl_prepare, rt_ppl_free, rt_nll_of
#include "tokenizer.h"
#include "../core/vec.h" // defines: hq_lse

#include <math.h>
#include <string.h>

double rt_nll_of(const float *lg, int64_t V, int32_t tok) {
    float mx;
    double lz = hq_lse(lg, V, &mx); /* core/vec.h */
    return lz - ((double)lg[tok] - mx);
}

void rt_ppl_free(rt_ppl_chunks *c) {
    if (!c) return;
    hq_free(c->tokens);
    memset(c, 0, sizeof *c);
}

hq_status rt_ppl_prepare(const rt_model *m, const char *text, uint64_t len, const char *label, int64_t ctx,
                         int64_t max_chunks, rt_ppl_chunks *c, char *err) {
    memset(c, 0, sizeof *c);
    if (len == 0) return hq_fail(err, HQ_ERR_ARG, "%s: text file is empty", label);
    if (ctx < 4) return hq_fail(err, HQ_ERR_ARG, "context of %lld tokens is too small (at least 4)", (long long)ctx);
    int64_t mctx = rt_model_ctx_len(m);
    if (mctx > 0 && ctx > mctx)
        return hq_fail(err, HQ_ERR_ARG, "--ctx %lld is beyond the model's trained context of %lld tokens (%s)",
                       (long long)ctx, (long long)mctx, rt_model_path(m));
    rt_tokenizer *tk = rt_model_tokenizer(m);
    if (!tk)
        return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: the model has no embedded tokenizer (tokenizer.huggingface.json)",
                       rt_model_path(m));
    int32_t *ids = NULL;
    uint64_t n_ids = 0;
    char e2[HQ_ERR_LEN];
    hq_status st = rt_tokenize(tk, text, len, false, &ids, &n_ids, e2);
    if (st != HQ_OK) return hq_fail(err, st, "%s: %s", label, e2);
    int32_t bos = rt_model_bos(m);
    bool use_bos = rt_model_add_bos(m) && bos >= 0 && bos < rt_model_n_vocab(m);
    uint64_t n_all = n_ids + (use_bos ? 1 : 0);
    int64_t n_chunks = (int64_t)(n_all / (uint64_t)ctx);
    if (n_chunks == 0) {
        hq_free(ids);
        return hq_fail(err, HQ_ERR_ARG, "%s has %llu tokens, fewer than --ctx %lld (use a longer text or a smaller --ctx)",
                       label, (unsigned long long)n_all, (long long)ctx);
    }
    if (max_chunks > 0 && max_chunks < n_chunks) n_chunks = max_chunks;
    uint64_t nt;
    if (!hq_mul_u64((uint64_t)n_chunks, (uint64_t)ctx, &nt) || nt > SIZE_MAX / sizeof(int32_t)) {
        hq_free(ids);
        return hq_fail(err, HQ_ERR_LIMIT, "%s: %lld chunks of %lld tokens overflow", label, (long long)n_chunks,
                       (long long)ctx);
    }
    int32_t *toks = hq_malloc_array((size_t)nt, sizeof(int32_t));
    if (!toks) {
        hq_free(ids);
        return hq_fail(err, HQ_ERR_NOMEM, "out of memory for %llu tokens", (unsigned long long)nt);
    }
    /* all = [BOS] + ids; chunk k = all[k·ctx .. (k+1)·ctx), first token → BOS */
    for (uint64_t i = 0; i < nt; i++) toks[i] = use_bos ? (i == 0 ? bos : ids[i - 1]) : ids[i];
    if (use_bos)
        for (int64_t k = 0; k < n_chunks; k++) toks[k * ctx] = bos;
    hq_free(ids);
    c->tokens = toks;
    c->ctx = ctx;
    c->n_chunks = n_chunks;
    c->first = ctx / 2;
    c->n_scored = ctx - 1 - ctx / 2;
    c->n_text_tokens = n_all;
    c->use_bos = use_bos;
    c->bos = bos;
    return HQ_OK;
}
