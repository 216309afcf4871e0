/* tests/test_backend.c — the forward pass's backend table and per-model
 * settings (runtime/backend_ops.h, runtime/backend.c):
 *   - two models in one process with different settings (reference kernels
 *     and 1 thread vs optimized ops and 2 threads), run interleaved: each
 *     gives bit for bit what it gives alone under the process-wide switch,
 *     so no setting leaks from one model into the other;
 *   - per-op fallback: a table without rmsnorm and swiglu on host memory
 *     runs the CPU ops in their place (logits equal to the CPU's bit for bit);
 *   - whole-model fallback: a table without a stateful op (attn) is refused
 *     with a note naming it, and the model stays on the CPU.
 * Model: tests/fixtures/models/cheems-tiny-random (SSD + attention + CDMoE),
 * converted with cv_convert. */
#include "../convert/convert.h"
#include "../runtime/backend_ops.h"
#include "../runtime/runtime.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NT 12

static hq_status run(rt_model *m, const int32_t *toks, float *out, char *err) {
    rt_state *s = NULL;
    hq_status st = rt_state_new(m, NT + 4, &s, err);
    if (st == HQ_OK) st = rt_forward(m, s, toks, NT - 2, out, err); /* prefill */
    int64_t V = rt_model_n_vocab(m);
    for (int64_t t = NT - 2; t < NT && st == HQ_OK; t++) st = rt_forward(m, s, toks + t, 1, out + t * V, err);
    rt_state_free(s);
    return st;
}

int main(void) {
    char dir[] = FIXTURE("models/cheems-tiny-random"), gguf[256], err[HQ_ERR_LEN] = "";
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        CHECK(0, "fixture %s missing", dir);
        TEST_END();
    }
    snprintf(gguf, sizeof gguf, "/tmp/hq_test_backend_%d.gguf", (int)getpid());
    cv_options co = {.outtype = CV_OUT_F32, .quiet = true};
    CHECK(cv_convert(dir, gguf, &co, err) == HQ_OK, "convert: %s", err);
    rt_model *a = NULL, *b = NULL;
    CHECK(rt_model_load(gguf, &a, err) == HQ_OK && rt_model_load(gguf, &b, err) == HQ_OK, "load: %s", err);
    if (!a || !b) TEST_END();
    int64_t V = rt_model_n_vocab(a);
    int32_t toks[NT];
    for (int i = 0; i < NT; i++) toks[i] = (int32_t)((i * 37 + 11) % V);
    size_t bytes = (size_t)(NT * V) * 4;
    float *ref = calloc(1, bytes), *fast = calloc(1, bytes), *ga = calloc(1, bytes), *gb = calloc(1, bytes);

    /* each alone, under the process-wide switches */
    rt_set_threads(2);
    rt_use_reference_kernels(true);
    CHECK(run(a, toks, ref, err) == HQ_OK, "reference run: %s", err);
    rt_use_reference_kernels(false);
    CHECK(run(a, toks, fast, err) == HQ_OK, "optimized run: %s", err);
    CHECK(memcmp(ref, fast, bytes) != 0, "reference and optimized runs are bit-identical: the check below sees nothing");

    /* together, each with its own settings, interleaved call by call */
    rt_model_set_reference(a, 1);
    rt_model_set_threads(a, 1);
    rt_model_set_reference(b, 0);
    rt_model_set_threads(b, 2);
    rt_state *sa = NULL, *sb2 = NULL;
    hq_status st = rt_state_new(a, NT + 4, &sa, err);
    if (st == HQ_OK) st = rt_state_new(b, NT + 4, &sb2, err);
    if (st == HQ_OK) st = rt_forward(a, sa, toks, NT - 2, ga, err);
    if (st == HQ_OK) st = rt_forward(b, sb2, toks, NT - 2, gb, err);
    for (int64_t t = NT - 2; t < NT && st == HQ_OK; t++) {
        st = rt_forward(b, sb2, toks + t, 1, gb + t * V, err);
        if (st == HQ_OK) st = rt_forward(a, sa, toks + t, 1, ga + t * V, err);
    }
    CHECK(st == HQ_OK, "interleaved: %s", err);
    CHECK(!memcmp(ga, ref, bytes), "model A (reference, 1 thread) differs from the reference run");
    CHECK(!memcmp(gb, fast, bytes), "model B (optimized, 2 threads) differs from the optimized run");
    rt_state_free(sa);
    rt_state_free(sb2);

    /* per-op fallback: the CPU table without two stateless ops */
    rt_backend_ops part = rt_backend_cpu;
    part.name = "partial";
    part.rmsnorm = NULL;
    part.swiglu = NULL;
    char why[300] = "";
    CHECK(rt_model_set_backend(b, &part, NULL, why, sizeof why, err) == HQ_OK && !why[0], "partial table: %s %s", err,
          why);
    CHECK(!strcmp(rt_model_backend_name(b), "partial"), "partial table not taken: %s", rt_model_backend_name(b));
    memset(gb, 0, bytes);
    CHECK(run(b, toks, gb, err) == HQ_OK, "partial table run: %s", err);
    CHECK(!memcmp(gb, fast, bytes), "per-op fallback changes the logits");

    /* whole-model fallback: a stateful op cannot be borrowed */
    rt_backend_ops noattn = rt_backend_cpu;
    noattn.name = "noattn";
    noattn.attn = NULL;
    CHECK(rt_model_set_backend(b, &noattn, NULL, why, sizeof why, err) == HQ_OK, "noattn: %s", err);
    CHECK(strstr(why, "'attn'") != NULL, "noattn: note '%s' does not name the op", why);
    CHECK(!strcmp(rt_model_backend_name(b), "cpu"), "noattn: model left on %s", rt_model_backend_name(b));
    memset(gb, 0, bytes);
    CHECK(run(b, toks, gb, err) == HQ_OK && !memcmp(gb, fast, bytes), "after the refusal the CPU run differs: %s", err);

    free(ref), free(fast), free(ga), free(gb);
    rt_model_free(a);
    rt_model_free(b);
    unlink(gguf);
    TEST_END();
}
