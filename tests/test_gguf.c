/* tests/test_gguf.c — GGUF writer and strict reader: byte-exact layout
 * against an independent encoder in this file, round trips (write -> read ->
 * identical KVs and tensors, copy_kv re-encodes identically), writer misuse,
 * a hostile corpus built here, truncations and byte flips of a valid file,
 * and allocation-failure injection. Everything must fail cleanly (make test
 * also runs this under ASan/UBSan).
 *
 *   test_gguf --write-sample PATH  writes the sample that tools/gguf_py_check.py
 *                                  checks with the gguf Python package.
 */
#include "../core/half.h"
#include "../core/hq.h"
#include "../formats/gguf.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char err[HQ_ERR_LEN];

/* ---------- an independent little GGUF encoder ---------- */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} gb;
static void gb_put(gb *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void gb_le(gb *b, uint64_t v, int n) {
    for (int i = 0; i < n; i++) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        gb_put(b, &c, 1);
    }
}
static void gb_u32(gb *b, uint32_t v) { gb_le(b, v, 4); }
static void gb_u64(gb *b, uint64_t v) { gb_le(b, v, 8); }
static void gb_str(gb *b, const char *s) { gb_u64(b, strlen(s)), gb_put(b, s, strlen(s)); }
static void gb_hdr(gb *b, uint32_t ver, uint64_t nt, uint64_t nkv) {
    gb_put(b, "GGUF", 4);
    gb_u32(b, ver);
    gb_u64(b, nt);
    gb_u64(b, nkv);
}
static void gb_pad(gb *b, size_t a) {
    while (b->n % a) gb_le(b, 0, 1);
}
static void gb_kv_u32(gb *b, const char *k, uint32_t v) { gb_str(b, k), gb_u32(b, GGUF_VT_U32), gb_u32(b, v); }
static void gb_tinfo(gb *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off) {
    gb_str(b, name);
    gb_u32(b, nd);
    for (uint32_t i = 0; i < nd; i++) gb_u64(b, ne[i]);
    gb_u32(b, type);
    gb_u64(b, off);
}

static hq_status open_mem(const gb *b, fmt_gguf **g) {
    fmt_gguf *x = NULL;
    hq_status st = fmt_gguf_open_buffer(b->p, b->n, "mem.gguf", &x, err);
    if (g) *g = x;
    else fmt_gguf_close(x);
    return st;
}

static uint64_t rng_state = 0x853c49e6748fea9bull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---------- the sample file (also checked by tools/gguf_py_check.py) ---------- */
static const char *k_strs[] = {"a", "bc", "", "h\xc3\xa9llo"};
static const int32_t k_i32[] = {1, -2, 3, INT32_MIN};
static const float k_f32[] = {0.5f, -1.25f, 1e-30f};
static const uint8_t k_bools[] = {1, 0, 1};

static void sample_tensor(uint64_t i, uint8_t *data, uint64_t nbytes) {
    /* t0 F32 [5,3] = j*0.5-3; t1 F16 [8,2] = (j-7)*0.25; t2 Q8_0 [64,2] raw = (j*7+i)%251; t3 BF16 [4,3,2] = j-12 */
    if (i == 0)
        for (uint64_t j = 0; j < nbytes / 4; j++) {
            float f = (float)j * 0.5f - 3.0f;
            memcpy(data + 4 * j, &f, 4);
        }
    else if (i == 1)
        for (uint64_t j = 0; j < nbytes / 2; j++) {
            uint16_t h = hq_f32_to_f16(((float)j - 7.0f) * 0.25f);
            memcpy(data + 2 * j, &h, 2);
        }
    else if (i == 3)
        for (uint64_t j = 0; j < nbytes / 2; j++) {
            uint16_t h = hq_f32_to_bf16((float)j - 12.0f);
            memcpy(data + 2 * j, &h, 2);
        }
    else
        for (uint64_t j = 0; j < nbytes; j++) data[j] = (uint8_t)((j * 7 + i) % 251);
}

static hq_status build_sample(fmt_gguf_writer *w, char *e) {
    hq_status st;
    uint64_t u64v = (1ull << 40) + 7;
    if ((st = fmt_gguf_set_str(w, "general.architecture", "hyquant-test", 12, e))) return st;
    if ((st = fmt_gguf_set_u32(w, "general.alignment", 32, e))) return st;
    if ((st = fmt_gguf_set_u32(w, "test.u32", 123456789u, e))) return st;
    if ((st = fmt_gguf_set_i32(w, "test.i32", -42, e))) return st;
    if ((st = fmt_gguf_set_u64(w, "test.u64", u64v, e))) return st;
    if ((st = fmt_gguf_set_f32(w, "test.f32", 0.15625f, e))) return st;
    if ((st = fmt_gguf_set_bool(w, "test.bool", true, e))) return st;
    if ((st = fmt_gguf_set_str(w, "test.str", "h\xc3\xa9llo w\xc3\xb6rld", 13, e))) return st;
    if ((st = fmt_gguf_set_arr(w, "test.arr_i32", GGUF_VT_I32, k_i32, 4, e))) return st;
    if ((st = fmt_gguf_set_arr(w, "test.arr_f32", GGUF_VT_F32, k_f32, 3, e))) return st;
    if ((st = fmt_gguf_set_arr(w, "test.arr_bool", GGUF_VT_BOOL, k_bools, 3, e))) return st;
    if ((st = fmt_gguf_set_arr_str(w, "test.arr_str", k_strs, 4, e))) return st;
    if ((st = fmt_gguf_set_arr(w, "test.arr_empty", GGUF_VT_U64, NULL, 0, e))) return st;
    static const uint64_t ne0[] = {5, 3}, ne1[] = {8, 2}, ne2[] = {64, 2}, ne3[] = {4, 3, 2};
    if ((st = fmt_gguf_add_tensor(w, "t0.f32", GGML_T_F32, 2, ne0, e))) return st;
    if ((st = fmt_gguf_add_tensor(w, "t1.f16", GGML_T_F16, 2, ne1, e))) return st;
    if ((st = fmt_gguf_add_tensor(w, "t2.q8_0", GGML_T_Q8_0, 2, ne2, e))) return st;
    if ((st = fmt_gguf_add_tensor(w, "t3.bf16", GGML_T_BF16, 3, ne3, e))) return st;
    return HQ_OK;
}

/* writes the sample to path; tensor 2 is streamed in pieces */
static hq_status write_sample(const char *path, uint64_t *total, char *e) {
    fmt_gguf_writer *w = NULL;
    hq_out o;
    memset(&o, 0, sizeof o);
    hq_status st = fmt_gguf_writer_init(&w, 32, e);
    if (st) return st;
    bool opened = false;
    if ((st = build_sample(w, e))) goto done;
    if (total) *total = fmt_gguf_writer_total_size(w);
    if ((st = hq_out_open(&o, path, e))) goto done;
    opened = true;
    if ((st = fmt_gguf_write_header(w, &o, e))) goto done;
    for (uint64_t i = 0; i < fmt_gguf_writer_n_tensors(w); i++) {
        uint64_t nb = fmt_gguf_writer_tensor_nbytes(w, i);
        uint8_t *d = hq_malloc((size_t)nb);
        if (!d) {
            st = hq_fail(e, HQ_ERR_NOMEM, "oom");
            goto done;
        }
        sample_tensor(i, d, nb);
        if (i == 2) {
            st = fmt_gguf_write_tensor_part(w, &o, i, d, 10, e);
            if (!st) st = fmt_gguf_write_tensor_part(w, &o, i, d + 10, 0, e);
            if (!st) st = fmt_gguf_write_tensor_part(w, &o, i, d + 10, nb - 10, e);
        } else {
            st = fmt_gguf_write_tensor(w, &o, i, d, nb, e);
        }
        hq_free(d);
        if (st) goto done;
    }
    if ((st = fmt_gguf_writer_finish(w, &o, e))) goto done;
    st = hq_out_commit(&o, e);
    opened = false;
done:
    if (opened) hq_out_abort(&o);
    fmt_gguf_writer_free(w);
    return st;
}

/* the sample, encoded independently here */
static void expected_sample(gb *b, bool tensors) {
    gb_hdr(b, 3, tensors ? 4 : 0, 13);
    gb_str(b, "general.architecture"), gb_u32(b, GGUF_VT_STRING), gb_str(b, "hyquant-test");
    gb_kv_u32(b, "general.alignment", 32);
    gb_kv_u32(b, "test.u32", 123456789u);
    gb_str(b, "test.i32"), gb_u32(b, GGUF_VT_I32), gb_u32(b, (uint32_t)-42);
    gb_str(b, "test.u64"), gb_u32(b, GGUF_VT_U64), gb_u64(b, (1ull << 40) + 7);
    float f = 0.15625f;
    uint32_t fu;
    memcpy(&fu, &f, 4);
    gb_str(b, "test.f32"), gb_u32(b, GGUF_VT_F32), gb_u32(b, fu);
    gb_str(b, "test.bool"), gb_u32(b, GGUF_VT_BOOL), gb_le(b, 1, 1);
    gb_str(b, "test.str"), gb_u32(b, GGUF_VT_STRING), gb_str(b, "h\xc3\xa9llo w\xc3\xb6rld");
    gb_str(b, "test.arr_i32"), gb_u32(b, GGUF_VT_ARRAY), gb_u32(b, GGUF_VT_I32), gb_u64(b, 4);
    for (int i = 0; i < 4; i++) gb_u32(b, (uint32_t)k_i32[i]);
    gb_str(b, "test.arr_f32"), gb_u32(b, GGUF_VT_ARRAY), gb_u32(b, GGUF_VT_F32), gb_u64(b, 3);
    for (int i = 0; i < 3; i++) memcpy(&fu, &k_f32[i], 4), gb_u32(b, fu);
    gb_str(b, "test.arr_bool"), gb_u32(b, GGUF_VT_ARRAY), gb_u32(b, GGUF_VT_BOOL), gb_u64(b, 3);
    for (int i = 0; i < 3; i++) gb_le(b, k_bools[i], 1);
    gb_str(b, "test.arr_str"), gb_u32(b, GGUF_VT_ARRAY), gb_u32(b, GGUF_VT_STRING), gb_u64(b, 4);
    for (int i = 0; i < 4; i++) gb_str(b, k_strs[i]);
    gb_str(b, "test.arr_empty"), gb_u32(b, GGUF_VT_ARRAY), gb_u32(b, GGUF_VT_U64), gb_u64(b, 0);
    if (!tensors) {
        gb_pad(b, 32);
        return;
    }
    /* sizes: 60, 32, 2 blocks * 2 rows * 34 = 136, 48 bytes; padded to 32 */
    static const uint64_t ne0[] = {5, 3}, ne1[] = {8, 2}, ne2[] = {64, 2}, ne3[] = {4, 3, 2};
    gb_tinfo(b, "t0.f32", 2, ne0, GGML_T_F32, 0);
    gb_tinfo(b, "t1.f16", 2, ne1, GGML_T_F16, 64);
    gb_tinfo(b, "t2.q8_0", 2, ne2, GGML_T_Q8_0, 96);
    gb_tinfo(b, "t3.bf16", 3, ne3, GGML_T_BF16, 256);
    gb_pad(b, 32);
    static const uint64_t nb[4] = {60, 32, 136, 48};
    for (int i = 0; i < 4; i++) {
        uint8_t d[256];
        sample_tensor((uint64_t)i, d, nb[i]);
        gb_put(b, d, nb[i]);
        gb_pad(b, 32);
    }
}

static char tmpdir[64];
static char sample_path[128];

static void test_roundtrip(void) {
    uint64_t total = 0;
    CHECK(write_sample(sample_path, &total, err) == HQ_OK, "write sample: %s", err);
    hq_map m;
    if (hq_map_open(sample_path, &m, err) != HQ_OK) {
        CHECK(0, "map sample: %s", err);
        return;
    }
    gb want = {0};
    expected_sample(&want, true);
    CHECK(m.size == total && total == want.n, "total_size %llu, file %llu, expected %zu", (unsigned long long)total,
          (unsigned long long)m.size, want.n);
    CHECK(m.size == want.n && memcmp(m.data, want.p, want.n) == 0, "file is byte-identical to the independent encoding");
    if (getenv("HQ_DUMP")) {
        FILE *df = fopen(getenv("HQ_DUMP"), "wb");
        fwrite(want.p, 1, want.n, df);
        fclose(df);
    }
    fmt_gguf *g = NULL;
    CHECK(fmt_gguf_open(sample_path, &g, err) == HQ_OK, "read back: %s", err);
    if (g) {
        CHECK(fmt_gguf_n_kv(g) == 13 && fmt_gguf_n_tensors(g) == 4, "counts");
        CHECK(strcmp(fmt_gguf_kv_at(g, 0)->key, "general.architecture") == 0 &&
                  strcmp(fmt_gguf_kv_at(g, 12)->key, "test.arr_empty") == 0,
              "KV order kept");
        uint32_t u32;
        uint64_t u64;
        float f;
        bool bv;
        fmt_gguf_str s;
        CHECK(fmt_gguf_get_u32(g, "test.u32", &u32) && u32 == 123456789u, "u32");
        CHECK(!fmt_gguf_get_u32(g, "test.i32", &u32), "negative i32 is not a u32");
        CHECK(!fmt_gguf_get_u32(g, "test.u64", &u32) && fmt_gguf_get_u64(g, "test.u64", &u64) &&
                  u64 == (1ull << 40) + 7,
              "u64 range");
        CHECK(fmt_gguf_get_u64(g, "test.u32", &u64) && u64 == 123456789u, "u32 widened");
        CHECK(fmt_gguf_find_kv(g, "test.i32")->v.i == -42, "i32");
        CHECK(fmt_gguf_get_f32(g, "test.f32", &f) && f == 0.15625f, "f32");
        CHECK(fmt_gguf_get_bool(g, "test.bool", &bv) && bv, "bool");
        CHECK(!fmt_gguf_get_bool(g, "test.u32", &bv) && !fmt_gguf_get_str(g, "test.u32", &s), "type mismatch");
        CHECK(fmt_gguf_get_str(g, "test.str", &s) && s.len == 13 && memcmp(s.s, "h\xc3\xa9llo w\xc3\xb6rld", 13) == 0,
              "str");
        const fmt_gguf_kv *a = fmt_gguf_find_kv(g, "test.arr_str");
        CHECK(a && a->type == GGUF_VT_ARRAY && a->v.arr.type == GGUF_VT_STRING && a->v.arr.n == 4 &&
                  a->v.arr.strs[3].len == 6 && memcmp(a->v.arr.strs[3].s, k_strs[3], 6) == 0 &&
                  a->v.arr.strs[2].len == 0,
              "string array");
        a = fmt_gguf_find_kv(g, "test.arr_i32");
        CHECK(a && a->v.arr.n == 4 && memcmp(a->v.arr.data, k_i32, 16) == 0 && a->v.arr.nbytes == 16, "i32 array");
        CHECK(fmt_gguf_alignment(g) == 32 && fmt_gguf_data_offset(g) % 32 == 0, "alignment");
        CHECK(!fmt_gguf_find_kv(g, "nope") && !fmt_gguf_find_tensor(g, "nope"), "missing");
        for (uint64_t i = 0; i < 4; i++) {
            const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
            uint8_t d[256];
            sample_tensor(i, d, t->nbytes);
            CHECK(t->offset % 32 == 0 && memcmp(t->data, d, (size_t)t->nbytes) == 0 &&
                      fmt_gguf_data_offset(g) + t->offset + t->nbytes <= m.size,
                  "tensor %llu data", (unsigned long long)i);
            CHECK(fmt_gguf_find_tensor(g, t->name) == t, "find tensor %s", t->name);
        }
        const fmt_gguf_tensor *t3 = fmt_gguf_find_tensor(g, "t3.bf16");
        CHECK(t3 && t3->n_dims == 3 && t3->ne[2] == 2 && t3->ne[3] == 1 && t3->nbytes == 48, "t3 shape");
        /* copy every KV into a new writer: the KV section is re-encoded identically */
        fmt_gguf_writer *w = NULL;
        fmt_gguf_writer_init(&w, 32, err);
        int copied = 0;
        for (uint64_t i = 0; i < fmt_gguf_n_kv(g); i++) copied += fmt_gguf_copy_kv(w, fmt_gguf_kv_at(g, i), err) == HQ_OK;
        CHECK(copied == 13, "copied %d KVs: %s", copied, err);
        char p2[160];
        snprintf(p2, sizeof p2, "%s/copy.gguf", tmpdir);
        hq_out o;
        if (hq_out_open(&o, p2, err) == HQ_OK) {
            CHECK(fmt_gguf_write_header(w, &o, err) == HQ_OK && fmt_gguf_writer_finish(w, &o, err) == HQ_OK, "copy: %s",
                  err);
            CHECK(hq_out_commit(&o, err) == HQ_OK, "commit");
            hq_map m2;
            if (hq_map_open(p2, &m2, err) == HQ_OK) {
                gb kvw = {0};
                expected_sample(&kvw, false);
                CHECK(m2.size == kvw.n && memcmp(m2.data, kvw.p, kvw.n) == 0,
                      "copy_kv re-encodes every KV byte-identically (%llu vs %zu bytes)", (unsigned long long)m2.size,
                      kvw.n);
                free(kvw.p);
                hq_map_close(&m2);
            }
        }
        fmt_gguf_writer_free(w);
        fmt_gguf_close(g);
    }
    free(want.p);
    hq_map_close(&m);
}

static void test_writer_misuse(void) {
    fmt_gguf_writer *w = NULL;
    hq_out o;
    static const uint64_t ne[4] = {32, 2, 1, 1}, bad0[1] = {33}, zero[2] = {4, 0}, huge[2] = {1ull << 40, 1ull << 40};
    CHECK(fmt_gguf_writer_init(&w, 3, err) == HQ_ERR_ARG && !w, "alignment 3");
    CHECK(fmt_gguf_writer_init(&w, 1u << 20, err) == HQ_ERR_ARG && !w, "alignment 2^20");
    CHECK(fmt_gguf_writer_init(&w, 64, err) == HQ_OK, "alignment 64");
    CHECK(fmt_gguf_set_u32(w, "general.alignment", 32, err) == HQ_ERR_ARG, "alignment KV must match");
    CHECK(fmt_gguf_set_u64(w, "general.alignment", 64, err) == HQ_ERR_ARG, "alignment KV must be u32");
    CHECK(fmt_gguf_set_u32(w, "a.b", 1, err) == HQ_OK && fmt_gguf_set_f32(w, "a.b", 1, err) == HQ_ERR_ARG,
          "duplicate key");
    CHECK(fmt_gguf_set_u32(w, "", 1, err) == HQ_ERR_ARG, "empty key");
    uint8_t bools[2] = {1, 2};
    CHECK(fmt_gguf_set_arr(w, "b", GGUF_VT_BOOL, bools, 2, err) == HQ_ERR_ARG, "bool array with 2");
    CHECK(fmt_gguf_set_arr(w, "c", GGUF_VT_STRING, bools, 2, err) == HQ_ERR_ARG, "string via set_arr");
    CHECK(fmt_gguf_set_arr(w, "c", 99, bools, 2, err) == HQ_ERR_ARG, "unknown element type");
    CHECK(fmt_gguf_add_tensor(w, "t", GGML_T_Q8_0, 2, ne, err) == HQ_OK, "tensor: %s", err);
    CHECK(fmt_gguf_add_tensor(w, "t", GGML_T_F32, 1, ne, err) == HQ_ERR_ARG, "duplicate name");
    CHECK(fmt_gguf_add_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123", GGML_T_F32, 1, ne,
                              err) == HQ_ERR_ARG,
          "64-byte name");
    CHECK(fmt_gguf_add_tensor(w, "u", GGML_T_Q8_0, 1, bad0, err) == HQ_ERR_ARG, "row not a block multiple");
    CHECK(fmt_gguf_add_tensor(w, "u", GGML_T_F32, 2, zero, err) == HQ_ERR_ARG, "zero dim");
    CHECK(fmt_gguf_add_tensor(w, "u", GGML_T_F32, 2, huge, err) == HQ_ERR_ARG, "element overflow");
    CHECK(fmt_gguf_add_tensor(w, "u", GGML_T_F32, 5, ne, err) == HQ_ERR_ARG, "5 dims");
    CHECK(fmt_gguf_add_tensor(w, "u", 4, 1, ne, err) == HQ_ERR_ARG, "removed type 4");
    CHECK(fmt_gguf_add_tensor(w, "v", GGML_T_F32, 1, ne, err) == HQ_OK, "second tensor");
    char p[160];
    snprintf(p, sizeof p, "%s/misuse.gguf", tmpdir);
    if (hq_out_open(&o, p, err) == HQ_OK) {
        uint8_t d[256] = {0};
        CHECK(fmt_gguf_write_tensor(w, &o, 0, d, 68, err) == HQ_ERR_ARG, "data before header");
        CHECK(fmt_gguf_write_header(w, &o, err) == HQ_ERR_ARG, "alignment 64 needs general.alignment");
        hq_out_abort(&o);
    }
    CHECK(fmt_gguf_set_u32(w, "general.alignment", 64, err) == HQ_OK, "alignment KV");
    if (hq_out_open(&o, p, err) == HQ_OK) {
        uint8_t d[256] = {0};
        CHECK(fmt_gguf_write_header(w, &o, err) == HQ_OK, "header: %s", err);
        CHECK(fmt_gguf_set_u32(w, "late", 1, err) == HQ_ERR_ARG, "KV after header");
        CHECK(fmt_gguf_add_tensor(w, "late", GGML_T_F32, 1, ne, err) == HQ_ERR_ARG, "tensor after header");
        CHECK(fmt_gguf_write_tensor(w, &o, 1, d, 128, err) == HQ_ERR_ARG, "out of order");
        CHECK(fmt_gguf_write_tensor(w, &o, 0, d, 67, err) == HQ_ERR_ARG, "short write");
        CHECK(fmt_gguf_write_tensor_part(w, &o, 0, d, 60, err) == HQ_OK, "part");
        CHECK(fmt_gguf_write_tensor_part(w, &o, 0, d, 9, err) == HQ_ERR_ARG, "part overflows");
        CHECK(fmt_gguf_write_tensor(w, &o, 0, d, 68, err) == HQ_ERR_ARG, "whole after part");
        CHECK(fmt_gguf_write_tensor_part(w, &o, 0, d, 8, err) == HQ_OK, "rest");
        CHECK(fmt_gguf_writer_finish(w, &o, err) == HQ_ERR_ARG, "finish early");
        CHECK(fmt_gguf_write_tensor(w, &o, 1, d, 128, err) == HQ_OK, "second: %s", err);
        CHECK(fmt_gguf_writer_finish(w, &o, err) == HQ_OK, "finish: %s", err);
        uint64_t total = fmt_gguf_writer_total_size(w);
        CHECK(hq_out_commit(&o, err) == HQ_OK, "commit");
        fmt_gguf *g = NULL;
        CHECK(fmt_gguf_open(p, &g, err) == HQ_OK && fmt_gguf_alignment(g) == 64 &&
                  fmt_gguf_tensor_at(g, 1)->offset == 128,
              "64-aligned file: %s", err);
        hq_map m;
        if (hq_map_open(p, &m, err) == HQ_OK) {
            CHECK(m.size == total && total % 64 == 0, "size %llu", (unsigned long long)m.size);
            hq_map_close(&m);
        }
        fmt_gguf_close(g);
    }
    fmt_gguf_writer_free(w);
}

typedef void (*mk_fn)(gb *b);
/* a minimal valid body: 1 tensor F32 [8] at 0, alignment 32 */
static void valid_one(gb *b, uint64_t off, uint32_t type, uint64_t ne0) {
    gb_hdr(b, 3, 1, 1);
    gb_kv_u32(b, "general.alignment", 32);
    gb_tinfo(b, "w", 1, &ne0, type, off);
    gb_pad(b, 32);
    for (int i = 0; i < 64; i++) gb_le(b, (uint64_t)i, 1);
}

static void test_hostile(void) {
    gb b = {0};
#define RESET() (b.n = 0)
#define EXPECT(want, what)                                                                                      \
    do {                                                                                                        \
        hq_status st_ = open_mem(&b, NULL);                                                                     \
        CHECK(st_ == (want), "%s: got %s (%s)", what, hq_status_name(st_), err);                                \
        CHECK(st_ == HQ_OK || (strlen(err) > 0 && strchr(err, '\n') == NULL), "%s: one-line message", what); \
    } while (0)
    RESET(), valid_one(&b, 0, GGML_T_F32, 8);
    EXPECT(HQ_OK, "valid");
    RESET(), valid_one(&b, 0, GGML_T_F32, 8), b.p[3] = 'X';
    EXPECT(HQ_ERR_FORMAT, "bad magic");
    RESET(), valid_one(&b, 0, GGML_T_F32, 8), b.p[4] = 1;
    EXPECT(HQ_ERR_UNSUPPORTED, "version 1");
    RESET(), valid_one(&b, 0, GGML_T_F32, 8), b.p[4] = 2;
    EXPECT(HQ_OK, "version 2");
    RESET(), valid_one(&b, 0, GGML_T_F32, 8), b.p[4] = 4;
    EXPECT(HQ_ERR_UNSUPPORTED, "version 4");
    RESET(), valid_one(&b, 0, GGML_T_F32, 8), b.p[4] = 0, b.p[7] = 3;
    EXPECT(HQ_ERR_UNSUPPORTED, "big-endian");
    RESET(), gb_hdr(&b, 3, 1ull << 40, 0);
    EXPECT(HQ_ERR_LIMIT, "n_tensors 2^40");
    RESET(), gb_hdr(&b, 3, 0, 1ull << 63);
    EXPECT(HQ_ERR_LIMIT, "n_kv 2^63");
    RESET(), gb_hdr(&b, 3, 1000, 50000), gb_u64(&b, 0);
    EXPECT(HQ_ERR_FORMAT, "counts beyond file");
    RESET(), gb_hdr(&b, 3, 0, 1), gb_u64(&b, 1000), gb_put(&b, "abcdefghijklmnop", 16);
    EXPECT(HQ_ERR_FORMAT, "key length beyond EOF");
    RESET(), gb_hdr(&b, 3, 0, 1), gb_u64(&b, 70000), gb_put(&b, "abcdefghijklmnop", 16);
    EXPECT(HQ_ERR_FORMAT, "key > 65535");
    RESET(), gb_hdr(&b, 3, 0, 1), gb_u64(&b, 0), gb_u32(&b, GGUF_VT_U8), gb_le(&b, 1, 1);
    EXPECT(HQ_ERR_FORMAT, "empty key");
    RESET(), gb_hdr(&b, 3, 0, 1), gb_u64(&b, 3), gb_put(&b, "a\0b", 3), gb_u32(&b, GGUF_VT_U8), gb_le(&b, 1, 1);
    EXPECT(HQ_ERR_FORMAT, "NUL in key");
    RESET(), gb_hdr(&b, 3, 0, 1), gb_str(&b, "k"), gb_u32(&b, GGUF_VT_STRING), gb_u64(&b, 1ull << 62), gb_u64(&b, 0);
    EXPECT(HQ_ERR_LIMIT, "string 2^62");
    RESET(), gb_hdr(&b, 3, 0, 1), gb_str(&b, "k"), gb_u32(&b, GGUF_VT_STRING), gb_u64(&b, 100), gb_u64(&b, 0);
    EXPECT(HQ_ERR_FORMAT, "string beyond EOF");
    RESET(), gb_hdr(&b, 3, 0, 1), gb_str(&b, "k"), gb_u32(&b, 13), gb_u64(&b, 0);
    EXPECT(HQ_ERR_FORMAT, "unknown value type");
    RESET(), gb_hdr(&b, 3, 0, 1), gb_str(&b, "k"), gb_u32(&b, GGUF_VT_BOOL), gb_le(&b, 2, 1);
    EXPECT(HQ_ERR_FORMAT, "bool 2");
    RESET(), gb_hdr(&b, 3, 0, 1), gb_str(&b, "k"), gb_u32(&b, GGUF_VT_ARRAY), gb_u32(&b, GGUF_VT_BOOL), gb_u64(&b, 3),
        gb_le(&b, 1, 1), gb_le(&b, 0, 1), gb_le(&b, 255, 1);
    EXPECT(HQ_ERR_FORMAT, "bool array 255");
    RESET(), gb_hdr(&b, 3, 0, 1), gb_str(&b, "k"), gb_u32(&b, GGUF_VT_ARRAY), gb_u32(&b, GGUF_VT_U64),
        gb_u64(&b, 1ull << 62);
    EXPECT(HQ_ERR_LIMIT, "array count 2^62");
    RESET(), gb_hdr(&b, 3, 0, 1), gb_str(&b, "k"), gb_u32(&b, GGUF_VT_ARRAY), gb_u32(&b, GGUF_VT_U64),
        gb_u64(&b, 1ull << 29), gb_u64(&b, 0);
    EXPECT(HQ_ERR_FORMAT, "array beyond EOF");
    RESET(), gb_hdr(&b, 3, 0, 1), gb_str(&b, "k"), gb_u32(&b, GGUF_VT_ARRAY), gb_u32(&b, GGUF_VT_STRING),
        gb_u64(&b, 1ull << 29), gb_u64(&b, 0);
    EXPECT(HQ_ERR_FORMAT, "string array beyond EOF");
    RESET(), gb_hdr(&b, 3, 0, 1), gb_str(&b, "k"), gb_u32(&b, GGUF_VT_ARRAY), gb_u32(&b, 77), gb_u64(&b, 0);
    EXPECT(HQ_ERR_FORMAT, "unknown array element type");
    /* nested arrays: depth 2 accepted, depth 3+ refused */
    RESET(), gb_hdr(&b, 3, 0, 1), gb_str(&b, "k"), gb_u32(&b, GGUF_VT_ARRAY), gb_u32(&b, GGUF_VT_ARRAY), gb_u64(&b, 2),
        gb_u32(&b, GGUF_VT_U8), gb_u64(&b, 1), gb_le(&b, 5, 1), gb_u32(&b, GGUF_VT_STRING), gb_u64(&b, 1),
        gb_str(&b, "x");
    {
        fmt_gguf *g = NULL;
        CHECK(open_mem(&b, &g) == HQ_OK, "nested array: %s", err);
        if (g) {
            const fmt_gguf_kv *kv = fmt_gguf_find_kv(g, "k");
            CHECK(kv->v.arr.type == GGUF_VT_ARRAY && kv->v.arr.n == 2 && kv->v.arr.nbytes == 12 + 1 + 12 + 9,
                  "nested raw bytes");
            fmt_gguf_writer *w = NULL;
            fmt_gguf_writer_init(&w, 32, err);
            CHECK(fmt_gguf_copy_kv(w, kv, err) == HQ_OK, "copy nested");
            fmt_gguf_writer_free(w);
            fmt_gguf_close(g);
        }
    }
    RESET(), gb_hdr(&b, 3, 0, 1), gb_str(&b, "k");
    for (int d = 0; d < 4; d++) gb_u32(&b, GGUF_VT_ARRAY), gb_u32(&b, GGUF_VT_ARRAY), gb_u64(&b, 1), b.n -= 4;
    gb_u32(&b, GGUF_VT_U8), gb_u64(&b, 0), gb_u64(&b, 0);
    EXPECT(HQ_ERR_LIMIT, "arrays nested 4 deep");
    RESET(), gb_hdr(&b, 3, 0, 2), gb_kv_u32(&b, "k", 1), gb_kv_u32(&b, "k", 2);
    EXPECT(HQ_ERR_FORMAT, "duplicate key");
    static const uint32_t bad_align[] = {0, 3, 1u << 31, 131072};
    for (int i = 0; i < 4; i++) {
        RESET(), gb_hdr(&b, 3, 0, 1), gb_kv_u32(&b, "general.alignment", bad_align[i]);
        EXPECT(HQ_ERR_FORMAT, "bad alignment");
    }
    RESET(), gb_hdr(&b, 3, 0, 1), gb_str(&b, "general.alignment"), gb_u32(&b, GGUF_VT_U64), gb_u64(&b, 32);
    EXPECT(HQ_ERR_FORMAT, "alignment as u64");
    RESET(), gb_hdr(&b, 3, 0, 1), gb_kv_u32(&b, "general.alignment", 1);
    EXPECT(HQ_OK, "alignment 1");
    uint64_t ne8 = 8;
    RESET(), gb_hdr(&b, 3, 2, 0), gb_tinfo(&b, "w", 1, &ne8, GGML_T_F32, 0), gb_tinfo(&b, "w", 1, &ne8, GGML_T_F32, 32),
        gb_pad(&b, 32);
    for (int i = 0; i < 64; i++) gb_le(&b, 0, 1);
    EXPECT(HQ_ERR_FORMAT, "duplicate tensor names");
    RESET(), gb_hdr(&b, 3, 2, 0), gb_tinfo(&b, "w", 1, &ne8, GGML_T_F32, 0), gb_tinfo(&b, "v", 1, &ne8, GGML_T_F32, 0),
        gb_pad(&b, 32);
    for (int i = 0; i < 64; i++) gb_le(&b, 0, 1);
    EXPECT(HQ_ERR_FORMAT, "overlapping tensors");
    uint64_t ne16 = 16;
    RESET(), gb_hdr(&b, 3, 2, 1), gb_kv_u32(&b, "general.alignment", 8), gb_tinfo(&b, "w", 1, &ne16, GGML_T_F32, 0),
        gb_tinfo(&b, "v", 1, &ne8, GGML_T_F32, 32), gb_pad(&b, 8);
    for (int i = 0; i < 96; i++) gb_le(&b, 0, 1);
    EXPECT(HQ_ERR_FORMAT, "partial overlap");
    RESET(), valid_one(&b, 64, GGML_T_F32, 8);
    EXPECT(HQ_ERR_FORMAT, "offset beyond file");
    RESET(), valid_one(&b, 16, GGML_T_F32, 8);
    EXPECT(HQ_ERR_FORMAT, "offset not aligned");
    RESET(), valid_one(&b, 0, GGML_T_F32, 17);
    EXPECT(HQ_ERR_FORMAT, "tensor runs past EOF");
    RESET(), valid_one(&b, 0, 4, 8);
    EXPECT(HQ_ERR_FORMAT, "removed type 4");
    RESET(), valid_one(&b, 0, 1000, 8);
    EXPECT(HQ_ERR_FORMAT, "type 1000");
    RESET(), valid_one(&b, 0, GGML_T_Q8_0, 8);
    EXPECT(HQ_ERR_FORMAT, "Q8_0 row of 8");
    RESET(), valid_one(&b, 0, GGML_T_F32, 0);
    EXPECT(HQ_ERR_FORMAT, "ne 0");
    RESET(), valid_one(&b, 0, GGML_T_F32, 1ull << 63);
    EXPECT(HQ_ERR_FORMAT, "ne 2^63");
    static const uint64_t ne_ovf[2] = {1ull << 40, 1ull << 40}, ne_bytes[1] = {1ull << 62};
    RESET(), gb_hdr(&b, 3, 1, 0), gb_tinfo(&b, "w", 2, ne_ovf, GGML_T_F32, 0), gb_pad(&b, 32);
    EXPECT(HQ_ERR_FORMAT, "element count overflow");
    RESET(), gb_hdr(&b, 3, 1, 0), gb_tinfo(&b, "w", 1, ne_bytes, GGML_T_F64, 0), gb_pad(&b, 32);
    EXPECT(HQ_ERR_FORMAT, "byte size overflow");
    static const uint64_t ne_q4k[1] = {1ull << 62};
    RESET(), gb_hdr(&b, 3, 1, 0), gb_tinfo(&b, "w", 1, ne_q4k, GGML_T_Q4_K, 0), gb_pad(&b, 32);
    EXPECT(HQ_ERR_FORMAT, "Q4_K huge beyond file");
    RESET(), gb_hdr(&b, 3, 1, 0), gb_tinfo(&b, "w", 0, &ne8, GGML_T_F32, 0), gb_pad(&b, 32);
    EXPECT(HQ_ERR_FORMAT, "0 dims");
    RESET(), gb_hdr(&b, 3, 1, 0), gb_str(&b, "w"), gb_u32(&b, 5);
    for (int i = 0; i < 5; i++) gb_u64(&b, 1);
    gb_u32(&b, 0), gb_u64(&b, 0), gb_pad(&b, 32), gb_u64(&b, 0);
    EXPECT(HQ_ERR_FORMAT, "5 dims");
    RESET(), gb_hdr(&b, 3, 1, 0), gb_tinfo(&b, "0123456789012345678901234567890123456789012345678901234567890123", 1,
                                            &ne8, GGML_T_F32, 0),
        gb_pad(&b, 32);
    for (int i = 0; i < 32; i++) gb_le(&b, 0, 1);
    EXPECT(HQ_ERR_FORMAT, "64-byte name");
    RESET(), gb_hdr(&b, 3, 1, 0), gb_tinfo(&b, "", 1, &ne8, GGML_T_F32, 0), gb_pad(&b, 32);
    for (int i = 0; i < 32; i++) gb_le(&b, 0, 1);
    EXPECT(HQ_ERR_FORMAT, "empty name");
    RESET(), gb_hdr(&b, 3, 1, 0), gb_tinfo(&b, "w", 1, &ne8, GGML_T_F32, 0);
    EXPECT(HQ_ERR_FORMAT, "data section past EOF");
    RESET(), gb_hdr(&b, 3, 0, 0);
    EXPECT(HQ_OK, "empty file of 24 bytes");
    RESET(), gb_put(&b, "GGUF", 4);
    EXPECT(HQ_ERR_FORMAT, "4 bytes");
    free(b.p);
#undef EXPECT
#undef RESET
}

static void test_truncation_and_flips(void) {
    hq_map m;
    if (hq_map_open(sample_path, &m, err) != HQ_OK) {
        CHECK(0, "map: %s", err);
        return;
    }
    uint8_t *b = malloc(m.size + 1);
    /* the file holds tensor data right to the end, so every cut loses something */
    int refused = 0;
    for (uint64_t n = 0; n < m.size; n++) {
        memcpy(b, m.data, (size_t)n);
        fmt_gguf *g = NULL;
        hq_status st = fmt_gguf_open_buffer(b, n, "cut", &g, err);
        /* cuts inside the last tensor's trailing padding still hold every byte */
        const fmt_gguf_tensor *last = NULL;
        if (!st) last = fmt_gguf_tensor_at(g, 3);
        if (st || (last && (const uint8_t *)last->data + last->nbytes <= b + n)) refused += st != HQ_OK;
        if (!st && !(last && (const uint8_t *)last->data + last->nbytes <= b + n)) CHECK(0, "cut %llu", (unsigned long long)n);
        fmt_gguf_close(g);
    }
    CHECK(refused >= (int)m.size - 32, "truncations refused: %d of %llu", refused, (unsigned long long)m.size);
    int iters = getenv("HQ_FUZZ_ITERS") ? atoi(getenv("HQ_FUZZ_ITERS")) : getenv("HQ_SANITIZED") ? 400 : 2000;
    int accepted = 0, inside = 0;
    uint64_t data_off = 0;
    {
        fmt_gguf *g = NULL;
        fmt_gguf_open_buffer(m.data, m.size, "s", &g, err);
        data_off = g ? fmt_gguf_data_offset(g) : m.size;
        fmt_gguf_close(g);
    }
    for (int it = 0; it < iters; it++) {
        memcpy(b, m.data, (size_t)m.size);
        int flips = 1 + (int)(rnd() % 4);
        for (int f = 0; f < flips; f++) {
            uint64_t pos = rnd() % data_off; /* the metadata is what the parser reads */
            if (rnd() % 3 == 0) b[pos] = (uint8_t)rnd();
            else b[pos] ^= (uint8_t)(1u << (rnd() % 8));
        }
        fmt_gguf *g = NULL;
        if (fmt_gguf_open_buffer(b, m.size, "flip", &g, err) == HQ_OK) {
            accepted++;
            bool ok = true;
            for (uint64_t i = 0; i < fmt_gguf_n_tensors(g); i++) {
                const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
                const uint8_t *d = t->data;
                if (d < b || d + t->nbytes > b + m.size) ok = false;
            }
            inside += ok;
            fmt_gguf_close(g);
        }
    }
    CHECK(accepted == inside, "accepted flipped files stay in bounds (%d/%d)", inside, accepted);
    free(b);
    hq_map_close(&m);
}

static void test_alloc_failures(void) {
    hq_map m;
    if (hq_map_open(sample_path, &m, err) != HQ_OK) return;
    int nomem = 0, ok_at = -1;
    for (int k = 1; k < 200; k++) {
        hq_alloc_fail_at(k);
        fmt_gguf *g = NULL;
        hq_status st = fmt_gguf_open_buffer(m.data, m.size, "a", &g, err);
        fmt_gguf_close(g);
        if (st == HQ_ERR_NOMEM) nomem++;
        else {
            ok_at = st == HQ_OK ? k : -2;
            break;
        }
    }
    hq_alloc_fail_at(0);
    CHECK(ok_at > 1 && nomem == ok_at - 1, "reader: NOMEM until success (%d, %d)", nomem, ok_at);
    char p[160];
    snprintf(p, sizeof p, "%s/oom.gguf", tmpdir);
    nomem = 0, ok_at = -1;
    for (int k = 1; k < 400; k++) {
        hq_alloc_fail_at(k);
        hq_status st = write_sample(p, NULL, err);
        if (st == HQ_ERR_NOMEM) nomem++;
        else {
            ok_at = st == HQ_OK ? k : -2;
            if (st) fprintf(stderr, "writer alloc fail %d: %s\n", k, err);
            break;
        }
    }
    hq_alloc_fail_at(0);
    CHECK(ok_at > 1 && nomem == ok_at - 1, "writer: NOMEM until success (%d, %d)", nomem, ok_at);
    unlink(p);
    hq_map_close(&m);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-sample") == 0) {
        hq_status st = write_sample(argv[2], NULL, err);
        if (st) fprintf(stderr, "test_gguf: %s\n", err);
        return st ? 1 : 0;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hq_gguf_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    snprintf(sample_path, sizeof sample_path, "%s/sample.gguf", tmpdir);
    test_roundtrip();
    test_writer_misuse();
    test_hostile();
    test_truncation_and_flips();
    test_alloc_failures();
    char p[200];
    static const char *files[] = {"sample.gguf", "copy.gguf", "misuse.gguf"};
    for (int i = 0; i < 3; i++) snprintf(p, sizeof p, "%s/%s", tmpdir, files[i]), unlink(p);
    rmdir(tmpdir);
    TEST_END();
}
