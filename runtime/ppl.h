/* runtime/ppl.h — the llama-perplexity evaluation protocol, shared by
 * `perplexity` and `verify` so both score exactly the same tokens:
 *  - the whole text is tokenized once without special tokens; a BOS is
 *    prepended when the model says add_bos_token (and has a valid BOS id);
 *  - chunks of ctx tokens, the remainder dropped (at most max_chunks when > 0);
 *    with BOS in use, each chunk's first token is replaced by BOS;
 *  - logits rows j = first .. ctx−2 (first = ctx/2) predict tokens j+1:
 *    n_scored = ctx − 1 − first per chunk.
 * (Moved out of cmd_perplexity.c, unchanged, so verify can reuse it.) */
#ifndef HQ_RT_PPL_H
#define HQ_RT_PPL_H
#include "runtime.h"

typedef struct {
    int32_t *tokens;      /* n_chunks × ctx, BOS substituted (hq_free via rt_ppl_free) */
    int64_t ctx, n_chunks, first, n_scored;
    uint64_t n_text_tokens; /* tokens of the whole text incl. the leading BOS */
    bool use_bos;
    int32_t bos;
} rt_ppl_chunks;

/* Tokenizes text with m's embedded tokenizer and lays out the chunks.
 * label names the text in messages. HQ_ERR_ARG when the text is empty or
 * shorter than one chunk ("... fewer than --ctx N ..."). */
hq_status rt_ppl_prepare(const rt_model *m, const char *text, uint64_t len, const char *label, int64_t ctx,
                         int64_t max_chunks, rt_ppl_chunks *c, char *err);
void rt_ppl_free(rt_ppl_chunks *c);

/* −log softmax(logits)[tok], in double (max-shifted) */
double rt_nll_of(const float *logits, int64_t n_vocab, int32_t tok);
#endif
