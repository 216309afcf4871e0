/* fuzz/fuzz_safetensors.c — fmt_safetensors_parse on arbitrary bytes, then
 * every accepted tensor read through the fast and _ref paths. */
#include "fuzz_common.h"

int fuzz_safetensors(const uint8_t *d, size_t n) {
    fmt_ckpt *ck = fmt_ckpt_new();
    if (!ck) return 0;
    char err[HQ_ERR_LEN] = "";
    hq_status st = fmt_safetensors_parse(d, n, "fuzz.safetensors", 0, ck, err);
    if (st) fz_check_err(st, err);
    else fz_check_ckpt(ck, d, n);
    fmt_ckpt_close(ck);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return fuzz_safetensors(d, n); }
#endif
