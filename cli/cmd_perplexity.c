/* cli/cmd_perplexity.c — `hyquant perplexity model.gguf --text FILE`
 * following llama-perplexity (spec file-formats §6 1.7):
 * (tokenization and chunk layout: runtime/ppl.c, shared with verify)
 *  - the whole text is tokenized once (no special tokens; a BOS is prepended
 *    when the model's tokenizer config says add_bos_token, as
 *    common_tokenize(add_special=true) does);
 *  - chunks of --ctx tokens, the remainder dropped; every chunk is evaluated
 *    from an empty state; when add_bos is set (and the model has a BOS id)
 *    the chunk's first token is replaced by BOS;
 *  - only the second half is scored: logits at positions j = ctx/2 .. ctx−2
 *    predict tokens j+1 (ctx − 1 − ctx/2 tokens per chunk);
 *  - PPL = exp(mean NLL); the ± is llama's: sqrt((E[nll²] − E[nll]²)/(N−1))·PPL.
 * Without a BOS (add_bos false or no id) the chunk starts with plain text
 * tokens; since only the second half is scored every scored token still has
 * ≥ ctx/2 tokens of context. */
#include "commands.h" // defines: hq_cmd_perplexity
#include "../runtime/runtime.h"
#include "../runtime/tokenizer.h"
#include "../runtime/logits_file.h"
#include "../runtime/ppl.h"
#include "../core/limits.h"
#include "../core/opts.h"
#include "../cuda/backend.h" // defines: cu_cmd_backend
#include "../formats/gguf.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *model, *text, *save, *backend;
    int64_t ctx, chunks, threads;
    bool json, quiet, quirk;
} ppl_args;

static int run(const ppl_args *a) {
    const char *cmd = "perplexity";
    char err[HQ_ERR_LEN] = "";
    char *text = NULL;
    uint64_t tlen = 0;
    hq_status st = hq_read_file(a->text, HQ_MAX_TEXT, &text, &tlen, err);
    if (st != HQ_OK) return hq_cmd_error(cmd, st, err);
    if (tlen == 0) {
        hq_free(text);
        return hq_cmd_error(cmd, HQ_ERR_ARG, (snprintf(err, sizeof err, "%s: text file is empty", a->text), err));
    }
    rt_set_threads((int)a->threads);
    rt_model *m = NULL;
    rt_state *s = NULL;
    int32_t *toks = NULL;
    float *logits = NULL;
    hq_out out = {0};
    bool out_open = false;
    int rc = 1;
    if ((st = rt_model_load(a->model, &m, err)) != HQ_OK) {
        rc = hq_cmd_error(cmd, st, err);
        goto done;
    }
    if ((st = cu_cmd_backend(cmd, m, a->backend, err)) != HQ_OK) { /* cuda/backend.h */
        rc = hq_cmd_error(cmd, st, err);
        goto done;
    }
    rt_model_set_hf_prefill(m, a->quirk);
    rt_ppl_chunks ch;
    if ((st = rt_ppl_prepare(m, text, tlen, a->text, a->ctx, a->chunks, &ch, err)) != HQ_OK) {
        rc = hq_cmd_error(cmd, st, err);
        goto done;
    }
    toks = ch.tokens; /* freed below */
    bool use_bos = ch.use_bos;
    int32_t bos = ch.bos;
    int64_t V = rt_model_n_vocab(m), ctx = ch.ctx, first = ch.first, n_scored = ch.n_scored;
    uint64_t n_all = ch.n_text_tokens;
    int64_t n_chunks = ch.n_chunks;
    logits = hq_malloc_array((size_t)(n_scored + 1) * (size_t)V, sizeof(float));
    if (!logits) {
        char b[32];
        snprintf(err, sizeof err, "%s: out of memory for the logits of one chunk (%lld positions x %lld vocabulary "
                 "floats = %s, from --ctx %lld)", a->model, (long long)(n_scored + 1), (long long)V,
                 hq_fmt_bytes((uint64_t)(n_scored + 1) * (uint64_t)V * 4u, b), (long long)ctx);
        rc = hq_cmd_error(cmd, HQ_ERR_NOMEM, err);
        goto done;
    }
    if ((st = rt_state_new(m, ctx, &s, err)) != HQ_OK) {
        rc = hq_cmd_error(cmd, st, err);
        goto done;
    }
    rt_logits_header lh = {.n_vocab = (uint32_t)V, .n_ctx = (uint32_t)ctx, .n_chunks = (uint32_t)n_chunks,
                           .first = (uint32_t)first, .n_scored = (uint32_t)n_scored, .bos_id = use_bos ? bos : -1,
                           .flags = use_bos ? 1u : 0u, .text_hash = rt_fnv1a64(text, tlen),
                           .n_text_tokens = n_all};
    if (a->save) {
        /* the tokenizer fingerprint ties the file to the vocabulary */
        fmt_gguf *gg = NULL;
        if (fmt_gguf_open(a->model, &gg, NULL) == HQ_OK) {
            fmt_gguf_str js;
            if (fmt_gguf_get_str(gg, "tokenizer.huggingface.json", &js)) lh.tokenizer_hash = rt_fnv1a64(js.s, js.len);
            fmt_gguf_close(gg);
        }
        if ((st = hq_out_open(&out, a->save, err)) != HQ_OK ||
            (st = rt_logits_write_header(&out, &lh, toks, err)) != HQ_OK) {
            rc = hq_cmd_error(cmd, st, err);
            goto done;
        }
        out_open = true;
    }
    double nll = 0, nll2 = 0;
    int64_t count = 0;
    double t0 = hq_now(), last_print = -1e9;
    bool tty = isatty(2);
    if (!a->quiet && !a->json)
        fprintf(stderr, "perplexity: %lld tokens, %lld chunks of %lld (scoring %lld per chunk), BOS %s\n",
                (long long)n_all, (long long)n_chunks, (long long)ctx, (long long)n_scored,
                use_bos ? "substituted at chunk starts" : "not used");
    for (int64_t c = 0; c < n_chunks; c++) {
        rt_state_reset(s);
        if ((st = rt_forward_from(m, s, toks + c * ctx, ctx, first, logits, err)) != HQ_OK) {
            rc = hq_cmd_error(cmd, st, err);
            goto done;
        }
        for (int64_t j = 0; j < n_scored; j++) {
            double v = rt_nll_of(logits + j * V, V, toks[c * ctx + first + j + 1]);
            nll += v;
            nll2 += v * v;
            if (out_open && (st = rt_logits_write_row(&out, logits + j * V, (uint32_t)V, err)) != HQ_OK) {
                rc = hq_cmd_error(cmd, st, err);
                goto done;
            }
        }
        count += n_scored;
        double now = hq_now();
        bool due = tty || now - last_print >= 2.0 || c + 1 == n_chunks; /* logs: at most every 2 s */
        if (!a->quiet && !a->json && due) {
            last_print = now;
            double el = now - t0;
            fprintf(stderr, "%s[%lld/%lld] PPL %.4f  (%.0f tok/s)%s", tty ? "\r" : "", (long long)(c + 1),
                    (long long)n_chunks, exp(nll / (double)count), (double)((c + 1) * ctx) / (el > 0 ? el : 1e-9),
                    tty ? "" : "\n");
        }
    }
    if (!a->quiet && !a->json && tty) fputc('\n', stderr);
    double secs = hq_now() - t0;
    double mean = nll / (double)count, ppl = exp(mean), var = nll2 / (double)count - mean * mean;
    double se = count > 1 && var > 0 ? sqrt(var / (double)(count - 1)) * ppl : 0.0;
    if (out_open) {
        lh.nll_sum = nll;
        if ((st = rt_logits_finish(&out, &lh, err)) != HQ_OK) {
            rc = hq_cmd_error(cmd, st, err);
            goto done;
        }
        out_open = false;
    }
    if (a->json) { /* through cJSON: paths may hold quotes, backslashes, control bytes */
        cJSON *j = cJSON_CreateObject();
        char *js = NULL;
        if (j && cJSON_AddStringToObject(j, "model", a->model) && cJSON_AddStringToObject(j, "text", a->text) &&
            cJSON_AddNumberToObject(j, "ppl", ppl) && cJSON_AddNumberToObject(j, "ppl_err", se) &&
            cJSON_AddNumberToObject(j, "nll_mean", mean) &&
            cJSON_AddNumberToObject(j, "tokens_scored", (double)count) &&
            cJSON_AddNumberToObject(j, "chunks", (double)n_chunks) && cJSON_AddNumberToObject(j, "ctx", (double)ctx) &&
            cJSON_AddNumberToObject(j, "text_tokens", (double)n_all) && cJSON_AddBoolToObject(j, "bos", use_bos) &&
            cJSON_AddNumberToObject(j, "seconds", secs) &&
            cJSON_AddNumberToObject(j, "tokens_per_second", (double)(n_chunks * ctx) / (secs > 0 ? secs : 1e-9)))
            js = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        if (!js) {
            rc = hq_cmd_error(cmd, HQ_ERR_NOMEM, "out of memory for the JSON result");
            goto done;
        }
        printf("%s\n", js);
        cJSON_free(js);
    } else {
        printf("PPL = %.4f ± %.5f\n", ppl, se);
    }
    rc = 0;
done:
    if (out_open) hq_out_abort(&out);
    hq_free(logits);
    hq_free(toks);
    rt_state_free(s);
    rt_model_free(m);
    hq_free(text);
    return rc;
}

int hq_cmd_perplexity(int argc, char **argv) {
    ppl_args a = {.ctx = 512, .chunks = 0, .threads = 0};
    const hq_opt opts[] = {
        {0, "text", HQ_OPT_IN, &a.text, "FILE", "UTF-8 text to score (required)", 0, 0},
        {'c', "ctx", HQ_OPT_INT, &a.ctx, "N", "tokens per chunk (default 512); the second half is scored", 4, 1 << 20},
        {0, "chunks", HQ_OPT_INT, &a.chunks, "K", "score at most K chunks (default: all)", 0, 1e12},
        {'t', "threads", HQ_OPT_INT, &a.threads, "T", "threads (default: all cores)", 0, 1024},
        {0, "backend", HQ_OPT_STR, &a.backend, "B", "cpu (default), cuda (GPU; CPU with a note when none) or cuda-emu", 0, 0},
        {0, "save-logits", HQ_OPT_OUT, &a.save, "FILE",
         "store tokens + per-token log-probs (runtime/logits_file.h) for verify", 0, 0},
        {0, "json", HQ_OPT_FLAG, &a.json, NULL, "one JSON object on stdout instead of the text lines", 0, 0},
        {'q', "quiet", HQ_OPT_FLAG, &a.quiet, NULL, "no progress lines", 0, 0},
        {0, "hf-prefill-quirk", HQ_OPT_FLAG, &a.quirk, NULL,
         "score each chunk as transformers' model(input_ids) does (router CDMoE view quirk, spec 6.8; keep-window "
         "top-k over the whole call) instead of its one-token-per-call decode (docs/doge-keep-window.md)",
         0, 0},
        {0, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const hq_cmd_def def = {"perplexity",
                            "model.gguf --text FILE [--ctx N] [--chunks K] [--threads T] [--save-logits F] [--json] [--hf-prefill-quirk]",
                            opts, 1, "expected exactly one model path", false, 0};
    const char *pos[2];
    int rc = hq_cmd_start(&def, argc, argv, pos);
    if (rc >= 0) return rc;
    if (!a.text) return hq_cmd_error("perplexity", HQ_ERR_ARG, "--text FILE is required");
    a.model = pos[0];
    hq_cmd_tame_openmp(argc, argv);
    return run(&a);
}
