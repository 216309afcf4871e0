/* cli/cmd_convert.c — `hyquant convert <checkpoint dir|file> -o out.gguf` */
#include "commands.h" // defines: hq_cmd_convert
#include "../convert/convert.h"
#include "../core/opts.h"

#include <string.h>

int hq_cmd_convert(int argc, char **argv) {
    const char *out = NULL, *outtype = NULL, *name = NULL;
    bool quiet = false;
    const hq_opt opts[] = {
        {'o', "output", HQ_OPT_OUT, &out, "FILE", "output GGUF file (required; written atomically)", 0, 0},
        {0, "outtype", HQ_OPT_STR, &outtype, "TYPE",
         "f32 | f16 | bf16 for 2-D weights (default: the checkpoint's own float type; mixed -> f32)", 0, 0},
        {0, "name", HQ_OPT_STR, &name, "NAME", "general.name (default: base name of the checkpoint)", 0, 0},
        {'q', "quiet", HQ_OPT_FLAG, &quiet, NULL, "no progress line", 0, 0},
        {0, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const hq_cmd_def def = {"convert", "<checkpoint dir | .safetensors | .bin> -o out.gguf [options]", opts, 1,
                            "expected exactly one checkpoint path", true, 0};
    const char *pos[2];
    int rc = hq_cmd_start(&def, argc, argv, pos);
    if (rc >= 0) return rc;
    if (!out) return hq_cmd_error("convert", HQ_ERR_ARG, "missing -o/--output FILE");
    char embedded[CV_EMBEDDED_LEN] = "", err0[HQ_ERR_LEN];
    cv_options o = {.outtype = CV_OUT_AUTO, .quiet = quiet, .name = name, .embedded = embedded};
    if (hq_file_has_magic(pos[0], "GGUF", 4))
        return hq_cmd_error("convert", HQ_ERR_ARG,
                            (snprintf(err0, sizeof err0, "%s: already a GGUF file; convert reads PyTorch/safetensors checkpoints "
                            "(use `hyquant quantize` to change its types)", pos[0]), err0));
    if (outtype) {
        if (!strcmp(outtype, "f32")) o.outtype = CV_OUT_F32;
        else if (!strcmp(outtype, "f16")) o.outtype = CV_OUT_F16;
        else if (!strcmp(outtype, "bf16")) o.outtype = CV_OUT_BF16;
        else return hq_cmd_error("convert", HQ_ERR_ARG, "--outtype must be f32, f16 or bf16");
    }
    if (quiet) hq_quiet = 1;
    double t0 = hq_now();
    char err[HQ_ERR_LEN] = "";
    hq_status st = cv_convert(pos[0], out, &o, err);
    if (st != HQ_OK) return hq_cmd_error("convert", st, err);
    if (!quiet) {
        fprintf(stderr, "hyquant convert: embedded %s\n", embedded[0] ? embedded : "no auxiliary file");
        fprintf(stderr, "hyquant convert: wrote %s in %.2f s\n", out, hq_now() - t0);
    }
    if (!strstr(embedded, "tokenizer.json"))
        fprintf(stderr, "hyquant convert: warning: %s has no tokenizer.json; perplexity, generate, calibrate and "
                        "verify need one in the GGUF\n", pos[0]);
    return 0;
}
