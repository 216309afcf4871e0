/* quant/imatrix.c — imatrix GGUF read/write; layout in imatrix.h */
#include "imatrix.h" // defines: q_imatrix_load, q_imatrix_save, q_imatrix_row_importance

#include "../runtime/logits_file.h" // defines: rt_fnv1a64

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char k_sum2[] = ".in_sum2", k_counts[] = ".counts", k_xtx[] = ".in_xtx";

void q_imatrix_free(q_imatrix *im) {
    if (!im) return;
    for (int64_t i = 0; i < im->n; i++) {
        hq_free(im->e[i].name);
        hq_free(im->e[i].in_sum2);
        hq_free(im->e[i].counts);
        hq_free(im->e[i].xtx);
    }
    hq_free(im->e);
    for (int64_t i = 0; i < im->n_datasets; i++) hq_free(im->datasets[i]);
    hq_free(im->datasets);
    hq_free(im);
}

const q_imatrix_entry *q_imatrix_find(const q_imatrix *im, const char *name) {
    if (!im) return NULL;
    for (int64_t i = 0; i < im->n; i++)
        if (!strcmp(im->e[i].name, name)) return &im->e[i];
    return NULL;
}

q_imatrix_entry *q_imatrix_add(q_imatrix *im, const char *name, int64_t ncols, int64_t n_mat, bool with_xtx) {
    if (ncols <= 0 || n_mat <= 0) return NULL;
    q_imatrix_entry *nv = hq_realloc(im->e, sizeof *nv * (size_t)(im->n + 1));
    if (!nv) return NULL;
    im->e = nv;
    q_imatrix_entry *e = &im->e[im->n];
    memset(e, 0, sizeof *e);
    e->name = hq_strdup(name);
    e->ncols = ncols;
    e->n_mat = n_mat;
    e->in_sum2 = hq_calloc((size_t)(ncols * n_mat), sizeof(float));
    e->counts = hq_calloc((size_t)n_mat, sizeof(float));
    if (with_xtx) e->xtx = hq_calloc((size_t)ncols * (size_t)ncols, sizeof(float));
    if (!e->name || !e->in_sum2 || !e->counts || (with_xtx && !e->xtx)) {
        hq_free(e->name);
        hq_free(e->in_sum2);
        hq_free(e->counts);
        hq_free(e->xtx);
        return NULL;
    }
    im->n++;
    return e;
}

static bool has_suffix(const char *s, const char *suf, size_t *stem) {
    size_t a = strlen(s), b = strlen(suf);
    if (a <= b || memcmp(s + a - b, suf, b) != 0) return false;
    *stem = a - b;
    return true;
}

static const fmt_gguf_tensor *find_suffixed(const fmt_gguf *g, const char *stem, size_t len, const char *suf) {
    char name[HQ_MAX_GGUF_NAME + 16];
    if (len + strlen(suf) >= sizeof name) return NULL;
    memcpy(name, stem, len);
    strcpy(name + len, suf);
    return fmt_gguf_find_tensor(g, name);
}

static hq_status copy_f32(const fmt_gguf_tensor *t, float *dst, uint64_t n, bool nonneg, const char *path,
                          char *err) {
    memcpy(dst, t->data, n * sizeof(float));
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(dst[i]) || (nonneg && dst[i] < 0))
            return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' element %llu is %g (must be finite%s)", path,
                           t->name, (unsigned long long)i, dst[i], nonneg ? " and >= 0" : "");
    return HQ_OK;
}

hq_status q_imatrix_load(const char *path, q_imatrix **out, char *err) {
    *out = NULL;
    fmt_gguf *g = NULL;
    hq_status st = fmt_gguf_open(path, &g, err);
    if (st) return st;
    q_imatrix *im = hq_calloc(1, sizeof *im);
    if (!im) {
        fmt_gguf_close(g);
        return hq_fail(err, HQ_ERR_NOMEM, "out of memory");
    }
    fmt_gguf_str ty;
    if (!fmt_gguf_get_str(g, "general.type", &ty) || ty.len != 7 || memcmp(ty.s, "imatrix", 7) != 0) {
        st = hq_fail(err, HQ_ERR_FORMAT, "%s: not an imatrix file (general.type is not \"imatrix\")", path);
        goto fail;
    }
    fmt_gguf_str fps;
    if (fmt_gguf_get_str(g, "hyquant.model_fingerprint", &fps) && fps.len == 16) {
        char hex[17];
        memcpy(hex, fps.s, 16);
        hex[16] = 0;
        char *end;
        uint64_t v = strtoull(hex, &end, 16);
        if (*end == 0) im->model_fp = v;
    }
    fmt_gguf_get_u32(g, "imatrix.chunk_count", &im->chunk_count);
    fmt_gguf_get_u32(g, "imatrix.chunk_size", &im->chunk_size);
    const fmt_gguf_kv *ds = fmt_gguf_find_kv(g, "imatrix.datasets");
    if (ds && ds->type == GGUF_VT_ARRAY && ds->v.arr.type == GGUF_VT_STRING && ds->v.arr.n < 4096) {
        im->datasets = hq_calloc(ds->v.arr.n ? ds->v.arr.n : 1, sizeof(char *));
        if (!im->datasets) goto oom;
        for (uint64_t i = 0; i < ds->v.arr.n; i++) {
            im->datasets[i] = hq_strndup(ds->v.arr.strs[i].s, ds->v.arr.strs[i].len);
            if (!im->datasets[i]) goto oom;
            im->n_datasets++;
        }
    }
    for (uint64_t i = 0; i < fmt_gguf_n_tensors(g); i++) {
        const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
        size_t stem;
        if (has_suffix(t->name, k_counts, &stem) || has_suffix(t->name, k_xtx, &stem) ||
            has_suffix(t->name, ".in_sum", &stem))
            continue; /* read with their .in_sum2 */
        if (!has_suffix(t->name, k_sum2, &stem)) {
            st = hq_fail(err, HQ_ERR_FORMAT, "%s: unexpected tensor '%s' in an imatrix file", path, t->name);
            goto fail;
        }
        if (t->type != GGML_T_F32 || t->n_dims > 2 || t->ne[0] == 0 || t->ne[1] == 0) {
            st = hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' must be a 2-D F32 [ncols, n_mat]", path, t->name);
            goto fail;
        }
        const fmt_gguf_tensor *c = find_suffixed(g, t->name, stem, k_counts);
        if (!c || c->type != GGML_T_F32 || c->ne[0] != 1 || c->ne[1] != t->ne[1] || c->ne[2] != 1) {
            st = hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' has no matching F32 [1, %llu] '%.*s%s'", path,
                         t->name, (unsigned long long)t->ne[1], (int)stem, t->name, k_counts);
            goto fail;
        }
        const fmt_gguf_tensor *x = find_suffixed(g, t->name, stem, k_xtx);
        if (x && (x->type != GGML_T_F32 || x->ne[0] != t->ne[0] || x->ne[1] != t->ne[0] || t->ne[1] != 1)) {
            st = hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' must be F32 [%llu, %llu]", path, x->name,
                         (unsigned long long)t->ne[0], (unsigned long long)t->ne[0]);
            goto fail;
        }
        char wname[HQ_MAX_GGUF_NAME + 1];
        memcpy(wname, t->name, stem);
        wname[stem] = 0;
        if (q_imatrix_find(im, wname)) {
            st = hq_fail(err, HQ_ERR_FORMAT, "%s: duplicate entry '%s'", path, wname);
            goto fail;
        }
        q_imatrix_entry *e = q_imatrix_add(im, wname, (int64_t)t->ne[0], (int64_t)t->ne[1], x != NULL);
        if (!e) goto oom;
        if ((st = copy_f32(t, e->in_sum2, t->ne[0] * t->ne[1], true, path, err)) ||
            (st = copy_f32(c, e->counts, t->ne[1], true, path, err)) ||
            (x && (st = copy_f32(x, e->xtx, x->ne[0] * x->ne[1], false, path, err))))
            goto fail;
    }
    if (im->n == 0) {
        st = hq_fail(err, HQ_ERR_FORMAT, "%s: imatrix file has no '*.in_sum2' entries", path);
        goto fail;
    }
    fmt_gguf_close(g);
    *out = im;
    return HQ_OK;
oom:
    st = hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", path);
fail:
    fmt_gguf_close(g);
    q_imatrix_free(im);
    return st;
}

static hq_status add_f32(fmt_gguf_writer *w, const char *stem, const char *suf, uint64_t ne0, uint64_t ne1,
                         char *err) {
    char name[HQ_MAX_GGUF_NAME + 1];
    size_t a = strlen(stem), b = strlen(suf);
    if (a + b > HQ_MAX_GGUF_NAME)
        return hq_fail(err, HQ_ERR_LIMIT, "imatrix: name '%s%s' longer than %d bytes", stem, suf, HQ_MAX_GGUF_NAME);
    memcpy(name, stem, a);
    memcpy(name + a, suf, b + 1);
    uint64_t ne[2] = {ne0, ne1};
    return fmt_gguf_add_tensor(w, name, GGML_T_F32, 2, ne, err);
}

hq_status q_imatrix_save(const q_imatrix *im, const char *path, char *err) {
    fmt_gguf_writer *w = NULL;
    hq_out o = {0};
    bool opened = false;
    hq_status st = fmt_gguf_writer_init(&w, GGUF_DEFAULT_ALIGNMENT, err);
    if (st) return st;
    if ((st = fmt_gguf_set_str(w, "general.type", "imatrix", 7, err)) ||
        (st = fmt_gguf_set_arr_str(w, "imatrix.datasets", (const char *const *)im->datasets,
                                   (uint64_t)im->n_datasets, err)) ||
        (st = fmt_gguf_set_u32(w, "imatrix.chunk_count", im->chunk_count, err)) ||
        (st = fmt_gguf_set_u32(w, "imatrix.chunk_size", im->chunk_size, err)))
        goto done;
    if (im->model_fp) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)im->model_fp);
        if ((st = fmt_gguf_set_str(w, "hyquant.model_fingerprint", hex, 16, err))) goto done;
    }
    for (int64_t i = 0; i < im->n; i++) {
        const q_imatrix_entry *e = &im->e[i];
        if ((st = add_f32(w, e->name, k_sum2, (uint64_t)e->ncols, (uint64_t)e->n_mat, err)) ||
            (st = add_f32(w, e->name, k_counts, 1, (uint64_t)e->n_mat, err)) ||
            (e->xtx && (st = add_f32(w, e->name, k_xtx, (uint64_t)e->ncols, (uint64_t)e->ncols, err))))
            goto done;
    }
    if ((st = hq_out_open(&o, path, err))) goto done;
    opened = true;
    if ((st = fmt_gguf_write_header(w, &o, err))) goto done;
    uint64_t ti = 0;
    for (int64_t i = 0; i < im->n; i++) {
        const q_imatrix_entry *e = &im->e[i];
        uint64_t nc = (uint64_t)e->ncols, nm = (uint64_t)e->n_mat;
        if ((st = fmt_gguf_write_tensor(w, &o, ti++, e->in_sum2, nc * nm * 4, err)) ||
            (st = fmt_gguf_write_tensor(w, &o, ti++, e->counts, nm * 4, err)) ||
            (e->xtx && (st = fmt_gguf_write_tensor(w, &o, ti++, e->xtx, nc * nc * 4, err))))
            goto done;
    }
    if ((st = fmt_gguf_writer_finish(w, &o, err))) goto done;
    st = hq_out_commit(&o, err);
    opened = false;
done:
    if (opened) hq_out_abort(&o);
    fmt_gguf_writer_free(w);
    return st;
}

uint64_t q_model_fingerprint(const fmt_gguf *g) {
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < fmt_gguf_n_tensors(g); i++) {
        const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
        uint8_t b[sizeof t->name + 4 + 32 + 3 * 64];
        size_t k = strlen(t->name);
        memcpy(b, t->name, k);
        memcpy(b + k, &t->type, 4), k += 4;
        memcpy(b + k, t->ne, 32), k += 32;
        const uint8_t *d = t->data;
        uint64_t s = t->nbytes < 64 ? t->nbytes : 64, at[3] = {0, (t->nbytes - s) / 2, t->nbytes - s};
        for (int j = 0; j < 3 && d; j++) memcpy(b + k, d + at[j], (size_t)s), k += (size_t)s;
        h ^= rt_fnv1a64(b, k); /* runtime/logits_file.h */
        h *= 1099511628211ull;
    }
    return h ? h : 1;
}

hq_status q_imatrix_check_model(const q_imatrix *im, const fmt_gguf *model, const char *im_label, char *err) {
    for (int64_t i = 0; i < im->n; i++) {
        const q_imatrix_entry *e = &im->e[i];
        const fmt_gguf_tensor *t = fmt_gguf_find_tensor(model, e->name);
        if (!t)
            return hq_fail(err, HQ_ERR_MISMATCH,
                           "%s: entry '%s' names no tensor of %s: the imatrix was made for a different model",
                           im_label, e->name, fmt_gguf_label(model));
        uint64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
        if ((uint64_t)e->ncols != t->ne[0] || (e->n_mat != 1 && (uint64_t)e->n_mat != rows))
            return hq_fail(err, HQ_ERR_MISMATCH,
                           "%s: entry '%s' has %lld columns x %lld matrices but the tensor in %s is [%llu, %llu]: "
                           "the imatrix was made for a different model",
                           im_label, e->name, (long long)e->ncols, (long long)e->n_mat, fmt_gguf_label(model),
                           (unsigned long long)t->ne[0], (unsigned long long)rows);
    }
    return HQ_OK;
}

bool q_imatrix_row_importance(const q_imatrix_entry *e, int64_t row, float *imp) {
    int64_t m = e->n_mat == 1 ? 0 : row;
    int64_t n = e->ncols;
    float c = (m >= 0 && m < e->n_mat) ? e->counts[m] : 0.0f;
    double sum = 0;
    if (c > 0) {
        const float *s = e->in_sum2 + m * n;
        for (int64_t j = 0; j < n; j++) sum += s[j];
    }
    if (!(c > 0) || !(sum > 0) || !isfinite(sum)) {
        for (int64_t j = 0; j < n; j++) imp[j] = 1.0f;
        return false;
    }
    /* mean x² per column; a floor keeps never-active columns from getting a
     * zero weight (the scale searches divide by Σw) */
    const float *s = e->in_sum2 + m * n;
    float floor = (float)(sum / (double)n / c * 1e-6);
    if (!(floor > 0)) floor = 1e-30f;
    float smax = 0;
    for (int64_t j = 0; j < n; j++) smax = s[j] > smax ? s[j] : smax;
    if (!isfinite(floor) || !isfinite(smax / c)) {
        /* counts so small that in_sum2/counts overflows float (hostile or
         * corrupt file): keep the proportions, mean 1 (found by fuzzing) */
        for (int64_t j = 0; j < n; j++) {
            float v = (float)((double)s[j] / sum * (double)n);
            imp[j] = v > 1e-6f ? v : 1e-6f;
        }
        return true;
    }
    for (int64_t j = 0; j < n; j++) {
        float v = s[j] / c;
        imp[j] = (isfinite(v) && v > floor) ? v : floor;
    }
    return true;
}
