/* fuzz/fuzz_tokenizer_load.c — rt_tokenizer_load on arbitrary tokenizer.json
 * bytes; a tokenizer that loads must encode a fixed mixed-script sample with
 * ids inside its vocabulary and give every id a piece. */
#include "fuzz_common.h"
#include "../runtime/tokenizer.h"

static const char tkl_sample[] = "Hello world! It's 2024 -- caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"
                                 "  \t\n<s> </s> <|endoftext|> 12345 \xf0\x9f\x98\x80 don't";

static void tkl_check_encode(const rt_tokenizer *t, const char *text, uint64_t len) {
    int32_t vocab = rt_tokenizer_vocab_size(t);
    FZ_ASSERT(vocab >= 0, "negative vocab size");
    for (int sp = 0; sp < 2; sp++) {
        int32_t *ids = NULL;
        uint64_t n_ids = 0;
        char err[HQ_ERR_LEN] = "";
        hq_status st = rt_tokenize(t, text, len, sp, &ids, &n_ids, err);
        if (st) {
            fz_check_err(st, err);
            hq_free(ids);
            continue;
        }
        for (uint64_t i = 0; i < n_ids; i++) {
            FZ_ASSERT(ids[i] >= 0 && ids[i] < vocab, "id %d outside vocab %d", ids[i], vocab);
            char buf[1024];
            (void)rt_token_to_piece(t, ids[i], buf, (int)sizeof buf);
        }
        hq_free(ids);
    }
    int32_t bos = rt_tokenizer_bos(t), eos = rt_tokenizer_eos(t);
    FZ_ASSERT(bos >= -1 && bos < vocab && eos >= -1 && eos < vocab, "bos %d / eos %d outside vocab %d", bos, eos,
              vocab);
}

int fuzz_tokenizer_load(const uint8_t *d, size_t n) {
    rt_tokenizer *t = NULL;
    char err[HQ_ERR_LEN] = "";
    hq_status st = rt_tokenizer_load((const char *)d, n, "fuzz/tokenizer.json", &t, err);
    if (st) {
        fz_check_err(st, err);
        FZ_ASSERT(t == NULL, "tokenizer returned on failure");
        return 0;
    }
    tkl_check_encode(t, tkl_sample, sizeof tkl_sample - 1);
    rt_tokenizer_free(t);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return fuzz_tokenizer_load(d, n); }
#endif
