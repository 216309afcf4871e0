/* formats/zip.h — a strict reader for the zip container torch.save writes,
 * over a memory buffer (a read-only mapping of the whole file).
 *
 * On-disk layout (all integers little-endian; PKWARE APPNOTE 6.3, as written
 * by torch's PyTorchStreamWriter / miniz with MZ_ZIP_FLAG_WRITE_ZIP64):
 *  1. For each entry: local header "PK\3\4" (30 bytes: version u16, flags u16,
 *     method u16, time u16, date u16, crc u32, csize u32, usize u32,
 *     name_len u16, extra_len u16), then the name, then the extra field (torch
 *     pads it with a private "FB" block so data starts 64-byte aligned), then
 *     the data (csize bytes), then an optional data descriptor "PK\7\8".
 *     torch writes crc/sizes 0 in the local header; only the central
 *     directory is authoritative.
 *  2. Central directory: one 46-byte header "PK\1\2" per entry (made u16,
 *     needed u16, flags u16, method u16, time u16, date u16, crc u32,
 *     csize u32, usize u32, name_len u16, extra_len u16, comment_len u16,
 *     disk_start u16, int_attr u16, ext_attr u32, local_header_offset u32),
 *     then name, extra, comment. A 32-bit field equal to 0xFFFFFFFF (0xFFFF
 *     for disk_start) is "saturated": its real value is in the ZIP64 extra
 *     field id 0x0001, which holds — in this order and only for the saturated
 *     fields — usize u64, csize u64, local_header_offset u64, disk u32.
 *  3. ZIP64 end of central directory "PK\6\6" (size-of-record u64 then
 *     made u16, needed u16, disk u32, cd_disk u32, entries_on_disk u64,
 *     entries u64, cd_size u64, cd_offset u64). Optional for plain zips,
 *     always present in torch files.
 *  4. ZIP64 locator "PK\6\7" (20 bytes: zip64_eocd_disk u32,
 *     zip64_eocd_offset u64, total_disks u32).
 *  5. End of central directory "PK\5\6" (22 bytes: disk u16, cd_disk u16,
 *     entries_on_disk u16, entries u16, cd_size u32, cd_offset u32,
 *     comment_len u16) + comment; it ends exactly at end of file.
 *
 * Strictness (file-formats.md §1.3; a predictable reader accepts what torch
 * writes and refuses the rest): single disk only; no encryption (flag bits 0
 * and 6); methods 0 (stored, csize == usize) and 8 (deflate via zlib, usize ≤
 * csize × HQ_MAX_DEFLATE_RATIO); at most HQ_MAX_ZIP_ENTRIES entries; the
 * central directory ends exactly where the ZIP64 EOCD (or EOCD) begins and is
 * consumed exactly; classic EOCD fields that are not saturated must equal the
 * ZIP64 ones; a ZIP64 extra must hold exactly the saturated fields; names are
 * non-empty, contain no NUL or backslash, are not absolute, have no ".." or
 * "." or empty component, are unique, and all start with one "<prefix>/"; the
 * local header name and method equal the central ones; the span [local header,
 * data end) of every entry lies before the central directory and no two spans
 * overlap.
 *
 * CRC policy: the central CRC is not checked at open. fmt_zip_read checks it
 * for deflated entries (always: the bytes are produced anyway) and, when asked
 * (check_crc), for stored ones — torch.c asks for the small records it parses
 * (data.pkl, byteorder) but not for tensor storages (that would fault in every
 * page of a multi-GiB mapping). A stored entry with CRC 0 and non-empty data is
 * treated as "no CRC recorded" (torch's writer can skip CRC32: compute_crc32).
 */
#ifndef HQ_ZIP_H
#define HQ_ZIP_H
#include "../core/hq.h"
#include "../core/limits.h"

typedef struct {
    const char *name;  /* full name, points into the buffer (not NUL-terminated) */
    uint32_t name_len;
    uint16_t method;   /* 0 stored, 8 deflate */
    uint16_t flags;
    uint32_t crc32;
    uint64_t csize;    /* bytes stored in the file */
    uint64_t usize;    /* bytes after decompression */
    uint64_t lho;      /* local header offset */
    uint64_t data_off; /* lho + 30 + local name_len + local extra_len */
} fmt_zip_entry;

typedef struct {
    const uint8_t *buf;
    uint64_t len;
    fmt_zip_entry *entries; /* central directory order */
    uint64_t n_entries;
    uint32_t *by_name;      /* entry indices sorted by name */
    uint32_t prefix_len;    /* bytes of "<prefix>/" (slash included) */
    bool zip64;             /* a ZIP64 EOCD was present */
    uint64_t cd_offset, cd_size;
} fmt_zip;

/* Parses and validates the directory. buf must outlive z. label names the
 * file in messages. On failure z is left empty (fmt_zip_free is still safe). */
hq_status fmt_zip_open_from_buffer(const uint8_t *buf, uint64_t len, const char *label, fmt_zip *z,
                                   char *err);
void fmt_zip_free(fmt_zip *z);
/* Finds "<prefix>/<rel>" (e.g. rel = "data.pkl"); NULL if absent. */
const fmt_zip_entry *fmt_zip_find(const fmt_zip *z, const char *rel);
/* The bytes of an entry. Stored: *data points into the buffer, *owned = NULL.
 * Deflated: inflated into a new allocation returned in *owned (hq_free it) and
 * *data == *owned. See the CRC policy above for check_crc. */
hq_status fmt_zip_read(const fmt_zip *z, const fmt_zip_entry *e, bool check_crc, const char *label,
                       const uint8_t **data, uint8_t **owned, char *err);
#endif
