/* tests/test_ckpt.c — opening checkpoints (files, HF directories, sharded
 * indexes, hostile indexes), the container's own checks, and fmt_tensor_read
 * over strided views (against torch.as_strided results in the fixtures and
 * against the scalar reference across odd sizes). Run with --bench for
 * conversion throughput. */
#include "../core/half.h"
#include "../core/hq.h"
#include "../formats/ckpt.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char err[HQ_ERR_LEN];
static char tmpdir[64];

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void write_file(const char *name, const void *p, size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(p, 1, n, f);
    fclose(f);
}
static void write_text(const char *name, const char *s) { write_file(name, s, strlen(s)); }
static void rm_file(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    unlink(path);
}

/* writes a safetensors file holding u8 tensors of the given names, 2 bytes each */
static void write_st(const char *file, const char *const *names, int n) {
    char hdr[2048];
    size_t k = 0;
    k += (size_t)snprintf(hdr + k, sizeof hdr - k, "{");
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(hdr + k, sizeof hdr - k, "%s\"%s\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[%d,%d]}",
                              i ? "," : "", names[i], 2 * i, 2 * i + 2);
    k += (size_t)snprintf(hdr + k, sizeof hdr - k, "}");
    uint8_t buf[4096];
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)k >> (8 * i));
    memcpy(buf + 8, hdr, k);
    for (int i = 0; i < 2 * n; i++) buf[8 + k + (size_t)i] = (uint8_t)(i * 7 + 1);
    write_file(file, buf, 8 + k + 2 * (size_t)n);
}

static hq_status open_tmp(fmt_ckpt **ck) {
    *ck = NULL;
    return fmt_ckpt_open(tmpdir, ck, err);
}

/* same names, dtypes, shapes and bytes */
static void check_same(const fmt_ckpt *a, const fmt_ckpt *b, const char *what) {
    CHECK(a->n_tensors == b->n_tensors, "%s: %llu vs %llu tensors", what, (unsigned long long)a->n_tensors,
          (unsigned long long)b->n_tensors);
    int same = 0;
    for (uint64_t i = 0; i < a->n_tensors; i++) {
        const fmt_tensor *x = &a->tensors[i], *y = fmt_ckpt_find(b, x->name);
        if (!y || x->dtype != y->dtype || x->ndim != y->ndim ||
            memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim) != 0)
            continue;
        uint64_t n = fmt_tensor_nelem(x);
        float *fx = malloc(n * 4 + 4), *fy = malloc(n * 4 + 4);
        if (fmt_tensor_read(x, HQ_DT_F32, fx, err) == HQ_OK && fmt_tensor_read(y, HQ_DT_F32, fy, err) == HQ_OK &&
            memcmp(fx, fy, n * 4) == 0)
            same++;
        free(fx);
        free(fy);
    }
    CHECK(same == (int)a->n_tensors, "%s: %d of %llu tensors identical", what, same, (unsigned long long)a->n_tensors);
}

static void test_fixture_dirs(void) {
    fmt_ckpt *single = NULL, *sh = NULL, *f = NULL;
    CHECK(fmt_ckpt_open(FIXTURE("formats/single"), &single, err) == HQ_OK, "single: %s", err);
    if (!single) return;
    CHECK(strcmp(single->kind, "safetensors") == 0, "kind %s", single->kind);
    CHECK(single->n_tensors == 8, "8 tensors");
    CHECK(single->config_json && strstr(single->config_json, "DogeForCausalLM"), "config carried");
    CHECK(single->tokenizer_json && strstr(single->tokenizer_json, "BPE"), "tokenizer carried");
    CHECK(single->tokenizer_config_json && strstr(single->tokenizer_config_json, "add_bos_token"),
          "tokenizer_config carried");

    CHECK(fmt_ckpt_open(FIXTURE("formats/sharded"), &sh, err) == HQ_OK, "sharded: %s", err);
    if (sh) {
        CHECK(strcmp(sh->kind, "safetensors (3 shards)") == 0, "kind %s", sh->kind);
        CHECK(sh->config_json && !sh->tokenizer_json && !sh->tokenizer_config_json, "side files");
        int seen[3] = {0};
        for (uint64_t i = 0; i < sh->n_tensors; i++)
            if (sh->tensors[i].file_index >= 0 && sh->tensors[i].file_index < 3) seen[sh->tensors[i].file_index]++;
        CHECK(seen[0] == 3 && seen[1] == 2 && seen[2] == 3, "file indexes %d %d %d", seen[0], seen[1], seen[2]);
        check_same(single, sh, "sharded = unsharded");
        fmt_ckpt_close(sh);
    }
    CHECK(fmt_ckpt_open(FIXTURE("formats/sharded/model.safetensors.index.json"), &f, err) == HQ_OK,
          "index path: %s", err);
    if (f) {
        check_same(single, f, "index file path");
        fmt_ckpt_close(f);
    }
    CHECK(fmt_ckpt_open(FIXTURE("formats/single/model.safetensors"), &f, err) == HQ_OK, "file path: %s", err);
    if (f) {
        CHECK(f->config_json != NULL, "config beside a single file");
        check_same(single, f, "file path");
        fmt_ckpt_close(f);
    }
    /* torch files are routed to the torch reader by their first bytes */
    static const struct {
        const char *dir, *kind;
    } tk[] = {{"formats/torch_zip", "torch zip"},
              {"formats/torch_legacy", "torch legacy"},
              {"formats/sharded_torch", "torch zip (2 shards)"}};
    for (size_t i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof path, "tests/fixtures/%s", tk[i].dir);
        hq_status st = fmt_ckpt_open(path, &f, err);
        CHECK(st == HQ_OK, "%s: %s", tk[i].dir, err);
        if (st == HQ_OK) {
            CHECK(strcmp(f->kind, tk[i].kind) == 0, "%s: kind %s", tk[i].dir, f->kind);
            check_same(single, f, tk[i].dir);
            fmt_ckpt_close(f);
        }
    }
    fmt_ckpt_close(single);
}

static void test_hostile_dirs(void) {
    fmt_ckpt *ck = NULL;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hq_ckpt_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    CHECK(fmt_ckpt_open("/nonexistent/hq/x", &ck, err) == HQ_ERR_IO, "missing path: %s", err);
    CHECK(open_tmp(&ck) == HQ_ERR_ARG, "empty dir: %s", err);

    static const char *ab[] = {"a", "b"}, *c[] = {"c"}, *a[] = {"a"}, *bb[] = {"b"};
    write_st("one.safetensors", ab, 2);
    write_st("two.safetensors", c, 1);
    CHECK(open_tmp(&ck) == HQ_ERR_ARG && strstr(err, "ambiguous"), "two safetensors: %s", err);
    rm_file("two.safetensors");
    write_text("other.bin", "PK\x03\x04 not really");
    CHECK(open_tmp(&ck) == HQ_OK, "safetensors preferred over .bin: %s", err);
    if (ck) {
        CHECK(ck->n_tensors == 2 && ck->config_json == NULL, "one.safetensors loaded");
        fmt_ckpt_close(ck);
    }
    rm_file("other.bin");
    rm_file("one.safetensors");

    /* sharded: shard-a has a, shard-b has b */
    write_st("s-1.safetensors", a, 1);
    write_st("s-2.safetensors", bb, 1);
    static const struct {
        const char *index;
        hq_status want;
        const char *what;
    } idx[] = {
        {"{\"weight_map\":{\"a\":\"s-1.safetensors\",\"b\":\"s-2.safetensors\"}}", HQ_OK, "good index"},
        {"{\"weight_map\":{\"a\":\"../s-1.safetensors\",\"b\":\"s-2.safetensors\"}}", HQ_ERR_FORMAT, "dot-dot"},
        {"{\"weight_map\":{\"a\":\"/tmp/s-1.safetensors\",\"b\":\"s-2.safetensors\"}}", HQ_ERR_FORMAT, "absolute"},
        {"{\"weight_map\":{\"a\":\"sub/s-1.safetensors\",\"b\":\"s-2.safetensors\"}}", HQ_ERR_FORMAT, "slash"},
        {"{\"weight_map\":{\"a\":\"s-1.bin\",\"b\":\"s-2.safetensors\"}}", HQ_ERR_FORMAT, "extension"},
        {"{\"weight_map\":{\"a\":\"C:s-1.safetensors\"}}", HQ_ERR_FORMAT, "drive"},
        {"{\"weight_map\":{\"a\":\"s-1.safetensors\",\"b\":\"s-1.safetensors\"}}", HQ_ERR_MISMATCH,
         "tensor not in its shard"},
        {"{\"weight_map\":{\"a\":\"s-1.safetensors\",\"b\":\"s-2.safetensors\",\"z\":\"s-2.safetensors\"}}",
         HQ_ERR_MISMATCH, "listed tensor missing"},
        {"{\"weight_map\":{\"a\":\"s-2.safetensors\",\"b\":\"s-1.safetensors\"}}", HQ_ERR_MISMATCH, "swapped"},
        {"{\"weight_map\":{\"a\":\"s-1.safetensors\",\"b\":\"s-2.safetensors\",\"a\":\"s-1.safetensors\"}}",
         HQ_ERR_FORMAT, "duplicate entry"},
        {"{\"weight_map\":{\"a\":\"s-1.safetensors\",\"b\":\"s-9.safetensors\"}}", HQ_ERR_IO, "missing shard"},
        {"{\"weight_map\":{\"a\":1}}", HQ_ERR_FORMAT, "non-string shard"},
        {"{\"weight_map\":{}}", HQ_ERR_FORMAT, "empty map"},
        {"{\"metadata\":{}}", HQ_ERR_FORMAT, "no weight_map"},
        {"[1]", HQ_ERR_FORMAT, "array"},
        {"{\"weight_map\":", HQ_ERR_FORMAT, "bad JSON"},
    };
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++) {
        write_text("model.safetensors.index.json", idx[i].index);
        hq_status st = open_tmp(&ck);
        CHECK(st == idx[i].want, "%s: got %s (%s)", idx[i].what, hq_status_name(st), err);
        if (!st) {
            CHECK(strcmp(ck->kind, "safetensors (2 shards)") == 0, "kind %s", ck->kind);
            fmt_ckpt_close(ck);
        }
    }
    /* a shard holding a tensor the index does not list */
    static const char *ac[] = {"a", "c"};
    write_st("s-3.safetensors", ac, 2);
    write_text("model.safetensors.index.json", "{\"weight_map\":{\"a\":\"s-3.safetensors\",\"b\":\"s-2.safetensors\"}}");
    CHECK(open_tmp(&ck) == HQ_ERR_MISMATCH && strstr(err, "'c'"), "unlisted tensor: %s", err);
    rm_file("s-3.safetensors");
    /* the same tensor in two shards */
    write_st("s-2.safetensors", ab, 2);
    write_text("model.safetensors.index.json", "{\"weight_map\":{\"a\":\"s-1.safetensors\",\"b\":\"s-2.safetensors\"}}");
    CHECK(open_tmp(&ck) == HQ_ERR_FORMAT && strstr(err, "two files"), "tensor in two shards: %s", err);
    /* a torch index must point at .bin files */
    rm_file("model.safetensors.index.json");
    write_text("pytorch_model.bin.index.json", "{\"weight_map\":{\"a\":\"s-1.safetensors\"}}");
    CHECK(open_tmp(&ck) == HQ_ERR_FORMAT, "safetensors shard in a torch index: %s", err);
    rm_file("pytorch_model.bin.index.json");
    rm_file("s-1.safetensors");
    rm_file("s-2.safetensors");
    /* config.json is embedded in the GGUF verbatim: it must be a JSON object */
    write_st("model.safetensors", a, 1);
    write_text("config.json", "{not json");
    CHECK(open_tmp(&ck) == HQ_ERR_FORMAT && strstr(err, "config.json: not a JSON object"), "config not JSON: %s", err);
    rm_file("config.json");
    rm_file("model.safetensors");
    rmdir(tmpdir);
}

static fmt_tensor mk_view(const char *name, hq_dtype dt, const void *storage, uint64_t bytes, int ndim,
                          const int64_t *shape, const int64_t *stride, int64_t off) {
    fmt_tensor t;
    memset(&t, 0, sizeof t);
    t.name = (char *)name;
    t.dtype = dt;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i], t.stride[i] = stride[i];
    t.offset = off;
    t.storage = storage;
    t.storage_bytes = bytes;
    return t;
}

static void test_add_checks(void) {
    fmt_ckpt *ck = fmt_ckpt_new();
    uint8_t buf[64] = {0};
    int64_t sh[2] = {2, 3}, st[2] = {3, 1}, neg[2] = {3, -1}, big[2] = {4, 1};
    fmt_tensor t = mk_view("w", HQ_DT_F32, buf, 24, 2, sh, st, 0);
    CHECK(fmt_ckpt_add(ck, &t, "t", err) == HQ_OK, "good view: %s", err);
    CHECK(fmt_ckpt_add(ck, &t, "t", err) == HQ_ERR_FORMAT, "duplicate name");
    t = mk_view("x", HQ_DT_F32, buf, 24, 2, sh, st, 1);
    CHECK(fmt_ckpt_add(ck, &t, "t", err) == HQ_ERR_FORMAT, "offset pushes past storage: %s", err);
    t = mk_view("y", HQ_DT_F32, buf, 24, 2, sh, neg, 2);
    CHECK(fmt_ckpt_add(ck, &t, "t", err) == HQ_ERR_FORMAT, "negative stride");
    t = mk_view("z", HQ_DT_F32, buf, 28, 2, sh, big, 0);
    CHECK(fmt_ckpt_add(ck, &t, "t", err) == HQ_OK, "overlapping rows ok (stride < row): %s", err);
    t = mk_view("z2", HQ_DT_F32, buf, 24, 2, sh, st, -1);
    CHECK(fmt_ckpt_add(ck, &t, "t", err) == HQ_ERR_FORMAT, "negative offset");
    int64_t huge[2] = {INT64_MAX, 3};
    t = mk_view("z3", HQ_DT_F32, buf, 24, 2, huge, st, 0);
    CHECK(fmt_ckpt_add(ck, &t, "t", err) == HQ_ERR_FORMAT, "element overflow");
    int64_t zero[2] = {0, 3};
    t = mk_view("e", HQ_DT_F32, buf, 0, 2, zero, st, 1000);
    CHECK(fmt_ckpt_add(ck, &t, "t", err) == HQ_OK, "empty view addresses nothing: %s", err);
    t = mk_view("n9", HQ_DT_F32, buf, 24, 2, sh, st, 0);
    t.ndim = 9;
    CHECK(fmt_ckpt_add(ck, &t, "t", err) == HQ_ERR_LIMIT, "9 dims");
    CHECK(fmt_ckpt_find(ck, "w") && fmt_ckpt_find(ck, "e") && !fmt_ckpt_find(ck, "x"), "find");
    /* many names: the hash index keeps add/find linear */
    char nm[32];
    int okc = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(nm, sizeof nm, "t.%d", i);
        t = mk_view(nm, HQ_DT_U8, buf, 1, 0, sh, st, 0);
        okc += fmt_ckpt_add(ck, &t, "t", err) == HQ_OK;
    }
    CHECK(okc == 5000 && fmt_ckpt_find(ck, "t.4321") && ck->n_tensors == 5003, "5000 adds: %d, %llu, %s", okc,
          (unsigned long long)ck->n_tensors, err);
    fmt_ckpt_close(ck);

    int64_t s1[2] = {4, 1}, r1[2] = {1, 4}, s2[3] = {2, 1, 3}, r2[3] = {3, 99, 1};
    t = mk_view("c", HQ_DT_F32, buf, 64, 2, s1, r1, 0);
    CHECK(fmt_tensor_is_contiguous(&t), "[4,1] stride [1,4] is contiguous");
    t = mk_view("c", HQ_DT_F32, buf, 64, 2, s1, s1, 0);
    CHECK(!fmt_tensor_is_contiguous(&t), "[4,1] stride [4,1] is not");
    t = mk_view("c", HQ_DT_F32, buf, 64, 3, s2, r2, 0);
    CHECK(fmt_tensor_is_contiguous(&t), "size-1 dim stride ignored");
}

/* views over the fixture's 'base' tensor, against torch.as_strided (the list
 * repeats VIEWS in tools/make_format_fixtures.py) */
static void test_views_vs_torch(void) {
    static const struct {
        int ndim;
        int64_t size[3], stride[3], off;
    } views[] = {
        {2, {6, 4}, {1, 6}, 0}, {2, {4, 3}, {6, 2}, 1},          {2, {3, 5}, {0, 1}, 7}, {3, {2, 3, 2}, {24, 1, 12}, 3},
        {1, {5}, {9}, 2},       {0, {0}, {0}, 11},               {3, {2, 0, 3}, {3, 3, 1}, 0},
    };
    fmt_ckpt *ck = NULL, *ref = NULL;
    fmt_ckpt_open(FIXTURE("formats/mixed.safetensors"), &ck, err);
    fmt_ckpt_open(FIXTURE("formats/mixed_ref.safetensors"), &ref, err);
    const fmt_tensor *base = ck ? fmt_ckpt_find(ck, "base") : NULL;
    CHECK(base && ref, "fixtures: %s", err);
    if (!base || !ref) {
        fmt_ckpt_close(ck);
        fmt_ckpt_close(ref);
        return;
    }
    static const char *outs[3] = {"f32", "f16", "bf16"};
    static const hq_dtype odt[3] = {HQ_DT_F32, HQ_DT_F16, HQ_DT_BF16};
    for (size_t v = 0; v < sizeof views / sizeof views[0]; v++) {
        fmt_tensor t = mk_view("view", HQ_DT_F16, base->storage, base->storage_bytes, views[v].ndim, views[v].size,
                               views[v].stride, views[v].off);
        for (int o = 0; o < 3; o++) {
            char rn[32];
            snprintf(rn, sizeof rn, "view%zu.%s", v, outs[o]);
            const fmt_tensor *r = fmt_ckpt_find(ref, rn);
            uint64_t n = fmt_tensor_nelem(&t);
            uint8_t got[256], got2[256];
            hq_status s1 = fmt_tensor_read(&t, odt[o], got, err);
            hq_status s2 = fmt_tensor_read_ref(&t, odt[o], got2, err);
            CHECK(r && s1 == HQ_OK && s2 == HQ_OK && r->storage_bytes == n * hq_dtype_size(odt[o]), "%s", rn);
            if (r && !s1 && !s2 && r->storage_bytes == n * hq_dtype_size(odt[o])) {
                CHECK(memcmp(got, r->storage, (size_t)r->storage_bytes) == 0, "%s equals torch", rn);
                CHECK(memcmp(got2, r->storage, (size_t)r->storage_bytes) == 0, "%s (ref) equals torch", rn);
            }
        }
    }
    fmt_ckpt_close(ck);
    fmt_ckpt_close(ref);
}

/* the fast paths (memcpy, tight loops, F16C) against the scalar reference:
 * every source/output pair, odd lengths, random bit patterns (NaN, Inf,
 * subnormals included), unaligned source and destination, strided sources */
static void test_fast_vs_ref(void) {
    static const hq_dtype src[] = {HQ_DT_F32, HQ_DT_F16, HQ_DT_BF16, HQ_DT_F64, HQ_DT_I64, HQ_DT_I32};
    static const hq_dtype out[] = {HQ_DT_F32, HQ_DT_F16, HQ_DT_BF16};
    static const int64_t lens[] = {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 129, 1023};
    uint8_t *sbuf = malloc(1023 * 8 * 3 + 16), *d1 = malloc(1023 * 4 * 3 + 16), *d2 = malloc(1023 * 4 * 3 + 16);
    int cases = 0, same = 0;
    for (size_t s = 0; s < sizeof src / sizeof src[0]; s++)
        for (size_t o = 0; o < 3; o++)
            for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
                for (int mode = 0; mode < 3; mode++) { /* 0 contiguous, 1 unaligned, 2 strided 2-d */
                    for (size_t i = 0; i < 1023 * 8 * 3 + 16; i++) sbuf[i] = (uint8_t)rnd();
                    uint32_t es = hq_dtype_size(src[s]);
                    int64_t n = lens[l];
                    const uint8_t *st = sbuf + (mode == 1 ? 1 : 0);
                    uint8_t *o1 = d1 + (mode == 1 ? 1 : 0), *o2 = d2 + (mode == 1 ? 1 : 0);
                    int64_t shape[2] = {n, 1}, stride[2] = {1, 1};
                    int nd = 1;
                    if (mode == 2) shape[0] = n, shape[1] = 2, stride[0] = 3, stride[1] = 1, nd = 2;
                    uint64_t bytes = (uint64_t)(mode == 2 ? 3 * n : n) * es;
                    fmt_tensor t = mk_view("r", src[s], st, bytes, nd, shape, stride, 0);
                    uint64_t ob = fmt_tensor_nelem(&t) * hq_dtype_size(out[o]);
                    memset(o1, 0xAB, ob + 4);
                    memset(o2, 0xCD, ob + 4);
                    cases++;
                    if (fmt_tensor_read(&t, out[o], o1, err) == HQ_OK && fmt_tensor_read_ref(&t, out[o], o2, err) == HQ_OK &&
                        memcmp(o1, o2, ob) == 0 && o1[ob] == 0xAB)
                        same++;
                    else
                        fprintf(stderr, "mismatch: %s -> %s n=%lld mode=%d\n", hq_dtype_name(src[s]),
                                hq_dtype_name(out[o]), (long long)n, mode);
                }
    CHECK(same == cases, "fast == ref in %d of %d cases", same, cases);
    /* every f16 bit pattern through F16C vs scalar, both directions */
    uint16_t *h = malloc(65536 * 2), *h2 = malloc(65536 * 2);
    float *f = malloc(65536 * 4), *f2 = malloc(65536 * 4);
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    int64_t shp[1] = {65536}, str[1] = {1};
    fmt_tensor t = mk_view("h", HQ_DT_F16, h, 65536 * 2, 1, shp, str, 0);
    fmt_tensor_read(&t, HQ_DT_F32, f, err);
    fmt_tensor_read_ref(&t, HQ_DT_F32, f2, err);
    CHECK(memcmp(f, f2, 65536 * 4) == 0, "all f16 -> f32");
    /* f32 patterns around every f16 rounding boundary */
    for (uint32_t i = 0; i < 65536; i++) {
        uint32_t u = (uint32_t)(rnd() & 0xffffffffu);
        if (i & 1) u = (u & 0x80000000u) | ((uint32_t)(0x33000000u + (rnd() % (0x47800000u - 0x33000000u))) & ~0x0fffu) |
                       ((i & 2) ? 0x1000u : 0u);
        memcpy(&f[i], &u, 4);
    }
    t = mk_view("f", HQ_DT_F32, f, 65536 * 4, 1, shp, str, 0);
    fmt_tensor_read(&t, HQ_DT_F16, h, err);
    fmt_tensor_read_ref(&t, HQ_DT_F16, h2, err);
    CHECK(memcmp(h, h2, 65536 * 2) == 0, "f32 -> f16 ties and specials");
    free(h), free(h2), free(f), free(f2);
    free(sbuf), free(d1), free(d2);
}

static void bench(uint64_t mb) {
    uint64_t n = mb << 20;
    uint8_t *src = malloc(n), *dst = malloc(n * 2);
    for (uint64_t i = 0; i < n; i++) src[i] = (uint8_t)(i * 131 + (i >> 9));
    memset(dst, 1, n * 2); /* fault the pages in before timing */
    double tm = 1e9;
    for (int r = 0; r < 3; r++) {
        double t0 = hq_now();
        memcpy(dst, src, n);
        double t1 = hq_now() - t0;
        if (t1 < tm) tm = t1;
    }
    printf("bench: memcpy %.0f MB/s\n", (double)n / tm / 1e6);
    static const struct {
        hq_dtype s, o;
    } pairs[] = {{HQ_DT_F32, HQ_DT_F32}, {HQ_DT_BF16, HQ_DT_F32}, {HQ_DT_F16, HQ_DT_F32},
                 {HQ_DT_F32, HQ_DT_F16}, {HQ_DT_F32, HQ_DT_BF16}, {HQ_DT_BF16, HQ_DT_BF16}};
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        uint32_t es = hq_dtype_size(pairs[p].s), eo = hq_dtype_size(pairs[p].o);
        int64_t ne = (int64_t)(n / (es > eo ? es : eo)), str = 1;
        fmt_tensor t = mk_view("b", pairs[p].s, src, (uint64_t)ne * es, 1, &ne, &str, 0);
        double best = 1e9;
        for (int r = 0; r < 3; r++) {
            double a = hq_now();
            fmt_tensor_read(&t, pairs[p].o, dst, err);
            double b = hq_now() - a;
            if (b < best) best = b;
        }
        /* bytes moved = read + written, compared with memcpy of the same (read+write) */
        double bytes = (double)ne * (es + eo) / 2;
        printf("bench: %s -> %s %.0f MB/s (%.0f%% of memcpy)\n", hq_dtype_name(pairs[p].s), hq_dtype_name(pairs[p].o),
               bytes / best / 1e6, 100.0 * (bytes / best) / ((double)n / tm));
    }
    free(src);
    free(dst);
}

/* every allocation of opening a sharded directory (index JSON, shards, side
 * files) may fail: the answer is NOMEM and nothing leaks (ASan) */
static void test_alloc_failures(void) {
    static const char *dirs[] = {FIXTURE("formats/sharded"), FIXTURE("formats/single"), FIXTURE("formats/torch_zip")};
    for (int d = 0; d < 3; d++) {
        int nomem = 0, ok_at = -1;
        for (int k = 1; k < 2000; k++) {
            hq_alloc_fail_at(k);
            fmt_ckpt *ck = NULL;
            hq_status st = fmt_ckpt_open(dirs[d], &ck, err);
            fmt_ckpt_close(ck);
            if (st == HQ_ERR_NOMEM) nomem++;
            else {
                ok_at = st == HQ_OK ? k : -2;
                if (st && !(d == 2 && st == HQ_ERR_UNSUPPORTED)) fprintf(stderr, "fail at %d: %s\n", k, err);
                if (d == 2 && st == HQ_ERR_UNSUPPORTED) ok_at = k; /* torch reader not built */
                break;
            }
        }
        hq_alloc_fail_at(0);
        CHECK(ok_at > 1 && nomem == ok_at - 1, "%s: NOMEM until success (%d, %d)", dirs[d], nomem, ok_at);
    }
}

/* --bench-file CKPT [f32|f16|bf16]: every tensor of a real checkpoint through
 * fmt_tensor_read (mapping faults included), as convert streams it */
static int bench_file(const char *path, const char *out) {
    hq_dtype od = strcmp(out, "f16") == 0 ? HQ_DT_F16 : strcmp(out, "bf16") == 0 ? HQ_DT_BF16 : HQ_DT_F32;
    fmt_ckpt *ck = NULL;
    double t0 = hq_now();
    if (fmt_ckpt_open(path, &ck, err) != HQ_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double t1 = hq_now();
    uint64_t in_bytes = 0, out_bytes = 0, maxn = 0;
    for (uint64_t i = 0; i < ck->n_tensors; i++)
        if (fmt_tensor_nelem(&ck->tensors[i]) > maxn) maxn = fmt_tensor_nelem(&ck->tensors[i]);
    void *dst = malloc(maxn * 4 + 4);
    for (uint64_t i = 0; i < ck->n_tensors; i++) {
        const fmt_tensor *t = &ck->tensors[i];
        if (fmt_tensor_read(t, od, dst, err) != HQ_OK) continue;
        in_bytes += fmt_tensor_nelem(t) * hq_dtype_size(t->dtype);
        out_bytes += fmt_tensor_nelem(t) * hq_dtype_size(od);
    }
    double t2 = hq_now();
    printf("bench-file: %s (%s, %llu tensors): open %.3f s, read %.1f MB -> %.1f MB %s in %.3f s = %.0f MB/s in\n",
           path, ck->kind, (unsigned long long)ck->n_tensors, t1 - t0, in_bytes / 1e6, out_bytes / 1e6,
           hq_dtype_name(od), t2 - t1, in_bytes / 1e6 / (t2 - t1));
    free(dst);
    fmt_ckpt_close(ck);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "--bench-file") == 0) return bench_file(argv[2], argc > 3 ? argv[3] : "f32");
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
        bench(argc > 2 ? (uint64_t)atoi(argv[2]) : 256);
        return 0;
    }
    test_fixture_dirs();
    test_hostile_dirs();
    test_add_checks();
    test_views_vs_torch();
    test_fast_vs_ref();
    test_alloc_failures();
    TEST_END();
}
