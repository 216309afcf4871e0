/* convert/cmd_convert.c — `hyquant convert <checkpoint dir|file> -o out.gguf` */
#include "convert.h" // defines: hq_cmd_convert
#include "../cli/commands.h"
#include "../core/opts.h"

#include <string.h>

int hq_cmd_convert(int argc, char **argv) {
    const char *out = NULL, *outtype = NULL, *name = NULL;
    bool quiet = false;
    const hq_opt opts[] = {
        {'o', "output", HQ_OPT_STR, &out, "FILE", "output GGUF file (required; written atomically)", 0, 0},
        {0, "outtype", HQ_OPT_STR, &outtype, "TYPE",
         "f32 | f16 | bf16 for 2-D weights (default: the checkpoint's own float type; mixed -> f32)", 0, 0},
        {0, "name", HQ_OPT_STR, &name, "NAME", "general.name (default: base name of the checkpoint)", 0, 0},
        {'q', "quiet", HQ_OPT_FLAG, &quiet, NULL, "no progress line", 0, 0},
        {0, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const hq_cmd_def def = {"convert", "<checkpoint dir | .safetensors | .bin> -o out.gguf [options]", opts, 1,
                            "expected exactly one checkpoint path", true};
    const char *pos[2];
    int rc = hq_cmd_start(&def, argc, argv, pos);
    if (rc >= 0) return rc;
    if (!out) return hq_cmd_error("convert", HQ_ERR_ARG, "missing -o/--output FILE");
    cv_options o = {.outtype = CV_OUT_AUTO, .quiet = quiet, .name = name};
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
    if (!quiet) fprintf(stderr, "hyquant convert: wrote %s in %.2f s\n", out, hq_now() - t0);
    return 0;
}
