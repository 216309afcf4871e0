/* formats/safetensors.c — strict safetensors reader; rules in safetensors.h */
#include "safetensors.h" // defines: fmt_safetensors_parse, fmt_safetensors_dtype
#include "nameset.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* safetensors/src/tensor.rs enum Dtype, with bit sizes */
static const struct {
    const char *name;
    uint32_t bits;
    int dt; /* hq_dtype, or -2 unsupported */
} k_st_dtypes[] = {
    {"BOOL", 8, HQ_DT_BOOL},   {"F4", 4, -2},         {"F6_E2M3", 6, -2},     {"F6_E3M2", 6, -2},
    {"U8", 8, HQ_DT_U8},       {"I8", 8, HQ_DT_I8},   {"F8_E5M2", 8, -2},     {"F8_E4M3", 8, -2},
    {"F8_E8M0", 8, -2},        {"F8_E4M3FNUZ", 8, -2}, {"F8_E5M2FNUZ", 8, -2}, {"I16", 16, HQ_DT_I16},
    {"U16", 16, -2},           {"F16", 16, HQ_DT_F16}, {"BF16", 16, HQ_DT_BF16}, {"I32", 32, HQ_DT_I32},
    {"U32", 32, -2},           {"F32", 32, HQ_DT_F32}, {"C64", 64, -2},        {"F64", 64, HQ_DT_F64},
    {"I64", 64, HQ_DT_I64},    {"U64", 64, -2},
};

int fmt_safetensors_dtype(const char *name, uint32_t *bits) {
    for (size_t i = 0; i < sizeof k_st_dtypes / sizeof k_st_dtypes[0]; i++)
        if (strcmp(name, k_st_dtypes[i].name) == 0) {
            if (bits) *bits = k_st_dtypes[i].bits;
            return k_st_dtypes[i].dt;
        }
    return -1;
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF) and no raw control
 * bytes except JSON whitespace. Returns the offset of the first bad byte or
 * len when all is well. */
static uint64_t utf8_check(const uint8_t *s, uint64_t len) {
    uint64_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return i;
            if (c == 0x7f) return i;
            i++;
            continue;
        }
        uint32_t need, cp, min;
        if (c >= 0xc2 && c <= 0xdf) need = 1, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef) need = 2, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4) need = 3, cp = c & 0x07, min = 0x10000;
        else return i;
        if (len - i <= need) return i;
        for (uint32_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += need + 1;
    }
    return len;
}

static bool is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* a JSON number that is an integer in [0, 2^53] */
static bool json_u53(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0.0 && d <= 9007199254740992.0) || d != floor(d)) return false;
    *v = (uint64_t)d;
    return true;
}

typedef struct {
    const char *name;
    int dt;
    int ndim;
    int64_t shape[HQ_MAX_DIMS];
    uint64_t begin, end;
    uint64_t order; /* position in the header: tie-break for a stable sort */
} st_entry;

static int cmp_entry(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static const char *cjson_key_get(const void *ctx, uint64_t i, uint64_t *len) {
    const cJSON *const *items = ctx;
    *len = strlen(items[i]->string);
    return items[i]->string;
}

/* one tensor entry {"dtype", "shape", "data_offsets"} */
static hq_status parse_entry(const cJSON *e, st_entry *out, const char *label, char *err) {
    const char *nm = e->string;
    if (!cJSON_IsObject(e)) return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' is not a JSON object", label, nm);
    const cJSON *dt = NULL, *sh = NULL, *off = NULL;
    for (const cJSON *c = e->child; c; c = c->next) {
        const cJSON **slot = strcmp(c->string, "dtype") == 0          ? &dt
                             : strcmp(c->string, "shape") == 0        ? &sh
                             : strcmp(c->string, "data_offsets") == 0 ? &off
                                                                      : NULL;
        if (!slot) continue; /* the reference ignores unknown fields */
        if (*slot)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' has a duplicate field '%s'", label, nm, c->string);
        *slot = c;
    }
    if (!dt || !sh || !off)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' lacks %s", label, nm,
                       !dt ? "\"dtype\"" : !sh ? "\"shape\"" : "\"data_offsets\"");
    if (!cJSON_IsString(dt))
        return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' has a dtype that is not a string", label, nm);
    uint32_t bits = 0;
    int d = fmt_safetensors_dtype(dt->valuestring, &bits);
    if (d == -1)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' has unknown dtype '%.32s'", label, nm, dt->valuestring);
    if (d == -2)
        return hq_fail(err, HQ_ERR_UNSUPPORTED,
                       "%s: tensor '%s' has dtype %s, which is not supported (F32, F16, BF16, F64, I64, I32, I16, I8, "
                       "U8, BOOL are)",
                       label, nm, dt->valuestring);
    out->dt = d;
    if (!cJSON_IsArray(sh)) return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' has a shape that is not an array", label, nm);
    int nd = 0;
    uint64_t nel = 1;
    for (const cJSON *c = sh->child; c; c = c->next) {
        uint64_t v;
        if (nd >= HQ_MAX_DIMS)
            return hq_fail(err, HQ_ERR_LIMIT, "%s: tensor '%s' has more than %d dims", label, nm, HQ_MAX_DIMS);
        if (!json_u53(c, &v))
            return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' has a shape entry that is not an integer in [0, 2^53]",
                           label, nm);
        if (!hq_mul_u64(nel, v, &nel) || nel > (uint64_t)INT64_MAX)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s': element count overflows", label, nm);
        out->shape[nd++] = (int64_t)v;
    }
    out->ndim = nd;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s': data_offsets is not [BEGIN, END]", label, nm);
    if (!json_u53(off->child, &out->begin) || !json_u53(off->child->next, &out->end))
        return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s': data_offsets are not integers in [0, 2^53]", label, nm);
    if (out->end < out->begin)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s': data_offsets end %llu before begin %llu", label, nm,
                       (unsigned long long)out->end, (unsigned long long)out->begin);
    uint64_t nbits;
    if (!hq_mul_u64(nel, bits, &nbits))
        return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s': byte size overflows", label, nm);
    if (nbits % 8 || nbits / 8 != out->end - out->begin)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s': shape and dtype need %llu bytes but data_offsets span %llu",
                       label, nm, (unsigned long long)(nbits / 8), (unsigned long long)(out->end - out->begin));
    return HQ_OK;
}

static hq_status check_metadata(const cJSON *m, const char *label, char *err) {
    if (cJSON_IsNull(m)) return HQ_OK;
    if (!cJSON_IsObject(m)) return hq_fail(err, HQ_ERR_FORMAT, "%s: __metadata__ is not an object", label);
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return hq_fail(err, HQ_ERR_FORMAT, "%s: __metadata__ value '%s' is not a string", label, c->string);
        for (const cJSON *d = m->child; d != c; d = d->next) /* few entries */
            if (strcmp(d->string, c->string) == 0)
                return hq_fail(err, HQ_ERR_FORMAT, "%s: duplicate __metadata__ key '%s'", label, c->string);
    }
    return HQ_OK;
}

hq_status fmt_safetensors_parse(const uint8_t *buf, uint64_t len, const char *label, int file_index, fmt_ckpt *ck,
                                char *err) {
    if (len < 8) return hq_fail(err, HQ_ERR_FORMAT, "%s: %llu bytes is too small for a safetensors file", label,
                                (unsigned long long)len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | buf[i];
    if (n > HQ_MAX_ST_HEADER)
        return hq_fail(err, HQ_ERR_LIMIT, "%s: safetensors header of %llu bytes exceeds the limit of %llu", label,
                       (unsigned long long)n, (unsigned long long)HQ_MAX_ST_HEADER);
    uint64_t data_start;
    if (!hq_add_u64(8, n, &data_start) || data_start > len)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: safetensors header length %llu runs past the end of the %llu-byte file",
                       label, (unsigned long long)n, (unsigned long long)len);
    const uint8_t *h = buf + 8;
    uint64_t bad = utf8_check(h, n);
    if (bad != n)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: safetensors header is not valid UTF-8 JSON text (byte %llu)", label,
                       (unsigned long long)(8 + bad));
    uint64_t a = 0;
    while (a < n && is_ws(h[a])) a++;
    if (a == n || h[a] != '{')
        return hq_fail(err, HQ_ERR_FORMAT, "%s: safetensors header does not start with '{' (not a safetensors file?)",
                       label);
    /* cJSON wants a NUL-terminated string: copy the header (<= 100 MB) */
    char *txt = hq_malloc((size_t)n + 1);
    if (!txt) return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory for a %llu-byte header", label, (unsigned long long)n);
    memcpy(txt, h, (size_t)n);
    txt[n] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(txt, (size_t)n + 1, &end, 0);
    hq_status st = HQ_OK;
    const cJSON **items = NULL;
    st_entry *ents = NULL;
    fmt_nameset seen = {0};
    uint64_t count = 0;
    if (!root || !cJSON_IsObject(root)) {
        st = hq_fail(err, HQ_ERR_FORMAT, "%s: safetensors header is not valid JSON (near byte %llu)", label,
                     (unsigned long long)(8 + (end && end >= txt ? (uint64_t)(end - txt) : 0)));
        goto done;
    }
    for (const char *p = end; p && p < txt + n; p++)
        if (!is_ws((uint8_t)*p)) {
            st = hq_fail(err, HQ_ERR_FORMAT, "%s: safetensors header has trailing data after the JSON object", label);
            goto done;
        }
    for (const cJSON *c = root->child; c; c = c->next) count++;
    if (count > (uint64_t)HQ_MAX_TENSORS + 1) {
        st = hq_fail(err, HQ_ERR_LIMIT, "%s: more than %d tensors", label, HQ_MAX_TENSORS);
        goto done;
    }
    items = hq_calloc((size_t)count + 1, sizeof *items);
    ents = hq_calloc((size_t)count + 1, sizeof *ents);
    if (!items || !ents) {
        st = hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", label);
        goto done;
    }
    uint64_t ne = 0, k = 0;
    bool have_meta = false;
    for (const cJSON *c = root->child; c; c = c->next, k++) {
        items[k] = c;
        uint64_t dup;
        int r = fmt_nameset_insert(&seen, k, cjson_key_get, items, &dup);
        if (r < 0) {
            st = hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", label);
            goto done;
        }
        if (r == 0) {
            st = hq_fail(err, HQ_ERR_FORMAT, "%s: duplicate key '%s' in the safetensors header", label, c->string);
            goto done;
        }
        if (strcmp(c->string, "__metadata__") == 0) {
            have_meta = true;
            if ((st = check_metadata(c, label, err))) goto done;
            continue;
        }
        size_t nl = strlen(c->string);
        if (nl > HQ_MAX_NAME) {
            st = hq_fail(err, HQ_ERR_LIMIT, "%s: tensor name of %zu bytes exceeds the limit of %d", label, nl,
                         HQ_MAX_NAME);
            goto done;
        }
        st_entry *e = &ents[ne];
        e->name = c->string;
        e->order = ne;
        if ((st = parse_entry(c, e, label, err))) goto done;
        ne++;
    }
    (void)have_meta;
    if (ne > HQ_MAX_TENSORS) {
        st = hq_fail(err, HQ_ERR_LIMIT, "%s: more than %d tensors", label, HQ_MAX_TENSORS);
        goto done;
    }
    qsort(ents, (size_t)ne, sizeof *ents, cmp_entry);
    uint64_t pos = 0;
    for (uint64_t i = 0; i < ne; i++) {
        if (ents[i].begin != pos) {
            st = hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' starts at byte %llu of the data but %s at %llu", label,
                         ents[i].name, (unsigned long long)ents[i].begin,
                         ents[i].begin < pos ? "it overlaps the previous tensor, which ends" : "there is a hole from",
                         (unsigned long long)pos);
            goto done;
        }
        pos = ents[i].end;
    }
    uint64_t total;
    if (!hq_add_u64(data_start, pos, &total) || total != len) {
        st = hq_fail(err, HQ_ERR_FORMAT, "%s: tensors cover %llu data bytes but the file holds %llu after the header",
                     label, (unsigned long long)pos, (unsigned long long)(len - data_start));
        goto done;
    }
    for (uint64_t i = 0; i < ne; i++) {
        const st_entry *e = &ents[i];
        fmt_tensor t;
        memset(&t, 0, sizeof t);
        t.name = (char *)e->name;
        t.dtype = (hq_dtype)e->dt;
        t.ndim = e->ndim;
        int64_t s = 1;
        for (int d = e->ndim - 1; d >= 0; d--) {
            t.shape[d] = e->shape[d];
            t.stride[d] = s;
            s *= e->shape[d] ? e->shape[d] : 1; /* product checked above */
        }
        t.offset = 0;
        t.storage = buf + data_start + e->begin;
        t.storage_bytes = e->end - e->begin;
        t.storage_id = ck->next_storage_id++;
        t.file_index = file_index;
        if ((st = fmt_ckpt_add(ck, &t, label, err))) goto done;
    }
done:
    fmt_nameset_free(&seen);
    hq_free(items);
    hq_free(ents);
    cJSON_Delete(root);
    hq_free(txt);
    return st;
}
