/* runtime/tokenizer.h — HF tokenizers-compatible tokenizer read from the
 * tokenizer.json embedded in a GGUF (key tokenizer.huggingface.json).
 * Supports BPE with byte-level pre-tokenization (GPT-2 / Llama-3 regexes,
 * full Unicode categories) and SentencePiece-style BPE with byte fallback,
 * added/special tokens, and the post-processor's BOS/EOS. Produces exactly the
 * ids that the HF `tokenizers` library produces (tests/test_tokenizer.c). */
#ifndef HQ_TOKENIZER_H
#define HQ_TOKENIZER_H
#include "../core/hq.h"

typedef struct rt_tokenizer rt_tokenizer;

/* json: tokenizer.json bytes (not necessarily NUL-terminated) */
hq_status rt_tokenizer_load(const char *json, uint64_t len, const char *label, rt_tokenizer **out, char *err);
void rt_tokenizer_free(rt_tokenizer *t);
/* Encodes UTF-8 text. Invalid UTF-8 is an error (HQ_ERR_FORMAT, naming the
 * byte offset). add_special applies the post-processor (BOS/EOS) as HF's
 * encode(add_special_tokens=True) does. *ids is allocated with hq_malloc. */
hq_status rt_tokenize(const rt_tokenizer *t, const char *text, uint64_t len, bool add_special, int32_t **ids,
                      uint64_t *n_ids, char *err);
/* Appends the decoded bytes of one token to buf (as HF decode of a single
 * token would, byte-level / byte-fallback aware); returns bytes written or
 * -1 if it does not fit. */
int rt_token_to_piece(const rt_tokenizer *t, int32_t id, char *buf, int cap);
int32_t rt_tokenizer_vocab_size(const rt_tokenizer *t);
int32_t rt_tokenizer_bos(const rt_tokenizer *t); /* -1 if none */
int32_t rt_tokenizer_eos(const rt_tokenizer *t);
#endif
