/* fuzz/fuzz_tokenize.c — rt_tokenize of arbitrary bytes with fixed, valid
 * tokenizers (the fixtures: GPT-2, Llama-3, Qwen2 byte-level BPE,
 * SentencePiece-style BPE with byte fallback, the behaviour mixes and the
 * bundled model's). The first input byte picks the tokenizer, the rest is the
 * text. Invalid UTF-8 must fail cleanly; valid text must give ids inside the
 * vocabulary, and for the pure byte-level tokenizers (no normalizer, no
 * stripping added tokens: llama3, qwen2) the concatenated pieces must give
 * back the text exactly. tools/fuzz_tokenize_vs_hf.py compares the ids of a
 * grown corpus with HF tokenizers. */
#include "fuzz_common.h"
#include "../runtime/tokenizer.h"

static const struct {
    const char *path;
    bool roundtrip; /* pieces concatenate back to the input */
} tkz_files[] = {
    /* gpt2.json has an lstrip/rstrip added token ('<|sep|>'): the spaces it eats do not come back (HF agrees) */
    {"tests/fixtures/tokenizer/gpt2.json", false},     {"tests/fixtures/tokenizer/llama3.json", true},
    {"tests/fixtures/tokenizer/qwen2.json", true},     {"tests/fixtures/tokenizer/sp.json", false},
    {"tests/fixtures/tokenizer/sp_meta.json", false},  {"tests/fixtures/tokenizer/sp_meta_split.json", false},
    {"tests/fixtures/tokenizer/sp_unk.json", false},   {"tests/fixtures/tokenizer/behaviors1.json", false},
    {"tests/fixtures/tokenizer/behaviors2.json", false}, {"tests/fixtures/tokenizer/behaviors3.json", false},
    {"tests/fixtures/tokenizer/gpt2_prefix.json", false}, {"models/cheems-tiny/tokenizer.json", false},
};
#define TKZ_N (sizeof tkz_files / sizeof *tkz_files)
static rt_tokenizer *tkz_tok[TKZ_N];
static int tkz_loaded;

static void tkz_init(void) {
    if (tkz_loaded) return;
    tkz_loaded = 1;
    for (size_t i = 0; i < TKZ_N; i++) {
        char err[HQ_ERR_LEN], *buf = NULL;
        uint64_t len = 0;
        if (hq_read_file(tkz_files[i].path, HQ_MAX_TOKENIZER_JSON, &buf, &len, err) != HQ_OK ||
            rt_tokenizer_load(buf, len, tkz_files[i].path, &tkz_tok[i], err) != HQ_OK) {
            fprintf(stderr, "fuzz_tokenize: %s (run from the repository root)\n", err);
            tkz_tok[i] = NULL;
        }
        hq_free(buf);
    }
}

int fuzz_tokenize(const uint8_t *d, size_t n) {
    tkz_init();
    if (n < 1) return 0;
    size_t which = d[0] % TKZ_N;
    const rt_tokenizer *t = tkz_tok[which];
    if (!t) return 0;
    const char *text = (const char *)d + 1;
    uint64_t len = n - 1;
    int32_t vocab = rt_tokenizer_vocab_size(t);
    for (int sp = 0; sp < 2; sp++) {
        int32_t *ids = NULL;
        uint64_t n_ids = 0;
        char err[HQ_ERR_LEN] = "";
        hq_status st = rt_tokenize(t, text, len, sp, &ids, &n_ids, err);
        if (st) {
            fz_check_err(st, err);
            FZ_ASSERT(st == HQ_ERR_FORMAT || st == HQ_ERR_NOMEM || st == HQ_ERR_LIMIT,
                      "%s: unexpected failure: %s", tkz_files[which].path, err);
            hq_free(ids);
            return 0;
        }
        size_t cap = (size_t)len + 64 + 64 * (size_t)n_ids, used = 0;
        char *back = hq_malloc(cap);
        for (uint64_t i = 0; i < n_ids; i++) {
            FZ_ASSERT(ids[i] >= 0 && ids[i] < vocab, "%s: id %d outside vocab %d", tkz_files[which].path, ids[i],
                      vocab);
            if (back) {
                int k = rt_token_to_piece(t, ids[i], back + used, (int)(cap - used > 1 << 20 ? 1 << 20 : cap - used));
                if (k < 0) {
                    hq_free(back);
                    back = NULL;
                } else {
                    used += (size_t)k;
                }
            }
        }
        if (back && !sp && tkz_files[which].roundtrip)
            FZ_ASSERT(used == len && memcmp(back, text, len) == 0, "%s: decode(encode(text)) != text",
                      tkz_files[which].path);
        hq_free(back);
        hq_free(ids);
    }
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return fuzz_tokenize(d, n); }
#endif
