/* cli/cmd_calibrate.c — `hyquant calibrate model.gguf --text FILE -o model.imatrix`
 *
 * Runs the model over calibration text in chunks of --ctx tokens (each chunk
 * a fresh sequence, starting with BOS when the model has one, as
 * llama-imatrix does) with the collector of quant/calibrate.h on rt_hooks:
 * Σx² per input column and the token count per matrix product, one slice
 * per expert for CDMoE tables, and with --full-hessian Σxxᵀ for GPTQ.
 * Prints a coverage report (tokens, experts never / rarely routed, matrices
 * whose inputs have outlier columns). Output is atomic. */
#include "commands.h" // defines: hq_cmd_calibrate
#include "../core/opts.h"
#include "../core/par.h"
#include "../runtime/runtime.h"
#include "../runtime/tokenizer.h"
#include "../quant/calibrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hq_cmd_calibrate(int argc, char **argv) {
    const char *text = NULL, *out = NULL;
    int64_t ctx = 512, chunks = 0, threads = 0;
    bool full = false, quiet = false, hf = false;
    const hq_opt opts[] = {
        {0, "text", HQ_OPT_IN, &text, "FILE", "calibration text (UTF-8)", 0, 0},
        {'o', "output", HQ_OPT_OUT, &out, "FILE", "imatrix file to write", 0, 0},
        {0, "ctx", HQ_OPT_INT, &ctx, "N", "tokens per chunk (default 512)", 2, 1 << 20},
        {0, "chunks", HQ_OPT_INT, &chunks, "K", "use at most K chunks (default: all)", 0, 1 << 30},
        {0, "full-hessian", HQ_OPT_FLAG, &full, NULL, "also store Σxxᵀ per matrix (for --method gptq)", 0, 0},
        {0, "threads", HQ_OPT_INT, &threads, "T", "threads (default: all cores)", 0, 4096},
        {0, "hf-prefill-quirk", HQ_OPT_FLAG, &hf, NULL,
         "collect statistics as transformers' model(input_ids) computes a chunk (router reshaping, keep-window top-k "
         "over the call), not as its cached decode (docs/doge-keep-window.md)", 0, 0},
        {'q', "quiet", HQ_OPT_FLAG, &quiet, NULL, "no progress line", 0, 0},
        {0},
    };
    const char *synopsis = "MODEL.gguf --text FILE -o OUT.imatrix [options]";
    char err[HQ_ERR_LEN] = "";
    const char *pos[1];
    int n_pos = 0, rc = 0;
    bool help = false;
    rt_model *m = NULL;
    rt_state *s = NULL;
    char *buf = NULL;
    int32_t *ids = NULL;
    q_cal *c = NULL;
    q_imatrix *im = NULL;
    hq_status st = hq_opts_parse(opts, argc, argv, pos, 1, &n_pos, &help, err);
    if (st) return hq_cmd_error("calibrate", st, err);
    if (help) {
        hq_opts_usage(stdout, "calibrate", synopsis, opts);
        return 0;
    }
    if (n_pos != 1 || !text || !out) {
        hq_opts_usage(stderr, "calibrate", synopsis, opts);
        return hq_cmd_error("calibrate", HQ_ERR_ARG, "need MODEL.gguf, --text FILE and -o FILE");
    }
    if ((st = hq_opts_check_paths(opts, pos, n_pos, 0, err))) return hq_cmd_error("calibrate", st, err);
    if (quiet || hq_par_rank() != 0) hq_quiet = 1; /* progress from rank 0 only */
    rt_set_threads(threads || !hq_par_active() ? (int)threads : hq_par_default_threads());
    uint64_t len = 0, n_ids = 0, tokens = 0;
    int32_t *chunk = NULL, bos = -1;
    int P = hq_par_size(), R = hq_par_rank();
    int64_t n_chunks = 0, body = 0;
    /* ---- setup, on every rank; then one agreement (core/par.h) */
    c = q_cal_new(full);
    if (!c) {
        st = hq_fail(err, HQ_ERR_NOMEM, "out of memory");
        goto setup_done;
    }
    im = q_cal_imatrix(c);
    if ((st = hq_read_file(text, HQ_MAX_TEXT, &buf, &len, err))) goto setup_done;
    if ((st = rt_model_load(pos[0], &m, err))) goto setup_done;
    rt_model_set_hf_prefill(m, hf);
    struct rt_tokenizer *tok = rt_model_tokenizer(m);
    if (!tok) {
        st = hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: no tokenizer embedded (tokenizer.huggingface.json)", pos[0]);
        goto setup_done;
    }
    if ((st = rt_tokenize(tok, buf, len, false, &ids, &n_ids, err))) goto setup_done;
    int64_t mctx = rt_model_ctx_len(m);
    if (mctx > 1 && ctx > mctx) ctx = mctx;
    bos = rt_model_bos(m);
    /* each chunk: [BOS] + ctx-1 text tokens (or ctx text tokens without BOS) */
    body = bos >= 0 ? ctx - 1 : ctx;
    n_chunks = (int64_t)n_ids / body;
    if (n_chunks == 0 && n_ids >= 2) n_chunks = 1;
    if (chunks > 0 && n_chunks > chunks) n_chunks = chunks;
    if (n_chunks == 0) {
        st = hq_fail(err, HQ_ERR_ARG, "%s: only %llu tokens; need at least 2", text, (unsigned long long)n_ids);
        goto setup_done;
    }
    if (n_chunks < P) { /* every rank needs a share (the statistics' entries appear as the chunks run) */
        st = hq_fail(err, HQ_ERR_ARG, "%s: %lld chunks of %lld tokens for %d MPI ranks; use at most %lld ranks or a "
                     "longer text", text, (long long)n_chunks, (long long)ctx, P, (long long)n_chunks);
        goto setup_done;
    }
    if ((st = q_cal_prepare(c, pos[0], err))) goto setup_done;
    if ((st = rt_state_new(m, ctx, &s, err))) goto setup_done;
    rt_hooks h = {.ud = c, .on_matmul_input = q_cal_on_matmul, .on_experts = q_cal_on_experts};
    rt_model_set_hooks(m, &h);
    chunk = hq_malloc_array((size_t)ctx, sizeof(int32_t));
    if (!chunk) st = hq_fail(err, HQ_ERR_NOMEM, "out of memory");
setup_done:
    if ((st = hq_par_agree(st, err)) != HQ_OK) goto fail;
    /* chunk k runs on rank k mod P (one process: all of them, in order) */
    for (int64_t k = R; k < n_chunks; k += P) {
        int64_t off = k * body, nb = (int64_t)n_ids - off < body ? (int64_t)n_ids - off : body, n = 0;
        if (bos >= 0) chunk[n++] = bos;
        memcpy(chunk + n, ids + off, sizeof(int32_t) * (size_t)nb);
        n += nb;
        rt_state_reset(s);
        st = rt_forward(m, s, chunk, n, NULL, err);
        if (!st) st = q_cal_check(c, err);
        if (st) break;
        tokens += (uint64_t)n;
        hq_progress("calibrate", (uint64_t)k + 1, (uint64_t)n_chunks, "chunks");
    }
    hq_progress_done();
    rt_model_set_hooks(m, NULL);
    if ((st = hq_par_agree(st, err)) != HQ_OK) goto fail;
    if ((st = q_cal_reduce(c, err)) != HQ_OK) goto fail;
    if (P > 1) {
        double t = (double)tokens;
        if ((st = hq_par_sum_f64(&t, 1, err)) != HQ_OK) goto fail;
        tokens = (uint64_t)t;
    }
    q_cal_finish(c);
    if (R == 0) { /* rank 0 reports and writes */
        im->chunk_count = (uint32_t)n_chunks;
        im->chunk_size = (uint32_t)ctx;
        im->datasets = hq_calloc(1, sizeof(char *));
        if (im->datasets && (im->datasets[0] = hq_strdup(text))) im->n_datasets = 1;
        q_cal_report(c, stdout, tokens, (uint64_t)n_chunks);
        if ((st = q_imatrix_save(im, out, err)) == HQ_OK)
            printf("wrote %s (%lld entries%s%s)\n", out, (long long)im->n, full ? ", with full Σxxᵀ" : "",
                   P > 1 ? (snprintf(err, sizeof err, ", %d ranks", P), err) : "");
    }
    if ((st = hq_par_agree(st, err)) != HQ_OK) goto fail;
    goto done;
fail: /* after an agreement every rank has the same failure: rank 0 says it */
    hq_progress_done();
    rc = hq_par_rank() == 0 ? hq_cmd_error("calibrate", st, err) : st == HQ_ERR_ARG ? 2 : 1;
done:
    hq_free(chunk);
    rt_state_free(s);
    rt_model_free(m);
    hq_free(ids);
    hq_free(buf);
    q_cal_free(c);
    return rc;
}
