/* cli/cmd_generate.c — `hyquant generate model.gguf -p "…" [-n N]
 * [--temp T] [--seed S] [--top-k K]`: tokenize the prompt (BOS prepended when
 * the tokenizer config says add_bos_token), prefill it in one batched
 * forward, then decode one token at a time, printing each piece as soon as it
 * is sampled. temp 0 = greedy (arg-max, lowest id on ties). Stops at EOS. */
#include "commands.h" // defines: hq_cmd_generate
#include "../runtime/runtime.h"
#include "../runtime/tokenizer.h"
#include "../core/opts.h"
#include "../cuda/backend.h" // defines: cu_cmd_backend

#include <math.h>
#include <string.h>

static uint64_t rng_next(uint64_t *s) { /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

typedef struct {
    float p;
    int32_t id;
} cand;

/* greedy or temperature / top-k sampling over one logits row */
static int32_t sample(const float *lg, int64_t V, double temp, int64_t top_k, uint64_t *rng, cand *buf) {
    int32_t best = 0;
    for (int64_t i = 1; i < V; i++)
        if (lg[i] > lg[best]) best = (int32_t)i;
    if (temp <= 0) return best;
    int64_t n = 0;
    if (top_k <= 0 || top_k >= V) {
        for (int64_t i = 0; i < V; i++) buf[n++] = (cand){lg[i], (int32_t)i};
    } else {
        /* keep the k largest by insertion (k is small) */
        for (int64_t i = 0; i < V; i++) {
            if (n == top_k && lg[i] <= buf[n - 1].p) continue;
            int64_t j = n < top_k ? n++ : n - 1;
            while (j > 0 && buf[j - 1].p < lg[i]) {
                buf[j] = buf[j - 1];
                j--;
            }
            buf[j] = (cand){lg[i], (int32_t)i};
        }
    }
    double z = 0, mx = lg[best];
    for (int64_t i = 0; i < n; i++) z += exp(((double)buf[i].p - mx) / temp);
    double u = (double)(rng_next(rng) >> 11) / 9007199254740992.0 * z, acc = 0;
    for (int64_t i = 0; i < n; i++) {
        acc += exp(((double)buf[i].p - mx) / temp);
        if (u < acc) return buf[i].id;
    }
    return buf[n - 1].id;
}

int hq_cmd_generate(int argc, char **argv) {
    const char *cmd = "generate", *prompt = NULL, *backend = NULL;
    int64_t n_new = 64, seed = 42, top_k = 0, threads = 0;
    double temp = 0.0;
    bool quiet = false, quirk = false;
    const hq_opt opts[] = {
        {'p', "prompt", HQ_OPT_STR, &prompt, "TEXT", "prompt (UTF-8, required)", 0, 0},
        {'n', "n-predict", HQ_OPT_INT, &n_new, "N", "tokens to generate (default 64)", 0, 1 << 20},
        {0, "temp", HQ_OPT_FLOAT, &temp, "T", "temperature, 0 = greedy (default 0)", 0, 100},
        {0, "seed", HQ_OPT_INT, &seed, "S", "sampling seed (default 42)", 0, 9.2e18},
        {0, "top-k", HQ_OPT_INT, &top_k, "K", "sample among the K most likely, 0 = all (default 0)", 0, 1 << 24},
        {'t', "threads", HQ_OPT_INT, &threads, "T", "threads (default: all cores)", 0, 1024},
        {0, "backend", HQ_OPT_STR, &backend, "B", "cpu (default), cuda (GPU; CPU with a note when none) or cuda-emu", 0, 0},
        {'q', "quiet", HQ_OPT_FLAG, &quiet, NULL, "no timing line on stderr", 0, 0},
        {0, "hf-prefill-quirk", HQ_OPT_FLAG, &quirk, NULL,
         "run the prompt as transformers' generate does, one multi-token forward (router CDMoE view quirk, spec 6.8; "
         "keep-window top-k over the whole call); default: as if fed one token per call (docs/doge-keep-window.md)",
         0, 0},
        {0, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const hq_cmd_def def = {cmd, "model.gguf -p \"prompt\" [-n N] [--temp T] [--seed S] [--top-k K] [--threads T]", opts,
                            1, "expected exactly one model path", false, 0};
    const char *pos[2];
    int rc = hq_cmd_start(&def, argc, argv, pos);
    if (rc >= 0) return rc;
    char err[HQ_ERR_LEN] = "";
    hq_status st;
    if (!prompt) return hq_cmd_error(cmd, HQ_ERR_ARG, "a prompt is required (-p TEXT)");
    rt_set_threads((int)threads);

    rt_model *m = NULL;
    rt_state *s = NULL;
    int32_t *ids = NULL, *all = NULL;
    float *lg = NULL;
    cand *buf = NULL;
    uint64_t n_ids = 0;
    rc = 1;
    if ((st = rt_model_load(pos[0], &m, err)) != HQ_OK) {
        rc = hq_cmd_error(cmd, st, err);
        goto done;
    }
    if ((st = cu_cmd_backend(cmd, m, backend, err)) != HQ_OK) { /* cuda/backend.h */
        rc = hq_cmd_error(cmd, st, err);
        goto done;
    }
    rt_model_set_hf_prefill(m, quirk); /* decode steps (one token) are the same either way */
    rt_tokenizer *tk = rt_model_tokenizer(m);
    if (!tk) {
        rc = hq_cmd_error(cmd, HQ_ERR_UNSUPPORTED, "model has no embedded tokenizer (tokenizer.huggingface.json)");
        goto done;
    }
    if ((st = rt_tokenize(tk, prompt, strlen(prompt), false, &ids, &n_ids, err)) != HQ_OK) {
        char e2[HQ_ERR_LEN + 16];
        snprintf(e2, sizeof e2, "prompt: %s", err);
        rc = hq_cmd_error(cmd, st, e2);
        goto done;
    }
    int64_t V = rt_model_n_vocab(m);
    int32_t bos = rt_model_bos(m), eos = rt_model_eos(m);
    bool use_bos = rt_model_add_bos(m) && bos >= 0 && bos < V;
    int64_t n_prompt = (int64_t)n_ids + (use_bos ? 1 : 0);
    if (n_prompt == 0) {
        rc = hq_cmd_error(cmd, HQ_ERR_ARG, "empty prompt (and the model adds no BOS)");
        goto done;
    }
    all = hq_malloc_array((size_t)(n_prompt + n_new + 1), sizeof(int32_t));
    lg = hq_malloc_array((size_t)V, sizeof(float));
    buf = hq_malloc_array((size_t)V, sizeof(cand));
    if (!all || !lg || !buf) {
        rc = hq_cmd_error(cmd, HQ_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (use_bos) all[0] = bos;
    memcpy(all + (use_bos ? 1 : 0), ids, n_ids * sizeof(int32_t));
    if ((st = rt_state_new(m, n_prompt + n_new + 1, &s, err)) != HQ_OK) {
        rc = hq_cmd_error(cmd, st, err);
        goto done;
    }
    uint64_t rng = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    fputs(prompt, stdout);
    fflush(stdout);
    double t0 = hq_now();
    if ((st = rt_forward_last(m, s, all, n_prompt, lg, err)) != HQ_OK) {
        rc = hq_cmd_error(cmd, st, err);
        goto done;
    }
    double t1 = hq_now();
    int64_t made = 0;
    char piece[256];
    while (made < n_new) {
        int32_t tok = sample(lg, V, temp, top_k, &rng, buf);
        all[n_prompt + made++] = tok;
        if (tok == eos) break;
        int np = rt_token_to_piece(tk, tok, piece, (int)sizeof piece);
        if (np > 0) fwrite(piece, 1, (size_t)np, stdout);
        fflush(stdout);
        if (made == n_new) break;
        if ((st = rt_forward(m, s, &tok, 1, lg, err)) != HQ_OK) {
            rc = hq_cmd_error(cmd, st, err);
            goto done;
        }
    }
    double t2 = hq_now();
    fputc('\n', stdout);
    if (!quiet)
        fprintf(stderr, "generate: prompt %lld tokens in %.3f s (%.1f tok/s), %lld generated in %.3f s (%.1f tok/s)\n",
                (long long)n_prompt, t1 - t0, (double)n_prompt / (t1 - t0 > 0 ? t1 - t0 : 1e-9), (long long)made,
                t2 - t1, (double)(made > 1 ? made - 1 : 0) / (t2 - t1 > 0 ? t2 - t1 : 1e-9));
    rc = 0;
done:
    hq_free(buf);
    hq_free(lg);
    hq_free(all);
    hq_free(ids);
    rt_state_free(s);
    rt_model_free(m);
    return rc;
}
