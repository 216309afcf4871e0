/* runtime/rt_weak.c — weak placeholders for the tokenizer entry points the
 * model loader uses, so the runtime links while runtime/tokenizer.c is being
 * written; the real definitions override them. */
#include "tokenizer.h" // defines: rt_tokenizer_load, rt_tokenizer_free

__attribute__((weak)) hq_status rt_tokenizer_load(const char *json, uint64_t len, const char *label,
                                                  rt_tokenizer **out, char *err) {
    (void)json;
    (void)len;
    *out = NULL;
    return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: tokenizer not available in this build", label);
}

__attribute__((weak)) void rt_tokenizer_free(rt_tokenizer *t) { (void)t; }
