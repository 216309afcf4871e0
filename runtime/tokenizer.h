/* runtime/tokenizer.h — HF tokenizers-compatible tokenizer read from the
 * tokenizer.json embedded in a GGUF (key tokenizer.huggingface.json).
 * Supports BPE with byte-level pre-tokenization (GPT-2 / Llama-3 regexes,
 * full Unicode categories) and SentencePiece-style BPE with byte fallback,
 * added/special tokens, and the post-processor's BOS/EOS. Produces exactly the
 * ids that the HF `tokenizers` library produces (tests/test_tokenizer.c).
 *
 * Supported components (anything else -> HQ_ERR_UNSUPPORTED naming it):
 *   model         BPE (vocab + merges as "a b" or [a, b]; unk_token, fuse_unk,
 *                 byte_fallback, ignore_merges, continuing_subword_prefix,
 *                 end_of_word_suffix; dropout must be null/0)
 *   normalizer    Sequence, Prepend, Replace (String pattern). NFC/NFKC/
 *                 Lowercase/... are refused (no target tokenizer uses them).
 *   pre_tokenizer Sequence, ByteLevel (add_prefix_space, use_regex), Split
 *                 (GPT-2, Llama-3 or Qwen2 regex, or a String; all five
 *                 behaviours, invert), Metaspace (prepend_scheme, split), Digits
 *   added_tokens  special / normalized / single_word / lstrip / rstrip
 *   post          TemplateProcessing (single), ByteLevel, RobertaProcessing,
 *                 BertProcessing, Sequence; truncation/padding must be null
 *   decoder       ByteLevel, ByteFallback, Metaspace, Replace(U+2581 -> ' '),
 *                 Fuse, Strip, Sequence (used by rt_token_to_piece)
 * Unicode classes (\p{L}, \p{N}, \s) follow what `tokenizers` 0.23 itself
 * matches (Oniguruma, Unicode 16), see tools/gen_unicode_tables.py. */
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
 * -1 if it does not fit. Whole-sequence decoder steps are not applied: a
 * SentencePiece-style '▁x' gives " x" (HF's Strip / Metaspace decoders drop
 * the space of the first token only), so concatenated pieces equal HF decode
 * up to that one leading space. Added tokens give their (normalized) content. */
int rt_token_to_piece(const rt_tokenizer *t, int32_t id, char *buf, int cap);
int32_t rt_tokenizer_vocab_size(const rt_tokenizer *t);
/* BOS: last id the post-processor puts before the text, else a special added
 * token named <s>, <|begin_of_text|>, <|startoftext|> or <bos>; -1 if none.
 * EOS: first id the post-processor puts after the text, else a special token
 * named </s>, <|end_of_text|>, <|endoftext|>, <eos> or <|im_end|>. Prefer the
 * GGUF's tokenizer.ggml.bos/eos_token_id where present. */
int32_t rt_tokenizer_bos(const rt_tokenizer *t); /* -1 if none */
int32_t rt_tokenizer_eos(const rt_tokenizer *t);
#endif
