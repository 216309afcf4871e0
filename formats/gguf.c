/* formats/gguf.c — strict GGUF reader and streaming writer (see gguf.h).
 *
 * Reader decisions beyond ggml's gguf.cpp:
 *  - versions 2 and 3 are read (same layout); 1 and others are refused, and a
 *    byte-swapped version (big-endian file) is named as such;
 *  - keys are 1..GGUF_MAX_KEY bytes without NUL; tensor names 1..63 bytes
 *    without NUL (we keep NUL-terminated copies, an embedded NUL would alias);
 *  - n_dims is 1..4 and every ne >= 1 (ggml allows empty tensors; no model
 *    file we read or write has one, so a 0 is treated as corruption);
 *  - tensors may be stored in any order with any gaps, but their byte ranges
 *    must not overlap (ggml additionally requires them packed in info order;
 *    our writer always produces that layout).
 */
#include "gguf.h" // defines: fmt_gguf_*
#include "nameset.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t k_vt_size[GGUF_VT_COUNT] = {
    [GGUF_VT_U8] = 1,  [GGUF_VT_I8] = 1,  [GGUF_VT_U16] = 2,  [GGUF_VT_I16] = 2, [GGUF_VT_U32] = 4,
    [GGUF_VT_I32] = 4, [GGUF_VT_F32] = 4, [GGUF_VT_BOOL] = 1, [GGUF_VT_STRING] = 0, [GGUF_VT_ARRAY] = 0,
    [GGUF_VT_U64] = 8, [GGUF_VT_I64] = 8, [GGUF_VT_F64] = 8,
};
static const char *const k_vt_name[GGUF_VT_COUNT] = {"u8",  "i8",  "u16",    "i16",   "u32", "i32", "f32",
                                                     "bool", "string", "array", "u64", "i64", "f64"};

static uint64_t le_u(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* ================= reader ================= */

struct fmt_gguf {
    hq_map map;
    const uint8_t *buf;
    uint64_t len;
    char *label;
    uint32_t version;
    fmt_gguf_kv *kvs;
    uint64_t n_kv;
    fmt_gguf_tensor *tensors;
    uint64_t n_tensors;
    uint32_t alignment;
    uint64_t data_offset;
    fmt_nameset kv_index, t_index;
};

typedef struct {
    const uint8_t *b;
    uint64_t len, pos;
    const char *label;
    char *err;
} gcur;

static uint64_t cur_left(const gcur *c) { return c->len - c->pos; }

static hq_status cur_need(gcur *c, uint64_t n, const char *what) {
    if (n > cur_left(c))
        return hq_fail(c->err, HQ_ERR_FORMAT, "%s: %s needs %llu bytes at offset %llu but the file ends at %llu",
                       c->label, what, (unsigned long long)n, (unsigned long long)c->pos, (unsigned long long)c->len);
    return HQ_OK;
}

static hq_status cur_u32(gcur *c, uint32_t *v, const char *what) {
    hq_status st = cur_need(c, 4, what);
    if (st) return st;
    *v = (uint32_t)le_u(c->b + c->pos, 4);
    c->pos += 4;
    return HQ_OK;
}

static hq_status cur_u64(gcur *c, uint64_t *v, const char *what) {
    hq_status st = cur_need(c, 8, what);
    if (st) return st;
    *v = le_u(c->b + c->pos, 8);
    c->pos += 8;
    return HQ_OK;
}

static hq_status cur_str(gcur *c, fmt_gguf_str *s, uint64_t max, const char *what) {
    uint64_t n;
    hq_status st = cur_u64(c, &n, what);
    if (st) return st;
    if (n > max)
        return hq_fail(c->err, max == HQ_MAX_GGUF_STRING ? HQ_ERR_LIMIT : HQ_ERR_FORMAT,
                       "%s: %s of %llu bytes at offset %llu exceeds the limit of %llu", c->label, what,
                       (unsigned long long)n, (unsigned long long)(c->pos - 8), (unsigned long long)max);
    if ((st = cur_need(c, n, what))) return st;
    s->s = (const char *)c->b + c->pos;
    s->len = n;
    c->pos += n;
    return HQ_OK;
}

/* Parses an array body (after the ARRAY type tag) into kv->v.arr when kv is
 * non-NULL (top level) or just validates it (nested). */
static hq_status parse_array(gcur *c, const char *key, fmt_gguf_kv *kv, int depth) {
    uint32_t et;
    uint64_t n;
    hq_status st;
    if ((st = cur_u32(c, &et, "array element type")) || (st = cur_u64(c, &n, "array count"))) return st;
    if (et >= GGUF_VT_COUNT)
        return hq_fail(c->err, HQ_ERR_FORMAT, "%s: key '%s': array element type %u is unknown", c->label, key, et);
    if (n > HQ_MAX_GGUF_ARRAY)
        return hq_fail(c->err, HQ_ERR_LIMIT, "%s: key '%s': array of %llu elements exceeds the limit of %llu", c->label,
                       key, (unsigned long long)n, (unsigned long long)HQ_MAX_GGUF_ARRAY);
    uint64_t start = c->pos;
    if (kv) {
        kv->v.arr.type = et;
        kv->v.arr.n = n;
        kv->v.arr.data = c->b + start;
    }
    if (k_vt_size[et]) {
        uint64_t nb = n * k_vt_size[et]; /* n <= 2^30: no overflow */
        if ((st = cur_need(c, nb, "array data"))) return st;
        if (et == GGUF_VT_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (c->b[c->pos + i] > 1)
                    return hq_fail(c->err, HQ_ERR_FORMAT, "%s: key '%s': bool array element %llu is %u, not 0 or 1",
                                   c->label, key, (unsigned long long)i, c->b[c->pos + i]);
        c->pos += nb;
    } else if (et == GGUF_VT_STRING) {
        if (n > cur_left(c) / 8)
            return hq_fail(c->err, HQ_ERR_FORMAT, "%s: key '%s': %llu strings cannot fit in the rest of the file",
                           c->label, key, (unsigned long long)n);
        fmt_gguf_str *strs = NULL;
        if (kv) {
            strs = hq_malloc_array((size_t)(n ? n : 1), sizeof *strs);
            if (!strs) return hq_fail(c->err, HQ_ERR_NOMEM, "%s: key '%s': out of memory", c->label, key);
            kv->v.arr.strs = strs;
        }
        for (uint64_t i = 0; i < n; i++) {
            fmt_gguf_str s;
            if ((st = cur_str(c, &s, HQ_MAX_GGUF_STRING, "array string"))) return st;
            if (strs) strs[i] = s;
        }
    } else { /* nested array */
        if (depth + 1 >= GGUF_MAX_ARRAY_DEPTH)
            return hq_fail(c->err, HQ_ERR_LIMIT, "%s: key '%s': arrays nested deeper than %d", c->label, key,
                           GGUF_MAX_ARRAY_DEPTH);
        if (n > cur_left(c) / 12)
            return hq_fail(c->err, HQ_ERR_FORMAT, "%s: key '%s': %llu nested arrays cannot fit in the rest of the file",
                           c->label, key, (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++)
            if ((st = parse_array(c, key, NULL, depth + 1))) return st;
    }
    if (kv) kv->v.arr.nbytes = c->pos - start;
    return HQ_OK;
}

static hq_status parse_value(gcur *c, fmt_gguf_kv *kv) {
    hq_status st;
    uint32_t t = kv->type;
    if (t >= GGUF_VT_COUNT)
        return hq_fail(c->err, HQ_ERR_FORMAT, "%s: key '%s' has unknown value type %u", c->label, kv->key, t);
    if (t == GGUF_VT_STRING) return cur_str(c, &kv->v.str, HQ_MAX_GGUF_STRING, "string value");
    if (t == GGUF_VT_ARRAY) return parse_array(c, kv->key, kv, 0);
    int sz = k_vt_size[t];
    if ((st = cur_need(c, (uint64_t)sz, "value"))) return st;
    uint64_t u = le_u(c->b + c->pos, sz);
    c->pos += (uint64_t)sz;
    switch (t) {
    case GGUF_VT_U8: case GGUF_VT_U16: case GGUF_VT_U32: case GGUF_VT_U64: kv->v.u = u; break;
    case GGUF_VT_I8: kv->v.i = (int8_t)u; break;
    case GGUF_VT_I16: kv->v.i = (int16_t)u; break;
    case GGUF_VT_I32: kv->v.i = (int32_t)u; break;
    case GGUF_VT_I64: kv->v.i = (int64_t)u; break;
    case GGUF_VT_F32: { uint32_t b = (uint32_t)u; float f; memcpy(&f, &b, 4); kv->v.f = f; break; }
    case GGUF_VT_F64: { double d; memcpy(&d, &u, 8); kv->v.f = d; break; }
    case GGUF_VT_BOOL:
        if (u > 1)
            return hq_fail(c->err, HQ_ERR_FORMAT, "%s: key '%s': bool value %llu is not 0 or 1", c->label, kv->key,
                           (unsigned long long)u);
        kv->v.u = u;
        break;
    }
    return HQ_OK;
}

static const char *kv_key_get(const void *ctx, uint64_t i, uint64_t *len) {
    const fmt_gguf_kv *kvs = ctx;
    *len = strlen(kvs[i].key);
    return kvs[i].key;
}
static const char *t_name_get(const void *ctx, uint64_t i, uint64_t *len) {
    const fmt_gguf_tensor *ts = ctx;
    *len = strlen(ts[i].name);
    return ts[i].name;
}

static int cmp_u64_pair(const void *a, const void *b) {
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

static hq_status gguf_parse(fmt_gguf *g, char *err) {
    gcur cc = {g->buf, g->len, 0, g->label, err}, *c = &cc;
    hq_status st;
    if (g->len < 24 || memcmp(g->buf, "GGUF", 4) != 0)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: not a GGUF file (bad magic or shorter than 24 bytes)", g->label);
    c->pos = 4;
    uint32_t ver;
    uint64_t n_t, n_kv;
    cur_u32(c, &ver, "version");
    cur_u64(c, &n_t, "tensor count");
    cur_u64(c, &n_kv, "kv count");
    if (ver != 2 && ver != 3) {
        if (ver == 0x03000000u || ver == 0x02000000u)
            return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: big-endian GGUF files are not supported", g->label);
        return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: GGUF version %u is not supported (2 and 3 are)", g->label, ver);
    }
    g->version = ver;
    if (n_t > HQ_MAX_TENSORS)
        return hq_fail(err, HQ_ERR_LIMIT, "%s: %llu tensors exceeds the limit of %d", g->label, (unsigned long long)n_t,
                       HQ_MAX_TENSORS);
    if (n_kv > HQ_MAX_GGUF_KV)
        return hq_fail(err, HQ_ERR_LIMIT, "%s: %llu metadata pairs exceeds the limit of %d", g->label,
                       (unsigned long long)n_kv, HQ_MAX_GGUF_KV);
    /* smallest possible encodings: kv 8+1+4+1 bytes, tensor info 8+1+4+8+4+8 */
    if (n_kv * 14 + n_t * 33 > g->len - 24)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: %llu metadata pairs and %llu tensors cannot fit in %llu bytes",
                       g->label, (unsigned long long)n_kv, (unsigned long long)n_t, (unsigned long long)g->len);
    g->kvs = hq_calloc((size_t)(n_kv ? n_kv : 1), sizeof *g->kvs);
    g->tensors = hq_calloc((size_t)(n_t ? n_t : 1), sizeof *g->tensors);
    if (!g->kvs || !g->tensors) return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", g->label);
    for (uint64_t i = 0; i < n_kv; i++) {
        fmt_gguf_str k;
        if ((st = cur_str(c, &k, GGUF_MAX_KEY, "key"))) return st;
        if (k.len == 0 || memchr(k.s, 0, (size_t)k.len))
            return hq_fail(err, HQ_ERR_FORMAT, "%s: metadata key %llu is empty or contains a NUL byte", g->label,
                           (unsigned long long)i);
        fmt_gguf_kv *kv = &g->kvs[i];
        kv->key = hq_strndup(k.s, (size_t)k.len);
        if (!kv->key) return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", g->label);
        g->n_kv = i + 1; /* owned from here on */
        int r = fmt_nameset_insert(&g->kv_index, i, kv_key_get, g->kvs, NULL);
        if (r < 0) return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", g->label);
        if (r == 0) return hq_fail(err, HQ_ERR_FORMAT, "%s: duplicate metadata key '%s'", g->label, kv->key);
        if ((st = cur_u32(c, &kv->type, "value type"))) return st;
        if ((st = parse_value(c, kv))) return st;
    }
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const fmt_gguf_kv *al = fmt_gguf_find_kv(g, "general.alignment");
    if (al) {
        if (al->type != GGUF_VT_U32)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: general.alignment has type %s, not u32", g->label,
                           k_vt_name[al->type]);
        if (al->v.u == 0 || (al->v.u & (al->v.u - 1)) || al->v.u > HQ_MAX_GGUF_ALIGN)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: general.alignment %llu is not a power of two in [1, %d]", g->label,
                           (unsigned long long)al->v.u, HQ_MAX_GGUF_ALIGN);
        g->alignment = (uint32_t)al->v.u;
    }
    for (uint64_t i = 0; i < n_t; i++) {
        fmt_gguf_tensor *t = &g->tensors[i];
        fmt_gguf_str nm;
        if ((st = cur_str(c, &nm, UINT64_MAX, "tensor name"))) return st;
        if (nm.len == 0 || nm.len > HQ_MAX_GGUF_NAME || memchr(nm.s, 0, (size_t)nm.len))
            return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor %llu has a name of %llu bytes (1..%d without NUL allowed)",
                           g->label, (unsigned long long)i, (unsigned long long)nm.len, HQ_MAX_GGUF_NAME);
        memcpy(t->name, nm.s, (size_t)nm.len);
        t->name[nm.len] = 0;
        int r = fmt_nameset_insert(&g->t_index, i, t_name_get, g->tensors, NULL);
        if (r < 0) return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", g->label);
        if (r == 0) return hq_fail(err, HQ_ERR_FORMAT, "%s: duplicate tensor name '%s'", g->label, t->name);
        g->n_tensors = i + 1;
        if ((st = cur_u32(c, &t->n_dims, "n_dims"))) return st;
        if (t->n_dims < 1 || t->n_dims > 4)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' has %u dims (1..4 allowed)", g->label, t->name,
                           t->n_dims);
        int64_t nel = 1;
        for (int d = 0; d < 4; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if ((st = cur_u64(c, &t->ne[d], "tensor dim"))) return st;
            if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX || !hq_mul_i64(nel, (int64_t)t->ne[d], &nel))
                return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' has dim %u = %llu (zero or element count overflow)",
                               g->label, t->name, d, (unsigned long long)t->ne[d]);
        }
        if ((st = cur_u32(c, &t->type, "tensor type"))) return st;
        const ggml_type_info *ti = ggml_type_get(t->type);
        if (!ti) return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' has unknown ggml type %u", g->label, t->name, t->type);
        if (t->ne[0] % ti->blck)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' of type %s has row length %llu, not a multiple of %u",
                           g->label, t->name, ti->name, (unsigned long long)t->ne[0], ti->blck);
        uint64_t rows = (uint64_t)nel / t->ne[0];
        if (!ggml_tensor_bytes(t->type, t->ne[0], rows, &t->nbytes))
            return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s': byte size overflows", g->label, t->name);
        if ((st = cur_u64(c, &t->offset, "tensor offset"))) return st;
        if (t->offset % g->alignment)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' offset %llu is not a multiple of the alignment %u",
                           g->label, t->name, (unsigned long long)t->offset, g->alignment);
    }
    if (!hq_align_u64(c->pos, g->alignment, &g->data_offset))
        return hq_fail(err, HQ_ERR_FORMAT, "%s: data offset overflows", g->label);
    if (n_t == 0) return HQ_OK;
    if (g->data_offset > g->len)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: data section at %llu starts past the end of the %llu-byte file",
                       g->label, (unsigned long long)g->data_offset, (unsigned long long)g->len);
    uint64_t avail = g->len - g->data_offset;
    uint64_t *ord = hq_malloc_array((size_t)n_t, 2 * sizeof(uint64_t));
    if (!ord) return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", g->label);
    for (uint64_t i = 0; i < n_t; i++) {
        fmt_gguf_tensor *t = &g->tensors[i];
        uint64_t end;
        if (!hq_add_u64(t->offset, t->nbytes, &end) || end > avail) {
            hq_free(ord);
            return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' (%llu bytes at data offset %llu) runs past the end of "
                           "the file", g->label, t->name, (unsigned long long)t->nbytes, (unsigned long long)t->offset);
        }
        t->data = g->buf + g->data_offset + t->offset;
        ord[2 * i] = t->offset;
        ord[2 * i + 1] = i;
    }
    qsort(ord, (size_t)n_t, 2 * sizeof(uint64_t), cmp_u64_pair);
    for (uint64_t k = 1; k < n_t; k++) {
        const fmt_gguf_tensor *a = &g->tensors[ord[2 * (k - 1) + 1]], *b = &g->tensors[ord[2 * k + 1]];
        if (a->offset + a->nbytes > b->offset) {
            hq_free(ord);
            return hq_fail(err, HQ_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", g->label, a->name, b->name);
        }
    }
    hq_free(ord);
    return HQ_OK;
}

void fmt_gguf_close(fmt_gguf *g) {
    if (!g) return;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        if (g->kvs[i].type == GGUF_VT_ARRAY) hq_free(g->kvs[i].v.arr.strs);
        hq_free(g->kvs[i].key);
    }
    hq_free(g->kvs);
    hq_free(g->tensors);
    fmt_nameset_free(&g->kv_index);
    fmt_nameset_free(&g->t_index);
    hq_map_close(&g->map);
    hq_free(g->label);
    hq_free(g);
}

hq_status fmt_gguf_open_buffer(const void *buf, uint64_t len, const char *label, fmt_gguf **out, char *err) {
    *out = NULL;
    fmt_gguf *g = hq_calloc(1, sizeof *g);
    if (!g) return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", label);
    g->buf = buf;
    g->len = len;
    g->label = hq_strdup(label ? label : "gguf");
    if (!g->label) {
        hq_free(g);
        return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", label);
    }
    hq_status st = gguf_parse(g, err);
    if (st) {
        fmt_gguf_close(g);
        return st;
    }
    *out = g;
    return HQ_OK;
}

hq_status fmt_gguf_open(const char *path, fmt_gguf **out, char *err) {
    *out = NULL;
    if (hq_is_dir(path))
        return hq_fail(err, HQ_ERR_ARG, "%s: a directory, not a GGUF file; for a checkpoint directory run "
                                        "`hyquant convert %s -o model.gguf` first", path, path);
    hq_map m;
    hq_status st = hq_map_open(path, &m, err);
    if (st) return st;
    st = fmt_gguf_open_buffer(m.data, m.size, path, out, err);
    if (st && m.size >= 4 && (!memcmp(m.data, "PK\x03\x04", 4) || (m.size >= 9 && m.data[8] == '{')))
        hq_fail(err, st, "%s: not a GGUF file (it looks like a PyTorch/safetensors checkpoint); run "
                         "`hyquant convert %s -o model.gguf` first", path, path);
    if (st) {
        hq_map_close(&m);
        return st;
    }
    (*out)->map = m;
    return HQ_OK;
}

uint64_t fmt_gguf_n_kv(const fmt_gguf *g) { return g->n_kv; }
const fmt_gguf_kv *fmt_gguf_kv_at(const fmt_gguf *g, uint64_t i) { return i < g->n_kv ? &g->kvs[i] : NULL; }
const fmt_gguf_kv *fmt_gguf_find_kv(const fmt_gguf *g, const char *key) {
    uint64_t i = fmt_nameset_find(&g->kv_index, key, strlen(key), kv_key_get, g->kvs);
    return i == UINT64_MAX ? NULL : &g->kvs[i];
}
uint32_t fmt_gguf_alignment(const fmt_gguf *g) { return g->alignment; }
uint64_t fmt_gguf_data_offset(const fmt_gguf *g) { return g->data_offset; }
const char *fmt_gguf_label(const fmt_gguf *g) { return g->label; }
uint64_t fmt_gguf_n_tensors(const fmt_gguf *g) { return g->n_tensors; }
const fmt_gguf_tensor *fmt_gguf_tensor_at(const fmt_gguf *g, uint64_t i) {
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}
const fmt_gguf_tensor *fmt_gguf_find_tensor(const fmt_gguf *g, const char *name) {
    uint64_t i = fmt_nameset_find(&g->t_index, name, strlen(name), t_name_get, g->tensors);
    return i == UINT64_MAX ? NULL : &g->tensors[i];
}

static bool is_unsigned_vt(uint32_t t) {
    return t == GGUF_VT_U8 || t == GGUF_VT_U16 || t == GGUF_VT_U32 || t == GGUF_VT_U64;
}
static bool is_signed_vt(uint32_t t) {
    return t == GGUF_VT_I8 || t == GGUF_VT_I16 || t == GGUF_VT_I32 || t == GGUF_VT_I64;
}
static bool kv_as_u64(const fmt_gguf_kv *kv, uint64_t *v) {
    if (!kv) return false;
    if (is_unsigned_vt(kv->type)) return *v = kv->v.u, true;
    if (is_signed_vt(kv->type) && kv->v.i >= 0) return *v = (uint64_t)kv->v.i, true;
    return false;
}
bool fmt_gguf_get_u64(const fmt_gguf *g, const char *key, uint64_t *v) {
    return kv_as_u64(fmt_gguf_find_kv(g, key), v);
}
bool fmt_gguf_get_u32(const fmt_gguf *g, const char *key, uint32_t *v) {
    uint64_t u;
    if (!kv_as_u64(fmt_gguf_find_kv(g, key), &u) || u > UINT32_MAX) return false;
    *v = (uint32_t)u;
    return true;
}
bool fmt_gguf_get_f32(const fmt_gguf *g, const char *key, float *v) {
    const fmt_gguf_kv *kv = fmt_gguf_find_kv(g, key);
    if (!kv || (kv->type != GGUF_VT_F32 && kv->type != GGUF_VT_F64)) return false;
    *v = (float)kv->v.f;
    return true;
}
bool fmt_gguf_get_bool(const fmt_gguf *g, const char *key, bool *v) {
    const fmt_gguf_kv *kv = fmt_gguf_find_kv(g, key);
    if (!kv || kv->type != GGUF_VT_BOOL) return false;
    *v = kv->v.u != 0;
    return true;
}
bool fmt_gguf_get_str(const fmt_gguf *g, const char *key, fmt_gguf_str *v) {
    const fmt_gguf_kv *kv = fmt_gguf_find_kv(g, key);
    if (!kv || kv->type != GGUF_VT_STRING) return false;
    *v = kv->v.str;
    return true;
}

/* ================= writer ================= */

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
