/* tests/test_safetensors.c — the safetensors reader: fixture files written by
 * the Python safetensors package (tools/make_format_fixtures.py), conversions
 * checked against torch's, and a hostile corpus built here (every case must
 * fail cleanly; run under ASan/UBSan by make test). */
#include "../core/half.h"
#include "../core/hq.h"
#include "../formats/ckpt.h"
#include "../formats/safetensors.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char err[HQ_ERR_LEN];

/* a safetensors file: u64 header length + header + data */
static uint8_t *mk_st(const char *hdr, size_t hlen, const void *data, size_t dlen, size_t *out_len) {
    size_t n = 8 + hlen + dlen;
    uint8_t *b = malloc(n ? n : 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, hdr, hlen);
    if (dlen) memcpy(b + 8 + hlen, data, dlen);
    *out_len = n;
    return b;
}

static hq_status parse(const uint8_t *b, uint64_t n, fmt_ckpt **out) {
    fmt_ckpt *ck = fmt_ckpt_new();
    hq_status st = fmt_safetensors_parse(b, n, "mem.safetensors", 0, ck, err);
    if (out && !st) {
        *out = ck;
        return st;
    }
    fmt_ckpt_close(ck);
    return st;
}

static hq_status parse_hdr(const char *hdr, size_t dlen) {
    static uint8_t zeros[4096];
    size_t n;
    uint8_t *b = mk_st(hdr, strlen(hdr), zeros, dlen, &n);
    hq_status st = parse(b, n, NULL);
    free(b);
    return st;
}

/* every addressed byte of every tensor lies inside [buf, buf+len) */
static bool views_inside(const fmt_ckpt *ck, const uint8_t *buf, uint64_t len) {
    for (uint64_t i = 0; i < ck->n_tensors; i++) {
        const fmt_tensor *t = &ck->tensors[i];
        if (t->storage < buf || t->storage + t->storage_bytes > buf + len) return false;
        if (fmt_tensor_nelem(t) * hq_dtype_size(t->dtype) != t->storage_bytes) return false;
    }
    return true;
}

static void test_accepts(void) {
    CHECK(parse_hdr("{}", 0) == HQ_OK, "empty header: %s", err);
    CHECK(parse_hdr("\t\n{}\r ", 0) == HQ_OK, "whitespace around the object: %s", err);
    CHECK(parse_hdr("{\"__metadata__\":{\"format\":\"pt\"}}", 0) == HQ_OK, "metadata only: %s", err);
    CHECK(parse_hdr("{\"__metadata__\":null}", 0) == HQ_OK, "null metadata: %s", err);
    CHECK(parse_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
                    "\"b\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[0,2]}}",
                    2) == HQ_OK,
          "empty + scalar: %s", err);
    /* unknown fields are ignored, as in the reference */
    CHECK(parse_hdr("{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3],\"x\":1}}", 3) == HQ_OK, "extra field: %s",
          err);
    /* header order != offset order; tensors come back in offset order */
    fmt_ckpt *ck = NULL;
    size_t n;
    const char *h = "{\"z\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                    "\"y\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    int32_t d[2] = {11, 22};
    uint8_t *b = mk_st(h, strlen(h), d, 8, &n);
    CHECK(parse(b, n, &ck) == HQ_OK, "two tensors: %s", err);
    if (ck) {
        CHECK(ck->n_tensors == 2 && strcmp(ck->tensors[0].name, "y") == 0, "offset order");
        const fmt_tensor *z = fmt_ckpt_find(ck, "z");
        CHECK(z && z->storage == b + 8 + strlen(h) + 4 && z->storage_id != ck->tensors[0].storage_id,
              "storage pointer/id");
        fmt_ckpt_close(ck);
    }
    free(b);
}

typedef struct {
    const char *hdr;
    size_t dlen;
    hq_status want;
    const char *what;
} bad_case;

static void test_hostile_headers(void) {
    static const bad_case cases[] = {
        {"[]", 0, HQ_ERR_FORMAT, "array header"},
        {"  x", 0, HQ_ERR_FORMAT, "not JSON"},
        {"", 0, HQ_ERR_FORMAT, "empty header"},
        {"{", 0, HQ_ERR_FORMAT, "unterminated"},
        {"{\"a\":}", 0, HQ_ERR_FORMAT, "bad JSON"},
        {"{} x", 0, HQ_ERR_FORMAT, "trailing text"},
        {"{}{}", 0, HQ_ERR_FORMAT, "two objects"},
        {"{\"a\xff\":1}", 0, HQ_ERR_FORMAT, "invalid UTF-8"},
        {"{\"a\xc0\xaf\":1}", 0, HQ_ERR_FORMAT, "overlong UTF-8"},
        {"{\"a\xed\xa0\x80\":1}", 0, HQ_ERR_FORMAT, "surrogate"},
        {"{\"a\xf4\x90\x80\x80\":1}", 0, HQ_ERR_FORMAT, "beyond U+10FFFF"},
        {"{\"a\x01\":1}", 0, HQ_ERR_FORMAT, "control byte"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
         "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, HQ_ERR_FORMAT, "duplicate keys"},
        {"{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, HQ_ERR_FORMAT,
         "duplicate field"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[4,12]}}", 12, HQ_ERR_FORMAT, "overlap"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]}}", 12, HQ_ERR_FORMAT, "hole"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8, HQ_ERR_FORMAT, "hole at start"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 5, HQ_ERR_FORMAT, "trailing byte"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 3, HQ_ERR_FORMAT, "data short"},
        {"{}", 1, HQ_ERR_FORMAT, "trailing data, no tensors"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,4611686018427387904],\"data_offsets\":[0,8]}}", 8, HQ_ERR_FORMAT,
         "shape [2, 2^62]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1073741824,1073741824,1073741824],\"data_offsets\":[0,8]}}", 8,
         HQ_ERR_FORMAT, "element count overflow"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, HQ_ERR_FORMAT,
         "bit count overflow"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,1.5]}}", 2, HQ_ERR_FORMAT, "fractional offset"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,\"2\"]}}", 2, HQ_ERR_FORMAT, "string offset"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[-2,0]}}", 2, HQ_ERR_FORMAT, "negative offset"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,9007199254740994]}}", 2, HQ_ERR_FORMAT,
         "offset > 2^53"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,1e300]}}", 2, HQ_ERR_FORMAT, "offset 1e300"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2,4]}}", 2, HQ_ERR_FORMAT, "3 offsets"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2]}}", 2, HQ_ERR_FORMAT, "1 offset"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":{}}}", 2, HQ_ERR_FORMAT, "offsets object"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,0]}}", 0, HQ_ERR_FORMAT, "end before begin"},
        {"{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, HQ_ERR_FORMAT, "unknown dtype"},
        {"{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, HQ_ERR_FORMAT, "numeric dtype"},
        {"{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, HQ_ERR_UNSUPPORTED, "fp8"},
        {"{\"a\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2, HQ_ERR_UNSUPPORTED, "u16"},
        {"{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]}}", 1, HQ_ERR_UNSUPPORTED, "f4"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":2,\"data_offsets\":[0,2]}}", 2, HQ_ERR_FORMAT, "shape not array"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[-2],\"data_offsets\":[0,2]}}", 2, HQ_ERR_FORMAT, "negative dim"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[2.5],\"data_offsets\":[0,2]}}", 2, HQ_ERR_FORMAT, "fractional dim"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[null],\"data_offsets\":[0,1]}}", 1, HQ_ERR_FORMAT, "null dim"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, HQ_ERR_LIMIT,
         "9 dims"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, HQ_ERR_FORMAT, "size mismatch"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 0, HQ_ERR_FORMAT, "missing offsets"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, HQ_ERR_FORMAT, "missing dtype"},
        {"{\"a\":[1,2]}", 0, HQ_ERR_FORMAT, "entry not an object"},
        {"{\"a\":3}", 0, HQ_ERR_FORMAT, "entry a number"},
        {"{\"__metadata__\":{\"k\":1}}", 0, HQ_ERR_FORMAT, "metadata value not a string"},
        {"{\"__metadata__\":[\"k\"]}", 0, HQ_ERR_FORMAT, "metadata array"},
        {"{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, HQ_ERR_FORMAT, "metadata duplicate"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, HQ_ERR_FORMAT, "two metadata"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hq_status st = parse_hdr(cases[i].hdr, cases[i].dlen);
        CHECK(st == cases[i].want, "%s: got %s (%s), want %s", cases[i].what, hq_status_name(st), err,
              hq_status_name(cases[i].want));
        CHECK(st == HQ_OK || (strlen(err) > 0 && strchr(err, '\n') == NULL), "%s: one-line message", cases[i].what);
    }
    /* name too long */
    char *h = malloc(HQ_MAX_NAME + 200);
    char *nm = malloc(HQ_MAX_NAME + 2);
    memset(nm, 'n', HQ_MAX_NAME + 1);
    nm[HQ_MAX_NAME + 1] = 0;
    snprintf(h, HQ_MAX_NAME + 200, "{\"%s\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", nm);
    CHECK(parse_hdr(h, 1) == HQ_ERR_LIMIT, "long name: %s", err);
    nm[HQ_MAX_NAME] = 0;
    snprintf(h, HQ_MAX_NAME + 200, "{\"%s\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", nm);
    CHECK(parse_hdr(h, 1) == HQ_OK, "name at the limit: %s", err);
    free(h);
    free(nm);
    /* a name with an escaped NUL collides with its prefix: refused as duplicate */
    CHECK(parse_hdr("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                    "\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                    2) != HQ_OK,
          "escaped NUL name");
}

static void test_hostile_lengths(void) {
    uint8_t b[64] = {0};
    CHECK(parse(b, 0, NULL) == HQ_ERR_FORMAT, "0 bytes");
    CHECK(parse(b, 7, NULL) == HQ_ERR_FORMAT, "7 bytes");
    /* header length beyond EOF */
    b[0] = 100;
    memcpy(b + 8, "{}", 2);
    CHECK(parse(b, 50, NULL) == HQ_ERR_FORMAT, "header past EOF: %s", err);
    /* header length above the cap */
    uint64_t n = HQ_MAX_ST_HEADER + 1;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(n >> (8 * i));
    CHECK(parse(b, 64, NULL) == HQ_ERR_LIMIT, "header > cap: %s", err);
    memset(b, 0xff, 8);
    CHECK(parse(b, 64, NULL) == HQ_ERR_LIMIT, "header length 2^64-1: %s", err);
}

static bool same_bits_or_nan(const uint8_t *a, const uint8_t *b, hq_dtype dt, uint64_t n, uint64_t *bad) {
    uint32_t es = hq_dtype_size(dt);
    for (uint64_t i = 0; i < n; i++) {
        if (memcmp(a + i * es, b + i * es, es) == 0) continue;
        float fa, fb;
        if (dt == HQ_DT_F32) memcpy(&fa, a + i * 4, 4), memcpy(&fb, b + i * 4, 4);
        else {
            uint16_t ha, hb;
            memcpy(&ha, a + i * 2, 2);
            memcpy(&hb, b + i * 2, 2);
            fa = dt == HQ_DT_F16 ? hq_f16_to_f32(ha) : hq_bf16_to_f32(ha);
            fb = dt == HQ_DT_F16 ? hq_f16_to_f32(hb) : hq_bf16_to_f32(hb);
        }
        if (isnan(fa) && isnan(fb)) continue;
        *bad = i;
        return false;
    }
    return true;
}

/* the fixture from the Python safetensors package: dtypes, shapes, values,
 * and fmt_tensor_read against torch's .to(dtype) */
static void test_fixture_vs_torch(void) {
    fmt_ckpt *ck = NULL, *ref = NULL;
    CHECK(fmt_ckpt_open(FIXTURE("formats/mixed.safetensors"), &ck, err) == HQ_OK, "open mixed: %s", err);
    CHECK(fmt_ckpt_open(FIXTURE("formats/mixed_ref.safetensors"), &ref, err) == HQ_OK, "open ref: %s", err);
    if (!ck || !ref) {
        fmt_ckpt_close(ck);
        fmt_ckpt_close(ref);
        return;
    }
    CHECK(strcmp(ck->kind, "safetensors") == 0, "kind %s", ck->kind);
    CHECK(ck->n_tensors == 13, "13 tensors, got %llu", (unsigned long long)ck->n_tensors);
    static const struct {
        const char *name;
        hq_dtype dt;
    } dts[] = {{"f32", HQ_DT_F32}, {"f16", HQ_DT_F16}, {"bf16", HQ_DT_BF16}, {"f64", HQ_DT_F64},
               {"i64", HQ_DT_I64}, {"i32", HQ_DT_I32}, {"i16", HQ_DT_I16},   {"i8", HQ_DT_I8},
               {"u8", HQ_DT_U8},   {"bool", HQ_DT_BOOL}, {"scalar", HQ_DT_F32}, {"empty", HQ_DT_F16}};
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        const fmt_tensor *t = fmt_ckpt_find(ck, dts[i].name);
        CHECK(t && t->dtype == dts[i].dt, "dtype of %s", dts[i].name);
    }
    int n_cmp = 0;
    static const char *outs[3] = {"f32", "f16", "bf16"};
    static const hq_dtype out_dt[3] = {HQ_DT_F32, HQ_DT_F16, HQ_DT_BF16};
    for (uint64_t i = 0; i < ck->n_tensors; i++) {
        const fmt_tensor *t = &ck->tensors[i];
        for (int o = 0; o < 3; o++) {
            char rn[128];
            snprintf(rn, sizeof rn, "%s.%s", t->name, outs[o]);
            const fmt_tensor *r = fmt_ckpt_find(ref, rn);
            if (!r) continue;
            CHECK(r->ndim == t->ndim && memcmp(r->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim) == 0,
                  "shape of %s", t->name);
            uint64_t n = fmt_tensor_nelem(t);
            uint8_t *got = malloc(n * 4 + 1), *got_ref = malloc(n * 4 + 1);
            hq_status st = fmt_tensor_read(t, out_dt[o], got, err);
            CHECK(st == HQ_OK, "read %s as %s: %s", t->name, outs[o], err);
            CHECK(fmt_tensor_read_ref(t, out_dt[o], got_ref, err) == HQ_OK, "read_ref %s", t->name);
            uint64_t bad = 0;
            CHECK(same_bits_or_nan(got, r->storage, out_dt[o], n, &bad), "%s as %s differs from torch at %llu",
                  t->name, outs[o], (unsigned long long)bad);
            CHECK(same_bits_or_nan(got_ref, r->storage, out_dt[o], n, &bad), "%s as %s (ref) differs at %llu",
                  t->name, outs[o], (unsigned long long)bad);
            n_cmp++;
            free(got);
            free(got_ref);
        }
    }
    CHECK(n_cmp == 3 * 9, "compared %d conversions", n_cmp);
    /* dtypes that cannot be converted are refused */
    float tmp[8];
    const fmt_tensor *i16 = fmt_ckpt_find(ck, "i16");
    CHECK(i16 && fmt_tensor_read(i16, HQ_DT_F32, tmp, err) == HQ_ERR_UNSUPPORTED, "i16 -> f32 refused");
    CHECK(i16 && fmt_tensor_read(i16, HQ_DT_I16, tmp, err) == HQ_ERR_ARG, "read into i16 refused");
    fmt_ckpt_close(ck);
    fmt_ckpt_close(ref);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_truncation_and_flips(void) {
    hq_map m;
    if (hq_map_open(FIXTURE("formats/mixed.safetensors"), &m, err) != HQ_OK) {
        CHECK(0, "map: %s", err);
        return;
    }
    uint8_t *b = malloc(m.size + 16);
    int trunc_ok = 0;
    for (uint64_t n = 0; n < m.size; n++) {
        memcpy(b, m.data, (size_t)n);
        if (parse(b, n, NULL) != HQ_OK) trunc_ok++;
    }
    CHECK(trunc_ok == (int)m.size, "every truncation refused (%d of %llu)", trunc_ok, (unsigned long long)m.size);
    memcpy(b, m.data, (size_t)m.size);
    b[m.size] = 0;
    CHECK(parse(b, m.size + 1, NULL) == HQ_ERR_FORMAT, "one appended byte refused");
    int iters = getenv("HQ_FUZZ_ITERS") ? atoi(getenv("HQ_FUZZ_ITERS")) : getenv("HQ_SANITIZED") ? 300 : 1500;
    int accepted = 0, inside = 0;
    for (int it = 0; it < iters; it++) {
        memcpy(b, m.data, (size_t)m.size);
        int flips = 1 + (int)(rnd() % 4);
        /* most flips land in the header, where the parser is */
        uint64_t hl = 8 + (uint64_t)m.data[0] + ((uint64_t)m.data[1] << 8);
        for (int f = 0; f < flips; f++) {
            uint64_t pos = rnd() % (rnd() % 4 ? hl : m.size);
            b[pos] ^= (uint8_t)(1u << (rnd() % 8));
        }
        fmt_ckpt *ck = NULL;
        if (parse(b, m.size, &ck) == HQ_OK) {
            accepted++;
            if (views_inside(ck, b, m.size)) inside++;
            fmt_ckpt_close(ck);
        }
    }
    CHECK(accepted == inside, "accepted flipped files stay in bounds (%d/%d)", inside, accepted);
    free(b);
    hq_map_close(&m);
}

static void test_alloc_failures(void) {
    hq_map m;
    if (hq_map_open(FIXTURE("formats/mixed.safetensors"), &m, err) != HQ_OK) return;
    int nomem = 0, ok_at = -1;
    for (int k = 1; k < 400; k++) {
        hq_alloc_fail_at(k);
        fmt_ckpt *ck = fmt_ckpt_new();
        hq_status st = ck ? fmt_safetensors_parse(m.data, m.size, "m", 0, ck, err) : HQ_ERR_NOMEM;
        fmt_ckpt_close(ck);
        if (st == HQ_ERR_NOMEM) nomem++;
        else if (st == HQ_OK) {
            ok_at = k;
            break;
        } else {
            CHECK(0, "alloc failure %d gave %s: %s", k, hq_status_name(st), err);
            break;
        }
    }
    hq_alloc_fail_at(0);
    CHECK(ok_at > 1 && nomem == ok_at - 1, "allocation failures end in NOMEM until success (%d, %d)", nomem, ok_at);
    hq_map_close(&m);
}

int main(void) {
    test_accepts();
    test_hostile_headers();
    test_hostile_lengths();
    test_fixture_vs_torch();
    test_truncation_and_flips();
    test_alloc_failures();
    TEST_END();
}
