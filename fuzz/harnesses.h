/* fuzz/harnesses.h — the list of fuzz harnesses (name = fuzz/fuzz_<name>.c,
 * corpus fuzz/corpus/<name>/, regressions fuzz/regressions/<name>/).
 * Including this file with FUZZ_NO_ENTRY defined pulls every harness into one
 * translation unit (tests/test_fuzz_replay.c). */
#ifndef HQ_FUZZ_HARNESSES_H
#define HQ_FUZZ_HARNESSES_H
#define FUZZ_NO_ENTRY
#include "fuzz_zip.c"
#include "fuzz_pickle.c"
#include "fuzz_safetensors.c"
#include "fuzz_torch.c"
#include "fuzz_gguf.c"
#include "fuzz_imatrix.c"
#include "fuzz_config.c"
#include "fuzz_ckpt_index.c"
#include "fuzz_tokenizer_load.c"
#include "fuzz_tokenize.c"
#include "fuzz_model.c"

typedef struct {
    const char *name;
    int (*fn)(const uint8_t *, size_t);
} fuzz_harness;

static const fuzz_harness k_fuzz_harnesses[] = {
    {"zip", fuzz_zip},
    {"pickle", fuzz_pickle},
    {"safetensors", fuzz_safetensors},
    {"torch", fuzz_torch},
    {"gguf", fuzz_gguf},
    {"imatrix", fuzz_imatrix},
    {"config", fuzz_config},
    {"ckpt_index", fuzz_ckpt_index},
    {"tokenizer_load", fuzz_tokenizer_load},
    {"tokenize", fuzz_tokenize},
    {"model", fuzz_model},
};
#define FUZZ_N_HARNESSES (sizeof k_fuzz_harnesses / sizeof *k_fuzz_harnesses)
#endif
