/* cli/cmd_verify.c — `hyquant verify base.gguf quant.gguf --text FILE ...`:
 * options, the run (drift.c), the terminal table and report files
 * (report.c, svg.c), thresholds. Exit status 0, 1 failure, 2 usage,
 * 3 when --max-kld / --max-ppl-ratio / --min-top1 is exceeded (the reports
 * are still written). */
#include "commands.h" // defines: hq_cmd_verify
#include "../verify/verify.h"
#include "../core/opts.h"
#include "../runtime/runtime.h"

#include <string.h>

int hq_cmd_verify(int argc, char **argv) {
    const char *cmd = "verify";
    vf_opts o = {0};
    vf_report_ctx rc = {.max_kld = -1, .max_ppl_ratio = -1, .min_top1 = -1, .backend = "cpu"};
    const char *json = NULL, *report = NULL, *plot = NULL;
    int64_t threads = 0;
    bool quiet = false;
    const hq_opt opts[] = {
        {0, "text", HQ_OPT_IN, &o.text, "FILE", "UTF-8 text both models are scored on (required unless --base-logits)",
         0, 0},
        {'c', "ctx", HQ_OPT_INT, &o.ctx, "N", "tokens per chunk (default 512, or the --base-logits file's)", 4, 1 << 20},
        {0, "chunks", HQ_OPT_INT, &o.chunks, "K", "use at most K chunks (default: all)", 0, 1e12},
        {0, "backend", HQ_OPT_STR, &rc.backend, "B", "cpu (default), cuda (falls back to the CPU with a note when no device), cuda-emu", 0, 0},
        {0, "base-logits", HQ_OPT_IN, &o.base_logits, "F",
         "base log-probs saved by `perplexity --save-logits` (the base model then runs on the first chunk only)", 0, 0},
        {0, "json", HQ_OPT_OUT, &json, "R.json", "write every figure and the settings as JSON", 0, 0},
        {0, "report", HQ_OPT_OUT, &report, "R.md", "write a Markdown report", 0, 0},
        {0, "plot", HQ_OPT_OUT, &plot, "R.svg", "write an SVG plot of the per-layer drift", 0, 0},
        {0, "max-kld", HQ_OPT_FLOAT, &rc.max_kld, "X", "exit 3 when the mean KLD exceeds X", 0, 1e300},
        {0, "max-ppl-ratio", HQ_OPT_FLOAT, &rc.max_ppl_ratio, "X", "exit 3 when PPL_quant/PPL_base exceeds X", 0, 1e300},
        {0, "min-top1", HQ_OPT_FLOAT, &rc.min_top1, "X",
         "exit 3 when the top-1 agreement (a fraction, 0..1) is below X", 0, 1},
        {'t', "threads", HQ_OPT_INT, &threads, "T", "threads (default: all cores)", 0, 1024},
        {0, "hf-prefill-quirk", HQ_OPT_FLAG, &o.hf_prefill, NULL,
         "run both models as transformers' model(input_ids) does for a whole chunk (router reshaping, keep-window "
         "top-k over the call), not as its cached decode (docs/doge-keep-window.md)", 0, 0},
        {'q', "quiet", HQ_OPT_FLAG, &quiet, NULL, "no progress lines", 0, 0},
        {0, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const hq_cmd_def def = {
        cmd,
        "base.gguf quant.gguf --text FILE [--ctx N] [--chunks K] [--backend cpu|cuda] [--base-logits F] "
        "[--json R.json] [--report R.md] [--plot R.svg] [--max-kld X] [--max-ppl-ratio X] [--min-top1 X] [--threads T] [--hf-prefill-quirk]",
        opts, 2, "expected two model paths: base.gguf quant.gguf", false, 0};
    const char *pos[3];
    int status = hq_cmd_start(&def, argc, argv, pos);
    if (status >= 0) return status;
    if (!o.text && !o.base_logits) return hq_cmd_error(cmd, HQ_ERR_ARG, "--text FILE is required");
    if (strcmp(rc.backend, "cpu") != 0 && strcmp(rc.backend, "cuda") != 0 && strcmp(rc.backend, "cuda-emu") != 0)
        return hq_cmd_error(cmd, HQ_ERR_ARG, "--backend must be cpu, cuda or cuda-emu");
    o.backend = rc.backend;
    o.base = pos[0];
    o.quant = pos[1];
    o.threads = (int)threads;
    o.progress = !quiet;
    rc.base = o.base;
    rc.quant = o.quant;
    rc.text = o.text;
    rc.base_logits = o.base_logits;
    vf_result r;
    char err[HQ_ERR_LEN] = "";
    hq_status st;
    if ((st = vf_run(&o, &r, err)) != HQ_OK) return hq_cmd_error(cmd, st, err);
    if (r.backend_note[0]) fprintf(stderr, "hyquant verify: note: %s\n", r.backend_note);
    vf_print_table(stdout, &r, &rc);
    int rcode = 0;
    if (json && (st = vf_write_json(json, &r, &rc, err)) != HQ_OK) rcode = hq_cmd_error(cmd, st, err);
    if (!rcode && report && (st = vf_write_markdown(report, &r, &rc, err)) != HQ_OK) rcode = hq_cmd_error(cmd, st, err);
    if (!rcode && plot && (st = vf_write_svg(plot, &r, &rc, err)) != HQ_OK) rcode = hq_cmd_error(cmd, st, err);
    if (!rcode) {
        char msgs[3][160];
        int n = vf_thresholds(&r, &rc, msgs);
        for (int i = 0; i < n; i++) fprintf(stderr, "hyquant verify: threshold exceeded: %s\n", msgs[i]);
        if (n) rcode = 3;
    }
    vf_result_free(&r);
    return rcode;
}
