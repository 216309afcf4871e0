/* tests/test_torch.c — fmt_torch_parse end to end.
 *  1. Fixtures written by real torch (tools/make_torch_fixtures.py): every
 *     tensor's dtype, shape, stride, offset, storage sharing and values match
 *     what torch.load reported (tests/fixtures/torch/expected.txt), read both
 *     directly through the storage pointer + strides and through
 *     fmt_tensor_read.
 *  2. The same archive re-encoded with ZIP64 saturated fields (> 4 GiB layout).
 *  3. Crafted state dicts violating each §1.5 rule, hostile globals, container
 *     shapes, byte order, compression, tar/legacy magic.
 *  4. Every truncation, seeded random byte flips (CRC removed so they reach
 *     the pickle VM) and allocation failures: clean errors only. */
#include "../core/half.h"
#include "../formats/ckpt.h"
#include "../formats/zip.h"
#include "test.h"
#include "torch_build.h"

#include <math.h>   // defines: NAN
#include <stdlib.h>

#define FX(n) FIXTURE("torch/" n)

static double elem_at(const fmt_tensor *t, uint64_t i) {
    const uint8_t *p = t->storage + i * hq_dtype_size(t->dtype);
    float f;
    double d;
    int64_t q;
    int32_t w;
    int16_t h;
    uint16_t u;
    switch (t->dtype) {
    case HQ_DT_F32: memcpy(&f, p, 4); return f;
    case HQ_DT_F16: memcpy(&u, p, 2); return hq_f16_to_f32(u);
    case HQ_DT_BF16: memcpy(&u, p, 2); return hq_bf16_to_f32(u);
    case HQ_DT_F64: memcpy(&d, p, 8); return d;
    case HQ_DT_I64: memcpy(&q, p, 8); return (double)q;
    case HQ_DT_I32: memcpy(&w, p, 4); return w;
    case HQ_DT_I16: memcpy(&h, p, 2); return h;
    case HQ_DT_I8: return (int8_t)p[0];
    case HQ_DT_U8: return p[0];
    case HQ_DT_BOOL: return p[0];
    default: return NAN;
    }
}

/* row-major gather through shape/stride/offset into a new array */
static double *gather(const fmt_tensor *t, uint64_t *n_out) {
    uint64_t n = fmt_tensor_nelem(t);
    double *v = malloc((n ? n : 1) * sizeof *v);
    int64_t idx[HQ_MAX_DIMS] = {0};
    for (uint64_t k = 0; k < n; k++) {
        int64_t e = t->offset;
        for (int d = 0; d < t->ndim; d++) e += idx[d] * t->stride[d];
        v[k] = elem_at(t, (uint64_t)e);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
    *n_out = n;
    return v;
}

static hq_status parse_buf(const uint8_t *p, size_t n, fmt_ckpt **out, char *err) {
    fmt_ckpt *ck = fmt_ckpt_new();
    if (!ck) return hq_fail(err, HQ_ERR_NOMEM, "fmt_ckpt_new");
    hq_status st = fmt_torch_parse(p, n, "t.pt", 0, ck, err);
    if (st) {
        fmt_ckpt_close(ck);
        ck = NULL;
    }
    *out = ck;
    return st;
}

/* every tensor's bytes inside [buf, buf+len) */
static bool views_inside(const fmt_ckpt *ck, const uint8_t *buf, size_t len) {
    for (uint64_t i = 0; i < ck->n_tensors; i++) {
        const fmt_tensor *t = &ck->tensors[i];
        if (t->storage < buf || t->storage_bytes > len || (size_t)(t->storage - buf) > len - t->storage_bytes)
            return false;
    }
    return true;
}

/* ---- 1. fixtures against expected.txt ---- */
static int check_fixture_block(FILE *f, const char *file, int n_expect) {
    char path[512];
    snprintf(path, sizeof path, FX("%s"), file);
    size_t len = 0;
    uint8_t *buf = tb_read_file(path, &len);
    CHECK(buf != NULL, "cannot read %s", path);
    fmt_ckpt *ck = NULL;
    char err[HQ_ERR_LEN] = "";
    hq_status st = buf ? parse_buf(buf, len, &ck, err) : HQ_ERR_IO;
    CHECK(st == HQ_OK, "%s: %s", file, err);
    if (ck) CHECK((int)ck->n_tensors == n_expect, "%s: %llu tensors, torch saw %d", file,
                  (unsigned long long)ck->n_tensors, n_expect);
    int group_id[256], id_group[256];
    for (int i = 0; i < 256; i++) group_id[i] = id_group[i] = -1;
    int checked = 0;
    for (int k = 0; k < n_expect; k++) {
        char tag[16], name[256], dt[16];
        int ndim, group;
        long long shape[HQ_MAX_DIMS], stride[HQ_MAX_DIMS], off, n;
        if (fscanf(f, "%15s %255s %15s %d", tag, name, dt, &ndim) != 4 || strcmp(tag, "tensor") || ndim > HQ_MAX_DIMS) {
            CHECK(0, "expected.txt: bad tensor line in %s", file);
            break;
        }
        for (int d = 0; d < ndim; d++) CHECK(fscanf(f, "%lld", &shape[d]) == 1, "shape");
        for (int d = 0; d < ndim; d++) CHECK(fscanf(f, "%lld", &stride[d]) == 1, "stride");
        CHECK(fscanf(f, "%lld %d %lld", &off, &group, &n) == 3, "offset/group/n");
        double *want = malloc((n ? (size_t)n : 1) * sizeof *want);
        for (long long i = 0; i < n; i++) CHECK(fscanf(f, "%lf", &want[i]) == 1, "value");
        const fmt_tensor *t = ck ? fmt_ckpt_find(ck, name) : NULL;
        CHECK(t != NULL, "%s: tensor '%s' missing", file, name);
        if (t) {
            CHECK(!strcmp(hq_dtype_name(t->dtype), dt), "%s/%s: dtype %s, torch %s", file, name,
                  hq_dtype_name(t->dtype), dt);
            CHECK(t->ndim == ndim, "%s/%s: ndim %d, torch %d", file, name, t->ndim, ndim);
            bool same = t->ndim == ndim && t->offset == off;
            for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d] && t->stride[d] == stride[d];
            CHECK(same, "%s/%s: shape/stride/offset differ from torch", file, name);
            /* storage sharing: one id per torch storage, one storage per id */
            if (group < 256 && t->storage_id >= 0 && t->storage_id < 256) {
                if (group_id[group] < 0) group_id[group] = t->storage_id;
                if (id_group[t->storage_id] < 0) id_group[t->storage_id] = group;
                CHECK(group_id[group] == t->storage_id && id_group[t->storage_id] == group,
                      "%s/%s: storage_id %d does not match torch's sharing", file, name, t->storage_id);
            }
            uint64_t got_n = 0;
            double *got = same ? gather(t, &got_n) : NULL;
            if (got) {
                CHECK((long long)got_n == n, "%s/%s: %llu elements", file, name, (unsigned long long)got_n);
                int diff = 0;
                for (long long i = 0; i < n && i < (long long)got_n; i++) diff += got[i] != want[i];
                CHECK(diff == 0, "%s/%s: %d values differ from torch (direct gather)", file, name, diff);
                free(got);
            }
            /* through ckpt.c's converter, for the dtypes it reads */
            if (same && (t->dtype == HQ_DT_F32 || t->dtype == HQ_DT_F16 || t->dtype == HQ_DT_BF16 ||
                         t->dtype == HQ_DT_F64 || t->dtype == HQ_DT_I64 || t->dtype == HQ_DT_I32)) {
                float *dst = malloc((n ? (size_t)n : 1) * sizeof *dst);
                char e2[HQ_ERR_LEN] = "";
                hq_status r = fmt_tensor_read(t, HQ_DT_F32, dst, e2);
                CHECK(r == HQ_OK, "%s/%s: fmt_tensor_read: %s", file, name, e2);
                int diff = 0;
                for (long long i = 0; !r && i < n; i++) diff += dst[i] != (float)want[i];
                CHECK(diff == 0, "%s/%s: %d values differ from torch (fmt_tensor_read)", file, name, diff);
                free(dst);
            }
            checked++;
        }
        free(want);
    }
    if (ck) CHECK(views_inside(ck, buf, len), "%s: a view points outside the file", file);
    fmt_ckpt_close(ck);
    free(buf);
    return checked;
}

static void check_fixtures(void) {
    FILE *f = fopen(FX("expected.txt"), "r");
    CHECK(f != NULL, "missing %s (run tools/make_torch_fixtures.py)", FX("expected.txt"));
    if (!f) return;
    char tag[16], file[256];
    int n, files = 0, tensors = 0;
    while (fscanf(f, "%15s %255s %d", tag, file, &n) == 3 && !strcmp(tag, "file")) {
        tensors += check_fixture_block(f, file, n);
        files++;
    }
    fclose(f);
    CHECK(files >= 6, "only %d fixture files in expected.txt", files);
    printf("fixtures: %d files, %d tensors compared with torch\n", files, tensors);
}

static void expect_file(const char *file, hq_status want, const char *frag) {
    size_t len;
    char path[512];
    snprintf(path, sizeof path, FX("%s"), file);
    uint8_t *buf = tb_read_file(path, &len);
    CHECK(buf != NULL, "cannot read %s", path);
    if (!buf) return;
    fmt_ckpt *ck;
    char err[HQ_ERR_LEN] = "";
    hq_status st = parse_buf(buf, len, &ck, err);
    CHECK(st == want && strstr(err, frag), "%s: %s (want %s, '%s')", file, err, hq_status_name(want), frag);
    fmt_ckpt_close(ck);
    free(buf);
}

/* ---- 3. crafted archives ---- */
typedef struct {
    const char *key;
    size_t bytes;
} rec;

static zw_out make_zip(const tb_buf *pkl, const rec *recs, int n, int flags, const char *byteorder) {
    static uint8_t data[4096];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7);
    zw_ent e[16];
    char names[16][64];
    int k = 0;
    e[k++] = (zw_ent){"arch/data.pkl", pkl->p, pkl->n, 0, 0, 0, false};
    if (byteorder) e[k++] = (zw_ent){"arch/byteorder", (const uint8_t *)byteorder, strlen(byteorder), 0, 0, 0, false};
    for (int i = 0; i < n; i++, k++) {
        snprintf(names[i], sizeof names[i], "arch/data/%s", recs[i].key);
        e[k] = (zw_ent){names[i], data, recs[i].bytes, 0, 0, 0, false};
    }
    e[k++] = (zw_ent){"arch/version", (const uint8_t *)"3\n", 2, 0, 0, 0, false};
    zw_out z;
    zw_write(&z, e, k, flags);
    return z;
}

static void expect_zip(const tb_buf *pkl, const rec *recs, int n, const char *bo, hq_status want, const char *frag,
                       const char *what) {
    zw_out z = make_zip(pkl, recs, n, ZW_ZIP64 | ZW_PAD, bo);
    fmt_ckpt *ck;
    char err[HQ_ERR_LEN] = "";
    hq_status st = parse_buf(z.b.p, z.b.n, &ck, err);
    CHECK(st == want, "%s: status %s (want %s): %s", what, hq_status_name(st), hq_status_name(want), err);
    CHECK(strstr(err, frag) != NULL, "%s: message '%s' lacks '%s'", what, err, frag);
    fmt_ckpt_close(ck);
    tb_free(&z.b);
}

static void expect_sd(const pk_tensor *t, int nt, const rec *recs, int n, hq_status want, const char *frag,
                      const char *what) {
    tb_buf b = {0};
    pk_state_dict(&b, t, nt);
    expect_zip(&b, recs, n, NULL, want, frag, what);
    tb_free(&b);
}

#define T2(nm, cls, key, numel, off, s0, s1, st0, st1) {nm, cls, key, numel, off, 2, 2, {s0, s1}, {st0, st1}, NULL, 0}

static void check_crafted(void) {
    rec r24[1] = {{"0", 24}};
    /* a valid one first, so the failures below are about the one change */
    {
        pk_tensor t[1] = {T2("w", "FloatStorage", "0", 6, 0, 2, 3, 3, 1)};
        tb_buf b = {0};
        pk_state_dict(&b, t, 1);
        zw_out z = make_zip(&b, r24, 1, ZW_ZIP64 | ZW_PAD, "little");
        fmt_ckpt *ck;
        char err[HQ_ERR_LEN] = "";
        hq_status st = parse_buf(z.b.p, z.b.n, &ck, err);
        CHECK(st == HQ_OK && ck->n_tensors == 1, "crafted valid: %s", err);
        if (!st) {
            const fmt_tensor *w = fmt_ckpt_find(ck, "w");
            CHECK(w && w->dtype == HQ_DT_F32 && w->shape[0] == 2 && w->shape[1] == 3 && w->storage_bytes == 24 &&
                      w->storage == z.b.p + z.data[2] && w->storage_id >= 0,
                  "crafted valid tensor fields");
        }
        fmt_ckpt_close(ck);
        tb_free(&z.b);
        tb_free(&b);
    }
    pk_tensor t;
    t = (pk_tensor)T2("w", "FloatStorage", "0", 6, -(1ll << 40), 2, 3, 3, 1); /* LONG1 negative */
    expect_sd(&t, 1, r24, 1, HQ_ERR_FORMAT, "storage offset", "negative offset (LONG1)");
    t = (pk_tensor)T2("w", "FloatStorage", "0", 6, -1, 2, 3, 3, 1);
    expect_sd(&t, 1, r24, 1, HQ_ERR_FORMAT, "storage offset", "negative offset (BININT)");
    t = (pk_tensor)T2("w", "FloatStorage", "0", 6, 0, -2, 3, 3, 1);
    expect_sd(&t, 1, r24, 1, HQ_ERR_FORMAT, "size[0] = -2 is negative", "negative size");
    t = (pk_tensor)T2("w", "FloatStorage", "0", 6, 0, 2, 3, 3, -1);
    expect_sd(&t, 1, r24, 1, HQ_ERR_FORMAT, "stride[1] = -1 is negative", "negative stride");
    t = (pk_tensor)T2("w", "FloatStorage", "0", -6, 0, 2, 3, 3, 1);
    expect_sd(&t, 1, r24, 1, HQ_ERR_FORMAT, "negative size", "negative numel");
    t = (pk_tensor)T2("w", "FloatStorage", "0", 6, 0, 3, 3, 3, 1);
    expect_sd(&t, 1, r24, 1, HQ_ERR_FORMAT, "addresses element 8", "extent beyond numel");
    t = (pk_tensor)T2("w", "FloatStorage", "0", 6, 1, 2, 3, 3, 1);
    expect_sd(&t, 1, r24, 1, HQ_ERR_FORMAT, "addresses element 6", "offset pushes extent out");
    t = (pk_tensor)T2("w", "FloatStorage", "0", 7, 0, 2, 3, 3, 1);
    expect_sd(&t, 1, r24, 1, HQ_ERR_FORMAT, "its record holds 24", "numel x esize > record");
    t = (pk_tensor)T2("w", "FloatStorage", "0", 6, 7, 0, 3, 3, 1);
    expect_sd(&t, 1, r24, 1, HQ_ERR_FORMAT, "beyond storage", "empty tensor offset beyond");
    t = (pk_tensor)T2("w", "FloatStorage", "0", 6, 0, 1ll << 62, 1ll << 62, 1, 1);
    expect_sd(&t, 1, r24, 1, HQ_ERR_FORMAT, "element count overflows", "size product overflow");
    t = (pk_tensor){"w", "FloatStorage", "0", 6, 0, 2, 2, {3, 3}, {INT64_MAX, INT64_MAX}, NULL, 0};
    expect_sd(&t, 1, r24, 1, HQ_ERR_FORMAT, "view extent overflows", "stride extent overflow");
    t = (pk_tensor){"w", "FloatStorage", "0", 6, 0, 9, 9, {1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1}, NULL, 0};
    expect_sd(&t, 1, r24, 1, HQ_ERR_LIMIT, "at most 8", "9 dims");
    t = (pk_tensor){"w", "FloatStorage", "0", 6, 0, 2, 1, {2, 3}, {3}, NULL, 0};
    expect_sd(&t, 1, r24, 1, HQ_ERR_FORMAT, "2 sizes but 1 strides", "size/stride count");
    t = (pk_tensor)T2("w", "FloatStorage", "7", 6, 0, 2, 3, 3, 1);
    expect_sd(&t, 1, r24, 1, HQ_ERR_FORMAT, "no record 'data/7'", "missing record");
    t = (pk_tensor)T2("w", "FloatStorage", "../0", 6, 0, 2, 3, 3, 1);
    expect_sd(&t, 1, r24, 1, HQ_ERR_FORMAT, "characters other than", "key with ..");
    t = (pk_tensor)T2("w", "ComplexFloatStorage", "0", 3, 0, 1, 3, 3, 1);
    expect_sd(&t, 1, r24, 1, HQ_ERR_UNSUPPORTED, "ComplexFloatStorage", "complex storage");
    t = (pk_tensor)T2("w", "UntypedStorage", "0", 24, 0, 2, 3, 3, 1);
    expect_sd(&t, 1, r24, 1, HQ_ERR_FORMAT, "_rebuild_tensor_v2 on an UntypedStorage", "v2 on untyped");
    {
        pk_tensor two[2] = {T2("a", "FloatStorage", "0", 6, 0, 2, 3, 3, 1), T2("b", "LongStorage", "0", 3, 0, 1, 3, 3, 1)};
        expect_sd(two, 2, r24, 1, HQ_ERR_FORMAT, "used as both", "one key, two storage classes");
        pk_tensor two2[2] = {T2("a", "FloatStorage", "0", 6, 0, 2, 3, 3, 1), T2("b", "FloatStorage", "0", 5, 0, 1, 3, 3, 1)};
        expect_sd(two2, 2, r24, 1, HQ_ERR_FORMAT, "declared with sizes", "one key, two numels");
        pk_tensor dup[2] = {T2("a", "FloatStorage", "0", 6, 0, 2, 3, 3, 1), T2("a", "FloatStorage", "0", 6, 0, 1, 3, 3, 1)};
        expect_sd(dup, 2, r24, 1, HQ_ERR_FORMAT, "duplicate tensor name 'a'", "duplicate names");
        pk_tensor v3[2] = {{"a", "UntypedStorage", "0", 24, 0, 2, 2, {2, 3}, {3, 1}, "float32", 0},
                           {"b", "UntypedStorage", "0", 24, 0, 1, 1, {6}, {1}, "int32", 0}};
        expect_sd(v3, 2, r24, 1, HQ_ERR_FORMAT, "as I32 but another tensor as F32", "untyped viewed as two dtypes");
    }
    /* v3 */
    {
        pk_tensor v[1] = {{"a", "UntypedStorage", "0", 24, 0, 2, 2, {2, 3}, {3, 1}, "float32", 0}};
        tb_buf b = {0};
        pk_state_dict(&b, v, 1);
        zw_out z = make_zip(&b, r24, 1, ZW_ZIP64, NULL);
        fmt_ckpt *ck;
        char err[HQ_ERR_LEN] = "";
        hq_status st = parse_buf(z.b.p, z.b.n, &ck, err);
        CHECK(st == HQ_OK && ck->tensors[0].dtype == HQ_DT_F32 && ck->tensors[0].storage_bytes == 24,
              "v3 float32 on UntypedStorage: %s", err);
        fmt_ckpt_close(ck);
        tb_free(&z.b);
        tb_free(&b);
        v[0].v3_dtype = "uint16";
        expect_sd(v, 1, r24, 1, HQ_ERR_UNSUPPORTED, "torch.uint16", "v3 uint16");
        v[0].v3_dtype = "float32";
        v[0].numel = 23;
        expect_sd(v, 1, r24, 1, HQ_ERR_FORMAT, "not a whole number", "v3 odd byte count");
        v[0].numel = 24;
        v[0].cls = "LongStorage";
        v[0].v3_dtype = "float32";
        expect_sd(v, 1, r24, 1, HQ_ERR_FORMAT, "dtype torch.float32 on a LongStorage", "v3 typed mismatch");
    }
    /* byte order, compression, missing data.pkl, trailing bytes */
    {
        pk_tensor v[1] = {T2("w", "FloatStorage", "0", 6, 0, 2, 3, 3, 1)};
        tb_buf b = {0};
        pk_state_dict(&b, v, 1);
        expect_zip(&b, r24, 1, "big", HQ_ERR_UNSUPPORTED, "big-endian", "byteorder big");
        expect_zip(&b, r24, 1, "middle", HQ_ERR_FORMAT, "neither", "byteorder junk");
        expect_zip(&b, r24, 1, "little\n", HQ_OK, "", "byteorder little + newline");
        tb_buf b2 = {0};
        tb_put(&b2, b.p, b.n);
        tb_u8(&b2, 'N');
        expect_zip(&b2, r24, 1, NULL, HQ_ERR_FORMAT, "1 bytes after STOP", "trailing bytes in data.pkl");
        tb_free(&b2);
        /* deflated data.pkl is read; deflated tensor data is refused */
        size_t cn;
        uint8_t *comp = zw_deflate(b.p, b.n, &cn);
        static uint8_t data[24];
        zw_ent e[2] = {{"arch/data.pkl", comp, cn, 8, b.n, (uint32_t)crc32(0, b.p, (uInt)b.n), false},
                       {"arch/data/0", data, 24, 0, 0, 0, false}};
        zw_out z;
        zw_write(&z, e, 2, ZW_ZIP64);
        fmt_ckpt *ck;
        char err[HQ_ERR_LEN] = "";
        hq_status st = parse_buf(z.b.p, z.b.n, &ck, err);
        CHECK(st == HQ_OK, "deflated data.pkl: %s", err);
        fmt_ckpt_close(ck);
        tb_free(&z.b);
        size_t dn;
        uint8_t *dcomp = zw_deflate(data, 24, &dn);
        zw_ent e2[2] = {{"arch/data.pkl", b.p, b.n, 0, 0, 0, false},
                        {"arch/data/0", dcomp, dn, 8, 24, (uint32_t)crc32(0, data, 24), false}};
        zw_write(&z, e2, 2, ZW_ZIP64);
        st = parse_buf(z.b.p, z.b.n, &ck, err);
        CHECK(st == HQ_ERR_UNSUPPORTED && strstr(err, "compressed"), "deflated tensor data: %s", err);
        tb_free(&z.b);
        free(comp);
        free(dcomp);
        zw_ent e3[2] = {{"arch/constants.pkl", b.p, b.n, 0, 0, 0, false}, {"arch/data/0", data, 24, 0, 0, 0, false}};
        zw_write(&z, e3, 2, ZW_ZIP64);
        st = parse_buf(z.b.p, z.b.n, &ck, err);
        CHECK(st == HQ_ERR_UNSUPPORTED && strstr(err, "TorchScript"), "no data.pkl: %s", err);
        tb_free(&z.b);
        /* data.pkl CRC mismatch is caught */
        zw_ent e4[2] = {{"arch/data.pkl", b.p, b.n, 0, 0, 0, false}, {"arch/data/0", data, 24, 0, 0, 0, false}};
        zw_write(&z, e4, 2, ZW_ZIP64);
        z.b.p[z.data[0] + 5] ^= 1;
        st = parse_buf(z.b.p, z.b.n, &ck, err);
        CHECK(st == HQ_ERR_FORMAT && strstr(err, "CRC32"), "data.pkl CRC: %s", err);
        tb_free(&z.b);
        tb_free(&b);
    }
    /* container shapes */
    {
        tb_buf b = {0};
        pk_tensor w = T2("w", "FloatStorage", "0", 6, 0, 2, 3, 3, 1);
        pk_tensor w2 = T2("v", "FloatStorage", "0", 6, 0, 3, 2, 1, 3);
        /* {'a': {'w': T}, 'b': {'v': T}} : ambiguous */
        pk_proto(&b), pk_op(&b, '}'), pk_op(&b, '(');
        pk_str(&b, "a"), pk_op(&b, '}'), pk_op(&b, '('), pk_emit_tensor(&b, &w), pk_op(&b, 'u');
        pk_str(&b, "b"), pk_op(&b, '}'), pk_op(&b, '('), pk_emit_tensor(&b, &w2), pk_op(&b, 'u');
        pk_op(&b, 'u'), pk_op(&b, '.');
        expect_zip(&b, r24, 1, NULL, HQ_ERR_UNSUPPORTED, "cannot tell which", "two candidate state dicts");
        tb_free(&b);
        /* {'epoch': 3, 'opt': [..], 'model': {'w': T}, 'ema': {'x': {'v': T}}}: 'model' preferred */
        pk_proto(&b), pk_op(&b, '}'), pk_op(&b, '(');
        pk_str(&b, "epoch"), pk_int(&b, 3);
        pk_str(&b, "ema"), pk_op(&b, '}'), pk_str(&b, "x"), pk_op(&b, '}'), pk_op(&b, '('), pk_emit_tensor(&b, &w2);
        pk_op(&b, 'u'), pk_op(&b, 's');
        pk_str(&b, "model"), pk_op(&b, '}'), pk_op(&b, '('), pk_emit_tensor(&b, &w), pk_op(&b, 'u');
        pk_op(&b, 'u'), pk_op(&b, '.');
        expect_zip(&b, r24, 1, NULL, HQ_OK, "", "preferred key 'model'");
        tb_free(&b);
        /* only a deeper dict holds tensors: {'x': {'y': {'w': T}}} */
        pk_proto(&b), pk_op(&b, '}'), pk_str(&b, "x"), pk_op(&b, '}'), pk_str(&b, "y"), pk_op(&b, '}');
        pk_op(&b, '('), pk_emit_tensor(&b, &w), pk_op(&b, 'u'), pk_op(&b, 's'), pk_op(&b, 's'), pk_op(&b, '.');
        expect_zip(&b, r24, 1, NULL, HQ_OK, "", "single nested path");
        tb_free(&b);
        /* self-referencing dict with no tensors: terminates */
        pk_proto(&b), pk_op(&b, '}'), pk_put(&b, 0), pk_str(&b, "self"), pk_get(&b, 0), pk_op(&b, 's');
        pk_op(&b, '.');
        expect_zip(&b, r24, 1, NULL, HQ_ERR_FORMAT, "no tensors", "cyclic dict");
        tb_free(&b);
        /* a list at the top */
        pk_proto(&b), pk_op(&b, ']'), pk_op(&b, '.');
        expect_zip(&b, r24, 1, NULL, HQ_ERR_UNSUPPORTED, "list, not a dict", "top-level list");
        tb_free(&b);
        /* a tensor under an int key: the emitted tensor minus its BINUNICODE name */
        pk_proto(&b), pk_op(&b, '}'), pk_int(&b, 5);
        {
            tb_buf tmp = {0};
            pk_emit_tensor(&tmp, &w);
            size_t skip = 1 + 4 + strlen(w.name); /* drop BINUNICODE name */
            tb_put(&b, tmp.p + skip, tmp.n - skip);
            tb_free(&tmp);
        }
        pk_op(&b, 's'), pk_op(&b, '.');
        expect_zip(&b, r24, 1, NULL, HQ_ERR_FORMAT, "key is not a string", "int key");
        tb_free(&b);
        /* name with a NUL byte */
        pk_tensor nul = w;
        nul.name = "a\x01";
        pk_proto(&b), pk_op(&b, '}'), pk_op(&b, '('), pk_emit_tensor(&b, &nul), pk_op(&b, 'u'), pk_op(&b, '.');
        for (size_t i = 0; i < b.n; i++)
            if (b.p[i] == 0x01 && b.p[i - 1] == 'a') b.p[i] = 0;
        expect_zip(&b, r24, 1, NULL, HQ_ERR_FORMAT, "contains NUL", "NUL in name");
        tb_free(&b);
        nul.name = "a\nb";
        pk_proto(&b), pk_op(&b, '}'), pk_op(&b, '('), pk_emit_tensor(&b, &nul), pk_op(&b, 'u'), pk_op(&b, '.');
        expect_zip(&b, r24, 1, NULL, HQ_ERR_FORMAT, "control bytes", "newline in name");
        tb_free(&b);
        /* dicts nested 200 deep around the tensors: bounded walk, clean error */
        pk_proto(&b);
        for (int i = 0; i < 200; i++) pk_op(&b, '}'), pk_str(&b, "d");
        pk_op(&b, '}'), pk_op(&b, '('), pk_emit_tensor(&b, &w), pk_op(&b, 'u');
        for (int i = 0; i < 200; i++) pk_op(&b, 's');
        pk_op(&b, '.');
        expect_zip(&b, r24, 1, NULL, HQ_ERR_FORMAT, "no tensors", "200-deep dicts");
        tb_free(&b);
        /* 40 deep is fine */
        pk_proto(&b);
        for (int i = 0; i < 40; i++) pk_op(&b, '}'), pk_str(&b, "d");
        pk_op(&b, '}'), pk_op(&b, '('), pk_emit_tensor(&b, &w), pk_op(&b, 'u');
        for (int i = 0; i < 40; i++) pk_op(&b, 's');
        pk_op(&b, '.');
        expect_zip(&b, r24, 1, NULL, HQ_OK, "", "40-deep dicts");
        tb_free(&b);
        /* a DAG of dicts (each level holds the next twice): linear walk, not 2^60 */
        pk_proto(&b); /* d_i = {'l': d_i-1, 'r': d_i-1}, built outside-in, 'r' via the memo */
        for (uint32_t i = 59; i >= 1; i--) pk_op(&b, '}'), pk_op(&b, '('), pk_str(&b, "l");
        pk_op(&b, '}'), pk_op(&b, '('), pk_str(&b, "x"), pk_int(&b, 1), pk_op(&b, 'u'), pk_put(&b, 0);
        for (uint32_t i = 1; i < 60; i++) pk_str(&b, "r"), pk_get(&b, i - 1), pk_op(&b, 'u'), pk_put(&b, i);
        pk_op(&b, '.');
        expect_zip(&b, r24, 1, NULL, HQ_ERR_FORMAT, "no tensors", "dict DAG");
        tb_free(&b);
        /* Parameter around a non-tensor */
        pk_proto(&b), pk_op(&b, '}'), pk_str(&b, "p"), pk_global(&b, "torch._utils", "_rebuild_parameter");
        pk_op(&b, 'N'), pk_op(&b, 0x88), pk_op(&b, 'N'), pk_op(&b, 0x87), pk_op(&b, 'R'), pk_op(&b, 's');
        pk_op(&b, '.');
        expect_zip(&b, r24, 1, NULL, HQ_ERR_FORMAT, "does not wrap a tensor", "parameter of None");
        tb_free(&b);
        /* os.system inside a real-looking archive */
        pk_proto(&b), pk_global(&b, "os", "system"), pk_str(&b, "touch /tmp/pwned"), pk_op(&b, 0x85);
        pk_op(&b, 'R'), pk_op(&b, '.');
        expect_zip(&b, r24, 1, NULL, HQ_ERR_UNSUPPORTED, "'os.system' is not in the allowlist", "os.system in data.pkl");
        tb_free(&b);
    }
    /* other magics */
    {
        uint8_t tar[1024] = {0};
        memcpy(tar, "sys_info", 8);
        memcpy(tar + 257, "ustar", 5);
        fmt_ckpt *ck;
        char err[HQ_ERR_LEN] = "";
        CHECK(parse_buf(tar, sizeof tar, &ck, err) == HQ_ERR_UNSUPPORTED && strstr(err, "tar"), "tar: %s", err);
        CHECK(parse_buf((const uint8_t *)"PYTORCH1xxxx", 12, &ck, err) == HQ_ERR_UNSUPPORTED && strstr(err, "PYTORCH1"),
              "PYTORCH1: %s", err);
        CHECK(parse_buf((const uint8_t *)"\x80\x02}.", 4, &ck, err) == HQ_ERR_FORMAT && strstr(err, "legacy magic"),
              "bare pickle: %s", err);
        CHECK(parse_buf((const uint8_t *)"hello", 5, &ck, err) == HQ_ERR_FORMAT, "junk: %s", err);
        CHECK(parse_buf((const uint8_t *)"", 0, &ck, err) == HQ_ERR_FORMAT, "empty: %s", err);
        CHECK(parse_buf((const uint8_t *)"PK\3\4", 4, &ck, err) == HQ_ERR_FORMAT, "bare zip magic: %s", err);
    }
}

/* A legacy stream: magic, protocol, sys_info, object, key list, storages. */
static tb_buf legacy_stream(const pk_tensor *t, int nt, const char *const *keys, int nk, const int64_t *counts,
                            int64_t proto, bool little) {
    static const uint8_t magic[15] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                      0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
    tb_buf b = {0};
    tb_put(&b, magic, sizeof magic);
    pk_proto(&b), pk_int(&b, proto), pk_op(&b, '.');
    pk_proto(&b), pk_op(&b, '}'), pk_op(&b, '('), pk_str(&b, "protocol_version"), pk_int(&b, 1001);
    pk_str(&b, "little_endian"), pk_op(&b, little ? 0x88 : 0x89), pk_op(&b, 'u'), pk_op(&b, '.');
    pk_state_dict(&b, t, nt);
    pk_proto(&b), pk_op(&b, ']'), pk_op(&b, '(');
    for (int i = 0; i < nk; i++) pk_str(&b, keys[i]);
    pk_op(&b, 'e'), pk_op(&b, '.');
    for (int i = 0; i < nk; i++) {
        tb_u64(&b, (uint64_t)counts[i]);
        for (int64_t k = 0; k < counts[i] && k < 64; k++) {
            float f = (float)k + 0.5f;
            tb_put(&b, &f, 4);
        }
    }
    return b;
}

static void expect_legacy(const tb_buf *b, hq_status want, const char *frag, const char *what) {
    fmt_ckpt *ck;
    char err[HQ_ERR_LEN] = "";
    hq_status st = parse_buf(b->p, b->n, &ck, err);
    CHECK(st == want && strstr(err, frag), "%s: %s %s (want %s '%s')", what, hq_status_name(st), err,
          hq_status_name(want), frag);
    if (!st && want == HQ_OK) {
        uint64_t n;
        double *v = gather(&ck->tensors[0], &n);
        CHECK(n == 6 && v[0] == 0.5 && v[5] == 5.5, "%s: values", what);
        free(v);
    }
    fmt_ckpt_close(ck);
}

static void check_legacy_crafted(void) {
    pk_tensor t[1] = {{"w", "FloatStorage", "k1", 6, 0, 2, 2, {2, 3}, {3, 1}, NULL, 1}};
    const char *k1[] = {"k1"}, *k2[] = {"k2"}, *k11[] = {"k1", "k1"};
    int64_t c6[] = {6}, c66[] = {6, 6}, cbig[] = {1ll << 40};
    tb_buf b = legacy_stream(t, 1, k1, 1, c6, 1001, true);
    expect_legacy(&b, HQ_OK, "", "crafted legacy");
    tb_u8(&b, 0);
    expect_legacy(&b, HQ_ERR_FORMAT, "unexpected bytes after", "legacy trailing byte");
    tb_free(&b);
    b = legacy_stream(t, 1, k2, 1, c6, 1001, true);
    expect_legacy(&b, HQ_ERR_FORMAT, "no tensor uses", "legacy unknown key");
    tb_free(&b);
    b = legacy_stream(t, 1, k11, 2, c66, 1001, true);
    expect_legacy(&b, HQ_ERR_FORMAT, "twice", "legacy key twice");
    tb_free(&b);
    b = legacy_stream(t, 1, k1, 0, c6, 1001, true);
    expect_legacy(&b, HQ_ERR_FORMAT, "missing from the legacy key list", "legacy key list empty");
    tb_free(&b);
    b = legacy_stream(t, 1, k1, 1, cbig, 1001, true);
    expect_legacy(&b, HQ_ERR_FORMAT, "beyond the end", "legacy count beyond EOF");
    tb_free(&b);
    int64_t cneg[] = {-1};
    b = legacy_stream(t, 1, k1, 1, cneg, 1001, true);
    expect_legacy(&b, HQ_ERR_FORMAT, "beyond the end", "legacy negative count");
    tb_free(&b);
    b = legacy_stream(t, 1, k1, 1, c6, 1000, true);
    expect_legacy(&b, HQ_ERR_UNSUPPORTED, "protocol version 1000", "legacy protocol");
    tb_free(&b);
    b = legacy_stream(t, 1, k1, 1, c6, 1001, false);
    expect_legacy(&b, HQ_ERR_UNSUPPORTED, "big-endian", "legacy big-endian");
    tb_free(&b);
    t[0].legacy = 2;
    b = legacy_stream(t, 1, k1, 1, c6, 1001, true);
    expect_legacy(&b, HQ_ERR_UNSUPPORTED, "legacy storage view", "legacy view_metadata");
    tb_free(&b);
    t[0].legacy = 0; /* a zip-style 5-item pid in a legacy stream */
    b = legacy_stream(t, 1, k1, 1, c6, 1001, true);
    expect_legacy(&b, HQ_ERR_FORMAT, "persistent id is not", "legacy 5-item pid");
    tb_free(&b);
}

/* ---- 2. ZIP64 re-encoding of a real file ---- */
static uint8_t *reencode(const uint8_t *buf, size_t len, int flags, bool no_crc, size_t *out_n) {
    fmt_zip a;
    char err[HQ_ERR_LEN];
    if (fmt_zip_open_from_buffer(buf, len, "x", &a, err)) return NULL;
    zw_ent e[64];
    char names[64][128];
    int n = 0;
    for (uint64_t i = 0; i < a.n_entries && n < 64; i++, n++) {
        const fmt_zip_entry *z = &a.entries[i];
        snprintf(names[n], sizeof names[n], "%.*s", (int)z->name_len, z->name);
        e[n] = (zw_ent){names[n], buf + z->data_off, z->usize, 0, 0, 0, no_crc};
    }
    zw_out z;
    zw_write(&z, e, n, flags);
    fmt_zip_free(&a);
    *out_n = z.b.n;
    return z.b.p;
}

static void compare_ckpts(const fmt_ckpt *a, const fmt_ckpt *b, const char *what) {
    CHECK(a->n_tensors == b->n_tensors, "%s: tensor counts", what);
    int diff = 0;
    for (uint64_t i = 0; i < a->n_tensors && i < b->n_tensors; i++) {
        const fmt_tensor *x = &a->tensors[i], *y = &b->tensors[i];
        uint64_t nx, ny;
        double *vx = gather(x, &nx), *vy = gather(y, &ny);
        diff += strcmp(x->name, y->name) || x->dtype != y->dtype || nx != ny || x->storage_id != y->storage_id;
        for (uint64_t k = 0; k < nx && k < ny; k++) diff += memcmp(&vx[k], &vy[k], sizeof(double)) != 0;
        free(vx);
        free(vy);
    }
    CHECK(diff == 0, "%s: %d differences", what, diff);
}

static void check_zip64_and_fuzz(void) {
    size_t len;
    uint8_t *buf = tb_read_file(FX("dtypes.pt"), &len);
    CHECK(buf != NULL, "read dtypes.pt");
    if (!buf) return;
    fmt_ckpt *ref = NULL;
    char err[HQ_ERR_LEN] = "";
    CHECK(parse_buf(buf, len, &ref, err) == HQ_OK, "dtypes.pt: %s", err);
    if (!ref) return;
    static const int variants[] = {ZW_ZIP64 | ZW_SAT_SIZES | ZW_SAT_LHO | ZW_SAT_EOCD | ZW_PAD, ZW_ZIP64 | ZW_SAT_LHO,
                                   0};
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        size_t n;
        uint8_t *re = reencode(buf, len, variants[v], false, &n);
        fmt_ckpt *ck = NULL;
        hq_status st = re ? parse_buf(re, n, &ck, err) : HQ_ERR_INTERNAL;
        CHECK(st == HQ_OK, "re-encoded variant %zu: %s", v, err);
        if (ck) compare_ckpts(ref, ck, "re-encoded dtypes.pt");
        fmt_ckpt_close(ck);
        free(re);
    }

    bool san = getenv("HQ_SANITIZED") != NULL;
    /* every truncation of three real files */
    static const char *files[] = {"dtypes.pt", "legacy.pt", "module.pt"};
    for (size_t fi = 0; fi < 3; fi++) {
        size_t flen;
        char path[256];
        snprintf(path, sizeof path, FX("%s"), files[fi]);
        uint8_t *fb = tb_read_file(path, &flen);
        if (!fb) continue;
        int bad = 0, step = san && flen > 2000 ? 3 : 1;
        for (size_t n = 0; n < flen; n += (size_t)step) {
            uint8_t *cp = malloc(n ? n : 1);
            memcpy(cp, fb, n);
            fmt_ckpt *ck;
            err[0] = 0;
            hq_status st = parse_buf(cp, n, &ck, err);
            if (st == HQ_OK || !err[0] || st == HQ_ERR_INTERNAL) {
                bad++;
                if (bad < 3) fprintf(stderr, "truncation %zu of %s: %s %s\n", n, files[fi], hq_status_name(st), err);
            }
            fmt_ckpt_close(ck);
            free(cp);
        }
        CHECK(bad == 0, "%s: %d truncations parsed or failed uncleanly", files[fi], bad);
        /* byte flips; zip files re-encoded without CRCs so flips reach the pickle */
        size_t n = flen;
        uint8_t *src = fb;
        if (fi != 1) src = reencode(fb, flen, ZW_ZIP64 | ZW_PAD, true, &n);
        uint64_t seed = 0x5eed + fi;
        int ok = 0, fails[HQ_ERR_INTERNAL + 1] = {0};
        bad = 0;
        for (int i = 0; i < 300; i++) {
            uint8_t *cp = malloc(n);
            memcpy(cp, src, n);
            for (int k = 0; k < 1 + (i % 3); k++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                cp[(seed >> 33) % n] ^= (uint8_t)(1u + ((seed >> 17) & 0xfe));
            }
            fmt_ckpt *ck;
            err[0] = 0;
            hq_status st = parse_buf(cp, n, &ck, err);
            if (st == HQ_OK) {
                ok++;
                if (!views_inside(ck, cp, n)) bad++;
            } else {
                fails[st]++;
                if (!err[0] || (st != HQ_ERR_FORMAT && st != HQ_ERR_LIMIT && st != HQ_ERR_UNSUPPORTED)) {
                    bad++;
                    if (bad < 3) fprintf(stderr, "flip %d of %s: %s %s\n", i, files[fi], hq_status_name(st), err);
                }
            }
            fmt_ckpt_close(ck);
            free(cp);
        }
        CHECK(bad == 0, "%s: %d byte-flip runs unclean", files[fi], bad);
        printf("%s: 300 flipped copies: %d parsed, %d format, %d unsupported, %d limit\n", files[fi], ok,
               fails[HQ_ERR_FORMAT], fails[HQ_ERR_UNSUPPORTED], fails[HQ_ERR_LIMIT]);
        if (src != fb) free(src);
        free(fb);
    }

    /* allocation failure at every allocation of one parse */
    int nomem = 0, other = 0;
    int64_t k;
    for (k = 1; k < 2000; k++) {
        fmt_ckpt *ck = fmt_ckpt_new();
        if (!ck) continue;
        err[0] = 0;
        hq_alloc_fail_at(k);
        hq_status st = fmt_torch_parse(buf, len, "t.pt", 0, ck, err);
        hq_alloc_fail_at(0);
        fmt_ckpt_close(ck);
        if (st == HQ_OK) break;
        if (st == HQ_ERR_NOMEM) nomem++;
        else other++;
    }
    CHECK(other == 0 && nomem > 10 && k < 2000, "alloc failures: %d nomem, %d other, success at %lld", nomem, other,
          (long long)k);
    fmt_ckpt_close(ref);
    free(buf);
}

int main(void) {
    check_fixtures();
    expect_file("uint16.pt", HQ_ERR_UNSUPPORTED, "uint16");
    expect_file("bare_tensor.pt", HQ_ERR_UNSUPPORTED, "single tensor");
    /* through the generic opener (ckpt.c sniffs the magic and calls us) */
    {
        fmt_ckpt *ck = NULL;
        char err[HQ_ERR_LEN] = "";
        hq_status st = fmt_ckpt_open(FX("dtypes.pt"), &ck, err);
        CHECK(st == HQ_OK && ck && ck->n_tensors == 19 && fmt_ckpt_find(ck, "transposed"), "fmt_ckpt_open: %s", err);
        fmt_ckpt_close(ck);
        ck = NULL;
        st = fmt_ckpt_open(FX("legacy.pt"), &ck, err);
        CHECK(st == HQ_OK && ck && ck->n_tensors == 5, "fmt_ckpt_open legacy: %s", err);
        fmt_ckpt_close(ck);
    }
    check_crafted();
    check_legacy_crafted();
    check_zip64_and_fuzz();
    TEST_END();
}
