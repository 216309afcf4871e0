/* cli/cmd_quantize.c — `hyquant quantize in.gguf out.gguf --type TYPE ...` */
#include "commands.h" // defines: hq_cmd_quantize
#include "../core/opts.h"
#include "../quant/quantize.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    bool json, dry;
    cJSON *arr;
} q_cmd_ctx;

static void fmt_shape(const q_tensor_plan *t, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (uint32_t d = 0; d < t->n_dims && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%llu", d ? ", " : "", (unsigned long long)t->ne[d]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

static void on_tensor(void *ud, const q_tensor_plan *t, uint64_t i, uint64_t n, bool done) {
    q_cmd_ctx *c = ud;
    /* dry run: report at planning time; real run: once written (method known) */
    if (done == c->dry) return;
    char shape[96], a[32], b[32];
    fmt_shape(t, shape, sizeof shape);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "role", q_role_name(t->role));
        cJSON_AddStringToObject(o, "group", q_group_name(t->group));
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        for (uint32_t d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->ne[d]));
        cJSON_AddStringToObject(o, "in_type", ggml_type_name(t->in_type));
        cJSON_AddStringToObject(o, "out_type", ggml_type_name(t->out_type));
        cJSON_AddNumberToObject(o, "in_bytes", (double)t->in_bytes);
        cJSON_AddNumberToObject(o, "out_bytes", (double)t->out_bytes);
        cJSON_AddStringToObject(o, "method", t->converted ? q_method_name(t->method) : "copy");
        cJSON_AddBoolToObject(o, "fallback", t->fallback);
        cJSON_AddBoolToObject(o, "overridden", t->overridden);
        if (t->uniform_rows) cJSON_AddNumberToObject(o, "uniform_rows", (double)t->uniform_rows);
        cJSON_AddItemToArray(c->arr, o);
        return;
    }
    char note[96] = "";
    if (t->fallback)
        snprintf(note, sizeof note, " (fallback from %s: ne0 %llu)", ggml_type_name(t->wanted_type),
                 (unsigned long long)t->ne[0]);
    else if (t->overridden)
        snprintf(note, sizeof note, " (--tensor-type)");
    if (t->uniform_rows)
        snprintf(note + strlen(note), sizeof note - strlen(note), " [%lld experts without tokens: uniform importance]",
                 (long long)t->uniform_rows);
    printf("[%4llu/%4llu] %-36s %-14s %-6s -> %-6s %-8s %10s -> %10s%s\n", (unsigned long long)i + 1,
           (unsigned long long)n, t->name, shape, ggml_type_name(t->in_type), ggml_type_name(t->out_type),
           t->converted ? q_method_name(t->method) : "copy", hq_fmt_bytes(t->in_bytes, a),
           hq_fmt_bytes(t->out_bytes, b), note);
}

static double bpw(uint64_t bytes, uint64_t params) { return params ? 8.0 * (double)bytes / (double)params : 0; }

int hq_cmd_quantize(int argc, char **argv) {
    const char *type = NULL, *imatrix_path = NULL, *method = NULL;
    hq_str_list overrides = {0};
    bool dry = false, allow_requant = false, json = false, quiet = false;
    int64_t threads = 0;
    double damp = 0.01;
    const hq_opt opts[] = {
        {'t', "type", HQ_OPT_STR, &type, "TYPE",
         "preset (Q8_0 Q4_0 Q4_1 Q4_K_M Q4_K_S Q5_K_M Q6_K IQ4_NL Q2_K Q3_K_S Q3_K_M Q3_K_L) or plain type (Q3_K, Q4_K, "
         "Q5_K, F16, ...)", 0, 0},
        {0, "imatrix", HQ_OPT_IN, &imatrix_path, "FILE", "importance matrix from `hyquant calibrate`", 0, 0},
        {0, "method", HQ_OPT_STR, &method, "M", "rtn | imatrix | gptq (default: imatrix with --imatrix, else rtn)",
         0, 0},
        {0, "tensor-type", HQ_OPT_STR_LIST, &overrides, "RE=TYPE",
         "type for tensors whose name matches the POSIX regex (repeatable, last match wins)", 0, 0},
        {0, "dry-run", HQ_OPT_FLAG, &dry, NULL, "print per-tensor types and the exact output size, write nothing",
         0, 0},
        {0, "allow-requantize", HQ_OPT_FLAG, &allow_requant, NULL, "allow quantizing already-quantized tensors", 0,
         0},
        {0, "damp", HQ_OPT_FLOAT, &damp, "F", "GPTQ damping, fraction of mean diag(H) (default 0.01)", 1e-6, 10},
        {0, "threads", HQ_OPT_INT, &threads, "T", "threads (default: all cores)", 0, 4096},
        {0, "json", HQ_OPT_FLAG, &json, NULL, "print the report as JSON on stdout", 0, 0},
        {'q', "quiet", HQ_OPT_FLAG, &quiet, NULL, "no progress line", 0, 0},
        {0},
    };
    const char *synopsis = "IN.gguf OUT.gguf --type TYPE [options]";
    char err[HQ_ERR_LEN] = "";
    const char *pos[2];
    int n_pos = 0;
    bool help = false;
    q_policy *pol = NULL;
    q_imatrix *im = NULL;
    cJSON *root = NULL;
    int rc = 0;
    hq_status st = hq_opts_parse(opts, argc, argv, pos, 2, &n_pos, &help, err);
    if (st) {
        rc = hq_cmd_error("quantize", st, err);
        goto out;
    }
    if (help) {
        hq_opts_usage(stdout, "quantize", synopsis, opts);
        goto out;
    }
    if (n_pos != (dry ? n_pos : 2) || n_pos < 1 || !type) {
        hq_opts_usage(stderr, "quantize", synopsis, opts);
        rc = hq_cmd_error("quantize", HQ_ERR_ARG,
                          !type ? "--type is required" : "need IN.gguf and OUT.gguf (OUT may be omitted with --dry-run)");
        goto out;
    }
    q_method m = Q_METHOD_RTN;
    if (method) {
        if (!strcmp(method, "rtn")) m = Q_METHOD_RTN;
        else if (!strcmp(method, "imatrix")) m = Q_METHOD_IMATRIX;
        else if (!strcmp(method, "gptq")) m = Q_METHOD_GPTQ;
        else {
            rc = hq_cmd_error("quantize", HQ_ERR_ARG, "--method must be rtn, imatrix or gptq");
            goto out;
        }
    } else if (imatrix_path) {
        m = Q_METHOD_IMATRIX;
    }
    if (m != Q_METHOD_RTN && !imatrix_path) {
        rc = hq_cmd_error("quantize", HQ_ERR_ARG, "--method imatrix/gptq needs --imatrix FILE");
        goto out;
    }
    if ((st = q_policy_new(type, &pol, err))) {
        rc = hq_cmd_error("quantize", st, err);
        goto out;
    }
    for (int i = 0; i < overrides.n; i++)
        if ((st = q_policy_add_override(pol, overrides.v[i], err))) {
            rc = hq_cmd_error("quantize", st, err);
            goto out;
        }
    if ((st = hq_opts_check_paths(opts, pos, n_pos, 1u << 1, err))) { /* OUT.gguf is an output */
        rc = hq_cmd_error("quantize", st, err);
        goto out;
    }
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads((int)threads);
#endif
    if (quiet || json) hq_quiet = 1;
    if (imatrix_path && (st = q_imatrix_load(imatrix_path, &im, err))) {
        rc = hq_cmd_error("quantize", st, err);
        goto out;
    }
    q_cmd_ctx ctx = {json, dry, NULL};
    if (json) {
        root = cJSON_CreateObject();
        ctx.arr = cJSON_AddArrayToObject(root, "tensors");
    }
    q_quantize_opts qo = {.policy = pol, .method = m, .imatrix = im, .imatrix_label = imatrix_path,
                          .allow_requantize = allow_requant, .dry_run = dry, .gptq_damp = damp,
                          .on_tensor = on_tensor, .ud = &ctx};
    q_quantize_report rep;
    st = q_quantize_file(pos[0], n_pos == 2 ? pos[1] : NULL, &qo, &rep, err);
    if (st) {
        rc = hq_cmd_error("quantize", st, err);
        goto out;
    }
    char a[32], b[32];
    if (rep.imatrix_other_model)
        fprintf(stderr, "hyquant quantize: warning: %s was computed on a model with other weights than %s (same "
                        "tensor names, different fingerprint); its importance may not fit this model\n",
                imatrix_path, pos[0]);
    /* say what was done: GPTQ needs the imatrix's full Hessian (calibrate
     * --full-hessian); tensors without one were rounded with the imatrix */
    char done_m[160];
    snprintf(done_m, sizeof done_m, "%s", q_method_name(m));
    if (m == Q_METHOD_GPTQ && !dry && rep.n_gptq == 0)
        snprintf(done_m, sizeof done_m, "imatrix (--method gptq, but %s has no full Hessian: "
                 "run calibrate --full-hessian)", imatrix_path);
    else if (m == Q_METHOD_GPTQ && !dry && rep.n_gptq < rep.n_converted)
        snprintf(done_m, sizeof done_m, "gptq for %llu of %llu tensors, imatrix for the rest",
                 (unsigned long long)rep.n_gptq, (unsigned long long)rep.n_converted);
    if (json) {
        cJSON_AddStringToObject(root, "input", pos[0]);
        if (n_pos == 2 && !dry) cJSON_AddStringToObject(root, "output", pos[1]);
        cJSON_AddStringToObject(root, "type", q_policy_name(pol));
        cJSON_AddStringToObject(root, "method",
                                m == Q_METHOD_GPTQ && !dry && rep.n_gptq == 0 ? "imatrix" : q_method_name(m));
        cJSON_AddStringToObject(root, "method_requested", q_method_name(m));
        cJSON_AddStringToObject(root, "method_detail", done_m);
        cJSON_AddNumberToObject(root, "ftype", rep.ftype);
        cJSON_AddBoolToObject(root, "dry_run", dry);
        cJSON_AddNumberToObject(root, "in_file_bytes", (double)rep.in_file_bytes);
        cJSON_AddNumberToObject(root, "out_file_bytes", (double)rep.out_file_bytes);
        cJSON_AddNumberToObject(root, "params", (double)rep.params);
        cJSON_AddNumberToObject(root, "in_bpw", bpw(rep.in_data_bytes, rep.params));
        cJSON_AddNumberToObject(root, "bpw", bpw(rep.out_data_bytes, rep.params));
        cJSON_AddNumberToObject(root, "seconds", rep.seconds);
        cJSON_AddNumberToObject(root, "params_per_s", rep.seconds > 0 ? (double)rep.params / rep.seconds : 0);
        cJSON_AddNumberToObject(root, "fallbacks", (double)rep.n_fallback);
        cJSON_AddNumberToObject(root, "no_imatrix", (double)rep.n_no_imatrix);
        cJSON_AddNumberToObject(root, "gptq_tensors", (double)rep.n_gptq);
        cJSON_AddNumberToObject(root, "uniform_expert_rows", (double)rep.n_uniform_rows);
        cJSON *gr = cJSON_AddObjectToObject(root, "groups");
        for (int g = 0; g < Q_GROUP_COUNT; g++) {
            if (!rep.group[g].params) continue;
            cJSON *o = cJSON_AddObjectToObject(gr, q_group_name((q_group)g));
            cJSON_AddNumberToObject(o, "params", (double)rep.group[g].params);
            cJSON_AddNumberToObject(o, "in_bytes", (double)rep.group[g].in_bytes);
            cJSON_AddNumberToObject(o, "out_bytes", (double)rep.group[g].out_bytes);
            cJSON_AddNumberToObject(o, "bpw", bpw(rep.group[g].out_bytes, rep.group[g].params));
        }
        char *s = cJSON_Print(root);
        if (s) {
            printf("%s\n", s);
            cJSON_free(s);
        }
        goto out;
    }
    printf("\n%s: %s, method %s%s\n", dry ? "dry run" : "quantized", q_policy_name(pol), done_m,
           dry ? " (nothing written)" : "");
    printf("  file size     %s -> %s%s\n", hq_fmt_bytes(rep.in_file_bytes, a), hq_fmt_bytes(rep.out_file_bytes, b),
           dry ? " (exact)" : "");
    printf("  bits/weight   %.3f -> %.3f over %llu parameters\n", bpw(rep.in_data_bytes, rep.params),
           bpw(rep.out_data_bytes, rep.params), (unsigned long long)rep.params);
    printf("  %-10s %12s %8s %8s %10s\n", "group", "params", "bpw in", "bpw out", "size");
    for (int g = 0; g < Q_GROUP_COUNT; g++) {
        const q_group_stats *s = &rep.group[g];
        if (!s->params) continue;
        printf("  %-10s %12llu %8.3f %8.3f %10s\n", q_group_name((q_group)g), (unsigned long long)s->params,
               bpw(s->in_bytes, s->params), bpw(s->out_bytes, s->params), hq_fmt_bytes(s->out_bytes, a));
    }
    if (rep.n_fallback) printf("  %llu tensor(s) used a shape fallback type\n", (unsigned long long)rep.n_fallback);
    if (rep.n_no_imatrix)
        printf("  %llu quantized tensor(s) had no imatrix entry: quantized without importance\n",
               (unsigned long long)rep.n_no_imatrix);
    if (rep.n_uniform_rows)
        printf("  %llu expert row(s) saw no calibration tokens: uniform importance used\n",
               (unsigned long long)rep.n_uniform_rows);
    if (!dry)
        printf("  time          %.2f s (%.2f M params/s)\n", rep.seconds,
               rep.seconds > 0 ? (double)rep.params / rep.seconds / 1e6 : 0);
out:
    cJSON_Delete(root);
    q_imatrix_free(im);
    q_policy_free(pol);
    hq_str_list_free(&overrides);
    return rc;
}
