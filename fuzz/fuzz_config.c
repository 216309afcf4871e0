/* fuzz/fuzz_config.c — convert's config.json parser (cv_config_parse) on
 * arbitrary bytes and, when it parses, the tensor mapping (cv_plan_build)
 * of that config against a few fixed fixture checkpoints (the config drives
 * layer counts, expert counts and expected shapes). */
#include "fuzz_common.h"
#include "../convert/convert.h"

static const char *const cfg_ckpts[] = {
    "tests/fixtures/convert/cheems_apos",   "tests/fixtures/convert/doge_old_pk",
    "tests/fixtures/convert/cheems_alog",   "tests/fixtures/models/doge-moe",
    "tests/fixtures/models/cheems-dense-random",
};
#define CFG_N (sizeof cfg_ckpts / sizeof *cfg_ckpts)
static fmt_ckpt *cfg_ck[CFG_N];
static int cfg_loaded;

static void cfg_init(void) {
    if (cfg_loaded) return;
    cfg_loaded = 1;
    for (size_t i = 0; i < CFG_N; i++) {
        char err[HQ_ERR_LEN];
        if (fmt_ckpt_open(cfg_ckpts[i], &cfg_ck[i], err) != HQ_OK) {
            fprintf(stderr, "fuzz_config: %s (run from the repository root)\n", err);
            cfg_ck[i] = NULL;
        }
    }
}

int fuzz_config(const uint8_t *d, size_t n) {
    cfg_init();
    char *json = fz_cstr(d, n);
    char err[HQ_ERR_LEN] = "";
    cv_hparams hp;
    hq_status st = cv_config_parse(json, "fuzz/config.json", &hp, err);
    if (st) {
        fz_check_err(st, err);
    } else {
        for (size_t i = 0; i < CFG_N; i++) {
            if (!cfg_ck[i]) continue;
            cv_plan *p = NULL;
            err[0] = 0;
            st = cv_plan_build(cfg_ck[i]->tensors, cfg_ck[i]->n_tensors, json, cfg_ckpts[i], &p, err);
            if (st) {
                fz_check_err(st, err);
                FZ_ASSERT(p == NULL, "plan returned on failure");
                continue;
            }
            for (uint64_t k = 0; k < p->n_tensors; k++) {
                const cv_tensor *t = &p->tensors[k];
                FZ_ASSERT(t->n_dims >= 1 && t->n_dims <= 4 && strnlen(t->name, 64) < 64, "plan tensor %llu",
                          (unsigned long long)k);
                uint64_t ne = 1;
                for (uint32_t j = 0; j < t->n_dims; j++) ne *= t->ne[j];
                FZ_ASSERT(ne == fmt_tensor_nelem(t->src), "plan tensor '%s': %llu elements, source has %llu",
                          t->name, (unsigned long long)ne, (unsigned long long)fmt_tensor_nelem(t->src));
            }
            cv_plan_free(p);
        }
    }
    free(json);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return fuzz_config(d, n); }
#endif
