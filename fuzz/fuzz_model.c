/* fuzz/fuzz_model.c — the runtime's GGUF model loader (rt_model_load: GGUF
 * reader + architecture keys + tensor shape/type checks against the hyper-
 * parameters) on arbitrary bytes, through an in-memory file; a model that
 * loads runs a 3-token prefill and one decode step (no crash, no UB, no
 * out-of-bounds access with hostile hyper-parameters; values not checked). */
#include "fuzz_common.h"
#include "../runtime/runtime.h"

#include <sys/mman.h>
#include <unistd.h>

int fuzz_model(const uint8_t *d, size_t n) {
    rt_set_threads(1);
    char path[64];
    int fd = fz_memfd("fuzz_model", d, n, path, sizeof path);
    if (fd < 0) return 0;
    char err[HQ_ERR_LEN] = "";
    rt_model *m = NULL;
    hq_status st = rt_model_load(path, &m, err);
    close(fd);
    if (st) {
        fz_check_err(st, err);
        FZ_ASSERT(m == NULL, "model returned on failure");
        return 0;
    }
    int32_t nv = rt_model_n_vocab(m);
    FZ_ASSERT(nv > 0 && rt_model_n_layers(m) >= 0 && rt_model_n_embd(m) > 0, "bad model dims");
    /* keep one exec cheap: skip huge (but valid) models */
    if ((int64_t)nv * rt_model_n_embd(m) <= (1 << 22)) {
        rt_state *s = NULL;
        st = rt_state_new(m, 8, &s, err);
        if (st) {
            fz_check_err(st, err);
        } else {
            float *logits = hq_malloc((size_t)nv * 3 * sizeof(float));
            int32_t toks[3] = {0, (int32_t)(1 % nv), (int32_t)(nv - 1)};
            if (logits) {
                err[0] = 0;
                st = rt_forward(m, s, toks, 3, logits, err);
                if (st) fz_check_err(st, err);
                else st = rt_forward(m, s, toks + 1, 1, logits, err);
                if (st) fz_check_err(st, err);
            }
            hq_free(logits);
            rt_state_free(s);
        }
    }
    rt_model_free(m);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return fuzz_model(d, n); }
#endif
