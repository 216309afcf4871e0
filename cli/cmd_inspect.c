/* cli/cmd_inspect.c — `hyquant inspect <checkpoint dir | file | .gguf> [--json]`:
 * variant, hyper-parameters, per-layer kinds, tensors (dtype, shape, bytes),
 * parameter counts by group, and the spec §4.5 warning for SSD A > 0. */
#include "commands.h" // defines: hq_cmd_inspect
#include "../convert/convert.h"
#include "../core/opts.h"
#include "../formats/gguf.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <string.h>

typedef struct {
    uint64_t params[CV_CAT_COUNT];
    uint64_t bytes[CV_CAT_COUNT];
} cv_counts;

static const char *shape_txt(char *b, size_t cap, int nd, const int64_t *sh) {
    size_t k = (size_t)snprintf(b, cap, "[");
    for (int i = 0; i < nd && k < cap; i++) k += (size_t)snprintf(b + k, cap - k, i ? ", %" PRId64 : "%" PRId64, sh[i]);
    if (k < cap) snprintf(b + k, cap - k, "]");
    return b;
}

static void print_counts(const cv_counts *c) {
    uint64_t tp = 0, tb = 0;
    for (int i = 0; i < CV_CAT_COUNT; i++) tp += c->params[i], tb += c->bytes[i];
    printf("\nparameters:\n  %-10s %15s %7s %12s\n", "group", "params", "share", "bytes");
    char b[32];
    for (int i = 0; i < CV_CAT_COUNT; i++)
        printf("  %-10s %15" PRIu64 " %6.2f%% %12s\n", cv_cat_name((cv_cat)i), c->params[i],
               tp ? 100.0 * (double)c->params[i] / (double)tp : 0.0, hq_fmt_bytes(c->bytes[i], b));
    printf("  %-10s %15" PRIu64 " %6.2f%% %12s\n", "total", tp, 100.0, hq_fmt_bytes(tb, b));
}

static cJSON *counts_json(const cv_counts *c) {
    cJSON *o = cJSON_CreateObject();
    uint64_t tp = 0, tb = 0;
    for (int i = 0; i < CV_CAT_COUNT; i++) {
        cJSON_AddNumberToObject(o, cv_cat_name((cv_cat)i), (double)c->params[i]);
        tp += c->params[i], tb += c->bytes[i];
    }
    cJSON_AddNumberToObject(o, "total", (double)tp);
    cJSON_AddNumberToObject(o, "bytes", (double)tb);
    return o;
}

static int emit_json(cJSON *root) {
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    if (!s) return hq_cmd_error("inspect", HQ_ERR_NOMEM, "out of memory");
    puts(s);
    cJSON_free(s);
    return 0;
}

/* spec §4.5: mamba_ssm >= 2.2.5 chunked prefill differs from the recurrence when A > 0 */
static const char *k_apos_note =
    "mamba_ssm >= 2.2.5 chunked prefill differs from the recurrence when A > 0; hyquant follows the recurrence "
    "(spec 4.5)";

/* the SSD tensors with A > 0 found while counting (both inputs) */
typedef struct {
    char msg[64][160];
    int n;
} apos_warns;

static bool is_ssm_a(const char *name) {
    size_t n = strlen(name);
    return n > 6 && !strcmp(name + n - 6, ".ssm_a");
}

static void apos_note(apos_warns *w, const char *name, uint64_t pos, uint64_t ne) {
    if (pos && w->n < 64)
        snprintf(w->msg[w->n++], sizeof w->msg[0], "%s has A > 0 in %" PRIu64 " of %" PRIu64 " heads", name, pos, ne);
}

static void print_warns(const apos_warns *w) {
    for (int i = 0; i < w->n; i++) printf("\nwarning: %s: %s\n", w->msg[i], k_apos_note);
}

/* the common tail of both JSON reports: "params" and "warnings", then print */
static int finish_json(cJSON *r, const cv_counts *cnt, const apos_warns *w) {
    cJSON_AddItemToObject(r, "params", counts_json(cnt));
    cJSON *a = cJSON_AddArrayToObject(r, "warnings");
    for (int i = 0; i < w->n; i++) {
        char line[640];
        snprintf(line, sizeof line, "%.159s: %s", w->msg[i], k_apos_note);
        cJSON_AddItemToArray(a, cJSON_CreateString(line));
    }
    return emit_json(r);
}

/* ---------------- checkpoint input ---------------- */
static int inspect_ckpt(const char *path, bool json) {
    char err[HQ_ERR_LEN] = "";
    fmt_ckpt *ck = NULL;
    hq_status st = fmt_ckpt_open(path, &ck, err);
    if (st != HQ_OK) return hq_cmd_error("inspect", st, err);
    cv_plan *p = NULL;
    st = cv_plan_build(ck->tensors, ck->n_tensors, ck->config_json, path, &p, err);
    if (st != HQ_OK) {
        /* still show what the file holds, then the reason it cannot be converted */
        if (!json) {
            printf("checkpoint: %s (%s), %" PRIu64 " tensors\n", path, ck->kind, ck->n_tensors);
            for (uint64_t i = 0; i < ck->n_tensors; i++) {
                char sb[128];
                const fmt_tensor *t = &ck->tensors[i];
                printf("  %-60s %-5s %s\n", t->name, hq_dtype_name(t->dtype), shape_txt(sb, sizeof sb, t->ndim, t->shape));
            }
        }
        fmt_ckpt_close(ck);
        return hq_cmd_error("inspect", st, err);
    }
    const cv_hparams *h = &p->hp;
    cv_counts cnt;
    memset(&cnt, 0, sizeof cnt);
    apos_warns warns = {.n = 0};
    for (uint64_t i = 0; i < p->n_tensors; i++) {
        const cv_tensor *t = &p->tensors[i];
        uint64_t ne = fmt_tensor_nelem(t->src);
        cnt.params[t->cat] += ne;
        cnt.bytes[t->cat] += ne * hq_dtype_size(t->src->dtype);
        /* ssm_a is [H] f32: read it and count positive entries */
        if (is_ssm_a(t->name) && ne <= 65536) {
            float *a = hq_malloc_array((size_t)ne, sizeof *a);
            if (a && cv_tensor_read_rows(t, HQ_DT_F32, 0, (uint64_t)t->src->shape[0], a, err) == HQ_OK) {
                uint64_t pos = 0;
                for (uint64_t k = 0; k < ne; k++) pos += a[k] > 0;
                apos_note(&warns, t->name, pos, ne);
            }
            hq_free(a);
        }
    }
    if (json) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "input", path);
        cJSON_AddStringToObject(r, "format", "checkpoint");
        cJSON_AddStringToObject(r, "container", ck->kind ? ck->kind : "?");
        cJSON_AddStringToObject(r, "variant", cv_variant_name(p->variant));
        cJSON_AddStringToObject(r, "architecture", cv_variant_arch(p->variant));
        cJSON *hp = cJSON_AddObjectToObject(r, "hparams");
        cJSON_AddNumberToObject(hp, "vocab_size", (double)h->vocab);
        cJSON_AddNumberToObject(hp, "hidden_size", (double)h->d);
        cJSON_AddNumberToObject(hp, "intermediate_size", (double)h->inter);
        cJSON_AddNumberToObject(hp, "num_hidden_layers", (double)h->n_layer);
        cJSON_AddNumberToObject(hp, "num_attention_heads", (double)h->n_head);
        cJSON_AddNumberToObject(hp, "num_key_value_heads", (double)h->n_kv);
        cJSON_AddNumberToObject(hp, "head_dim", (double)h->head_dim);
        cJSON_AddNumberToObject(hp, "max_position_embeddings", (double)h->max_pos);
        cJSON_AddNumberToObject(hp, "rms_norm_eps", h->eps);
        cJSON_AddNumberToObject(hp, "rope_theta", h->rope_theta);
        cJSON_AddStringToObject(hp, "rope_scaling", h->rope_type);
        cJSON_AddNumberToObject(hp, "rope_factor", h->rope_factor);
        cJSON_AddNumberToObject(hp, "keep_window_size", (double)h->keep_window);
        cJSON_AddNumberToObject(hp, "sliding_window", (double)h->sliding_window);
        cJSON_AddNumberToObject(hp, "num_experts", (double)p->n_expert);
        cJSON_AddNumberToObject(hp, "num_experts_per_tok", (double)p->n_expert_used);
        cJSON_AddNumberToObject(hp, "product_key_count", (double)p->n_pk);
        cJSON_AddBoolToObject(hp, "tie_word_embeddings", !p->has_output);
        cJSON *ls = cJSON_AddArrayToObject(r, "layers");
        for (int64_t l = 0; l < p->n_layer; l++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "mixer", cv_mixer_name(p->mixers[l]));
            cJSON_AddStringToObject(o, "ffn", cv_ffn_name(p->ffns[l]));
            cJSON_AddItemToArray(ls, o);
        }
        cJSON *ts = cJSON_AddArrayToObject(r, "tensors");
        for (uint64_t i = 0; i < p->n_tensors; i++) {
            const cv_tensor *t = &p->tensors[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", t->name);
            cJSON_AddStringToObject(o, "source", t->src->name);
            cJSON_AddStringToObject(o, "dtype", hq_dtype_name(t->src->dtype));
            cJSON *sh = cJSON_AddArrayToObject(o, "shape");
            for (int k = 0; k < t->src->ndim; k++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->src->shape[k]));
            cJSON_AddNumberToObject(o, "bytes", (double)(fmt_tensor_nelem(t->src) * hq_dtype_size(t->src->dtype)));
            cJSON_AddStringToObject(o, "group", cv_cat_name(t->cat));
            cJSON_AddItemToArray(ts, o);
        }
        int rc = finish_json(r, &cnt, &warns);
        cv_plan_free(p);
        fmt_ckpt_close(ck);
        return rc;
    }
    printf("checkpoint:   %s (%s, %" PRIu64 " tensors)\n", path, ck->kind ? ck->kind : "?", ck->n_tensors);
    printf("variant:      %s (general.architecture = %s)\n", cv_variant_name(p->variant), cv_variant_arch(p->variant));
    printf("\nhyper-parameters:\n");
    printf("  %-26s %" PRId64 "\n  %-26s %" PRId64 "\n  %-26s %" PRId64 "\n  %-26s %" PRId64 "\n", "vocab_size", h->vocab,
           "hidden_size", h->d, "intermediate_size", h->inter, "num_hidden_layers", h->n_layer);
    printf("  %-26s %" PRId64 "\n  %-26s %" PRId64 "\n  %-26s %" PRId64 "\n", "num_attention_heads", h->n_head,
           "num_key_value_heads", h->n_kv, "head_dim", h->head_dim);
    printf("  %-26s %" PRId64 "\n  %-26s %g\n  %-26s %g\n", "max_position_embeddings", h->max_pos, "rms_norm_eps", h->eps,
           "rope_theta", h->rope_theta);
    printf("  %-26s %s (factor %g, original context %" PRId64 ")\n", "rope_scaling", h->rope_type, h->rope_factor,
           h->rope_orig_ctx);
    printf("  %-26s %" PRId64 "\n  %-26s %" PRId64 "\n", "keep_window_size", h->keep_window, "sliding_window",
           h->sliding_window);
    if (p->n_pk)
        printf("  %-26s %" PRId64 " (product keys %" PRId64 ", top-k %" PRId64 ", retrieval heads %" PRId64 ")\n",
               "experts", p->n_expert, p->n_pk, p->n_expert_used, p->n_rhead);
    printf("  %-26s %s\n", "tie_word_embeddings", p->has_output ? "false" : "true");
    printf("\nlayers:\n  %5s  %-6s %s\n", "layer", "mixer", "ffn");
    for (int64_t l = 0; l < p->n_layer; l++)
        printf("  %5" PRId64 "  %-6s %s\n", l, cv_mixer_name(p->mixers[l]), cv_ffn_name(p->ffns[l]));
    size_t wn = 4, ws = 6;
    for (uint64_t i = 0; i < p->n_tensors; i++) {
        size_t a = strlen(p->tensors[i].name), b = strlen(p->tensors[i].src->name);
        if (a > wn) wn = a;
        if (b > ws) ws = b;
    }
    printf("\ntensors:\n  %-*s  %-*s  %-5s  %-22s %12s\n", (int)wn, "gguf", (int)ws, "source", "dtype", "shape", "bytes");
    for (uint64_t i = 0; i < p->n_tensors; i++) {
        const cv_tensor *t = &p->tensors[i];
        char sb[128];
        printf("  %-*s  %-*s  %-5s  %-22s %12" PRIu64 "\n", (int)wn, t->name, (int)ws, t->src->name,
               hq_dtype_name(t->src->dtype), shape_txt(sb, sizeof sb, t->src->ndim, t->src->shape),
               fmt_tensor_nelem(t->src) * hq_dtype_size(t->src->dtype));
    }
    if (p->n_shared_dedup)
        printf("  (%" PRIu64 " ignored: %" PRId64 " repeated OTCE experts.{e}.shared_* copies, equal to the kept one)\n",
               p->n_ignored, p->n_shared_dedup);
    else if (p->n_ignored) printf("  (%" PRIu64 " ignored: rotary buffers / tied lm_head)\n", p->n_ignored);
    print_counts(&cnt);
    print_warns(&warns);
    cv_plan_free(p);
    fmt_ckpt_close(ck);
    return 0;
}

/* ---------------- GGUF input ---------------- */
static void kv_value_txt(const fmt_gguf_kv *kv, char *b, size_t cap) {
    switch (kv->type) {
    case GGUF_VT_STRING:
        if (kv->v.str.len > 60) snprintf(b, cap, "<string, %" PRIu64 " bytes>", kv->v.str.len);
        else snprintf(b, cap, "\"%.*s\"", (int)kv->v.str.len, kv->v.str.s);
        break;
    case GGUF_VT_ARRAY:
        if (kv->v.arr.type == GGUF_VT_STRING && kv->v.arr.n <= 64) {
            size_t k = (size_t)snprintf(b, cap, "[");
            for (uint64_t i = 0; i < kv->v.arr.n && k + 8 < cap; i++)
                k += (size_t)snprintf(b + k, cap - k, "%s%.*s", i ? "," : "", (int)kv->v.arr.strs[i].len,
                                      kv->v.arr.strs[i].s);
            if (k < cap) snprintf(b + k, cap - k, "]");
        } else {
            snprintf(b, cap, "<array of %" PRIu64 ">", kv->v.arr.n);
        }
        break;
    case GGUF_VT_F32: case GGUF_VT_F64: snprintf(b, cap, "%g", kv->v.f); break;
    case GGUF_VT_BOOL: snprintf(b, cap, "%s", kv->v.u ? "true" : "false"); break;
    case GGUF_VT_I8: case GGUF_VT_I16: case GGUF_VT_I32: case GGUF_VT_I64:
        snprintf(b, cap, "%" PRId64, kv->v.i);
        break;
    default: snprintf(b, cap, "%" PRIu64, kv->v.u); break;
    }
}

static int inspect_gguf(const char *path, bool json) {
    char err[HQ_ERR_LEN] = "";
    fmt_gguf *g = NULL;
    hq_status st = fmt_gguf_open(path, &g, err);
    if (st != HQ_OK) return hq_cmd_error("inspect", st, err);
    fmt_gguf_str arch = {0}, var = {0};
    fmt_gguf_get_str(g, "general.architecture", &arch);
    fmt_gguf_get_str(g, "hyquant.variant", &var);
    char a[64] = "", k[128];
    snprintf(a, sizeof a, "%.*s", (int)(arch.len < 60 ? arch.len : 60), arch.s ? arch.s : "");
    snprintf(k, sizeof k, "%s.layer_mixers", a);
    const fmt_gguf_kv *mix = fmt_gguf_find_kv(g, k);
    snprintf(k, sizeof k, "%s.layer_ffns", a);
    const fmt_gguf_kv *ffn = fmt_gguf_find_kv(g, k);
    if (mix && (mix->type != GGUF_VT_ARRAY || mix->v.arr.type != GGUF_VT_STRING)) mix = NULL;
    if (ffn && (ffn->type != GGUF_VT_ARRAY || ffn->v.arr.type != GGUF_VT_STRING)) ffn = NULL;
    uint64_t nl = mix ? mix->v.arr.n : 0;
    cv_counts cnt;
    memset(&cnt, 0, sizeof cnt);
    uint64_t nt = fmt_gguf_n_tensors(g);
    apos_warns warns = {.n = 0};
    for (uint64_t i = 0; i < nt; i++) {
        const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
        uint64_t ne = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) ne *= t->ne[d]; /* checked by the reader against the file size */
        cv_cat c = cv_cat_of_gguf_name(t->name);
        cnt.params[c] += ne;
        cnt.bytes[c] += t->nbytes;
        if (is_ssm_a(t->name) && t->type == GGML_T_F32) {
            uint64_t pos = 0;
            for (uint64_t e = 0; e < ne; e++) {
                float f;
                memcpy(&f, (const uint8_t *)t->data + 4 * e, 4);
                pos += f > 0;
            }
            apos_note(&warns, t->name, pos, ne);
        }
    }
    if (json) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "input", path);
        cJSON_AddStringToObject(r, "format", "gguf");
        char vb[64];
        snprintf(vb, sizeof vb, "%.*s", (int)(var.len < 60 ? var.len : 60), var.s ? var.s : "");
        cJSON_AddStringToObject(r, "variant", vb);
        cJSON_AddStringToObject(r, "architecture", a);
        cJSON *md = cJSON_AddObjectToObject(r, "metadata");
        for (uint64_t i = 0; i < fmt_gguf_n_kv(g); i++) {
            const fmt_gguf_kv *kv = fmt_gguf_kv_at(g, i);
            char b[4096];
            if (kv->type == GGUF_VT_STRING && kv->v.str.len < 4000) {
                snprintf(b, sizeof b, "%.*s", (int)kv->v.str.len, kv->v.str.s);
                cJSON_AddStringToObject(md, kv->key, b);
            } else if (kv->type == GGUF_VT_BOOL) {
                cJSON_AddBoolToObject(md, kv->key, kv->v.u != 0);
            } else if (kv->type == GGUF_VT_F32 || kv->type == GGUF_VT_F64) {
                cJSON_AddNumberToObject(md, kv->key, kv->v.f);
            } else if (kv->type == GGUF_VT_I8 || kv->type == GGUF_VT_I16 || kv->type == GGUF_VT_I32 ||
                       kv->type == GGUF_VT_I64) {
                cJSON_AddNumberToObject(md, kv->key, (double)kv->v.i);
            } else if (kv->type != GGUF_VT_STRING && kv->type != GGUF_VT_ARRAY) {
                cJSON_AddNumberToObject(md, kv->key, (double)kv->v.u);
            } else {
                kv_value_txt(kv, b, sizeof b);
                cJSON_AddStringToObject(md, kv->key, b);
            }
        }
        cJSON *ls = cJSON_AddArrayToObject(r, "layers");
        for (uint64_t l = 0; l < nl; l++) {
            cJSON *o = cJSON_CreateObject();
            char b[64];
            snprintf(b, sizeof b, "%.*s", (int)mix->v.arr.strs[l].len, mix->v.arr.strs[l].s);
            cJSON_AddStringToObject(o, "mixer", b);
            if (ffn && l < ffn->v.arr.n) {
                snprintf(b, sizeof b, "%.*s", (int)ffn->v.arr.strs[l].len, ffn->v.arr.strs[l].s);
                cJSON_AddStringToObject(o, "ffn", b);
            }
            cJSON_AddItemToArray(ls, o);
        }
        cJSON *ts = cJSON_AddArrayToObject(r, "tensors");
        for (uint64_t i = 0; i < nt; i++) {
            const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", t->name);
            cJSON_AddStringToObject(o, "type", ggml_type_name(t->type));
            cJSON *sh = cJSON_AddArrayToObject(o, "ne");
            for (uint32_t d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->ne[d]));
            cJSON_AddNumberToObject(o, "bytes", (double)t->nbytes);
            cJSON_AddStringToObject(o, "group", cv_cat_name(cv_cat_of_gguf_name(t->name)));
            cJSON_AddItemToArray(ts, o);
        }
        int rc = finish_json(r, &cnt, &warns);
        fmt_gguf_close(g);
        return rc;
    }
    printf("gguf:         %s (%" PRIu64 " tensors, %" PRIu64 " metadata keys)\n", path, nt, fmt_gguf_n_kv(g));
    printf("variant:      %.*s (general.architecture = %s)\n", (int)var.len, var.s ? var.s : "?", a);
    size_t wk = 3;
    for (uint64_t i = 0; i < fmt_gguf_n_kv(g); i++) {
        size_t n = strlen(fmt_gguf_kv_at(g, i)->key);
        if (n > wk) wk = n;
    }
    printf("\nmetadata:\n");
    for (uint64_t i = 0; i < fmt_gguf_n_kv(g); i++) {
        const fmt_gguf_kv *kv = fmt_gguf_kv_at(g, i);
        if (mix && kv == mix) continue;
        if (ffn && kv == ffn) continue;
        char b[1024];
        kv_value_txt(kv, b, sizeof b);
        printf("  %-*s  %s\n", (int)wk, kv->key, b);
    }
    if (nl) {
        printf("\nlayers:\n  %5s  %-6s %s\n", "layer", "mixer", "ffn");
        for (uint64_t l = 0; l < nl; l++)
            printf("  %5" PRIu64 "  %-6.*s %.*s\n", l, (int)mix->v.arr.strs[l].len, mix->v.arr.strs[l].s,
                   ffn && l < ffn->v.arr.n ? (int)ffn->v.arr.strs[l].len : 1,
                   ffn && l < ffn->v.arr.n ? ffn->v.arr.strs[l].s : "?");
    }
    size_t wn = 4;
    for (uint64_t i = 0; i < nt; i++) {
        size_t n = strlen(fmt_gguf_tensor_at(g, i)->name);
        if (n > wn) wn = n;
    }
    printf("\ntensors:\n  %-*s  %-7s  %-26s %12s\n", (int)wn, "name", "type", "ne (innermost first)", "bytes");
    for (uint64_t i = 0; i < nt; i++) {
        const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
        int64_t sh[4];
        for (uint32_t d = 0; d < t->n_dims; d++) sh[d] = (int64_t)t->ne[d];
        char sb[128];
        printf("  %-*s  %-7s  %-26s %12" PRIu64 "\n", (int)wn, t->name, ggml_type_name(t->type),
               shape_txt(sb, sizeof sb, (int)t->n_dims, sh), t->nbytes);
    }
    print_counts(&cnt);
    print_warns(&warns);
    fmt_gguf_close(g);
    return 0;
}


int hq_cmd_inspect(int argc, char **argv) {
    bool json = false;
    const hq_opt opts[] = {
        {0, "json", HQ_OPT_FLAG, &json, NULL, "machine-readable JSON on stdout", 0, 0},
        {0, NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const hq_cmd_def def = {"inspect", "<checkpoint dir | .safetensors | .bin | .gguf> [--json]", opts, 1,
                            "expected exactly one input path", false, 0};
    const char *pos[2];
    int rc = hq_cmd_start(&def, argc, argv, pos);
    if (rc >= 0) return rc;
    return hq_file_has_magic(pos[0], "GGUF", 4) ? inspect_gguf(pos[0], json) : inspect_ckpt(pos[0], json);
}
