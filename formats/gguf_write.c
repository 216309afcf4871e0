/* formats/gguf_write.c — streaming GGUF writer (see gguf.h): KVs and tensor
 * infos are collected first, then the header, then each tensor's bytes in
 * info order, packed and aligned as ggml's gguf.cpp expects. */
#include "gguf.h" // defines: fmt_gguf_writer_*, fmt_gguf_set_*, fmt_gguf_add_tensor, fmt_gguf_write_*
#include "gguf_internal.h"
#include "nameset.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key;
    uint32_t type;
    uint8_t *val; /* encoded value (after the type tag) */
    uint64_t val_len;
} wkv;

typedef struct {
    char name[HQ_MAX_GGUF_NAME + 1];
    uint32_t n_dims, type;
    uint64_t ne[4], offset, nbytes;
} wtensor;

struct fmt_gguf_writer {
    uint32_t alignment;
    bool has_alignment_kv;
    wkv *kvs;
    uint64_t n_kv, cap_kv;
    wtensor *ts;
    uint64_t n_t, cap_t;
    fmt_nameset kv_index, t_index;
    uint64_t data_size;   /* sum of padded tensor sizes */
    bool header_written;
    uint64_t cur, cur_done; /* tensor being written, bytes of it written */
    uint64_t pos;         /* bytes written so far */
};

static const char *wkv_key_get(const void *ctx, uint64_t i, uint64_t *len) {
    const wkv *kvs = ctx;
    *len = strlen(kvs[i].key);
    return kvs[i].key;
}
static const char *wt_name_get(const void *ctx, uint64_t i, uint64_t *len) {
    const wtensor *ts = ctx;
    *len = strlen(ts[i].name);
    return ts[i].name;
}

hq_status fmt_gguf_writer_init(fmt_gguf_writer **w, uint32_t alignment, char *err) {
    *w = NULL;
    if (alignment == 0) alignment = GGUF_DEFAULT_ALIGNMENT;
    if ((alignment & (alignment - 1)) || alignment > HQ_MAX_GGUF_ALIGN)
        return hq_fail(err, HQ_ERR_ARG, "gguf writer: alignment %u is not a power of two <= %d", alignment,
                       HQ_MAX_GGUF_ALIGN);
    fmt_gguf_writer *x = hq_calloc(1, sizeof *x);
    if (!x) return hq_fail(err, HQ_ERR_NOMEM, "gguf writer: out of memory");
    x->alignment = alignment;
    *w = x;
    return HQ_OK;
}

void fmt_gguf_writer_free(fmt_gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) hq_free(w->kvs[i].key), hq_free(w->kvs[i].val);
    hq_free(w->kvs);
    hq_free(w->ts);
    fmt_nameset_free(&w->kv_index);
    fmt_nameset_free(&w->t_index);
    hq_free(w);
}

/* byte builder for encoded values */
typedef struct {
    uint8_t *p;
    uint64_t n, cap;
    bool oom;
} bbuf;

static void bb_put(bbuf *b, const void *p, uint64_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        uint64_t nc = b->cap ? b->cap : 64;
        while (nc < b->n + n) nc *= 2;
        uint8_t *np = hq_realloc(b->p, (size_t)nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, p, (size_t)n);
    b->n += n;
}
static void bb_le(bbuf *b, uint64_t v, int n) {
    uint8_t t[8];
    for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * i));
    bb_put(b, t, (uint64_t)n);
}
static void bb_str(bbuf *b, const char *s, uint64_t n) {
    bb_le(b, n, 8);
    bb_put(b, s, n);
}

/* takes ownership of b->p */
static hq_status add_kv(fmt_gguf_writer *w, const char *key, uint32_t type, bbuf *b, char *err) {
    hq_status st = HQ_OK;
    size_t kl = key ? strlen(key) : 0;
    if (w->header_written) st = hq_fail(err, HQ_ERR_ARG, "gguf writer: key '%s' set after the header was written", key);
    else if (kl == 0 || kl > GGUF_MAX_KEY) st = hq_fail(err, HQ_ERR_ARG, "gguf writer: key of %zu bytes", kl);
    else if (b->oom) st = hq_fail(err, HQ_ERR_NOMEM, "gguf writer: out of memory for key '%s'", key);
    else if (w->n_kv >= HQ_MAX_GGUF_KV) st = hq_fail(err, HQ_ERR_LIMIT, "gguf writer: more than %d keys", HQ_MAX_GGUF_KV);
    else if (fmt_nameset_find(&w->kv_index, key, kl, wkv_key_get, w->kvs) != UINT64_MAX)
        st = hq_fail(err, HQ_ERR_ARG, "gguf writer: duplicate key '%s'", key);
    else if (strcmp(key, "general.alignment") == 0) {
        if (type != GGUF_VT_U32 || b->n != 4 || le_u(b->p, 4) != w->alignment)
            st = hq_fail(err, HQ_ERR_ARG, "gguf writer: general.alignment must be a u32 equal to the writer's alignment %u",
                         w->alignment);
    }
    if (!st && w->n_kv == w->cap_kv) {
        uint64_t nc = w->cap_kv ? w->cap_kv * 2 : 32;
        wkv *nk = hq_realloc(w->kvs, (size_t)nc * sizeof *nk);
        if (!nk) st = hq_fail(err, HQ_ERR_NOMEM, "gguf writer: out of memory");
        else w->kvs = nk, w->cap_kv = nc;
    }
    char *kc = NULL;
    if (!st && !(kc = hq_strdup(key))) st = hq_fail(err, HQ_ERR_NOMEM, "gguf writer: out of memory");
    if (!st) {
        wkv *k = &w->kvs[w->n_kv];
        k->key = kc;
        k->type = type;
        k->val = b->p;
        k->val_len = b->n;
        if (fmt_nameset_insert(&w->kv_index, w->n_kv, wkv_key_get, w->kvs, NULL) != 1) {
            st = hq_fail(err, HQ_ERR_NOMEM, "gguf writer: out of memory");
        } else {
            w->n_kv++;
            if (strcmp(key, "general.alignment") == 0) w->has_alignment_kv = true;
            return HQ_OK;
        }
    }
    hq_free(kc);
    hq_free(b->p);
    return st;
}

static hq_status set_scalar(fmt_gguf_writer *w, const char *key, uint32_t type, uint64_t bits, char *err) {
    bbuf b = {0};
    bb_le(&b, bits, k_vt_size[type]);
    return add_kv(w, key, type, &b, err);
}

hq_status fmt_gguf_set_u32(fmt_gguf_writer *w, const char *key, uint32_t v, char *err) {
    return set_scalar(w, key, GGUF_VT_U32, v, err);
}
hq_status fmt_gguf_set_i32(fmt_gguf_writer *w, const char *key, int32_t v, char *err) {
    return set_scalar(w, key, GGUF_VT_I32, (uint32_t)v, err);
}
hq_status fmt_gguf_set_u64(fmt_gguf_writer *w, const char *key, uint64_t v, char *err) {
    return set_scalar(w, key, GGUF_VT_U64, v, err);
}
hq_status fmt_gguf_set_f32(fmt_gguf_writer *w, const char *key, float v, char *err) {
    uint32_t u;
    memcpy(&u, &v, 4);
    return set_scalar(w, key, GGUF_VT_F32, u, err);
}
hq_status fmt_gguf_set_bool(fmt_gguf_writer *w, const char *key, bool v, char *err) {
    return set_scalar(w, key, GGUF_VT_BOOL, v ? 1 : 0, err);
}
hq_status fmt_gguf_set_str(fmt_gguf_writer *w, const char *key, const char *s, uint64_t len, char *err) {
    if (len > HQ_MAX_GGUF_STRING)
        return hq_fail(err, HQ_ERR_LIMIT, "gguf writer: key '%s': string of %llu bytes exceeds the limit", key,
                       (unsigned long long)len);
    bbuf b = {0};
    bb_str(&b, s, len);
    return add_kv(w, key, GGUF_VT_STRING, &b, err);
}

hq_status fmt_gguf_set_arr(fmt_gguf_writer *w, const char *key, uint32_t et, const void *data, uint64_t n,
                           char *err) {
    if (et >= GGUF_VT_COUNT || !k_vt_size[et])
        return hq_fail(err, HQ_ERR_ARG, "gguf writer: key '%s': array element type %u is not a numeric type", key, et);
    if (n > HQ_MAX_GGUF_ARRAY)
        return hq_fail(err, HQ_ERR_LIMIT, "gguf writer: key '%s': array of %llu elements exceeds the limit", key,
                       (unsigned long long)n);
    if (et == GGUF_VT_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1)
                return hq_fail(err, HQ_ERR_ARG, "gguf writer: key '%s': bool element %llu is not 0 or 1", key,
                               (unsigned long long)i);
    bbuf b = {0};
    bb_le(&b, et, 4);
    bb_le(&b, n, 8);
    bb_put(&b, data, n * k_vt_size[et]);
    return add_kv(w, key, GGUF_VT_ARRAY, &b, err);
}

hq_status fmt_gguf_set_arr_str(fmt_gguf_writer *w, const char *key, const char *const *s, uint64_t n, char *err) {
    if (n > HQ_MAX_GGUF_ARRAY)
        return hq_fail(err, HQ_ERR_LIMIT, "gguf writer: key '%s': array of %llu elements exceeds the limit", key,
                       (unsigned long long)n);
    bbuf b = {0};
    bb_le(&b, GGUF_VT_STRING, 4);
    bb_le(&b, n, 8);
    for (uint64_t i = 0; i < n; i++) bb_str(&b, s[i], strlen(s[i]));
    return add_kv(w, key, GGUF_VT_ARRAY, &b, err);
}

hq_status fmt_gguf_copy_kv(fmt_gguf_writer *w, const fmt_gguf_kv *kv, char *err) {
    uint32_t t = kv->type;
    bbuf b = {0};
    switch (t) {
    case GGUF_VT_U8: case GGUF_VT_U16: case GGUF_VT_U32: case GGUF_VT_U64: case GGUF_VT_BOOL:
        bb_le(&b, kv->v.u, k_vt_size[t]);
        break;
    case GGUF_VT_I8: case GGUF_VT_I16: case GGUF_VT_I32: case GGUF_VT_I64:
        bb_le(&b, (uint64_t)kv->v.i, k_vt_size[t]);
        break;
    case GGUF_VT_F32: {
        float f = (float)kv->v.f;
        uint32_t u;
        memcpy(&u, &f, 4);
        bb_le(&b, u, 4);
        break;
    }
    case GGUF_VT_F64: {
        uint64_t u;
        memcpy(&u, &kv->v.f, 8);
        bb_le(&b, u, 8);
        break;
    }
    case GGUF_VT_STRING: bb_str(&b, kv->v.str.s, kv->v.str.len); break;
    case GGUF_VT_ARRAY: {
        uint32_t et = kv->v.arr.type;
        if (et >= GGUF_VT_COUNT) return hq_fail(err, HQ_ERR_ARG, "gguf writer: key '%s': bad array type", kv->key);
        bb_le(&b, et, 4);
        bb_le(&b, kv->v.arr.n, 8);
        if (et == GGUF_VT_STRING && kv->v.arr.strs) {
            for (uint64_t i = 0; i < kv->v.arr.n; i++) bb_str(&b, kv->v.arr.strs[i].s, kv->v.arr.strs[i].len);
        } else if (k_vt_size[et]) {
            bb_put(&b, kv->v.arr.data, kv->v.arr.n * k_vt_size[et]);
        } else {
            bb_put(&b, kv->v.arr.data, kv->v.arr.nbytes); /* nested: raw as read */
        }
        break;
    }
    default: return hq_fail(err, HQ_ERR_ARG, "gguf writer: key '%s': unknown value type %u", kv->key, t);
    }
    return add_kv(w, kv->key, t, &b, err);
}

hq_status fmt_gguf_add_tensor(fmt_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                              const uint64_t *ne, char *err) {
    size_t nl = name ? strlen(name) : 0;
    if (w->header_written)
        return hq_fail(err, HQ_ERR_ARG, "gguf writer: tensor '%s' added after the header was written", name);
    if (nl == 0 || nl > HQ_MAX_GGUF_NAME)
        return hq_fail(err, HQ_ERR_ARG, "gguf writer: tensor name '%s' is empty or longer than %d bytes",
                       name ? name : "", HQ_MAX_GGUF_NAME);
    if (n_dims < 1 || n_dims > 4)
        return hq_fail(err, HQ_ERR_ARG, "gguf writer: tensor '%s' has %u dims (1..4 allowed)", name, n_dims);
    if (w->n_t >= HQ_MAX_TENSORS) return hq_fail(err, HQ_ERR_LIMIT, "gguf writer: more than %d tensors", HQ_MAX_TENSORS);
    const ggml_type_info *ti = ggml_type_get(type);
    if (!ti) return hq_fail(err, HQ_ERR_ARG, "gguf writer: tensor '%s' has unknown ggml type %u", name, type);
    wtensor t;
    memset(&t, 0, sizeof t);
    memcpy(t.name, name, nl);
    t.n_dims = n_dims;
    t.type = type;
    int64_t nel = 1;
    for (int d = 0; d < 4; d++) t.ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        t.ne[d] = ne[d];
        if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX || !hq_mul_i64(nel, (int64_t)ne[d], &nel))
            return hq_fail(err, HQ_ERR_ARG, "gguf writer: tensor '%s' dim %u = %llu is zero or overflows", name, d,
                           (unsigned long long)ne[d]);
    }
    if (!ggml_tensor_bytes(type, t.ne[0], (uint64_t)nel / t.ne[0], &t.nbytes))
        return hq_fail(err, HQ_ERR_ARG, "gguf writer: tensor '%s': row length %llu is not a multiple of %s's block %u",
                       name, (unsigned long long)t.ne[0], ti->name, ti->blck);
    uint64_t padded, nds;
    if (!hq_align_u64(t.nbytes, w->alignment, &padded) || !hq_add_u64(w->data_size, padded, &nds))
        return hq_fail(err, HQ_ERR_ARG, "gguf writer: tensor '%s': data size overflows", name);
    if (fmt_nameset_find(&w->t_index, name, nl, wt_name_get, w->ts) != UINT64_MAX)
        return hq_fail(err, HQ_ERR_ARG, "gguf writer: duplicate tensor name '%s'", name);
    if (w->n_t == w->cap_t) {
        uint64_t nc = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *nt = hq_realloc(w->ts, (size_t)nc * sizeof *nt);
        if (!nt) return hq_fail(err, HQ_ERR_NOMEM, "gguf writer: out of memory");
        w->ts = nt;
        w->cap_t = nc;
    }
    t.offset = w->data_size;
    w->ts[w->n_t] = t;
    if (fmt_nameset_insert(&w->t_index, w->n_t, wt_name_get, w->ts, NULL) != 1)
        return hq_fail(err, HQ_ERR_NOMEM, "gguf writer: out of memory");
    w->n_t++;
    w->data_size = nds;
    return HQ_OK;
}

uint64_t fmt_gguf_writer_n_tensors(const fmt_gguf_writer *w) { return w->n_t; }
uint64_t fmt_gguf_writer_tensor_nbytes(const fmt_gguf_writer *w, uint64_t i) { return i < w->n_t ? w->ts[i].nbytes : 0; }

static uint64_t header_bytes(const fmt_gguf_writer *w) {
    uint64_t n = 24;
    for (uint64_t i = 0; i < w->n_kv; i++) n += 8 + strlen(w->kvs[i].key) + 4 + w->kvs[i].val_len;
    for (uint64_t i = 0; i < w->n_t; i++) n += 8 + strlen(w->ts[i].name) + 4 + 8ull * w->ts[i].n_dims + 4 + 8;
    return n;
}

uint64_t fmt_gguf_writer_total_size(const fmt_gguf_writer *w) {
    uint64_t h = 0;
    hq_align_u64(header_bytes(w), w->alignment, &h);
    return h + w->data_size;
}

hq_status fmt_gguf_write_header(fmt_gguf_writer *w, hq_out *o, char *err) {
    if (w->header_written) return hq_fail(err, HQ_ERR_ARG, "gguf writer: header written twice");
    if (w->alignment != GGUF_DEFAULT_ALIGNMENT && !w->has_alignment_kv)
        return hq_fail(err, HQ_ERR_ARG, "gguf writer: alignment %u needs general.alignment set", w->alignment);
    bbuf b = {0};
    bb_put(&b, "GGUF", 4);
    bb_le(&b, 3, 4);
    bb_le(&b, w->n_t, 8);
    bb_le(&b, w->n_kv, 8);
    hq_status st = HQ_OK;
    for (uint64_t i = 0; i < w->n_kv && !st; i++) {
        const wkv *k = &w->kvs[i];
        bb_str(&b, k->key, strlen(k->key));
        bb_le(&b, k->type, 4);
        bb_put(&b, k->val, k->val_len);
        if (b.n >= (1u << 20) && !b.oom) { /* flush big metadata (tokenizer json) as we go */
            st = hq_out_write(o, b.p, (size_t)b.n, err);
            w->pos += b.n;
            b.n = 0;
        }
    }
    for (uint64_t i = 0; i < w->n_t && !st; i++) {
        const wtensor *t = &w->ts[i];
        bb_str(&b, t->name, strlen(t->name));
        bb_le(&b, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++) bb_le(&b, t->ne[d], 8);
        bb_le(&b, t->type, 4);
        bb_le(&b, t->offset, 8);
    }
    if (!st && b.oom) st = hq_fail(err, HQ_ERR_NOMEM, "gguf writer: out of memory");
    if (!st) {
        st = hq_out_write(o, b.p, (size_t)b.n, err);
        w->pos += b.n;
    }
    hq_free(b.p);
    if (st) return st;
    uint64_t h = 0;
    hq_align_u64(w->pos, w->alignment, &h);
    if ((st = hq_out_zeros(o, h - w->pos, err))) return st;
    w->pos = h;
    w->header_written = true;
    return HQ_OK;
}

hq_status fmt_gguf_write_tensor_part(fmt_gguf_writer *w, hq_out *o, uint64_t i, const void *data, uint64_t nbytes,
                                     char *err) {
    if (!w->header_written) return hq_fail(err, HQ_ERR_ARG, "gguf writer: tensor data before the header");
    if (i >= w->n_t || i != w->cur)
        return hq_fail(err, HQ_ERR_ARG, "gguf writer: tensor %llu written out of order (expected %llu)",
                       (unsigned long long)i, (unsigned long long)w->cur);
    wtensor *t = &w->ts[i];
    if (nbytes > t->nbytes - w->cur_done)
        return hq_fail(err, HQ_ERR_ARG, "gguf writer: tensor '%s' gets more than its %llu bytes", t->name,
                       (unsigned long long)t->nbytes);
    hq_status st = hq_out_write(o, data, (size_t)nbytes, err);
    if (st) return st;
    w->pos += nbytes;
    w->cur_done += nbytes;
    if (w->cur_done == t->nbytes) {
        uint64_t p = 0;
        hq_align_u64(t->nbytes, w->alignment, &p);
        if ((st = hq_out_zeros(o, p - t->nbytes, err))) return st;
        w->pos += p - t->nbytes;
        w->cur++;
        w->cur_done = 0;
    }
    return HQ_OK;
}

hq_status fmt_gguf_write_tensor(fmt_gguf_writer *w, hq_out *o, uint64_t i, const void *data, uint64_t nbytes,
                                char *err) {
    if (i < w->n_t && (w->cur_done != 0 || nbytes != w->ts[i].nbytes))
        return hq_fail(err, HQ_ERR_ARG, "gguf writer: tensor '%s' needs exactly %llu bytes, got %llu", w->ts[i].name,
                       (unsigned long long)w->ts[i].nbytes, (unsigned long long)nbytes);
    return fmt_gguf_write_tensor_part(w, o, i, data, nbytes, err);
}

hq_status fmt_gguf_writer_finish(fmt_gguf_writer *w, hq_out *o, char *err) {
    (void)o;
    if (!w->header_written) return hq_fail(err, HQ_ERR_ARG, "gguf writer: finished before the header was written");
    if (w->cur != w->n_t)
        return hq_fail(err, HQ_ERR_ARG, "gguf writer: only %llu of %llu tensors were written",
                       (unsigned long long)w->cur, (unsigned long long)w->n_t);
    if (w->pos != fmt_gguf_writer_total_size(w))
        return hq_fail(err, HQ_ERR_INTERNAL, "gguf writer: wrote %llu bytes, expected %llu", (unsigned long long)w->pos,
                       (unsigned long long)fmt_gguf_writer_total_size(w));
    return HQ_OK;
}
