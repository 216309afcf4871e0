/* runtime/logits_file.c — see logits_file.h for the layout. */
#include "logits_file.h" // defines: rt_logits_*
#include "../core/vec.h" // defines: hq_lse

#include <math.h>
#include <string.h>

uint64_t rt_fnv1a64(const void *p, uint64_t n) {
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

static void pack_header(uint8_t *b, const rt_logits_header *h) {
    memset(b, 0, RT_LOGITS_HEADER);
    memcpy(b, RT_LOGITS_MAGIC, 8);
    put32(b + 8, RT_LOGITS_VERSION);
    put32(b + 12, h->n_vocab);
    put32(b + 16, h->n_ctx);
    put32(b + 20, h->n_chunks);
    put32(b + 24, h->first);
    put32(b + 28, h->n_scored);
    put32(b + 32, (uint32_t)h->bos_id);
    put32(b + 36, h->flags);
    put64(b + 40, h->text_hash);
    put64(b + 48, h->tokenizer_hash);
    put64(b + 56, h->n_text_tokens);
    uint64_t d;
    memcpy(&d, &h->nll_sum, 8);
    put64(b + 64, d);
}

hq_status rt_logits_write_header(hq_out *o, const rt_logits_header *h, const int32_t *tokens, char *err) {
    uint8_t b[RT_LOGITS_HEADER];
    pack_header(b, h);
    hq_status st = hq_out_write(o, b, sizeof b, err);
    uint64_t n = (uint64_t)h->n_chunks * h->n_ctx;
    for (uint64_t i = 0; i < n && st == HQ_OK; i++) {
        uint8_t t[4];
        put32(t, (uint32_t)tokens[i]);
        st = hq_out_write(o, t, 4, err);
    }
    return st;
}

hq_status rt_logits_write_row(hq_out *o, const float *logits, uint32_t n_vocab, char *err) {
    /* log p_i = l_i − max − log Σ exp(l_j − max) */
    float mx, lmin = INFINITY;
    double lz = hq_lse(logits, n_vocab, &mx); /* core/vec.h */
    for (uint32_t i = 0; i < n_vocab; i++)
        if (logits[i] < lmin) lmin = logits[i];
    double top = -lz, lo = (double)lmin - mx - lz;
    if (lo < top - 16.0) lo = top - 16.0;
    double scale = (top - lo) / 65535.0;
    uint8_t *rec = hq_malloc(8 + 2 * (size_t)n_vocab);
    if (!rec) return hq_fail(err, HQ_ERR_NOMEM, "save-logits: out of memory");
    float fs = (float)scale, fm = (float)lo;
    uint32_t u;
    memcpy(&u, &fs, 4);
    put32(rec, u);
    memcpy(&u, &fm, 4);
    put32(rec + 4, u);
    for (uint32_t i = 0; i < n_vocab; i++) {
        double lp = (double)logits[i] - mx - lz;
        if (lp < lo) lp = lo;
        double q = scale > 0 ? (lp - lo) / scale : 0;
        long v = lround(q);
        if (v < 0) v = 0;
        if (v > 65535) v = 65535;
        rec[8 + 2 * i] = (uint8_t)v;
        rec[9 + 2 * i] = (uint8_t)(v >> 8);
    }
    hq_status st = hq_out_write(o, rec, 8 + 2 * (size_t)n_vocab, err);
    hq_free(rec);
    return st;
}

hq_status rt_logits_finish(hq_out *o, const rt_logits_header *h, char *err) {
    uint8_t b[RT_LOGITS_HEADER];
    pack_header(b, h);
    hq_status st = hq_out_seek(o, 0, err);
    if (st == HQ_OK) st = hq_out_write(o, b, sizeof b, err);
    if (st == HQ_OK) st = hq_out_commit(o, err);
    return st;
}

hq_status rt_logits_open(const char *path, rt_logits_file *f, char *err) {
    memset(f, 0, sizeof *f);
    hq_status st = hq_map_open(path, &f->map, err);
    if (st != HQ_OK) return st;
    const uint8_t *b = f->map.data;
    if (f->map.size < RT_LOGITS_HEADER || memcmp(b, RT_LOGITS_MAGIC, 8) != 0) {
        rt_logits_close(f);
        return hq_fail(err, HQ_ERR_FORMAT, "%s: not a hyquant logits file (bad magic)", path);
    }
    if (get32(b + 8) != RT_LOGITS_VERSION) {
        uint32_t v = get32(b + 8);
        rt_logits_close(f);
        return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: logits file version %u (supported: %d)", path, v,
                       RT_LOGITS_VERSION);
    }
    rt_logits_header *h = &f->h;
    h->n_vocab = get32(b + 12);
    h->n_ctx = get32(b + 16);
    h->n_chunks = get32(b + 20);
    h->first = get32(b + 24);
    h->n_scored = get32(b + 28);
    h->bos_id = (int32_t)get32(b + 32);
    h->flags = get32(b + 36);
    h->text_hash = get64(b + 40);
    h->tokenizer_hash = get64(b + 48);
    h->n_text_tokens = get64(b + 56);
    uint64_t d = get64(b + 64);
    memcpy(&h->nll_sum, &d, 8);
    uint64_t tok_bytes, rows, row_bytes, rows_bytes, total;
    bool ok = h->n_vocab > 0 && h->n_ctx >= 2 && h->first < h->n_ctx && h->n_scored == h->n_ctx - 1 - h->first &&
              hq_mul_u64((uint64_t)h->n_chunks * 4, h->n_ctx, &tok_bytes) &&
              hq_mul_u64(h->n_chunks, h->n_scored, &rows) && hq_mul_u64(2, h->n_vocab, &row_bytes) &&
              hq_add_u64(row_bytes, 8, &row_bytes) && hq_mul_u64(rows, row_bytes, &rows_bytes) &&
              hq_add_u64(RT_LOGITS_HEADER, tok_bytes, &total) && hq_add_u64(total, rows_bytes, &total) &&
              total == f->map.size;
    if (!ok) {
        uint64_t sz = f->map.size;
        rt_logits_close(f);
        return hq_fail(err, HQ_ERR_FORMAT, "%s: header sizes do not match the file length %llu", path,
                       (unsigned long long)sz);
    }
    int32_t *toks = hq_malloc_array((size_t)(tok_bytes / 4) + 1, 4);
    if (!toks) {
        rt_logits_close(f);
        return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", path);
    }
    for (uint64_t i = 0; i < tok_bytes / 4; i++) toks[i] = (int32_t)get32(b + RT_LOGITS_HEADER + 4 * i);
    f->tokens = toks;
    f->rows = b + RT_LOGITS_HEADER + tok_bytes;
    f->row_bytes = row_bytes;
    return HQ_OK;
}

void rt_logits_close(rt_logits_file *f) {
    hq_free((void *)f->tokens);
    hq_map_close(&f->map);
    memset(f, 0, sizeof *f);
}

void rt_logits_row(const rt_logits_file *f, uint64_t i, float *logprobs) {
    const uint8_t *r = f->rows + i * f->row_bytes;
    uint32_t u = get32(r);
    float scale, mn;
    memcpy(&scale, &u, 4);
    u = get32(r + 4);
    memcpy(&mn, &u, 4);
    for (uint32_t k = 0; k < f->h.n_vocab; k++)
        logprobs[k] = mn + scale * (float)((uint32_t)r[8 + 2 * k] | (uint32_t)r[9 + 2 * k] << 8);
}
