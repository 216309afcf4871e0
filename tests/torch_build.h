/* tests/torch_build.h — in-memory builders for the torch reader tests: a byte
 * buffer, a pickle emitter and a zip archive writer whose ZIP64 encoding can
 * be forced (so > 4 GiB layouts are tested with tiny archives) and whose
 * header positions are returned for patching. Used by test_zip.c,
 * test_pickle.c and test_torch.c. Test-only: aborts on allocation failure. */
#ifndef HQ_TESTS_TORCH_BUILD_H
#define HQ_TESTS_TORCH_BUILD_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
    uint8_t *p;
    size_t n, cap;
} tb_buf;

static inline void tb_put(tb_buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n) nc *= 2;
        b->p = realloc(b->p, nc);
        if (!b->p) abort();
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static inline void tb_u8(tb_buf *b, uint8_t v) { tb_put(b, &v, 1); }
static inline void tb_u16(tb_buf *b, uint16_t v) { uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)}; tb_put(b, x, 2); }
static inline void tb_u32(tb_buf *b, uint32_t v) { tb_u16(b, (uint16_t)v); tb_u16(b, (uint16_t)(v >> 16)); }
static inline void tb_u64(tb_buf *b, uint64_t v) { tb_u32(b, (uint32_t)v); tb_u32(b, (uint32_t)(v >> 32)); }
static inline void tb_free(tb_buf *b) { free(b->p); memset(b, 0, sizeof *b); }
static inline void tb_set32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline void tb_set16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static inline void tb_set64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

/* ---- pickle emitter (protocol 2 opcodes) ---- */
static inline void pk_proto(tb_buf *b) { tb_u8(b, 0x80), tb_u8(b, 2); }
static inline void pk_op(tb_buf *b, uint8_t op) { tb_u8(b, op); }
static inline void pk_global(tb_buf *b, const char *mod, const char *name) {
    tb_u8(b, 'c');
    tb_put(b, mod, strlen(mod)), tb_u8(b, '\n');
    tb_put(b, name, strlen(name)), tb_u8(b, '\n');
}
static inline void pk_str(tb_buf *b, const char *s) { tb_u8(b, 'X'), tb_u32(b, (uint32_t)strlen(s)), tb_put(b, s, strlen(s)); }
static inline void pk_int(tb_buf *b, int64_t v) {
    if (v >= 0 && v < 256) tb_u8(b, 'K'), tb_u8(b, (uint8_t)v);
    else if (v >= INT32_MIN && v <= INT32_MAX) tb_u8(b, 'J'), tb_u32(b, (uint32_t)(int32_t)v);
    else tb_u8(b, 0x8a), tb_u8(b, 8), tb_u64(b, (uint64_t)v);
}
static inline void pk_put(tb_buf *b, uint32_t i) {
    if (i < 256) tb_u8(b, 'q'), tb_u8(b, (uint8_t)i);
    else tb_u8(b, 'r'), tb_u32(b, i);
}
static inline void pk_get(tb_buf *b, uint32_t i) {
    if (i < 256) tb_u8(b, 'h'), tb_u8(b, (uint8_t)i);
    else tb_u8(b, 'j'), tb_u32(b, i);
}

/* One tensor entry "name": REDUCE(_rebuild_tensor_v2, (pid, off, size, stride,
 * False, OrderedDict())) with pid ('storage', torch.<cls>, key, 'cpu', numel). */
typedef struct {
    const char *name, *cls, *key;
    int64_t numel, offset;
    int ndim, nstride;
    int64_t size[12], stride[12];
    const char *v3_dtype; /* non-NULL: _rebuild_tensor_v3 with this torch dtype */
    int legacy;           /* 1: legacy 6-item pid (view_metadata None); 2: view_metadata not None */
} pk_tensor;

static inline void pk_emit_tensor(tb_buf *b, const pk_tensor *t) {
    pk_str(b, t->name);
    pk_global(b, "torch._utils", t->v3_dtype ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2");
    pk_op(b, '(');
    pk_op(b, '(');
    pk_str(b, "storage");
    if (!strcmp(t->cls, "UntypedStorage")) pk_global(b, "torch.storage", t->cls);
    else pk_global(b, "torch", t->cls);
    pk_str(b, t->key);
    pk_str(b, "cpu");
    pk_int(b, t->numel);
    if (t->legacy) pk_op(b, t->legacy == 1 ? 'N' : 0x88);
    pk_op(b, 't');
    pk_op(b, 'Q');
    pk_int(b, t->offset);
    pk_op(b, '(');
    for (int i = 0; i < t->ndim; i++) pk_int(b, t->size[i]);
    pk_op(b, 't');
    pk_op(b, '(');
    for (int i = 0; i < t->nstride; i++) pk_int(b, t->stride[i]);
    pk_op(b, 't');
    pk_op(b, 0x89);
    pk_global(b, "collections", "OrderedDict");
    pk_op(b, ')');
    pk_op(b, 'R');
    if (t->v3_dtype) pk_global(b, "torch", t->v3_dtype);
    pk_op(b, 't');
    pk_op(b, 'R');
}

/* {t[0].name: tensor, ...} as a whole pickle */
static inline void pk_state_dict(tb_buf *b, const pk_tensor *t, int n) {
    pk_proto(b);
    pk_op(b, '}');
    pk_op(b, '(');
    for (int i = 0; i < n; i++) pk_emit_tensor(b, &t[i]);
    pk_op(b, 'u');
    pk_op(b, '.');
}

/* ---- zip writer ---- */
enum {
    ZW_ZIP64 = 1,     /* ZIP64 EOCD + locator (torch always) */
    ZW_SAT_SIZES = 2, /* central csize/usize = 0xFFFFFFFF + ZIP64 extra */
    ZW_SAT_LHO = 4,   /* central lho = 0xFFFFFFFF + ZIP64 extra */
    ZW_SAT_EOCD = 8,  /* classic EOCD cd_offset/size/count saturated */
    ZW_PAD = 16,      /* torch-style "FB" local extra padding to 64-byte alignment */
};

typedef struct {
    const char *name;
    const uint8_t *data; /* bytes as stored (compressed for method 8) */
    size_t len;
    uint16_t method;
    uint64_t usize; /* method 8: uncompressed size */
    uint32_t crc;   /* method 8: crc of the uncompressed data */
    bool no_crc;    /* stored: write CRC 0 */
} zw_ent;

typedef struct {
    tb_buf b;
    size_t lho[64], cdh[64], data[64];
    size_t cd_off, eocd64, loc64, eocd;
} zw_out;

static inline void zw_write(zw_out *z, const zw_ent *e, int n, int flags) {
    memset(z, 0, sizeof *z);
    tb_buf *b = &z->b;
    uint32_t crcs[64];
    for (int i = 0; i < n; i++) {
        uint16_t nl = (uint16_t)strlen(e[i].name);
        crcs[i] = e[i].method == 8 ? e[i].crc : e[i].no_crc ? 0 : (uint32_t)crc32(0, e[i].data, (uInt)e[i].len);
        z->lho[i] = b->n;
        size_t base = b->n + 30 + nl;
        uint16_t pad = 0;
        if (flags & ZW_PAD) {
            size_t want = (base + 4 + 63) & ~(size_t)63;
            pad = (uint16_t)(want - base);
        }
        tb_u32(b, 0x04034b50), tb_u16(b, 0), tb_u16(b, 0x0808), tb_u16(b, e[i].method), tb_u16(b, 0), tb_u16(b, 0);
        tb_u32(b, 0), tb_u32(b, 0), tb_u32(b, 0), tb_u16(b, nl), tb_u16(b, pad);
        tb_put(b, e[i].name, nl);
        if (pad) {
            tb_u16(b, 0x5a46), tb_u16(b, (uint16_t)(pad - 4));
            for (int k = 0; k < pad - 4; k++) tb_u8(b, 'Z');
        }
        z->data[i] = b->n;
        tb_put(b, e[i].data, e[i].len);
    }
    z->cd_off = b->n;
    for (int i = 0; i < n; i++) {
        uint16_t nl = (uint16_t)strlen(e[i].name);
        uint64_t us = e[i].method == 8 ? e[i].usize : e[i].len;
        bool ss = flags & ZW_SAT_SIZES, so = flags & ZW_SAT_LHO;
        uint16_t xl = (uint16_t)((ss || so) ? 4 + 16 * ss + 8 * so : 0);
        z->cdh[i] = b->n;
        tb_u32(b, 0x02014b50), tb_u16(b, 0x031e), tb_u16(b, 0), tb_u16(b, 0x0808), tb_u16(b, e[i].method);
        tb_u16(b, 0), tb_u16(b, 0), tb_u32(b, crcs[i]);
        tb_u32(b, ss ? 0xFFFFFFFFu : (uint32_t)e[i].len), tb_u32(b, ss ? 0xFFFFFFFFu : (uint32_t)us);
        tb_u16(b, nl), tb_u16(b, xl), tb_u16(b, 0), tb_u16(b, 0), tb_u16(b, 0), tb_u32(b, 0);
        tb_u32(b, so ? 0xFFFFFFFFu : (uint32_t)z->lho[i]);
        tb_put(b, e[i].name, nl);
        if (xl) {
            tb_u16(b, 1), tb_u16(b, (uint16_t)(xl - 4));
            if (ss) tb_u64(b, us), tb_u64(b, e[i].len);
            if (so) tb_u64(b, z->lho[i]);
        }
    }
    size_t cd_size = b->n - z->cd_off;
    if (flags & ZW_ZIP64) {
        z->eocd64 = b->n;
        tb_u32(b, 0x06064b50), tb_u64(b, 44), tb_u16(b, 0x031e), tb_u16(b, 45), tb_u32(b, 0), tb_u32(b, 0);
        tb_u64(b, (uint64_t)n), tb_u64(b, (uint64_t)n), tb_u64(b, cd_size), tb_u64(b, z->cd_off);
        z->loc64 = b->n;
        tb_u32(b, 0x07064b50), tb_u32(b, 0), tb_u64(b, z->eocd64), tb_u32(b, 1);
    }
    bool se = flags & ZW_SAT_EOCD;
    z->eocd = b->n;
    tb_u32(b, 0x06054b50), tb_u16(b, 0), tb_u16(b, 0);
    tb_u16(b, se ? 0xFFFF : (uint16_t)n), tb_u16(b, se ? 0xFFFF : (uint16_t)n);
    tb_u32(b, se ? 0xFFFFFFFFu : (uint32_t)cd_size), tb_u32(b, se ? 0xFFFFFFFFu : (uint32_t)z->cd_off);
    tb_u16(b, 0);
}

/* raw deflate of d into a new buffer (for method-8 entries) */
static inline uint8_t *zw_deflate(const uint8_t *d, size_t n, size_t *out_n) {
    z_stream s;
    memset(&s, 0, sizeof s);
    if (deflateInit2(&s, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    size_t cap = deflateBound(&s, (uLong)n) + 16;
    uint8_t *o = malloc(cap);
    if (!o) abort();
    s.next_in = (Bytef *)(uintptr_t)d, s.avail_in = (uInt)n, s.next_out = o, s.avail_out = (uInt)cap;
    if (deflate(&s, Z_FINISH) != Z_STREAM_END) abort();
    *out_n = s.total_out;
    deflateEnd(&s);
    return o;
}

static inline uint8_t *tb_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    tb_buf b = {0};
    uint8_t tmp[4096];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) tb_put(&b, tmp, k);
    fclose(f);
    *n = b.n;
    if (!b.p) tb_put(&b, "", 0), b.p = malloc(1);
    return b.p;
}
#endif
