/* formats/pickle.h — an allowlist-only pickle VM for torch checkpoints.
 *
 * Input layout (Python pickle protocol 2, as torch.save writes data.pkl):
 *  1. PROTO 0x80 + version byte (must be 2).
 *  2. A sequence of opcodes, each one byte followed by its fixed-size operand:
 *     BININT1 u8, BININT2 u16 LE, BININT s32 LE, LONG1 n:u8 + n bytes LE two's
 *     complement (n ≤ 8 here), BINFLOAT 8 bytes *big-endian* IEEE double,
 *     BINUNICODE u32 LE length + UTF-8, SHORT_BINSTRING u8 length + bytes,
 *     BINPUT/BINGET u8 memo index, LONG_BINPUT/LONG_BINGET u32 LE index,
 *     GLOBAL "module\nname\n"; the rest take no operand.
 *  3. STOP '.', which returns the single value left on the stack.
 *
 * Nothing is ever executed or imported. GLOBAL resolves "module name" against
 * a small fixed table (fmt_pk_globals); any other global (os.system,
 * builtins.eval, ...) and any opcode outside the list in pickle.c (STACK_GLOBAL,
 * INST, OBJ, NEWOBJ, PERSID, FRAME, ...) is refused with HQ_ERR_UNSUPPORTED and
 * a message naming it and its byte offset. REDUCE interprets the callable
 * *symbolically*: OrderedDict() makes an empty ordered dict, torch.Size(t)
 * yields t, _codecs.encode(s, enc) yields opaque bytes, and the
 * _rebuild_tensor_v2/_v3/_rebuild_parameter(_with_state) symbols produce an
 * FMT_PK_OBJ node that records the callable and its argument tuple for the
 * caller (torch.c) to interpret. BUILD is accepted on an OrderedDict (state
 * discarded: it is nn.Module's _metadata) and on such OBJ nodes (recorded).
 *
 * Values live in an arena and are referenced by index (fmt_pk_ref), so the
 * memo shares values by reference: BINGET is O(1) and a tensor pickled twice
 * is one node. Strings point into the input buffer (no copies), so the buffer
 * must outlive the VM. Lists and dicts are linked lists of cells (O(1) append).
 * Memo, stack, mark depth and object counts are bounded (core/limits.h; the
 * fields max_* may be lowered by tests). Memo indices must be assigned in
 * order (index ≤ current memo size), as every pickler does, so an index is
 * never used to size an allocation. Pops never cross the innermost MARK.
 */
#ifndef HQ_PICKLE_H
#define HQ_PICKLE_H
#include "../core/hq.h"
#include "../core/limits.h"

typedef uint32_t fmt_pk_ref;
#define FMT_PK_NIL UINT32_MAX

typedef enum {
    FMT_PK_NONE,
    FMT_PK_BOOL,   /* u.i = 0/1 */
    FMT_PK_INT,    /* u.i */
    FMT_PK_FLOAT,  /* u.f */
    FMT_PK_STR,    /* u.str = offset into the input, len bytes (BINUNICODE) */
    FMT_PK_BYTES,  /* same, from SHORT_BINSTRING or _codecs.encode */
    FMT_PK_TUPLE,  /* len items: kids[u.kids .. u.kids+len) */
    FMT_PK_LIST,   /* len items: cells from u.cells.head (val only) */
    FMT_PK_DICT,   /* len items: cells (key, val); sym = 1 for OrderedDict */
    FMT_PK_GLOBAL, /* sym = index in fmt_pk_globals */
    FMT_PK_OBJ,    /* REDUCE result of a rebuild symbol: sym = callable, u.obj */
    FMT_PK_PERSID, /* BINPERSID: u.pid = the pid tuple (first item 'storage') */
} fmt_pk_type;

typedef struct {
    uint8_t type; /* fmt_pk_type */
    uint8_t sym;
    uint32_t len;
    union {
        int64_t i;
        double f;
        uint64_t str;
        uint64_t kids;
        struct { uint32_t head, tail; } cells;
        struct { fmt_pk_ref args, state; } obj;
        fmt_pk_ref pid;
    } u;
} fmt_pk_node;

typedef struct {
    fmt_pk_ref key, val; /* key is FMT_PK_NIL in lists */
    uint32_t next;       /* next cell or FMT_PK_NIL */
} fmt_pk_cell;

/* What an allowlisted global is. */
typedef enum {
    FMT_PK_G_ORDERED_DICT,   /* collections.OrderedDict */
    FMT_PK_G_REBUILD_V2,     /* torch._utils._rebuild_tensor_v2 */
    FMT_PK_G_REBUILD_V3,     /* torch._utils._rebuild_tensor_v3 */
    FMT_PK_G_PARAM,          /* torch._utils._rebuild_parameter */
    FMT_PK_G_PARAM_STATE,    /* torch._utils._rebuild_parameter_with_state */
    FMT_PK_G_SIZE,           /* torch.Size */
    FMT_PK_G_ENCODE,         /* _codecs.encode */
    FMT_PK_G_STORAGE,        /* torch.<X>Storage: dtype = the element type */
    FMT_PK_G_UNTYPED,        /* torch.storage.UntypedStorage (numel in bytes) */
    FMT_PK_G_DTYPE,          /* torch.<dtype> for _rebuild_tensor_v3 */
} fmt_pk_gkind;

typedef struct {
    const char *module, *name;
    fmt_pk_gkind kind;
    int dtype;     /* hq_dtype for storages/dtypes we read, -1 for known-but-unsupported ones */
    uint32_t esize; /* storages: bytes per element of the storage class (untyped: 1), else 0 */
} fmt_pk_global;
extern const fmt_pk_global fmt_pk_globals[];
extern const int fmt_pk_n_globals;

typedef struct {
    const uint8_t *buf;
    uint64_t len;
    const char *label;
    fmt_pk_node *nodes;
    uint64_t n_nodes, cap_nodes;
    fmt_pk_ref *kids;
    uint64_t n_kids, cap_kids;
    fmt_pk_cell *cells;
    uint64_t n_cells, cap_cells;
    fmt_pk_ref *stack;
    uint64_t sp, cap_stack;
    uint64_t *marks;
    uint64_t n_marks, cap_marks;
    fmt_pk_ref *memo;
    uint64_t n_memo, cap_memo;
    /* limits (set by fmt_pk_init from core/limits.h) */
    uint64_t max_stack, max_memo, max_depth, max_nodes;
} fmt_pk;

/* buf/len: the whole input (a pickle or, for the legacy format, several in a
 * row). label names it in messages. No allocation happens here. */
void fmt_pk_init(fmt_pk *vm, const uint8_t *buf, uint64_t len, const char *label);
/* Runs one pickle starting at byte start; on success *result is the value
 * STOP returned and *end the offset just past STOP. Memo, stack and marks are
 * reset per pickle; values from earlier runs stay valid. */
hq_status fmt_pk_run(fmt_pk *vm, uint64_t start, fmt_pk_ref *result, uint64_t *end, char *err);
void fmt_pk_free(fmt_pk *vm);

/* ---- reading values (all return a neutral answer on a type mismatch) ---- */
static inline const fmt_pk_node *fmt_pk_at(const fmt_pk *vm, fmt_pk_ref r) {
    return r < vm->n_nodes ? &vm->nodes[r] : NULL;
}
static inline int fmt_pk_type_of(const fmt_pk *vm, fmt_pk_ref r) {
    return r < vm->n_nodes ? vm->nodes[r].type : -1;
}
/* item i of a tuple, or FMT_PK_NIL */
fmt_pk_ref fmt_pk_item(const fmt_pk *vm, fmt_pk_ref tuple, uint64_t i);
/* string/bytes data (not NUL-terminated) and length, or NULL */
const char *fmt_pk_str(const fmt_pk *vm, fmt_pk_ref r, uint32_t *len);
bool fmt_pk_str_eq(const fmt_pk *vm, fmt_pk_ref r, const char *s);
/* INT (not BOOL) value */
bool fmt_pk_int(const fmt_pk *vm, fmt_pk_ref r, int64_t *v);
/* first cell of a list/dict (FMT_PK_NIL if empty or not one); then cell->next */
uint32_t fmt_pk_first(const fmt_pk *vm, fmt_pk_ref r);
static inline const fmt_pk_cell *fmt_pk_cell_at(const fmt_pk *vm, uint32_t c) { return &vm->cells[c]; }
/* value for a string key in a dict (first match), or FMT_PK_NIL */
fmt_pk_ref fmt_pk_dict_get(const fmt_pk *vm, fmt_pk_ref dict, const char *key);
/* the allowlist entry of a GLOBAL/OBJ node, or NULL */
const fmt_pk_global *fmt_pk_global_of(const fmt_pk *vm, fmt_pk_ref r);
/* "BINUNICODE" etc. for an opcode byte, NULL if not a pickle opcode */
const char *fmt_pk_opname(uint8_t op);
#endif
