/* quant/quantize.c — streaming GGUF quantizer; see quantize.h */
#include "quantize.h" // defines: q_quantize_file, q_method_name
#include "../core/omp.h"
#include "../core/half.h"
#include "../formats/gguf.h"
#include "../runtime/runtime.h"
#include "gptq.h"
#include "quant.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

const char *q_method_name(q_method m) {
    switch (m) {
    case Q_METHOD_RTN: return "rtn";
    case Q_METHOD_IMATRIX: return "imatrix";
    case Q_METHOD_GPTQ: return "gptq";
    }
    return "?";
}

static bool is_float_type(uint32_t t) { return t == GGML_T_F32 || t == GGML_T_F16 || t == GGML_T_BF16; }

/* can we turn rows of type t into f32? (quant.h: the one row -> f32) */
static bool can_dequant(uint32_t t) { return q_row_can_to_f32(t); }
static void row_to_f32(uint32_t t, const void *src, float *dst, int64_t n) { q_row_to_f32(t, src, dst, n); }

/* f32 row -> out type; imp = importance (n) or NULL */
static void row_from_f32(uint32_t t, const float *x, void *dst, int64_t n, const float *imp, bool ref) {
    switch (t) {
    case GGML_T_F32: memcpy(dst, x, (size_t)n * 4); return;
    case GGML_T_F16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = hq_f32_to_f16(x[i]);
        return;
    }
    case GGML_T_BF16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = hq_f32_to_bf16(x[i]);
        return;
    }
    default: {
        const q_type_traits *tr = q_traits(t);
        if (imp && tr->quantize_imatrix)
            tr->quantize_imatrix(x, dst, n, imp);
        else if (!ref && tr->from_float)
            tr->from_float(x, dst, n);
        else
            tr->from_float_ref(x, dst, n);
    }
    }
}

static bool block_quantized(uint32_t t) {
    const ggml_type_info *ti = ggml_type_get(t);
    return ti && ti->blck > 1;
}

typedef struct {
    float *f32;     /* (rows, ne0) */
    uint8_t *out;   /* rows × out row bytes */
    float *imp;     /* (threads, ne0) importance scratch */
    uint64_t f32_cap, out_cap, imp_cap;
} q_bufs;

static bool grow(void **p, uint64_t *cap, uint64_t need) {
    if (need <= *cap) return true;
    void *n = hq_realloc(*p, (size_t)need);
    if (!n) return false;
    *p = n;
    *cap = need;
    return true;
}

static int n_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Converts + checks + quantizes one tensor into b->out. */
static hq_status quantize_tensor(const fmt_gguf_tensor *t, q_tensor_plan *p, const q_quantize_opts *o, q_bufs *b,
                                 char *err) {
    int64_t ne0 = (int64_t)t->ne[0];
    int64_t rows = (int64_t)(p->n_elems / t->ne[0]);
    uint64_t in_row = 0, out_row = 0, f32_bytes;
    if (!ggml_row_bytes(p->in_type, t->ne[0], &in_row) || !ggml_row_bytes(p->out_type, t->ne[0], &out_row) ||
        !hq_mul_u64(p->n_elems, 4, &f32_bytes))
        return hq_fail(err, HQ_ERR_INTERNAL, "tensor '%s': row size of %s/%s", t->name, ggml_type_name(p->in_type),
                       ggml_type_name(p->out_type));
    int nt = n_threads();
    uint64_t imp_bytes = (uint64_t)nt * (uint64_t)ne0 * 4;
    if (!grow((void **)&b->f32, &b->f32_cap, f32_bytes) || !grow((void **)&b->out, &b->out_cap, p->out_bytes) ||
        !grow((void **)&b->imp, &b->imp_cap, imp_bytes))
        return hq_fail(err, HQ_ERR_NOMEM, "tensor '%s': out of memory (%llu bytes as f32)", t->name,
                       (unsigned long long)f32_bytes);
    const uint8_t *src = t->data;
    float *x = b->f32;
    /* 1. to f32, then refuse NaN/Inf */
    int64_t bad_row = -1;
    HQ_OMP("omp parallel for schedule(static)")
    for (int64_t r = 0; r < rows; r++) {
        row_to_f32(p->in_type, src + (uint64_t)r * in_row, x + r * ne0, ne0);
        for (int64_t j = 0; j < ne0; j++)
            if (!isfinite(x[r * ne0 + j])) {
                HQ_OMP("omp critical")
                if (bad_row < 0 || r < bad_row) bad_row = r;
                break;
            }
    }
    if (bad_row >= 0) {
        int64_t j = 0;
        while (j < ne0 && isfinite(x[bad_row * ne0 + j])) j++;
        return hq_fail(err, HQ_ERR_FORMAT, "tensor '%s' has a non-finite value (%g) at row %lld, column %lld; refusing to quantize",
                       t->name, (double)x[bad_row * ne0 + j], (long long)bad_row, (long long)j);
    }
    /* 2. importance source */
    const q_imatrix_entry *ie = NULL;
    if (o->method != Q_METHOD_RTN && o->imatrix && !is_float_type(p->out_type))
        ie = q_imatrix_find(o->imatrix, t->name);
    p->method = ie ? Q_METHOD_IMATRIX : Q_METHOD_RTN;
    if (is_float_type(p->out_type)) p->method = Q_METHOD_RTN;
    int64_t uniform = 0;
    uint8_t *out = b->out;
    float *imps = b->imp;
    /* 3. GPTQ for plain matrices with a full Hessian */
    if (o->method == Q_METHOD_GPTQ && ie && ie->xtx && ie->n_mat == 1 && ie->counts[0] > 0) {
        hq_status st = q_gptq_quantize(p->out_type, x, rows, ne0, ie->xtx, o->gptq_damp, b->out, err);
        if (st == HQ_OK) {
            p->method = Q_METHOD_GPTQ;
            goto validate;
        }
        if (st != HQ_ERR_UNSUPPORTED) return st;
        /* q_gptq_quantize refuses unsupported types before touching x */
    }
    HQ_OMP("omp parallel for schedule(dynamic, 8) reduction(+ : uniform)")
    for (int64_t r = 0; r < rows; r++) {
        const float *imp = NULL;
        if (ie) {
            float *w = imps + (int64_t)thread_id() * ne0;
            if (!q_imatrix_row_importance(ie, r, w) && ie->n_mat > 1 && p->role != Q_ROLE_EXPERT_UP) uniform++;
            imp = w;
        }
        row_from_f32(p->out_type, x + r * ne0, out + (uint64_t)r * out_row, ne0, imp, false);
    }
    p->uniform_rows = uniform;
validate:
    if (block_quantized(p->out_type)) {
        /* like ggml_validate_row_data: every dequantized value finite */
        int64_t bad = -1;
        HQ_OMP("omp parallel")
        {
            float *w = imps + (int64_t)thread_id() * ne0;
            HQ_OMP("omp for schedule(static)")
            for (int64_t r = 0; r < rows; r++) {
                row_to_f32(p->out_type, out + (uint64_t)r * out_row, w, ne0);
                for (int64_t j = 0; j < ne0; j++)
                    if (!isfinite(w[j])) {
                        HQ_OMP("omp critical")
                        bad = r;
                        break;
                    }
            }
        }
        if (bad >= 0)
            return hq_fail(err, HQ_ERR_INTERNAL, "tensor '%s': %s row %lld dequantizes to a non-finite value",
                           t->name, ggml_type_name(p->out_type), (long long)bad);
    }
    return HQ_OK;
}

hq_status q_quantize_file(const char *in_path, const char *out_path, const q_quantize_opts *o,
                          q_quantize_report *rep, char *err) {
    memset(rep, 0, sizeof *rep);
    double t0 = hq_now();
    fmt_gguf *g = NULL;
    fmt_gguf_writer *w = NULL;
    q_tensor_desc *desc = NULL;
    q_choice *ch = NULL;
    q_tensor_plan *plan = NULL;
    q_bufs b = {0};
    hq_out out = {0};
    bool out_open = false;
    hq_status st;
    if (!o->policy) return hq_fail(err, HQ_ERR_ARG, "quantize: no policy");
    if (o->method != Q_METHOD_RTN && !o->imatrix)
        return hq_fail(err, HQ_ERR_ARG, "--method %s needs --imatrix FILE", q_method_name(o->method));
    if ((st = fmt_gguf_open(in_path, &g, err))) return st;
    if ((st = rt_model_check_metadata(g, err))) goto done; /* runtime/model.c: the loader's own checks */
    fmt_gguf_str gt;
    if (fmt_gguf_get_str(g, "general.type", &gt) && gt.len == 7 && !memcmp(gt.s, "imatrix", 7)) {
        st = hq_fail(err, HQ_ERR_ARG, "%s: is an imatrix file, not a model", in_path);
        goto done;
    }
    uint64_t n = fmt_gguf_n_tensors(g);
    desc = hq_calloc(n ? n : 1, sizeof *desc);
    ch = hq_calloc(n ? n : 1, sizeof *ch);
    plan = hq_calloc(n ? n : 1, sizeof *plan);
    if (!desc || !ch || !plan) {
        st = hq_fail(err, HQ_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (uint64_t i = 0; i < n; i++) {
        const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
        desc[i] = (q_tensor_desc){t->name, t->n_dims, {t->ne[0], t->ne[1], t->ne[2], t->ne[3]}, t->type};
    }
    bool tied = false;
    fmt_gguf_str arch;
    if (fmt_gguf_get_str(g, "general.architecture", &arch) && arch.len < 32) {
        char key[80];
        snprintf(key, sizeof key, "%.*s.tie_word_embeddings", (int)arch.len, arch.s);
        fmt_gguf_get_bool(g, key, &tied);
    }
    q_model_info mi = {.has_imatrix = o->imatrix != NULL, .tied = tied || !fmt_gguf_find_tensor(g, "output.weight")};
    if ((st = q_policy_choose(o->policy, desc, n, &mi, ch, err))) goto done;
    if (o->imatrix &&
        (st = q_imatrix_check_model(o->imatrix, g, o->imatrix_label ? o->imatrix_label : "imatrix", err)))
        goto done;
    if (o->imatrix && o->imatrix->model_fp && o->imatrix->model_fp != q_model_fingerprint(g))
        rep->imatrix_other_model = true;

    /* plan: types, sizes, refusals */
    bool any_block = false;
    for (uint64_t i = 0; i < n; i++) {
        const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
        q_tensor_plan *p = &plan[i];
        snprintf(p->name, sizeof p->name, "%s", t->name);
        p->role = ch[i].role;
        p->group = q_role_group(ch[i].role, t->name);
        p->n_dims = t->n_dims;
        memcpy(p->ne, t->ne, sizeof p->ne);
        p->n_elems = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; /* the reader checked it fits */
        p->in_type = t->type;
        p->out_type = ch[i].quantize ? ch[i].type : t->type;
        p->wanted_type = ch[i].wanted;
        p->fallback = ch[i].fallback;
        p->overridden = ch[i].overridden;
        p->in_bytes = t->nbytes;
        p->converted = p->out_type != p->in_type;
        if (p->converted && block_quantized(p->in_type) && !o->allow_requantize) {
            st = hq_fail(err, HQ_ERR_UNSUPPORTED,
                         "%s: tensor '%s' is already quantized (%s); requantizing to %s loses accuracy "
                         "(pass --allow-requantize to do it anyway)",
                         in_path, t->name, ggml_type_name(p->in_type), ggml_type_name(p->out_type));
            goto done;
        }
        if (p->converted && !can_dequant(p->in_type)) {
            st = hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s which cannot be converted", in_path,
                         t->name, ggml_type_name(p->in_type));
            goto done;
        }
        if (block_quantized(p->out_type)) any_block = true;
        p->method = (p->converted && !is_float_type(p->out_type)) ? o->method : Q_METHOD_RTN;
        if (p->method != Q_METHOD_RTN && !q_imatrix_find(o->imatrix, t->name)) {
            p->method = Q_METHOD_RTN;
            rep->n_no_imatrix++;
        }
        if (p->method == Q_METHOD_GPTQ) {
            const q_imatrix_entry *ie = q_imatrix_find(o->imatrix, t->name);
            if (!ie->xtx || ie->n_mat != 1) p->method = Q_METHOD_IMATRIX;
        }
    }

    /* writer: KVs, then every tensor info, so the exact size is known */
    if ((st = fmt_gguf_writer_init(&w, fmt_gguf_alignment(g), err))) goto done;
    rep->ftype = q_policy_ftype(o->policy);
    bool set_ft = false, set_qv = false;
    for (uint64_t i = 0; i < fmt_gguf_n_kv(g); i++) { /* same order; two keys rewritten in place */
        const fmt_gguf_kv *kv = fmt_gguf_kv_at(g, i);
        if (!strcmp(kv->key, "general.file_type")) {
            st = fmt_gguf_set_u32(w, kv->key, rep->ftype, err);
            set_ft = true;
        } else if (!strcmp(kv->key, "general.quantization_version")) {
            if (any_block) st = fmt_gguf_set_u32(w, kv->key, 2, err);
            set_qv = true;
        } else {
            st = fmt_gguf_copy_kv(w, kv, err);
        }
        if (st) goto done;
    }
    if (!set_ft && (st = fmt_gguf_set_u32(w, "general.file_type", rep->ftype, err))) goto done;
    if (!set_qv && any_block && (st = fmt_gguf_set_u32(w, "general.quantization_version", 2, err))) goto done;
    for (uint64_t i = 0; i < n; i++) {
        q_tensor_plan *p = &plan[i];
        if ((st = fmt_gguf_add_tensor(w, p->name, p->out_type, p->n_dims, p->ne, err))) goto done;
        p->out_bytes = fmt_gguf_writer_tensor_nbytes(w, i);
        rep->n_tensors++;
        rep->params += p->n_elems;
        rep->in_data_bytes += p->in_bytes;
        rep->out_data_bytes += p->out_bytes;
        rep->group[p->group].params += p->n_elems;
        rep->group[p->group].in_bytes += p->in_bytes;
        rep->group[p->group].out_bytes += p->out_bytes;
        if (p->converted) rep->n_converted++;
        if (p->fallback) rep->n_fallback++;
        if (o->on_tensor) o->on_tensor(o->ud, p, i, n, false);
    }
    {
        FILE *f = fopen(in_path, "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            long sz = ftell(f);
            rep->in_file_bytes = sz > 0 ? (uint64_t)sz : 0;
            fclose(f);
        }
    }
    rep->out_file_bytes = fmt_gguf_writer_total_size(w);
    if (o->dry_run) {
        rep->seconds = hq_now() - t0;
        st = HQ_OK;
        goto done;
    }

    if ((st = hq_out_open(&out, out_path, err))) goto done;
    out_open = true;
    if ((st = fmt_gguf_write_header(w, &out, err))) goto done;
    uint64_t done_bytes = 0;
    for (uint64_t i = 0; i < n; i++) {
        const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
        q_tensor_plan *p = &plan[i];
        if (!p->converted) {
            st = fmt_gguf_write_tensor(w, &out, i, t->data, t->nbytes, err); /* bit for bit */
        } else {
            if ((st = quantize_tensor(t, p, o, &b, err))) { /* its messages name the tensor; add the file */
                char e2[HQ_ERR_LEN];
                snprintf(e2, sizeof e2, "%s", err ? err : "");
                hq_fail(err, st, "%s: %s", in_path, e2);
                goto done;
            }
            if (p->method == Q_METHOD_GPTQ) rep->n_gptq++;
            rep->n_uniform_rows += (uint64_t)p->uniform_rows;
            st = fmt_gguf_write_tensor(w, &out, i, b.out, p->out_bytes, err);
        }
        if (st) goto done;
        done_bytes += p->in_bytes;
        hq_progress("quantize", done_bytes, rep->in_data_bytes, "bytes");
        if (o->on_tensor) o->on_tensor(o->ud, p, i, n, true);
    }
    hq_progress_done();
    if ((st = fmt_gguf_writer_finish(w, &out, err))) goto done;
    if (out.written != rep->out_file_bytes) {
        st = hq_fail(err, HQ_ERR_INTERNAL, "%s: wrote %llu bytes but planned %llu", out_path,
                     (unsigned long long)out.written, (unsigned long long)rep->out_file_bytes);
        goto done;
    }
    st = hq_out_commit(&out, err);
    out_open = false;
    rep->seconds = hq_now() - t0;
done:
    if (out_open) {
        hq_progress_done();
        hq_out_abort(&out);
    }
    hq_free(b.f32);
    hq_free(b.out);
    hq_free(b.imp);
    hq_free(desc);
    hq_free(ch);
    hq_free(plan);
    fmt_gguf_writer_free(w);
    fmt_gguf_close(g);
    return st;
}
