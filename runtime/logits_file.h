/* runtime/logits_file.h — the `perplexity --save-logits` file: the evaluated
 * tokens and, for every scored token, the full log-probability vector in 16
 * bits (llama-perplexity's --kl-divergence-base scheme: per-token min/scale).
 * `verify` reads it as the base model's reference.
 *
 * Layout (little-endian, no padding):
 *  1. header, 96 bytes:
 *     0  char[8] magic "HQLOGITS"
 *     8  u32 version = 1
 *    12  u32 n_vocab            model vocabulary (row length)
 *    16  u32 n_ctx              tokens per chunk
 *    20  u32 n_chunks
 *    24  u32 first              first scored position in a chunk (n_ctx/2):
 *                               the row at position j predicts token j+1,
 *                               j = first .. n_ctx-2
 *    28  u32 n_scored           per chunk = n_ctx - 1 - first
 *    32  i32 bos_id             BOS written at each chunk start, -1 = none
 *    36  u32 flags              bit 0: BOS substituted at chunk starts
 *    40  u64 text_hash          FNV-1a 64 of the text file bytes
 *    48  u64 tokenizer_hash     FNV-1a 64 of the embedded tokenizer.json (0 if none)
 *    56  u64 n_text_tokens      tokens of the whole text (before chunking)
 *    64  f64 nll_sum            Σ −log p(token) over all scored tokens (this model)
 *    72  u8[24] reserved (0)
 *  2. tokens: i32 [n_chunks × n_ctx], as evaluated (BOS substituted)
 *  3. rows: n_chunks × n_scored records, chunk-major then position, each
 *       f32 scale, f32 min, u16 q[n_vocab]
 *     log p_i ≈ min + scale·q_i. max = max_i log p_i; min = max(min_i log p_i,
 *     max − 16) (the floor llama.cpp uses); scale = (max − min)/65535;
 *     q_i = round((clamp(log p_i, min, max) − min)/scale).
 */
#ifndef HQ_RT_LOGITS_FILE_H
#define HQ_RT_LOGITS_FILE_H
#include "../core/hq.h"

#define RT_LOGITS_MAGIC "HQLOGITS"
#define RT_LOGITS_VERSION 1
#define RT_LOGITS_HEADER 96

typedef struct {
    uint32_t n_vocab, n_ctx, n_chunks, first, n_scored;
    int32_t bos_id;
    uint32_t flags;
    uint64_t text_hash, tokenizer_hash, n_text_tokens;
    double nll_sum;
} rt_logits_header;

uint64_t rt_fnv1a64(const void *p, uint64_t n);

/* writer: header (nll_sum may be patched at the end with rt_logits_finish),
 * tokens, then one rt_logits_write_row per scored token in order. */
hq_status rt_logits_write_header(hq_out *o, const rt_logits_header *h, const int32_t *tokens, char *err);
/* logits: n_vocab raw logits of one position (log-softmax is taken here) */
hq_status rt_logits_write_row(hq_out *o, const float *logits, uint32_t n_vocab, char *err);
/* rewrites the header with the final nll_sum and commits the file */
hq_status rt_logits_finish(hq_out *o, const rt_logits_header *h, char *err);

/* reader (mmap; every size checked against the file length) */
typedef struct {
    hq_map map;
    rt_logits_header h;
    const int32_t *tokens;   /* n_chunks × n_ctx (unaligned-safe copy) */
    const uint8_t *rows;
    uint64_t row_bytes;
} rt_logits_file;
hq_status rt_logits_open(const char *path, rt_logits_file *f, char *err);
void rt_logits_close(rt_logits_file *f);
/* decodes record i (0 .. n_chunks·n_scored−1) into n_vocab log-probs */
void rt_logits_row(const rt_logits_file *f, uint64_t i, float *logprobs);
#endif
