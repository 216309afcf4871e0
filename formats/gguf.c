/* formats/gguf.c — strict GGUF reader (see gguf.h; the writer is gguf_write.c).
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
#include "gguf.h" // defines: fmt_gguf_open*, fmt_gguf_get_*, fmt_gguf_find_*
#include "gguf_internal.h"
#include "nameset.h"

#include <stdlib.h>
#include <string.h>

static const char *const k_vt_name[GGUF_VT_COUNT] = {"u8",  "i8",  "u16",    "i16",   "u32", "i32", "f32",
                                                     "bool", "string", "array", "u64", "i64", "f64"};

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
