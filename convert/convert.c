/* convert/convert.c — cv_convert: checkpoint -> GGUF (docs/gguf-schema.md).
 * Metadata first, then tensors in the plan's canonical order, streamed in
 * row chunks through one reused buffer (memory bounded by
 * cv_options.chunk_bytes, not by the model), into an atomic hq_out: any failure leaves no file behind. */
#include "convert.h" // defines: cv_convert, cv_tensor_read_rows
#include "../formats/gguf.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>


hq_status cv_tensor_read_rows(const cv_tensor *t, hq_dtype dt, uint64_t r0, uint64_t nr, void *dst, char *err) {
    const fmt_tensor *s = t->src;
    if (nr == 0) return HQ_OK;
    if (r0 > (uint64_t)s->shape[0] || nr > (uint64_t)s->shape[0] - r0)
        return hq_fail(err, HQ_ERR_INTERNAL, "%s: rows %llu+%llu beyond %lld", s->name, (unsigned long long)r0,
                       (unsigned long long)nr, (long long)s->shape[0]);
    /* a view of the row range: same strides, shifted offset */
    fmt_tensor v = *s;
    v.shape[0] = (int64_t)nr;
    v.offset = s->offset + (int64_t)r0 * s->stride[0];
    if (t->xform == CV_X_COPY) return fmt_tensor_read(&v, dt, dst, err);
    /* ssd.A_log -> A = -exp(A_log) (spec §6 item 1), computed in f32 like torch */
    if (dt != HQ_DT_F32) return hq_fail(err, HQ_ERR_INTERNAL, "%s: A_log must be written as F32", s->name);
    hq_status st = fmt_tensor_read(&v, HQ_DT_F32, dst, err);
    if (st != HQ_OK) return st;
    float *f = dst;
    uint64_t n = fmt_tensor_nelem(&v);
    for (uint64_t i = 0; i < n; i++) f[i] = -expf(f[i]);
    return HQ_OK;
}

/* Lets the kernel drop the source pages already converted, so resident
 * memory stays near the chunk buffer instead of growing with the model.
 * Only for ranges inside the checkpoint's read-only file mappings
 * (MAP_PRIVATE, never written: the pages are simply re-read if needed). */
static void drop_pages(const fmt_ckpt *ck, const uint8_t *p, uint64_t n) {
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0 || n == 0) return;
    for (uint64_t i = 0; i < ck->n_maps; i++) {
        const hq_map *m = &ck->maps[i];
        if (!m->data || p < m->data || p + n > m->data + m->size) continue;
        uintptr_t a = (uintptr_t)p & ~(uintptr_t)(pg - 1);
        uintptr_t b = (uintptr_t)(p + n) & ~(uintptr_t)(pg - 1); /* keep the partial last page */
        if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
        return;
    }
}

static uint32_t ggml_of(hq_dtype dt) {
    return dt == HQ_DT_F16 ? GGML_T_F16 : dt == HQ_DT_BF16 ? GGML_T_BF16 : GGML_T_F32;
}

static const char *base_name(const char *path, char *buf, size_t cap) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && path[s - 1] != '/') s--;
    size_t len = n - s;
    if (len >= cap) len = cap - 1;
    memcpy(buf, path + s, len);
    buf[len] = 0;
    if (!hq_is_dir(path)) {
        char *dot = strrchr(buf, '.');
        if (dot && dot != buf) *dot = 0;
    }
    return buf;
}

#define TRY(x)                                                                                                       \
    do {                                                                                                             \
        hq_status st_ = (x);                                                                                         \
        if (st_ != HQ_OK) return st_;                                                                                \
    } while (0)

static hq_status set_u32k(fmt_gguf_writer *w, const char *a, const char *key, int64_t v, char *err) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", a, key);
    if (v < 0 || v > UINT32_MAX) return hq_fail(err, HQ_ERR_LIMIT, "metadata %s = %lld does not fit u32", k, (long long)v);
    return fmt_gguf_set_u32(w, k, (uint32_t)v, err);
}
static hq_status set_f32k(fmt_gguf_writer *w, const char *a, const char *key, double v, char *err) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", a, key);
    return fmt_gguf_set_f32(w, k, (float)v, err);
}
static hq_status set_boolk(fmt_gguf_writer *w, const char *a, const char *key, bool v, char *err) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", a, key);
    return fmt_gguf_set_bool(w, k, v, err);
}
static hq_status set_strk(fmt_gguf_writer *w, const char *a, const char *key, const char *v, char *err) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", a, key);
    return fmt_gguf_set_str(w, k, v, strlen(v), err);
}

/* The special token a post-processor puts before the text, as HF tokenizers
 * applies it: TemplateProcessing's "single" template starting with a
 * SpecialToken (its special_tokens entry must map to one id), the first such
 * inside a "Sequence". *id = -1 when it adds none (a Bert/Roberta processor,
 * which no causal LM here uses, counts as none). */
static void pp_first_special(const cJSON *pp, int64_t *id) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(pp, "type");
    const char *t = cJSON_IsString(type) ? type->valuestring : "";
    if (!strcmp(t, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pp, "processors")) {
            pp_first_special(e, id);
            if (*id >= 0) return;
        }
    } else if (!strcmp(t, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
        const cJSON *first = cJSON_IsArray(single) ? cJSON_GetArrayItem(single, 0) : NULL;
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(first, "SpecialToken");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(sp, "id");
        if (!cJSON_IsString(name)) return;
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pp, "special_tokens"),
                                                           name->valuestring);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(tok, "ids");
        const cJSON *v = cJSON_GetArrayItem(ids, 0);
        if (cJSON_GetArraySize(ids) == 1 && cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 4294967296.0)
            *id = (int64_t)v->valuedouble;
    }
}

/* Does tokenizer(text) start with BOS, and which id (*bos, from config.json,
 * is replaced by the post-processor's token)? transformers 5 decides this in
 * tokenizer.json's post_processor alone (it no longer writes add_bos_token and
 * ignores it when a post_processor exists: checked with transformers 5.23,
 * tests/t_bos.sh, docs/gguf-schema.md). Without a post_processor, tokenizer_config's
 * add_bos_token (transformers 4's Llama tokenizers built the post-processor
 * from it). Default: no BOS. */
static bool tokenizer_add_bos(const fmt_ckpt *ck, int64_t *bos) {
    cJSON *t = ck->tokenizer_json ? cJSON_Parse(ck->tokenizer_json) : NULL;
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(t, "post_processor");
    if (pp && !cJSON_IsNull(pp)) {
        int64_t id = -1;
        pp_first_special(pp, &id);
        cJSON_Delete(t);
        if (id >= 0) *bos = id;
        return id >= 0;
    }
    cJSON_Delete(t);
    cJSON *r = ck->tokenizer_config_json ? cJSON_Parse(ck->tokenizer_config_json) : NULL;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(r, "add_bos_token");
    bool v = b && cJSON_IsTrue(b);
    cJSON_Delete(r);
    return v;
}

/* OTCE hyper-parameters (docs/gguf-schema.md "OTCE keys"; llama.cpp's Mamba
 * key names where they exist). Written after the common keys so the other
 * variants' files are unchanged. */
static hq_status write_otce_metadata(fmt_gguf_writer *w, const cv_plan *p, const char *a, char *err) {
    const cv_hparams *h = &p->hp;
    TRY(set_u32k(w, a, "ssm.inner_size", h->mamba_expand * h->d, err));
    TRY(set_u32k(w, a, "ssm.expand", h->mamba_expand, err));
    TRY(set_u32k(w, a, "ssm.state_size", h->mamba_d_state, err));
    TRY(set_u32k(w, a, "ssm.conv_kernel", h->mamba_d_conv, err));
    TRY(set_u32k(w, a, "ssm.time_step_rank", h->mamba_dt_rank, err));
    TRY(set_boolk(w, a, "ssm.conv_bias", h->mamba_conv_bias, err));
    TRY(set_boolk(w, a, "ssm.proj_bias", h->mamba_proj_bias, err));
    TRY(set_boolk(w, a, "ssm.rope", h->mamba_rope, err));
    TRY(set_strk(w, a, "ssm.act", h->mamba_act, err));
    TRY(set_boolk(w, a, "attention.rope", h->attention_rope, err));
    TRY(set_boolk(w, a, "hidden_bias", h->hidden_bias, err));
    TRY(set_u32k(w, a, "token_type_count", h->type_vocab, err));
    TRY(set_u32k(w, a, "stage.observation_count", h->n_stage[0], err));
    TRY(set_u32k(w, a, "stage.thinking_count", h->n_stage[1], err));
    TRY(set_u32k(w, a, "stage.conseption_count", h->n_stage[2], err));
    TRY(set_u32k(w, a, "stage.expression_count", h->n_stage[3], err));
    TRY(set_strk(w, a, "moe.expert_type", h->expert_type, err));
    /* intermediate sizes of the shared and private expert MLPs (configuration_cheems_OTCE.py properties) */
    bool exp_t = !strcmp(h->expert_type, "expansive"), coh = !strcmp(h->expert_type, "cohesive");
    TRY(set_u32k(w, a, "moe.shared_feed_forward_length", exp_t ? h->inter : coh ? h->inter / 2 : 0, err));
    TRY(set_u32k(w, a, "moe.expert_feed_forward_length", exp_t || coh ? h->inter / 2 : h->inter, err));
    return HQ_OK;
}

/* generation_config.json (docs/config-keys.md): transformers' generate() stops
 * at its eos_token_id, so that one wins for EOS; bos/pad only fill in what
 * config.json lacks (transformers 5 still writes them to both, equal). A list
 * of EOS ids keeps its first, as config.json's does. */
static void generation_ids(const fmt_ckpt *ck, int64_t *bos, int64_t *eos, int64_t *pad) {
    cJSON *g = ck->generation_config_json ? cJSON_Parse(ck->generation_config_json) : NULL;
    const char *keys[3] = {"bos_token_id", "eos_token_id", "pad_token_id"};
    int64_t *dst[3] = {bos, eos, pad};
    for (int k = 0; k < 3 && g; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(g, keys[k]);
        if (v && cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
        if (!v || !cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 4294967296.0) ||
            v->valuedouble != floor(v->valuedouble))
            continue;
        if (k == 1 || *dst[k] < 0) *dst[k] = (int64_t)v->valuedouble;
    }
    cJSON_Delete(g);
}

/* Every key of docs/gguf-schema.md, in a fixed order. Nothing here depends on
 * the container (.bin / .safetensors / shards), so equal models give equal files. */
static hq_status write_metadata(fmt_gguf_writer *w, const cv_plan *p, const fmt_ckpt *ck, const char *name,
                                cv_outtype ot, char *err) {
    const cv_hparams *h = &p->hp;
    const char *a = cv_variant_arch(p->variant);
    TRY(fmt_gguf_set_str(w, "general.architecture", a, strlen(a), err));
    TRY(fmt_gguf_set_str(w, "general.name", name, strlen(name), err));
    TRY(fmt_gguf_set_u32(w, "general.file_type", ot == CV_OUT_F16 ? 1 : ot == CV_OUT_BF16 ? 32 : 0, err));
    TRY(fmt_gguf_set_u32(w, "general.alignment", GGUF_DEFAULT_ALIGNMENT, err));
    const char *vn = cv_variant_name(p->variant);
    TRY(fmt_gguf_set_str(w, "hyquant.variant", vn, strlen(vn), err));
    TRY(fmt_gguf_set_str(w, "hyquant.config_json", ck->config_json, strlen(ck->config_json), err));
    if (ck->tokenizer_json)
        TRY(fmt_gguf_set_str(w, "tokenizer.huggingface.json", ck->tokenizer_json, strlen(ck->tokenizer_json), err));
    if (ck->tokenizer_config_json)
        TRY(fmt_gguf_set_str(w, "hyquant.tokenizer_config_json", ck->tokenizer_config_json,
                             strlen(ck->tokenizer_config_json), err));
    int64_t bos = h->bos, eos = h->eos, pad = h->pad;
    generation_ids(ck, &bos, &eos, &pad);
    bool add_bos = tokenizer_add_bos(ck, &bos);
    if (bos >= 0 && bos <= UINT32_MAX) TRY(fmt_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos, err));
    if (eos >= 0 && eos <= UINT32_MAX) TRY(fmt_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos, err));
    if (pad >= 0 && pad <= UINT32_MAX)
        TRY(fmt_gguf_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad, err));
    TRY(fmt_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos, err));
    TRY(set_u32k(w, a, "vocab_size", h->vocab, err));
    TRY(set_u32k(w, a, "context_length", h->max_pos, err));
    TRY(set_u32k(w, a, "embedding_length", h->d, err));
    TRY(set_u32k(w, a, "feed_forward_length", h->inter, err));
    TRY(set_u32k(w, a, "block_count", p->n_layer, err));
    TRY(set_u32k(w, a, "attention.head_count", h->n_head, err));
    TRY(set_u32k(w, a, "attention.head_count_kv", h->n_kv, err));
    TRY(set_u32k(w, a, "attention.key_length", h->head_dim, err));
    TRY(set_f32k(w, a, "attention.layer_norm_rms_epsilon", h->eps, err));
    TRY(set_u32k(w, a, "attention.keep_window_size", h->keep_window, err));
    TRY(set_boolk(w, a, "attention.keep_window_topk", p->variant == CV_VAR_DOGE_NEW || p->variant == CV_VAR_DOGE_HF,
                  err));
    TRY(set_u32k(w, a, "attention.sliding_window", h->sliding_window, err));
    TRY(set_u32k(w, a, "attention.dynamic_mask_ratio", 0, err));
    TRY(set_f32k(w, a, "rope.freq_base", h->rope_theta, err));
    TRY(set_strk(w, a, "rope.scaling.type", h->rope_type, err));
    TRY(set_f32k(w, a, "rope.scaling.factor", h->rope_factor, err));
    TRY(set_u32k(w, a, "rope.scaling.original_context_length", h->rope_orig_ctx, err));
    if (p->variant == CV_VAR_CHEEMS) TRY(set_u32k(w, a, "ssd.chunk_size", h->ssd_chunk, err));
    const char **mix = hq_malloc_array((size_t)p->n_layer + 1, sizeof *mix);
    const char **ffn = hq_malloc_array((size_t)p->n_layer + 1, sizeof *ffn);
    hq_status st = HQ_OK;
    if (!mix || !ffn) st = hq_fail(err, HQ_ERR_NOMEM, "out of memory");
    for (int64_t l = 0; st == HQ_OK && l < p->n_layer; l++) {
        mix[l] = cv_mixer_name(p->mixers[l]);
        ffn[l] = cv_ffn_name(p->ffns[l]);
    }
    char k[128];
    if (st == HQ_OK) {
        snprintf(k, sizeof k, "%s.layer_mixers", a);
        st = fmt_gguf_set_arr_str(w, k, mix, (uint64_t)p->n_layer, err);
    }
    if (st == HQ_OK) {
        snprintf(k, sizeof k, "%s.layer_ffns", a);
        st = fmt_gguf_set_arr_str(w, k, ffn, (uint64_t)p->n_layer, err);
    }
    hq_free(mix);
    hq_free(ffn);
    TRY(st);
    TRY(set_u32k(w, a, "expert_count", p->n_expert, err));
    TRY(set_u32k(w, a, "expert_used_count", p->n_expert_used, err));
    if (p->n_pk > 0) {
        TRY(set_u32k(w, a, "moe.product_key_count", p->n_pk, err));
        TRY(set_u32k(w, a, "moe.retrieval_head_count", p->n_rhead, err));
        if (p->retrieval_size > 0) TRY(set_u32k(w, a, "moe.retrieval_size", p->retrieval_size, err));
        TRY(set_boolk(w, a, "moe.norm_topk_prob", h->norm_topk, err));
    }
    TRY(set_strk(w, a, "hidden_act", h->hidden_act, err));
    TRY(set_boolk(w, a, "tie_word_embeddings", !p->has_output, err));
    if (p->variant == CV_VAR_OTCE) TRY(write_otce_metadata(w, p, a, err));
    return HQ_OK;
}

typedef struct {
    fmt_ckpt *ck;
    cv_plan *p;
    fmt_gguf_writer *w;
    hq_out o;
    bool out_open;
    uint8_t *buf;
} cv_job;

static void job_free(cv_job *j) {
    if (j->out_open) hq_out_abort(&j->o);
    hq_free(j->buf);
    fmt_gguf_writer_free(j->w);
    cv_plan_free(j->p);
    fmt_ckpt_close(j->ck);
}

static hq_status run(cv_job *j, const char *src, const char *dst, const cv_options *opt, char *err) {
    TRY(fmt_ckpt_open(src, &j->ck, err));
    if (opt && opt->embedded)
        snprintf(opt->embedded, CV_EMBEDDED_LEN, "%s%s%s", j->ck->config_json ? "config.json" : "",
                 j->ck->tokenizer_json ? (j->ck->config_json ? ", tokenizer.json" : "tokenizer.json") : "",
                 j->ck->tokenizer_config_json ? ", tokenizer_config.json" : "");
    TRY(cv_plan_build(j->ck->tensors, j->ck->n_tensors, j->ck->config_json, src, &j->p, err));
    const cv_plan *p = j->p;
    cv_outtype ot = opt && opt->outtype != CV_OUT_AUTO ? opt->outtype : cv_plan_default_outtype(p);
    char nb[256];
    const char *name = opt && opt->name ? opt->name : base_name(src, nb, sizeof nb);
    TRY(fmt_gguf_writer_init(&j->w, GGUF_DEFAULT_ALIGNMENT, err));
    TRY(write_metadata(j->w, p, j->ck, name, ot, err));
    /* tensor infos, and the chunk buffer: at most chunk_bytes, at least one row */
    uint64_t bufsz = 0, total = 0;
    for (uint64_t i = 0; i < p->n_tensors; i++) {
        const cv_tensor *t = &p->tensors[i];
        hq_dtype dt = cv_tensor_out_dtype(t, ot);
        TRY(fmt_gguf_add_tensor(j->w, t->name, ggml_of(dt), t->n_dims, t->ne, err));
        uint64_t nel = fmt_tensor_nelem(t->src), rows = (uint64_t)t->src->shape[0];
        uint64_t row_bytes = nel / rows * hq_dtype_size(dt), tb = nel * hq_dtype_size(dt);
        uint64_t ch = opt && opt->chunk_bytes ? opt->chunk_bytes : CV_CHUNK_BYTES;
        uint64_t want = tb < ch ? tb : (row_bytes > ch ? row_bytes : ch / row_bytes * row_bytes);
        if (want > bufsz) bufsz = want;
        if (!hq_add_u64(total, tb, &total)) return hq_fail(err, HQ_ERR_LIMIT, "%s: model too large", src);
    }
    j->buf = hq_malloc(bufsz ? (size_t)bufsz : 1);
    if (!j->buf) return hq_fail(err, HQ_ERR_NOMEM, "out of memory for a %llu-byte buffer", (unsigned long long)bufsz);
    /* tensors are read front to back: ask for aggressive read-ahead */
    for (uint64_t m = 0; m < j->ck->n_maps; m++)
        if (j->ck->maps[m].data && j->ck->maps[m].size)
            madvise((void *)j->ck->maps[m].data, (size_t)j->ck->maps[m].size, MADV_SEQUENTIAL);
    TRY(hq_out_open(&j->o, dst, err));
    j->out_open = true;
    TRY(fmt_gguf_write_header(j->w, &j->o, err));
    uint64_t done = 0;
    bool quiet = opt && opt->quiet;
    for (uint64_t i = 0; i < p->n_tensors; i++) {
        const cv_tensor *t = &p->tensors[i];
        const fmt_tensor *s = t->src;
        hq_dtype dt = cv_tensor_out_dtype(t, ot);
        uint64_t rows = (uint64_t)s->shape[0], row_el = fmt_tensor_nelem(s) / rows;
        uint64_t row_bytes = row_el * hq_dtype_size(dt);
        uint64_t step = bufsz / row_bytes;
        if (step == 0) return hq_fail(err, HQ_ERR_INTERNAL, "%s: buffer smaller than a row", s->name);
        bool contig = fmt_tensor_is_contiguous(s);
        /* same type, contiguous, no transform: write straight from the mapping */
        bool direct = contig && s->dtype == dt && t->xform == CV_X_COPY;
        for (uint64_t r = 0; r < rows; r += step) {
            uint64_t nr = rows - r < step ? rows - r : step;
            const void *piece = j->buf;
            if (direct)
                piece = s->storage + (uint64_t)(s->offset + (int64_t)r * s->stride[0]) * hq_dtype_size(s->dtype);
            else
                TRY(cv_tensor_read_rows(t, dt, r, nr, j->buf, err));
            TRY(fmt_gguf_write_tensor_part(j->w, &j->o, i, piece, nr * row_bytes, err));
            if (contig)
                drop_pages(j->ck, s->storage + (uint64_t)(s->offset + (int64_t)r * s->stride[0]) * hq_dtype_size(s->dtype),
                           nr * row_el * hq_dtype_size(s->dtype));
            done += nr * row_bytes;
            if (!quiet) {
                bool big = total >= (64u << 20);
                hq_progress("convert", big ? done >> 20 : done >> 10, big ? total >> 20 : total >> 10, big ? "MiB" : "KiB");
            }
        }
    }
    if (!quiet) hq_progress_done();
    TRY(fmt_gguf_writer_finish(j->w, &j->o, err));
    hq_status st = hq_out_commit(&j->o, err);
    j->out_open = false; /* commit cleans up after itself on failure too */
    return st;
}

hq_status cv_convert(const char *src, const char *dst, const cv_options *opt, char *err) {
    cv_job j;
    memset(&j, 0, sizeof j);
    hq_status st = run(&j, src, dst, opt, err);
    job_free(&j);
    return st;
}
