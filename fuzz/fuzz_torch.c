/* fuzz/fuzz_torch.c — fmt_torch_parse (torch zip and legacy pickle
 * checkpoints: zip directory + pickle VM + storage/view validation) on
 * arbitrary bytes, then every accepted tensor read through the fast and _ref
 * paths. */
#include "fuzz_common.h"

int fuzz_torch(const uint8_t *d, size_t n) {
    fmt_ckpt *ck = fmt_ckpt_new();
    if (!ck) return 0;
    char err[HQ_ERR_LEN] = "";
    hq_status st = fmt_torch_parse(d, n, "fuzz.pt", 0, ck, err);
    if (st) fz_check_err(st, err);
    else fz_check_ckpt(ck, NULL, 0); /* storages may be inflated copies, not in d */
    fmt_ckpt_close(ck);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return fuzz_torch(d, n); }
#endif
