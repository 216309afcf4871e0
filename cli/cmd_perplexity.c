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
#include "../core/par.h"
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

/* the message a rank sends rank 0 for each chunk it owns: status, then (when
 * it succeeded) the NLL of each scored token and, with --save-logits, the
 * scored rows' log-probs */
typedef struct {
    int32_t st;
    char msg[HQ_ERR_LEN];
} chunk_hdr;
#define HDR_BYTES ((sizeof(chunk_hdr) + 15) & ~(size_t)15) /* the NLLs after it stay 8-byte aligned */

/* after the ranks agreed on a failure only rank 0 reports it (one line) */
static int report(const char *cmd, hq_status st, const char *err) {
    if (hq_par_active() && hq_par_rank() != 0) return st == HQ_ERR_ARG ? 2 : 1;
    return hq_cmd_error(cmd, st, err);
}

static int run(const ppl_args *a) {
    const char *cmd = "perplexity";
    char err[HQ_ERR_LEN] = "";
    char *text = NULL;
    uint64_t tlen = 0;
    rt_model *m = NULL;
    rt_state *s = NULL;
    int32_t *toks = NULL;
    float *logits = NULL;
    char *msg = NULL;
    hq_out out = {0};
    bool out_open = false;
    int rc = 1, R = hq_par_rank(), P = hq_par_size();
    rt_ppl_chunks ch = {0};
    int64_t V = 0, ctx = 0, first = 0, n_scored = 0;
    uint64_t msg_bytes = 0;
    /* ---- setup: every rank on its own, then one agreement */
    hq_status st = hq_read_file(a->text, HQ_MAX_TEXT, &text, &tlen, err);
    if (st == HQ_OK && tlen == 0) st = hq_fail(err, HQ_ERR_ARG, "%s: text file is empty", a->text);
    if (st != HQ_OK) goto agree;
    rt_set_threads(a->threads || !hq_par_active() ? (int)a->threads : hq_par_default_threads());
    if ((st = rt_model_load(a->model, &m, err)) != HQ_OK) goto agree;
    if ((st = cu_cmd_backend(cmd, m, a->backend, err)) != HQ_OK) goto agree; /* cuda/backend.h */
    rt_model_set_hf_prefill(m, a->quirk);
    if ((st = rt_ppl_prepare(m, text, tlen, a->text, a->ctx, a->chunks, &ch, err)) != HQ_OK) goto agree;
    toks = ch.tokens; /* freed below */
    V = rt_model_n_vocab(m), ctx = ch.ctx, first = ch.first, n_scored = ch.n_scored;
    msg_bytes = HDR_BYTES + (uint64_t)n_scored * 8u + (a->save ? (uint64_t)n_scored * (uint64_t)V * 4u : 0);
    logits = hq_malloc_array((size_t)(n_scored + 1) * (size_t)V, sizeof(float));
    msg = P > 1 ? hq_malloc(msg_bytes) : NULL;
    if (!logits || (P > 1 && !msg)) {
        char b[32];
        st = hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory for the logits of one chunk (%lld positions x %lld vocabulary "
                     "floats = %s, from --ctx %lld)", a->model, (long long)(n_scored + 1), (long long)V,
                     hq_fmt_bytes((uint64_t)(n_scored + 1) * (uint64_t)V * 4u, b), (long long)ctx);
        goto agree;
    }
    if ((st = rt_state_new(m, ctx, &s, err)) != HQ_OK) goto agree;
agree: /* every rank reaches here once: one agreement on the setup */
    if ((st = hq_par_agree(st, err)) != HQ_OK) {
        rc = report(cmd, st, err);
        goto done;
    }
    /* the same text, chunking and options on every rank (the model's path may differ per host) */
    if (P > 1) {
        uint64_t same[6] = {rt_fnv1a64(text, tlen), (uint64_t)ctx, (uint64_t)ch.n_chunks, (uint64_t)V,
                            (uint64_t)a->quirk | (uint64_t)(a->save != NULL) << 1, (uint64_t)rt_model_n_layers(m)};
        if ((st = hq_par_check_same(same, sizeof same, "the text, model shape or options", err)) != HQ_OK) {
            rc = report(cmd, st, err);
            goto done;
        }
    }
    bool use_bos = ch.use_bos;
    int32_t bos = ch.bos;
    uint64_t n_all = ch.n_text_tokens;
    int64_t n_chunks = ch.n_chunks;
    rt_logits_header lh = {.n_vocab = (uint32_t)V, .n_ctx = (uint32_t)ctx, .n_chunks = (uint32_t)n_chunks,
                           .first = (uint32_t)first, .n_scored = (uint32_t)n_scored, .bos_id = use_bos ? bos : -1,
                           .flags = use_bos ? 1u : 0u, .text_hash = rt_fnv1a64(text, tlen),
                           .n_text_tokens = n_all};
    if (a->save && R == 0) { /* rank 0 writes the file, other ranks' rows come to it in chunk order */
        /* the tokenizer fingerprint ties the file to the vocabulary */
        fmt_gguf *gg = NULL;
        if (fmt_gguf_open(a->model, &gg, NULL) == HQ_OK) {
            fmt_gguf_str js;
            if (fmt_gguf_get_str(gg, "tokenizer.huggingface.json", &js)) lh.tokenizer_hash = rt_fnv1a64(js.s, js.len);
            fmt_gguf_close(gg);
        }
        if ((st = hq_out_open(&out, a->save, err)) == HQ_OK && (st = rt_logits_write_header(&out, &lh, toks, err)) == HQ_OK)
            out_open = true;
    }
    /* ---- chunks: chunk c belongs to rank c mod P, so rank 0 takes the
     * pieces in order while the others compute the next ones; rank 0 adds
     * every token's NLL in text order, as one process does */
    double nll = 0, nll2 = 0;
    int64_t count = 0;
    double t0 = hq_now(), last_print = -1e9;
    bool tty = isatty(2), failed = st != HQ_OK;
    hq_status fst = st; /* first failure (rank 0: of any rank) */
    if (!a->quiet && !a->json && R == 0)
        fprintf(stderr, "perplexity: %lld tokens, %lld chunks of %lld (scoring %lld per chunk), BOS %s%s\n",
                (long long)n_all, (long long)n_chunks, (long long)ctx, (long long)n_scored,
                use_bos ? "substituted at chunk starts" : "not used",
                P > 1 ? (snprintf(err, sizeof err, "; %d ranks", P), err) : "");
    chunk_hdr *hd = (chunk_hdr *)(void *)msg;
    double *vals = msg ? (double *)(void *)(msg + HDR_BYTES) : NULL;
    float *rows = logits; /* rank 0 writes rows from here: its own, or a received piece */
    for (int64_t c = 0; c < n_chunks; c++) {
        int owner = (int)(c % P);
        if (owner != R && R != 0) continue;
        hq_status cst = HQ_OK;
        if (owner == R) {
            rows = logits;
            if (!failed) {
                rt_state_reset(s);
                cst = rt_forward_from(m, s, toks + c * ctx, ctx, first, logits, err);
            } else {
                cst = fst;
            }
            if (R != 0) { /* to rank 0: status, NLLs, rows */
                hd->st = (int32_t)cst;
                snprintf(hd->msg, sizeof hd->msg, "%s", cst != HQ_OK ? err : "");
                uint64_t nb = HDR_BYTES;
                if (cst == HQ_OK) {
                    for (int64_t j = 0; j < n_scored; j++) vals[j] = rt_nll_of(logits + j * V, V, toks[c * ctx + first + j + 1]);
                    nb = msg_bytes;
                    if (a->save) memcpy(vals + n_scored, logits, (size_t)n_scored * (size_t)V * 4u);
                }
                hq_status sst = hq_par_send(&nb, sizeof nb, 0, 1, err);
                if (sst == HQ_OK) sst = hq_par_send(msg, nb, 0, 2, err);
                if (cst != HQ_OK || sst != HQ_OK) failed = true, fst = cst != HQ_OK ? cst : sst;
                continue;
            }
        } else { /* rank 0 receives chunk c from its owner */
            uint64_t nb = 0;
            cst = hq_par_recv(&nb, sizeof nb, owner, 1, err);
            if (cst == HQ_OK && (nb < HDR_BYTES || nb > msg_bytes))
                cst = hq_fail(err, HQ_ERR_INTERNAL, "rank %d sent %llu bytes for chunk %lld", owner,
                              (unsigned long long)nb, (long long)c);
            if (cst == HQ_OK) cst = hq_par_recv(msg, nb, owner, 2, err);
            if (cst == HQ_OK && hd->st != HQ_OK)
                cst = hq_fail(err, (hq_status)hd->st, "rank %d: %s", owner, hd->msg);
            rows = (float *)(void *)(vals + n_scored);
        }
        if (cst != HQ_OK && !failed) failed = true, fst = cst;
        if (failed) continue; /* rank 0 still drains the others' messages */
        for (int64_t j = 0; j < n_scored; j++) {
            double v = owner == 0 ? rt_nll_of(logits + j * V, V, toks[c * ctx + first + j + 1]) : vals[j];
            nll += v;
            nll2 += v * v;
            if (out_open && (st = rt_logits_write_row(&out, rows + j * V, (uint32_t)V, err)) != HQ_OK) {
                failed = true, fst = st;
                break;
            }
        }
        count += n_scored;
        double now = hq_now();
        bool due = tty || now - last_print >= 2.0 || c + 1 == n_chunks; /* logs: at most every 2 s */
        if (!a->quiet && !a->json && due && !failed) {
            last_print = now;
            double el = now - t0;
            fprintf(stderr, "%s[%lld/%lld] PPL %.4f  (%.0f tok/s)%s", tty ? "\r" : "", (long long)(c + 1),
                    (long long)n_chunks, exp(nll / (double)count), (double)((c + 1) * ctx) / (el > 0 ? el : 1e-9),
                    tty ? "" : "\n");
        }
    }
    if (!a->quiet && !a->json && tty && R == 0) fputc('\n', stderr);
    double secs = hq_now() - t0;
    double mean = count ? nll / (double)count : 0, ppl = exp(mean), var = count ? nll2 / (double)count - mean * mean : 0;
    double se = count > 1 && var > 0 ? sqrt(var / (double)(count - 1)) * ppl : 0.0;
    if (out_open && !failed) {
        lh.nll_sum = nll;
        if ((st = rt_logits_finish(&out, &lh, err)) != HQ_OK) failed = true, fst = st;
        else out_open = false;
    }
    if ((st = hq_par_agree(failed ? fst : HQ_OK, err)) != HQ_OK) {
        rc = report(cmd, st, err);
        goto done;
    }
    if (R != 0) {
        rc = 0;
        goto done;
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
            cJSON_AddNumberToObject(j, "tokens_per_second", (double)(n_chunks * ctx) / (secs > 0 ? secs : 1e-9)) &&
            (P == 1 || cJSON_AddNumberToObject(j, "ranks", (double)P)))
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
    hq_free(msg);
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
    return run(&a);
}
