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
#include "../runtime/runtime.h"
#include "../runtime/tokenizer.h"
#include "../quant/calibrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hq_cmd_calibrate(int argc, char **argv) {
    const char *text = NULL, *out = NULL;
    int64_t ctx = 512, chunks = 0, threads = 0;
    bool full = false, quiet = false;
    const hq_opt opts[] = {
        {0, "text", HQ_OPT_IN, &text, "FILE", "calibration text (UTF-8)", 0, 0},
        {'o', "output", HQ_OPT_OUT, &out, "FILE", "imatrix file to write", 0, 0},
        {0, "ctx", HQ_OPT_INT, &ctx, "N", "tokens per chunk (default 512)", 2, 1 << 20},
        {0, "chunks", HQ_OPT_INT, &chunks, "K", "use at most K chunks (default: all)", 0, 1 << 30},
        {0, "full-hessian", HQ_OPT_FLAG, &full, NULL, "also store Σxxᵀ per matrix (for --method gptq)", 0, 0},
        {0, "threads", HQ_OPT_INT, &threads, "T", "threads (default: all cores)", 0, 4096},
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
    if (quiet) hq_quiet = 1;
    rt_set_threads((int)threads);
    c = q_cal_new(full);
    if (!c) return hq_cmd_error("calibrate", HQ_ERR_NOMEM, "out of memory");
    im = q_cal_imatrix(c);
    uint64_t len = 0, n_ids = 0;
    if ((st = hq_read_file(text, HQ_MAX_TEXT, &buf, &len, err))) goto fail;
    if ((st = rt_model_load(pos[0], &m, err))) goto fail;
    struct rt_tokenizer *tok = rt_model_tokenizer(m);
    if (!tok) {
        st = hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: no tokenizer embedded (tokenizer.huggingface.json)", pos[0]);
        goto fail;
    }
    if ((st = rt_tokenize(tok, buf, len, false, &ids, &n_ids, err))) goto fail;
    int64_t mctx = rt_model_ctx_len(m);
    if (mctx > 1 && ctx > mctx) ctx = mctx;
    int32_t bos = rt_model_bos(m);
    /* each chunk: [BOS] + ctx-1 text tokens (or ctx text tokens without BOS) */
    int64_t body = bos >= 0 ? ctx - 1 : ctx;
    int64_t n_chunks = (int64_t)n_ids / body;
    if (n_chunks == 0 && n_ids >= 2) n_chunks = 1;
    if (chunks > 0 && n_chunks > chunks) n_chunks = chunks;
    if (n_chunks == 0) {
        st = hq_fail(err, HQ_ERR_ARG, "%s: only %llu tokens; need at least 2", text, (unsigned long long)n_ids);
        goto fail;
    }
    if ((st = q_cal_prepare(c, pos[0], err))) goto fail;
    if ((st = rt_state_new(m, ctx, &s, err))) goto fail;
    rt_hooks h = {.ud = c, .on_matmul_input = q_cal_on_matmul, .on_experts = q_cal_on_experts};
    rt_model_set_hooks(m, &h);
    int32_t *chunk = hq_malloc_array((size_t)ctx, sizeof(int32_t));
    if (!chunk) {
        st = hq_fail(err, HQ_ERR_NOMEM, "out of memory");
        goto fail;
    }
    uint64_t tokens = 0;
    for (int64_t k = 0; k < n_chunks; k++) {
        int64_t off = k * body, nb = (int64_t)n_ids - off < body ? (int64_t)n_ids - off : body, n = 0;
        if (bos >= 0) chunk[n++] = bos;
        memcpy(chunk + n, ids + off, sizeof(int32_t) * (size_t)nb);
        n += nb;
        rt_state_reset(s);
        st = rt_forward(m, s, chunk, n, NULL, err);
        if (!st) st = q_cal_check(c, err);
        if (st) {
            hq_free(chunk);
            goto fail;
        }
        tokens += (uint64_t)n;
        hq_progress("calibrate", (uint64_t)k + 1, (uint64_t)n_chunks, "chunks");
    }
    hq_progress_done();
    hq_free(chunk);
    rt_model_set_hooks(m, NULL);
    im->chunk_count = (uint32_t)n_chunks;
    im->chunk_size = (uint32_t)ctx;
    im->datasets = hq_calloc(1, sizeof(char *));
    if (im->datasets && (im->datasets[0] = hq_strdup(text))) im->n_datasets = 1;
    q_cal_report(c, stdout, tokens, (uint64_t)n_chunks);
    if ((st = q_imatrix_save(im, out, err))) goto fail;
    printf("wrote %s (%lld entries%s)\n", out, (long long)im->n, full ? ", with full Σxxᵀ" : "");
    goto done;
fail:
    hq_progress_done();
    rc = hq_cmd_error("calibrate", st, err);
done:
    rt_state_free(s);
    rt_model_free(m);
    hq_free(ids);
    hq_free(buf);
    q_cal_free(c);
    return rc;
}
