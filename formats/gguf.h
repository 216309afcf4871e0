/* formats/gguf.h — GGUF v3 reader (strict, mmap'd) and streaming writer,
 * byte-compatible with ggml-org/ggml docs/gguf.md and gguf.cpp.
 *
 * On-disk layout (all little-endian):
 *  1. u32 magic "GGUF" (47 47 55 46), u32 version = 3,
 *     u64 tensor_count, u64 kv_count.
 *  2. kv_count key/value pairs: key = gguf_string (u64 len + bytes, no NUL),
 *     u32 value type (0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool,
 *     8 string, 9 array, 10 u64, 11 i64, 12 f64), value. Arrays: u32 element
 *     type + u64 count + elements (strings inside arrays are gguf_strings).
 *  3. tensor_count tensor infos: name gguf_string (<= 63 bytes), u32 n_dims
 *     (1..4), u64 ne[n_dims] innermost first (= reversed PyTorch shape),
 *     u32 ggml type, u64 offset relative to the data section (multiple of
 *     the alignment).
 *  4. zero padding to `general.alignment` (u32, power of two, default 32).
 *  5. data section: tensors at their offsets, zero padding between them.
 *
 * The reader checks every count, length, size, offset and alignment with
 * overflow-checked arithmetic against the file size (limits in core/limits.h),
 * rejects duplicate keys and tensor names, overlapping tensor ranges, unknown
 * types, bool values other than 0/1 and non-power-of-two alignment.
 * Decisions (gguf.c has the reasons): versions 2 and 3 are read, big-endian
 * files are refused by name; keys 1..GGUF_MAX_KEY bytes and tensor names
 * 1..63 bytes, neither with NUL; n_dims 1..4 and every ne >= 1 (empty tensors
 * refused); general.alignment must be a u32 power of two <= HQ_MAX_GGUF_ALIGN;
 * nested arrays up to GGUF_MAX_ARRAY_DEPTH are kept raw; tensors may appear
 * in any order with gaps but must not overlap.
 * Writer: KVs and tensors are written in the order added, each tensor padded
 * to the alignment (the last one too, as ggml does). general.alignment is not
 * added implicitly: with an alignment other than 32 the caller must set it
 * (as a u32 equal to the writer's alignment), else write_header refuses.
 * Duplicate keys/names, bad shapes and unknown types are refused with
 * HQ_ERR_ARG. fmt_gguf_add_tensor's index is fmt_gguf_writer_n_tensors()-1.
 */
#ifndef HQ_GGUF_H
#define HQ_GGUF_H
#include "../core/hq.h"
#include "../core/limits.h"
#include "ggml_types.h"

enum {
    GGUF_VT_U8 = 0, GGUF_VT_I8, GGUF_VT_U16, GGUF_VT_I16, GGUF_VT_U32, GGUF_VT_I32,
    GGUF_VT_F32, GGUF_VT_BOOL, GGUF_VT_STRING, GGUF_VT_ARRAY, GGUF_VT_U64, GGUF_VT_I64,
    GGUF_VT_F64, GGUF_VT_COUNT
};

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ARRAY_DEPTH 3   /* array of array of array: deeper is refused */
#define GGUF_MAX_KEY 65535       /* key bytes (docs/gguf.md) */

typedef struct {
    const char *s; /* points into the mapping or writer storage; NOT NUL-terminated */
    uint64_t len;
} fmt_gguf_str;

typedef struct {
    char *key;           /* NUL-terminated copy */
    uint32_t type;       /* GGUF_VT_* */
    union {
        uint64_t u; int64_t i; double f; /* scalars widened */
        fmt_gguf_str str;
        struct { uint32_t type; uint64_t n; const uint8_t *data; fmt_gguf_str *strs; uint64_t nbytes; } arr;
    } v;                 /* arr.data: raw little-endian elements (non-string arrays);
                            arr.strs: decoded string elements (string arrays);
                            arr.nbytes: bytes of the elements as stored (for all
                            arrays; arr.data also points at string/nested
                            arrays' raw bytes). Nested arrays (element type
                            ARRAY, depth <= GGUF_MAX_ARRAY_DEPTH) are validated
                            and kept raw only. */
} fmt_gguf_kv;

typedef struct {
    char name[HQ_MAX_GGUF_NAME + 1];
    uint32_t n_dims;
    uint64_t ne[4];      /* innermost first; unused dims = 1 */
    uint32_t type;       /* ggml type id */
    uint64_t offset;     /* relative to data section */
    uint64_t nbytes;
    const void *data;    /* reader: pointer into the mapping */
} fmt_gguf_tensor;

typedef struct fmt_gguf fmt_gguf; /* reader handle */

hq_status fmt_gguf_open(const char *path, fmt_gguf **out, char *err);
/* label names the input in messages; buf must outlive the handle */
hq_status fmt_gguf_open_buffer(const void *buf, uint64_t len, const char *label, fmt_gguf **out, char *err);
void fmt_gguf_close(fmt_gguf *g);

uint64_t fmt_gguf_n_kv(const fmt_gguf *g);
const fmt_gguf_kv *fmt_gguf_kv_at(const fmt_gguf *g, uint64_t i);
const fmt_gguf_kv *fmt_gguf_find_kv(const fmt_gguf *g, const char *key);
/* typed getters: false when missing or of an incompatible type/range.
 * Integer getters accept any integer type whose value fits. */
bool fmt_gguf_get_u32(const fmt_gguf *g, const char *key, uint32_t *v);
bool fmt_gguf_get_u64(const fmt_gguf *g, const char *key, uint64_t *v);
bool fmt_gguf_get_f32(const fmt_gguf *g, const char *key, float *v); /* accepts f32/f64 */
bool fmt_gguf_get_bool(const fmt_gguf *g, const char *key, bool *v);
bool fmt_gguf_get_str(const fmt_gguf *g, const char *key, fmt_gguf_str *v);
uint32_t fmt_gguf_alignment(const fmt_gguf *g);
uint64_t fmt_gguf_data_offset(const fmt_gguf *g); /* absolute file offset of the data section */
const char *fmt_gguf_label(const fmt_gguf *g);

uint64_t fmt_gguf_n_tensors(const fmt_gguf *g);
const fmt_gguf_tensor *fmt_gguf_tensor_at(const fmt_gguf *g, uint64_t i);
const fmt_gguf_tensor *fmt_gguf_find_tensor(const fmt_gguf *g, const char *name);

/* ---- writer ----
 * Usage: init; set KVs; add tensor infos (type + shape); write_header (all
 * offsets are known then); write each tensor's data in the order added;
 * finish. Data is written through an hq_out (atomic temp file + rename). */
typedef struct fmt_gguf_writer fmt_gguf_writer;
hq_status fmt_gguf_writer_init(fmt_gguf_writer **w, uint32_t alignment, char *err);
void fmt_gguf_writer_free(fmt_gguf_writer *w);
hq_status fmt_gguf_set_u32(fmt_gguf_writer *w, const char *key, uint32_t v, char *err);
hq_status fmt_gguf_set_i32(fmt_gguf_writer *w, const char *key, int32_t v, char *err);
hq_status fmt_gguf_set_u64(fmt_gguf_writer *w, const char *key, uint64_t v, char *err);
hq_status fmt_gguf_set_f32(fmt_gguf_writer *w, const char *key, float v, char *err);
hq_status fmt_gguf_set_bool(fmt_gguf_writer *w, const char *key, bool v, char *err);
hq_status fmt_gguf_set_str(fmt_gguf_writer *w, const char *key, const char *s, uint64_t len, char *err);
/* numeric array: n elements of elem_type stored little-endian in data */
hq_status fmt_gguf_set_arr(fmt_gguf_writer *w, const char *key, uint32_t elem_type, const void *data,
                           uint64_t n, char *err);
hq_status fmt_gguf_set_arr_str(fmt_gguf_writer *w, const char *key, const char *const *s, uint64_t n,
                               char *err);
/* copy one KV (any type) from a reader, e.g. when requantizing */
hq_status fmt_gguf_copy_kv(fmt_gguf_writer *w, const fmt_gguf_kv *kv, char *err);
/* ne innermost first; returns the tensor's index */
hq_status fmt_gguf_add_tensor(fmt_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                              const uint64_t *ne, char *err);
uint64_t fmt_gguf_writer_n_tensors(const fmt_gguf_writer *w);
uint64_t fmt_gguf_writer_tensor_nbytes(const fmt_gguf_writer *w, uint64_t i);
/* total file size the writer will produce (exact; for --dry-run) */
uint64_t fmt_gguf_writer_total_size(const fmt_gguf_writer *w);
hq_status fmt_gguf_write_header(fmt_gguf_writer *w, hq_out *o, char *err);
/* tensors must be written in order; nbytes must equal the tensor's size.
 * May be called repeatedly for the same tensor to stream it in pieces:
 * fmt_gguf_write_tensor_part(w, o, i, p, n) ... then the padding is added
 * once the tensor's bytes are complete. */
hq_status fmt_gguf_write_tensor(fmt_gguf_writer *w, hq_out *o, uint64_t i, const void *data, uint64_t nbytes,
                                char *err);
hq_status fmt_gguf_write_tensor_part(fmt_gguf_writer *w, hq_out *o, uint64_t i, const void *data,
                                     uint64_t nbytes, char *err);
hq_status fmt_gguf_writer_finish(fmt_gguf_writer *w, hq_out *o, char *err); /* checks all data was written */
#endif
