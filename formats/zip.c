/* formats/zip.c — strict zip directory reader for torch checkpoints (see zip.h
 * for the layout and the rules enforced). Every offset and size read from the
 * file is range-checked with 64-bit overflow-checked arithmetic before use. */
#include "zip.h" // defines: fmt_zip, fmt_zip_entry

#include <stdlib.h> // defines: qsort
#include <string.h> // defines: memcmp, memcpy, strlen
#include <zlib.h>   // defines: inflate, crc32

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define LOCAL_HDR 30u
#define CENTRAL_HDR 46u
#define EOCD_LEN 22u
#define LOC64_LEN 20u
#define EOCD64_MIN 56u /* signature + size field + 44 bytes of fixed record */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

/* Printable copy of an entry name for messages (names may hold any byte). */
static const char *show(const char *s, uint32_t n, char out[96]) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < n && k < 90; i++) out[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (n > 90) out[k++] = '.', out[k++] = '.', out[k++] = '.';
    out[k] = 0;
    return out;
}

/* [off, off+n) inside [0, len)? */
static bool in_file(uint64_t off, uint64_t n, uint64_t len) {
    uint64_t end;
    return hq_add_u64(off, n, &end) && end <= len;
}

/* Names: non-empty, no NUL/control/backslash, not absolute, no drive letter,
 * no empty, "." or ".." component. Returns a reason or NULL. */
static const char *bad_name(const char *s, uint32_t n) {
    if (n == 0) return "is empty";
    if (s[0] == '/') return "is absolute";
    if (n >= 2 && s[1] == ':') return "has a drive letter";
    uint32_t start = 0;
    for (uint32_t i = 0; i <= n; i++) {
        if (i < n) {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x20 || c == 0x7f) return "contains a control byte";
            if (c == '\\') return "contains a backslash";
            if (c != '/') continue;
        }
        uint32_t cl = i - start;
        /* a trailing '/' (directory entry) leaves an empty last component */
        if (cl == 0 && i < n) return "has an empty path component";
        if (cl == 1 && s[start] == '.') return "has a '.' component";
        if (cl == 2 && s[start] == '.' && s[start + 1] == '.') return "has a '..' component";
        start = i + 1;
    }
    return NULL;
}

static int cmp_name(const void *a, const void *b) {
    const fmt_zip_entry *x = *(const fmt_zip_entry *const *)a, *y = *(const fmt_zip_entry *const *)b;
    uint32_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static int cmp_lho(const void *a, const void *b) {
    const fmt_zip_entry *x = *(const fmt_zip_entry *const *)a, *y = *(const fmt_zip_entry *const *)b;
    return (x->lho > y->lho) - (x->lho < y->lho);
}

/* The end-of-central-directory records: finds the classic EOCD (which must end
 * exactly at EOF, comment included), then the ZIP64 locator + record if
 * present, and cross-checks them. Outputs the entry count and CD range, and
 * cd_end_limit = where the CD must end (start of ZIP64 EOCD, else EOCD). */
static hq_status read_eocd(const uint8_t *b, uint64_t len, const char *label, fmt_zip *z, uint64_t *n_entries,
                           uint64_t *cd_end_limit, char *err) {
    if (len < EOCD_LEN) return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: %llu bytes is too short for an archive", label,
                                       (unsigned long long)len);
    /* The comment is at most 65535 bytes; the EOCD must be the one whose
     * comment length reaches exactly EOF (scan from the end). */
    uint64_t lo = len - EOCD_LEN > 65535 ? len - EOCD_LEN - 65535 : 0;
    uint64_t pos = UINT64_MAX;
    for (uint64_t p = len - EOCD_LEN + 1; p-- > lo;) {
        if (rd32(b + p) == SIG_EOCD && p + EOCD_LEN + rd16(b + p + 20) == len) {
            pos = p;
            break;
        }
    }
    if (pos == UINT64_MAX)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: no end-of-central-directory record ending at EOF", label);
    const uint8_t *e = b + pos;
    uint16_t disk = rd16(e + 4), cd_disk = rd16(e + 6);
    uint64_t n_disk = rd16(e + 8), n_tot = rd16(e + 10), cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    if (disk != 0 && disk != 0xFFFF) return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: zip: multi-disk archive", label);
    if (cd_disk != 0 && cd_disk != 0xFFFF) return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: zip: multi-disk archive", label);
    *cd_end_limit = pos;
    z->zip64 = false;
    if (pos >= LOC64_LEN && rd32(b + pos - LOC64_LEN) == SIG_LOC64) {
        const uint8_t *l = b + pos - LOC64_LEN;
        uint32_t eocd64_disk = rd32(l + 4), total_disks = rd32(l + 16);
        uint64_t off64 = rd64(l + 8);
        if (eocd64_disk != 0 || total_disks > 1)
            return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: zip: multi-disk archive (ZIP64 locator says %u disks)", label,
                           total_disks);
        if (!in_file(off64, EOCD64_MIN, pos - LOC64_LEN) || rd32(b + off64) != SIG_EOCD64)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: ZIP64 locator points to offset %llu, not a ZIP64 EOCD record",
                           label, (unsigned long long)off64);
        const uint8_t *r = b + off64;
        uint64_t rec = rd64(r + 4), rec_end;
        /* the record (12 + rec bytes) must end exactly at the locator */
        if (rec < EOCD64_MIN - 12 || !hq_add_u64(off64, 12, &rec_end) || !hq_add_u64(rec_end, rec, &rec_end) ||
            rec_end != pos - LOC64_LEN)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: ZIP64 EOCD record size %llu does not reach the locator",
                           label, (unsigned long long)rec);
        if (rd32(r + 16) != 0 || rd32(r + 20) != 0)
            return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: zip: multi-disk archive (ZIP64 EOCD)", label);
        uint64_t n_disk64 = rd64(r + 24), n_tot64 = rd64(r + 32), cd_size64 = rd64(r + 40), cd_off64 = rd64(r + 48);
        if (n_disk64 != n_tot64)
            return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: zip: multi-disk archive (%llu of %llu entries on this disk)",
                           label, (unsigned long long)n_disk64, (unsigned long long)n_tot64);
        /* classic fields are either saturated or equal to the ZIP64 ones */
        if ((n_tot != 0xFFFF && n_tot != n_tot64) || (n_disk != 0xFFFF && n_disk != n_disk64) ||
            (cd_size != 0xFFFFFFFFu && cd_size != cd_size64) || (cd_off != 0xFFFFFFFFu && cd_off != cd_off64))
            return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: EOCD and ZIP64 EOCD disagree on the central directory", label);
        n_tot = n_tot64, cd_size = cd_size64, cd_off = cd_off64;
        *cd_end_limit = off64;
        z->zip64 = true;
    } else {
        if (n_disk != n_tot) return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: zip: multi-disk archive", label);
        if (n_tot == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: saturated EOCD fields but no ZIP64 locator", label);
    }
    if (n_tot > HQ_MAX_ZIP_ENTRIES)
        return hq_fail(err, HQ_ERR_LIMIT, "%s: zip: %llu entries exceed HQ_MAX_ZIP_ENTRIES (%d)", label,
                       (unsigned long long)n_tot, HQ_MAX_ZIP_ENTRIES);
    uint64_t cd_end;
    if (!hq_add_u64(cd_off, cd_size, &cd_end) || cd_end != *cd_end_limit)
        return hq_fail(err, HQ_ERR_FORMAT,
                       "%s: zip: central directory [%llu, +%llu) does not end at the end records (offset %llu)", label,
                       (unsigned long long)cd_off, (unsigned long long)cd_size, (unsigned long long)*cd_end_limit);
    uint64_t min_cd;
    if (!hq_mul_u64(n_tot, CENTRAL_HDR, &min_cd) || min_cd > cd_size)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: %llu entries cannot fit in a %llu-byte central directory", label,
                       (unsigned long long)n_tot, (unsigned long long)cd_size);
    z->cd_offset = cd_off;
    z->cd_size = cd_size;
    *n_entries = n_tot;
    return HQ_OK;
}

/* The ZIP64 extra (0x0001) of a central header: exactly the saturated fields,
 * in the order usize, csize, lho, disk. Other extras are skipped, but the
 * whole extra area must be a well-formed sequence of (id, size, data). */
static hq_status read_extra(const uint8_t *x, uint32_t xlen, fmt_zip_entry *en, uint32_t *disk, const char *label,
                            const char *nm, char *err) {
    bool sat_u = en->usize == 0xFFFFFFFFu, sat_c = en->csize == 0xFFFFFFFFu, sat_o = en->lho == 0xFFFFFFFFu;
    bool sat_d = *disk == 0xFFFF, seen = false;
    uint32_t need = 8u * (sat_u + sat_c + sat_o) + 4u * sat_d;
    uint32_t p = 0;
    while (p < xlen) {
        if (xlen - p < 4) return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: entry '%s' has a truncated extra field", label, nm);
        uint16_t id = rd16(x + p), sz = rd16(x + p + 2);
        if (sz > xlen - p - 4)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: entry '%s' extra field 0x%04x overruns the extra area", label,
                           nm, id);
        if (id == 0x0001) {
            if (seen) return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: entry '%s' has two ZIP64 extra fields", label, nm);
            seen = true;
            if (sz != need)
                return hq_fail(err, HQ_ERR_FORMAT,
                               "%s: zip: entry '%s' ZIP64 extra holds %u bytes but %u saturated fields need %u", label,
                               nm, sz, (unsigned)(sat_u + sat_c + sat_o + sat_d), need);
            const uint8_t *q = x + p + 4;
            if (sat_u) en->usize = rd64(q), q += 8;
            if (sat_c) en->csize = rd64(q), q += 8;
            if (sat_o) en->lho = rd64(q), q += 8;
            if (sat_d) *disk = rd32(q);
        }
        p += 4u + sz;
    }
    if (need && !seen)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: entry '%s' has saturated 32-bit fields but no ZIP64 extra", label,
                       nm);
    return HQ_OK;
}

/* One central directory header at *pos; advances *pos. */
static hq_status read_central(fmt_zip *z, uint64_t *pos, uint64_t cd_end, fmt_zip_entry *en, const char *label,
                              char *err) {
    const uint8_t *b = z->buf;
    char nm[96];
    if (cd_end - *pos < CENTRAL_HDR || rd32(b + *pos) != SIG_CENTRAL)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: bad central directory header at offset %llu", label,
                       (unsigned long long)*pos);
    const uint8_t *c = b + *pos;
    uint32_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32), disk = rd16(c + 34);
    uint64_t total = (uint64_t)CENTRAL_HDR + nlen + xlen + clen;
    if (cd_end - *pos < total)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: central header at offset %llu overruns the central directory",
                       label, (unsigned long long)*pos);
    en->flags = rd16(c + 8);
    en->method = rd16(c + 10);
    en->crc32 = rd32(c + 16);
    en->csize = rd32(c + 20);
    en->usize = rd32(c + 24);
    en->lho = rd32(c + 42);
    en->name = (const char *)c + CENTRAL_HDR;
    en->name_len = nlen;
    show(en->name, nlen, nm);
    const char *why = bad_name(en->name, nlen);
    if (why) return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: entry name '%s' %s", label, nm, why);
    hq_status st = read_extra(c + CENTRAL_HDR + nlen, xlen, en, &disk, label, nm, err);
    if (st) return st;
    if (disk != 0) return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: zip: entry '%s' is on disk %u", label, nm, disk);
    if (en->flags & 0x41u) return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: zip: entry '%s' is encrypted", label, nm);
    if (en->method != 0 && en->method != 8)
        return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: zip: entry '%s' uses compression method %u (only stored/deflate)",
                       label, nm, en->method);
    if (en->method == 0 && en->csize != en->usize)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: stored entry '%s' has csize %llu != usize %llu", label, nm,
                       (unsigned long long)en->csize, (unsigned long long)en->usize);
    if (en->method == 8) {
        uint64_t cap;
        if (!hq_mul_u64(en->csize, HQ_MAX_DEFLATE_RATIO, &cap) || en->usize > cap)
            return hq_fail(err, HQ_ERR_LIMIT,
                           "%s: zip: entry '%s' inflates %llu -> %llu bytes, beyond HQ_MAX_DEFLATE_RATIO (%d)", label, nm,
                           (unsigned long long)en->csize, (unsigned long long)en->usize, HQ_MAX_DEFLATE_RATIO);
    }
    /* local header: same name and method; data starts after its own extra */
    if (!in_file(en->lho, LOCAL_HDR, z->cd_offset) || rd32(b + en->lho) != SIG_LOCAL)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: entry '%s' local header offset %llu is not a local header", label,
                       nm, (unsigned long long)en->lho);
    const uint8_t *l = b + en->lho;
    uint32_t lnlen = rd16(l + 26), lxlen = rd16(l + 28);
    if (!in_file(en->lho, (uint64_t)LOCAL_HDR + lnlen + lxlen, z->cd_offset))
        return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: entry '%s' local header overruns the data area", label, nm);
    if (lnlen != nlen || memcmp(l + LOCAL_HDR, en->name, nlen) != 0)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: entry '%s' has a different name in its local header", label, nm);
    if (rd16(l + 8) != en->method || (rd16(l + 6) & 0x41u))
        return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: entry '%s' local header disagrees on method/encryption", label,
                       nm);
    en->data_off = en->lho + LOCAL_HDR + lnlen + lxlen;
    if (!in_file(en->data_off, en->csize, z->cd_offset))
        return hq_fail(err, HQ_ERR_FORMAT,
                       "%s: zip: entry '%s' data [%llu, +%llu) runs past the start of the central directory (%llu)",
                       label, nm, (unsigned long long)en->data_off, (unsigned long long)en->csize,
                       (unsigned long long)z->cd_offset);
    *pos += total;
    return HQ_OK;
}

hq_status fmt_zip_open_from_buffer(const uint8_t *buf, uint64_t len, const char *label, fmt_zip *z, char *err) {
    memset(z, 0, sizeof *z);
    if (!label) label = "(buffer)";
    if (!buf && len) return hq_fail(err, HQ_ERR_ARG, "%s: zip: NULL buffer", label);
    z->buf = buf;
    z->len = len;
    uint64_t n = 0, cd_end = 0;
    const fmt_zip_entry **order = NULL;
    hq_status st = read_eocd(buf, len, label, z, &n, &cd_end, err);
    if (st) goto fail;
    if (n == 0) {
        st = hq_fail(err, HQ_ERR_FORMAT, "%s: zip: archive has no entries", label);
        goto fail;
    }
    z->entries = hq_malloc_array(n, sizeof *z->entries);
    z->by_name = hq_malloc_array(n, sizeof *z->by_name);
    order = hq_malloc_array(n, sizeof *order);
    if (!z->entries || !z->by_name || !order) {
        hq_free(order);
        st = hq_fail(err, HQ_ERR_NOMEM, "%s: zip: out of memory for %llu entries", label, (unsigned long long)n);
        goto fail;
    }
    z->n_entries = n;
    uint64_t pos = z->cd_offset;
    for (uint64_t i = 0; i < n && !st; i++) st = read_central(z, &pos, cd_end, &z->entries[i], label, err);
    if (!st && pos != cd_end)
        st = hq_fail(err, HQ_ERR_FORMAT, "%s: zip: %llu unused bytes at the end of the central directory", label,
                     (unsigned long long)(cd_end - pos));
    /* one top-level folder shared by every entry */
    if (!st) {
        const fmt_zip_entry *e0 = &z->entries[0];
        const char *slash = memchr(e0->name, '/', e0->name_len);
        char nm[96];
        if (!slash) {
            st = hq_fail(err, HQ_ERR_FORMAT, "%s: zip: first entry '%s' is not inside a top-level folder", label,
                         show(e0->name, e0->name_len, nm));
        } else {
            z->prefix_len = (uint32_t)(slash - e0->name) + 1;
            for (uint64_t i = 1; i < n && !st; i++) {
                const fmt_zip_entry *e = &z->entries[i];
                if (e->name_len <= z->prefix_len || memcmp(e->name, e0->name, z->prefix_len) != 0)
                    st = hq_fail(err, HQ_ERR_FORMAT, "%s: zip: entry '%s' is outside the archive folder '%.*s'", label,
                                 show(e->name, e->name_len, nm), (int)z->prefix_len, e0->name);
            }
        }
    }
    /* unique names (sorted index, also used by fmt_zip_find) */
    if (!st) {
        for (uint64_t i = 0; i < n; i++) order[i] = &z->entries[i];
        qsort(order, n, sizeof *order, cmp_name);
        for (uint64_t i = 0; i < n; i++) z->by_name[i] = (uint32_t)(order[i] - z->entries);
        for (uint64_t i = 1; i < n && !st; i++) {
            if (cmp_name(&order[i - 1], &order[i]) == 0) {
                char nm[96];
                st = hq_fail(err, HQ_ERR_FORMAT, "%s: zip: duplicate entry name '%s'", label,
                             show(order[i]->name, order[i]->name_len, nm));
            }
        }
    }
    /* no two entries' [local header, data end) spans overlap */
    if (!st) {
        qsort(order, n, sizeof *order, cmp_lho);
        for (uint64_t i = 1; i < n && !st; i++) {
            const fmt_zip_entry *a = order[i - 1], *b = order[i];
            if (a->data_off + a->csize > b->lho) { /* no overflow: both checked < cd_offset */
                char na[96], nb[96];
                st = hq_fail(err, HQ_ERR_FORMAT, "%s: zip: entries '%s' and '%s' overlap (data ends at %llu, next header at %llu)",
                             label, show(a->name, a->name_len, na), show(b->name, b->name_len, nb),
                             (unsigned long long)(a->data_off + a->csize), (unsigned long long)b->lho);
            }
        }
    }
    hq_free(order);
    if (!st) return HQ_OK;
fail:
    fmt_zip_free(z);
    return st;
}

void fmt_zip_free(fmt_zip *z) {
    if (!z) return;
    hq_free(z->entries);
    hq_free(z->by_name);
    memset(z, 0, sizeof *z);
}

const fmt_zip_entry *fmt_zip_find(const fmt_zip *z, const char *rel) {
    if (!z || !z->n_entries || !rel) return NULL;
    size_t rl = strlen(rel);
    const char *pre = z->entries[0].name;
    uint64_t lo = 0, hi = z->n_entries;
    while (lo < hi) { /* binary search on (prefix + rel) without building it */
        uint64_t mid = lo + (hi - lo) / 2;
        const fmt_zip_entry *e = &z->entries[z->by_name[mid]];
        int c = memcmp(e->name, pre, z->prefix_len); /* 0: every name shares the prefix */
        if (!c) {
            uint32_t en = e->name_len - z->prefix_len;
            size_t m = en < rl ? en : rl;
            c = memcmp(e->name + z->prefix_len, rel, m);
            if (!c) c = (en > rl) - (en < rl);
        }
        if (c == 0) return e;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

hq_status fmt_zip_read(const fmt_zip *z, const fmt_zip_entry *e, bool check_crc, const char *label,
                       const uint8_t **data, uint8_t **owned, char *err) {
    char nm[96];
    *data = NULL;
    *owned = NULL;
    if (!label) label = "(buffer)";
    show(e->name, e->name_len, nm);
    const uint8_t *src = z->buf + e->data_off;
    if (e->method == 0) {
        if (check_crc && e->crc32 != 0 && e->usize != 0) {
            uLong crc = crc32(0L, Z_NULL, 0);
            for (uint64_t off = 0; off < e->usize;) { /* zlib takes uInt lengths */
                uint64_t chunk = e->usize - off > (1u << 30) ? (1u << 30) : e->usize - off;
                crc = crc32(crc, src + off, (uInt)chunk);
                off += chunk;
            }
            if ((uint32_t)crc != e->crc32)
                return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: entry '%s' CRC32 %08x does not match the recorded %08x",
                               label, nm, (unsigned)crc, (unsigned)e->crc32);
        }
        *data = src;
        return HQ_OK;
    }
    /* deflate: the size bound was checked at open (HQ_MAX_DEFLATE_RATIO) */
    if (e->usize > SIZE_MAX - 1 || e->csize > UINT32_MAX || e->usize > UINT32_MAX)
        return hq_fail(err, HQ_ERR_LIMIT, "%s: zip: deflated entry '%s' is larger than 4 GiB", label, nm);
    uint8_t *out = hq_malloc(e->usize ? (size_t)e->usize : 1);
    if (!out) return hq_fail(err, HQ_ERR_NOMEM, "%s: zip: out of memory inflating '%s'", label, nm);
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -MAX_WBITS) != Z_OK) {
        hq_free(out);
        return hq_fail(err, HQ_ERR_NOMEM, "%s: zip: inflateInit failed for '%s'", label, nm);
    }
    s.next_in = (Bytef *)(uintptr_t)src;
    s.avail_in = (uInt)e->csize;
    s.next_out = out;
    s.avail_out = (uInt)e->usize;
    int zr = inflate(&s, Z_FINISH);
    uint64_t got = s.total_out, used = s.total_in;
    inflateEnd(&s);
    if (zr != Z_STREAM_END || got != e->usize || used != e->csize) {
        hq_free(out);
        return hq_fail(err, HQ_ERR_FORMAT,
                       "%s: zip: deflated entry '%s' is corrupt or its size is wrong (zlib %d, %llu of %llu bytes)",
                       label, nm, zr, (unsigned long long)got, (unsigned long long)e->usize);
    }
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), out, (uInt)e->usize);
    if (crc != e->crc32) {
        hq_free(out);
        return hq_fail(err, HQ_ERR_FORMAT, "%s: zip: entry '%s' CRC32 %08x does not match the recorded %08x", label, nm,
                       (unsigned)crc, (unsigned)e->crc32);
    }
    *data = out;
    *owned = out;
    return HQ_OK;
}
