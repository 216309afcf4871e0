/* formats/pickle.c — the allowlist-only pickle VM (see pickle.h). Every
 * operand read is bounds-checked against the input; every growth of the
 * arena, stack, marks and memo is checked against its limit first. */
#include "pickle.h" // defines: fmt_pk, fmt_pk_node, fmt_pk_globals
#include "ckpt.h"   // defines: hq_dtype

#include <stdarg.h> // defines: va_list
#include <string.h> // defines: memcpy, memcmp, strlen

#define G(mod, nm, kind, dt) {mod, nm, kind, dt, 0}
#define S(nm, dt, es) {"torch", nm, FMT_PK_G_STORAGE, dt, es}
const fmt_pk_global fmt_pk_globals[] = {
    G("collections", "OrderedDict", FMT_PK_G_ORDERED_DICT, -1),
    G("torch._utils", "_rebuild_tensor_v2", FMT_PK_G_REBUILD_V2, -1),
    G("torch._utils", "_rebuild_tensor_v3", FMT_PK_G_REBUILD_V3, -1),
    G("torch._utils", "_rebuild_parameter", FMT_PK_G_PARAM, -1),
    G("torch._utils", "_rebuild_parameter_with_state", FMT_PK_G_PARAM_STATE, -1),
    G("torch", "Size", FMT_PK_G_SIZE, -1),
    G("_codecs", "encode", FMT_PK_G_ENCODE, -1),
    /* storage classes (torch/storage.py _dtype_to_storage_type_map) */
    S("DoubleStorage", HQ_DT_F64, 8),
    S("FloatStorage", HQ_DT_F32, 4),
    S("HalfStorage", HQ_DT_F16, 2),
    S("BFloat16Storage", HQ_DT_BF16, 2),
    S("LongStorage", HQ_DT_I64, 8),
    S("IntStorage", HQ_DT_I32, 4),
    S("ShortStorage", HQ_DT_I16, 2),
    S("CharStorage", HQ_DT_I8, 1),
    S("ByteStorage", HQ_DT_U8, 1),
    S("BoolStorage", HQ_DT_BOOL, 1),
    S("ComplexFloatStorage", -1, 8),
    S("ComplexDoubleStorage", -1, 16),
    S("QInt8Storage", -1, 1),
    S("QUInt8Storage", -1, 1),
    S("QInt32Storage", -1, 4),
    {"torch.storage", "UntypedStorage", FMT_PK_G_UNTYPED, -1, 1},
    /* dtypes, as torch.dtype pickles itself ("torch float32") for v3 */
    G("torch", "float64", FMT_PK_G_DTYPE, HQ_DT_F64),
    G("torch", "float32", FMT_PK_G_DTYPE, HQ_DT_F32),
    G("torch", "float16", FMT_PK_G_DTYPE, HQ_DT_F16),
    G("torch", "bfloat16", FMT_PK_G_DTYPE, HQ_DT_BF16),
    G("torch", "int64", FMT_PK_G_DTYPE, HQ_DT_I64),
    G("torch", "int32", FMT_PK_G_DTYPE, HQ_DT_I32),
    G("torch", "int16", FMT_PK_G_DTYPE, HQ_DT_I16),
    G("torch", "int8", FMT_PK_G_DTYPE, HQ_DT_I8),
    G("torch", "uint8", FMT_PK_G_DTYPE, HQ_DT_U8),
    G("torch", "bool", FMT_PK_G_DTYPE, HQ_DT_BOOL),
    G("torch", "uint16", FMT_PK_G_DTYPE, -1),
    G("torch", "uint32", FMT_PK_G_DTYPE, -1),
    G("torch", "uint64", FMT_PK_G_DTYPE, -1),
    G("torch", "complex32", FMT_PK_G_DTYPE, -1),
    G("torch", "complex64", FMT_PK_G_DTYPE, -1),
    G("torch", "complex128", FMT_PK_G_DTYPE, -1),
    G("torch", "float8_e4m3fn", FMT_PK_G_DTYPE, -1),
    G("torch", "float8_e5m2", FMT_PK_G_DTYPE, -1),
    G("torch", "float8_e4m3fnuz", FMT_PK_G_DTYPE, -1),
    G("torch", "float8_e5m2fnuz", FMT_PK_G_DTYPE, -1),
    G("torch", "float8_e8m0fnu", FMT_PK_G_DTYPE, -1),
    G("torch", "float4_e2m1fn_x2", FMT_PK_G_DTYPE, -1),
};
#undef G
#undef S
const int fmt_pk_n_globals = (int)(sizeof fmt_pk_globals / sizeof fmt_pk_globals[0]);
_Static_assert(sizeof fmt_pk_globals / sizeof fmt_pk_globals[0] < 255, "sym must fit in a byte");

/* Every pickle opcode (for messages); the accepted ones are in the switch. */
static const struct { uint8_t op; const char *name; } opnames[] = {
    {0x80, "PROTO"}, {'c', "GLOBAL"}, {'q', "BINPUT"}, {'r', "LONG_BINPUT"}, {'h', "BINGET"},
    {'j', "LONG_BINGET"}, {')', "EMPTY_TUPLE"}, {'}', "EMPTY_DICT"}, {']', "EMPTY_LIST"}, {'(', "MARK"},
    {'t', "TUPLE"}, {0x85, "TUPLE1"}, {0x86, "TUPLE2"}, {0x87, "TUPLE3"}, {'X', "BINUNICODE"},
    {'U', "SHORT_BINSTRING"}, {'K', "BININT1"}, {'M', "BININT2"}, {'J', "BININT"}, {0x8a, "LONG1"},
    {'G', "BINFLOAT"}, {'N', "NONE"}, {0x89, "NEWFALSE"}, {0x88, "NEWTRUE"}, {'R', "REDUCE"},
    {'Q', "BINPERSID"}, {'s', "SETITEM"}, {'u', "SETITEMS"}, {'a', "APPEND"}, {'e', "APPENDS"},
    {'b', "BUILD"}, {'.', "STOP"},
    /* refused */
    {0x93, "STACK_GLOBAL"}, {'i', "INST"}, {'o', "OBJ"}, {0x81, "NEWOBJ"}, {0x92, "NEWOBJ_EX"},
    {'P', "PERSID"}, {'2', "DUP"}, {'0', "POP"}, {'1', "POP_MARK"}, {0x95, "FRAME"}, {0x94, "MEMOIZE"},
    {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"}, {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"},
    {0x8e, "BINBYTES8"}, {0x8b, "LONG4"}, {0x82, "EXT1"}, {0x83, "EXT2"}, {0x84, "EXT4"},
    {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"}, {'I', "INT"}, {'L', "LONG"},
    {'S', "STRING"}, {'V', "UNICODE"}, {'F', "FLOAT"}, {'g', "GET"}, {'p', "PUT"}, {'d', "DICT"},
    {'l', "LIST"}, {'T', "BINSTRING"}, {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"},
};

const char *fmt_pk_opname(uint8_t op) {
    for (size_t i = 0; i < sizeof opnames / sizeof opnames[0]; i++)
        if (opnames[i].op == op) return opnames[i].name;
    return NULL;
}

void fmt_pk_init(fmt_pk *vm, const uint8_t *buf, uint64_t len, const char *label) {
    memset(vm, 0, sizeof *vm);
    vm->buf = buf;
    vm->len = len;
    vm->label = label ? label : "(pickle)";
    vm->max_stack = HQ_MAX_PICKLE_STACK;
    vm->max_memo = HQ_MAX_PICKLE_MEMO;
    vm->max_depth = HQ_MAX_PICKLE_DEPTH;
    vm->max_nodes = HQ_MAX_PICKLE_NODES;
}

void fmt_pk_free(fmt_pk *vm) {
    if (!vm) return;
    hq_free(vm->nodes);
    hq_free(vm->kids);
    hq_free(vm->cells);
    hq_free(vm->stack);
    hq_free(vm->marks);
    hq_free(vm->memo);
    const uint8_t *buf = vm->buf;
    uint64_t len = vm->len;
    const char *label = vm->label;
    fmt_pk_init(vm, buf, len, label);
}

/* ---- the running state of one fmt_pk_run: error reporting context ---- */
typedef struct {
    fmt_pk *vm;
    uint64_t op_at; /* offset of the opcode being executed */
    uint8_t op;
    char *err;
} run_ctx;

#define OPNAME(c) (fmt_pk_opname((c)->op) ? fmt_pk_opname((c)->op) : "?")
#define FAIL(c, st, ...) fail_at(c, st, __VA_ARGS__)

static hq_status fail_at(run_ctx *c, hq_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static hq_status fail_at(run_ctx *c, hq_status st, const char *fmt, ...) {
    char msg[HQ_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return hq_fail(c->err, st, "%s: pickle: %s (opcode %s at byte %llu)", c->vm->label, msg, OPNAME(c),
                   (unsigned long long)c->op_at);
}

/* Grows *arr (elem bytes each) to hold at least need items; cap doubles. */
static bool grow(void **arr, uint64_t *cap, uint64_t need, size_t elem) {
    if (need <= *cap) return true;
    uint64_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    uint64_t bytes;
    if (!hq_mul_u64(nc, elem, &bytes) || bytes > SIZE_MAX) return false;
    void *p = hq_realloc(*arr, (size_t)bytes);
    if (!p) return false;
    *arr = p;
    *cap = nc;
    return true;
}

static hq_status new_node(run_ctx *c, uint8_t type, fmt_pk_ref *out) {
    fmt_pk *vm = c->vm;
    if (vm->n_nodes + vm->n_kids + vm->n_cells >= vm->max_nodes)
        return FAIL(c, HQ_ERR_LIMIT, "more than %llu objects (HQ_MAX_PICKLE_NODES)", (unsigned long long)vm->max_nodes);
    if (!grow((void **)&vm->nodes, &vm->cap_nodes, vm->n_nodes + 1, sizeof *vm->nodes))
        return FAIL(c, HQ_ERR_NOMEM, "out of memory for %llu objects", (unsigned long long)vm->n_nodes + 1);
    fmt_pk_node *n = &vm->nodes[vm->n_nodes];
    memset(n, 0, sizeof *n);
    n->type = type;
    if (type == FMT_PK_LIST || type == FMT_PK_DICT) n->u.cells.head = n->u.cells.tail = FMT_PK_NIL;
    *out = (fmt_pk_ref)vm->n_nodes++;
    return HQ_OK;
}

static hq_status push(run_ctx *c, fmt_pk_ref r) {
    fmt_pk *vm = c->vm;
    if (vm->sp >= vm->max_stack)
        return FAIL(c, HQ_ERR_LIMIT, "stack deeper than %llu (HQ_MAX_PICKLE_STACK)", (unsigned long long)vm->max_stack);
    if (!grow((void **)&vm->stack, &vm->cap_stack, vm->sp + 1, sizeof *vm->stack))
        return FAIL(c, HQ_ERR_NOMEM, "out of memory for the stack");
    vm->stack[vm->sp++] = r;
    return HQ_OK;
}

static uint64_t floor_of(const fmt_pk *vm) { return vm->n_marks ? vm->marks[vm->n_marks - 1] : 0; }

static hq_status pop(run_ctx *c, fmt_pk_ref *r) {
    fmt_pk *vm = c->vm;
    if (vm->sp <= floor_of(vm)) return FAIL(c, HQ_ERR_FORMAT, "stack underflow");
    *r = vm->stack[--vm->sp];
    return HQ_OK;
}

static hq_status top(run_ctx *c, fmt_pk_ref *r) {
    fmt_pk *vm = c->vm;
    if (vm->sp <= floor_of(vm)) return FAIL(c, HQ_ERR_FORMAT, "stack underflow");
    *r = vm->stack[vm->sp - 1];
    return HQ_OK;
}

static hq_status pop_mark(run_ctx *c, uint64_t *mark) {
    fmt_pk *vm = c->vm;
    if (!vm->n_marks) return FAIL(c, HQ_ERR_FORMAT, "no MARK on the stack");
    *mark = vm->marks[--vm->n_marks];
    return HQ_OK;
}

/* A tuple from stack[from .. sp), which is then popped. */
static hq_status make_tuple(run_ctx *c, uint64_t from, fmt_pk_ref *out) {
    fmt_pk *vm = c->vm;
    uint64_t n = vm->sp - from;
    if (n > UINT32_MAX) return FAIL(c, HQ_ERR_LIMIT, "tuple of %llu items", (unsigned long long)n);
    if (vm->n_nodes + vm->n_kids + vm->n_cells + n >= vm->max_nodes)
        return FAIL(c, HQ_ERR_LIMIT, "more than %llu objects (HQ_MAX_PICKLE_NODES)", (unsigned long long)vm->max_nodes);
    hq_status st = new_node(c, FMT_PK_TUPLE, out);
    if (st) return st;
    if (!grow((void **)&vm->kids, &vm->cap_kids, vm->n_kids + n, sizeof *vm->kids))
        return FAIL(c, HQ_ERR_NOMEM, "out of memory for tuple items");
    fmt_pk_node *t = &vm->nodes[*out];
    t->len = (uint32_t)n;
    t->u.kids = vm->n_kids;
    if (n) memcpy(vm->kids + vm->n_kids, vm->stack + from, n * sizeof *vm->kids);
    vm->n_kids += n;
    vm->sp = from;
    return HQ_OK;
}

/* Appends (key, val) to a list/dict node. */
static hq_status add_cell(run_ctx *c, fmt_pk_ref container, fmt_pk_ref key, fmt_pk_ref val) {
    fmt_pk *vm = c->vm;
    if (vm->n_nodes + vm->n_kids + vm->n_cells >= vm->max_nodes)
        return FAIL(c, HQ_ERR_LIMIT, "more than %llu objects (HQ_MAX_PICKLE_NODES)", (unsigned long long)vm->max_nodes);
    if (vm->n_cells >= FMT_PK_NIL) return FAIL(c, HQ_ERR_LIMIT, "too many container items");
    if (!grow((void **)&vm->cells, &vm->cap_cells, vm->n_cells + 1, sizeof *vm->cells))
        return FAIL(c, HQ_ERR_NOMEM, "out of memory for container items");
    uint32_t ci = (uint32_t)vm->n_cells++;
    vm->cells[ci] = (fmt_pk_cell){key, val, FMT_PK_NIL};
    fmt_pk_node *n = &vm->nodes[container];
    if (n->len == UINT32_MAX) return FAIL(c, HQ_ERR_LIMIT, "container of more than 2^32 items");
    if (n->u.cells.tail == FMT_PK_NIL) n->u.cells.head = ci;
    else vm->cells[n->u.cells.tail].next = ci;
    n->u.cells.tail = ci;
    n->len++;
    return HQ_OK;
}

static const char *type_name(int t) {
    static const char *names[] = {"None", "bool", "int", "float", "str", "bytes", "tuple",
                                  "list", "dict", "global", "object", "persistent id"};
    return t >= 0 && t <= FMT_PK_PERSID ? names[t] : "?";
}

/* GLOBAL "module\nname\n": resolved against the allowlist only. */
static hq_status do_global(run_ctx *c, uint64_t *pos, fmt_pk_ref *out) {
    fmt_pk *vm = c->vm;
    const char *s[2];
    size_t n[2];
    for (int k = 0; k < 2; k++) {
        uint64_t p = *pos, lim = vm->len - p > 256 ? p + 256 : vm->len;
        const uint8_t *nl = memchr(vm->buf + p, '\n', (size_t)(lim - p));
        if (!nl) return FAIL(c, HQ_ERR_FORMAT, "GLOBAL operand is not two short newline-terminated lines");
        s[k] = (const char *)vm->buf + p;
        n[k] = (size_t)(nl - (vm->buf + p));
        *pos = p + n[k] + 1;
    }
    for (int i = 0; i < fmt_pk_n_globals; i++) {
        const fmt_pk_global *g = &fmt_pk_globals[i];
        if (strlen(g->module) == n[0] && strlen(g->name) == n[1] && !memcmp(g->module, s[0], n[0]) &&
            !memcmp(g->name, s[1], n[1])) {
            hq_status st = new_node(c, FMT_PK_GLOBAL, out);
            if (!st) vm->nodes[*out].sym = (uint8_t)i;
            return st;
        }
    }
    char shown[2][80];
    for (int k = 0; k < 2; k++) {
        size_t j = 0;
        for (; j < n[k] && j < 79; j++) shown[k][j] = (s[k][j] >= 0x20 && s[k][j] < 0x7f) ? s[k][j] : '?';
        shown[k][j] = 0;
    }
    return FAIL(c, HQ_ERR_UNSUPPORTED, "global '%s.%s' is not in the allowlist of tensor-loading symbols; refusing",
                shown[0], shown[1]);
}

/* REDUCE: interpret an allowlisted callable symbolically. */
static hq_status do_reduce(run_ctx *c) {
    fmt_pk *vm = c->vm;
    fmt_pk_ref args = FMT_PK_NIL, fn = FMT_PK_NIL, out = FMT_PK_NIL;
    hq_status st = pop(c, &args);
    if (!st) st = pop(c, &fn);
    if (st) return st;
    /* copies, not pointers: new_node may move the arena */
    uint8_t ftype = vm->nodes[fn].type, sym = vm->nodes[fn].sym, atype = vm->nodes[args].type;
    if (ftype != FMT_PK_GLOBAL) return FAIL(c, HQ_ERR_UNSUPPORTED, "REDUCE on a %s, not a global", type_name(ftype));
    const fmt_pk_global *g = &fmt_pk_globals[sym];
    if (atype != FMT_PK_TUPLE)
        return FAIL(c, HQ_ERR_FORMAT, "REDUCE of '%s.%s' with a %s instead of an argument tuple", g->module, g->name,
                    type_name(atype));
    uint32_t na = vm->nodes[args].len;
    switch (g->kind) {
    case FMT_PK_G_ORDERED_DICT:
        if (na != 0) return FAIL(c, HQ_ERR_UNSUPPORTED, "OrderedDict called with %u arguments (only () is read)", na);
        st = new_node(c, FMT_PK_DICT, &out);
        if (!st) vm->nodes[out].sym = 1;
        break;
    case FMT_PK_G_SIZE: {
        fmt_pk_ref t = fmt_pk_item(vm, args, 0);
        if (na != 1 || fmt_pk_type_of(vm, t) != FMT_PK_TUPLE)
            return FAIL(c, HQ_ERR_FORMAT, "torch.Size expects one tuple argument");
        out = t;
        break;
    }
    case FMT_PK_G_ENCODE: {
        fmt_pk_ref s = fmt_pk_item(vm, args, 0);
        if (na < 1 || na > 2 || fmt_pk_type_of(vm, s) != FMT_PK_STR)
            return FAIL(c, HQ_ERR_FORMAT, "_codecs.encode expects (str[, encoding])");
        st = new_node(c, FMT_PK_BYTES, &out);
        if (!st) vm->nodes[out].len = vm->nodes[s].len, vm->nodes[out].u.str = vm->nodes[s].u.str;
        break;
    }
    case FMT_PK_G_REBUILD_V2:
    case FMT_PK_G_REBUILD_V3:
    case FMT_PK_G_PARAM:
    case FMT_PK_G_PARAM_STATE: {
        static const uint32_t lo[] = {[FMT_PK_G_REBUILD_V2] = 6, [FMT_PK_G_REBUILD_V3] = 7, [FMT_PK_G_PARAM] = 3,
                                      [FMT_PK_G_PARAM_STATE] = 4};
        static const uint32_t hi[] = {[FMT_PK_G_REBUILD_V2] = 7, [FMT_PK_G_REBUILD_V3] = 8, [FMT_PK_G_PARAM] = 3,
                                      [FMT_PK_G_PARAM_STATE] = 4};
        if (na < lo[g->kind] || na > hi[g->kind])
            return FAIL(c, HQ_ERR_FORMAT, "'%s.%s' called with %u arguments (expected %u..%u)", g->module, g->name, na,
                        lo[g->kind], hi[g->kind]);
        st = new_node(c, FMT_PK_OBJ, &out);
        if (!st) {
            fmt_pk_node *o = &vm->nodes[out];
            o->sym = sym;
            o->u.obj.args = args;
            o->u.obj.state = FMT_PK_NIL;
        }
        break;
    }
    default:
        return FAIL(c, HQ_ERR_UNSUPPORTED, "REDUCE on '%s.%s', which is not callable here", g->module, g->name);
    }
    return st ? st : push(c, out);
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static hq_status push_int(run_ctx *c, int64_t v) {
    fmt_pk_ref r;
    hq_status st = new_node(c, FMT_PK_INT, &r);
    if (st) return st;
    c->vm->nodes[r].u.i = v;
    return push(c, r);
}

static hq_status push_simple(run_ctx *c, uint8_t type, int64_t i) {
    fmt_pk_ref r;
    hq_status st = new_node(c, type, &r);
    if (st) return st;
    c->vm->nodes[r].u.i = i;
    return push(c, r);
}

static hq_status memo_put(run_ctx *c, uint64_t idx) {
    fmt_pk *vm = c->vm;
    fmt_pk_ref v = FMT_PK_NIL;
    hq_status st = top(c, &v);
    if (st) return st;
    if (idx < vm->n_memo) {
        vm->memo[idx] = v;
        return HQ_OK;
    }
    if (idx != vm->n_memo)
        return FAIL(c, HQ_ERR_FORMAT, "memo index %llu skips ahead of the %llu slots assigned so far",
                    (unsigned long long)idx, (unsigned long long)vm->n_memo);
    if (vm->n_memo >= vm->max_memo)
        return FAIL(c, HQ_ERR_LIMIT, "more than %llu memo slots (HQ_MAX_PICKLE_MEMO)", (unsigned long long)vm->max_memo);
    if (!grow((void **)&vm->memo, &vm->cap_memo, vm->n_memo + 1, sizeof *vm->memo))
        return FAIL(c, HQ_ERR_NOMEM, "out of memory for the memo");
    vm->memo[vm->n_memo++] = v;
    return HQ_OK;
}

static hq_status memo_get(run_ctx *c, uint64_t idx) {
    fmt_pk *vm = c->vm;
    if (idx >= vm->n_memo)
        return FAIL(c, HQ_ERR_FORMAT, "memo index %llu was never set (%llu slots)", (unsigned long long)idx,
                    (unsigned long long)vm->n_memo);
    return push(c, vm->memo[idx]);
}

/* operand bytes available? */
#define NEED(k)                                                                                         \
    do {                                                                                                \
        if (vm->len - pos < (uint64_t)(k))                                                             \
            return FAIL(&c, HQ_ERR_FORMAT, "operand of %llu bytes runs past the end of the data (%llu)", \
                        (unsigned long long)(k), (unsigned long long)vm->len);                          \
    } while (0)
#define TRY(e)                        \
    do {                              \
        hq_status st_ = (e);          \
        if (st_) return st_;          \
    } while (0)

hq_status fmt_pk_run(fmt_pk *vm, uint64_t start, fmt_pk_ref *result, uint64_t *end, char *err) {
    run_ctx c = {vm, start, 0, err};
    vm->sp = vm->n_marks = vm->n_memo = 0;
    *result = FMT_PK_NIL;
    uint64_t pos = start;
    if (start > vm->len) return hq_fail(err, HQ_ERR_ARG, "%s: pickle: start %llu beyond end", vm->label,
                                        (unsigned long long)start);
    for (;;) {
        if (pos >= vm->len)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: pickle: data ends at byte %llu without STOP", vm->label,
                           (unsigned long long)vm->len);
        c.op_at = pos;
        c.op = vm->buf[pos++];
        const uint8_t *p = vm->buf + pos;
        fmt_pk_ref a = FMT_PK_NIL, b = FMT_PK_NIL, r = FMT_PK_NIL;
        uint64_t mark = 0;
        switch (c.op) {
        case 0x80: /* PROTO */
            NEED(1);
            if (c.op_at != start) return FAIL(&c, HQ_ERR_FORMAT, "PROTO not at the start of the pickle");
            if (p[0] != 2) return FAIL(&c, HQ_ERR_UNSUPPORTED, "pickle protocol %u (torch writes 2)", p[0]);
            pos += 1;
            break;
        case 'c': /* GLOBAL */
            TRY(do_global(&c, &pos, &r));
            TRY(push(&c, r));
            break;
        case 'q': /* BINPUT */
            NEED(1);
            pos += 1;
            TRY(memo_put(&c, p[0]));
            break;
        case 'r': /* LONG_BINPUT */
            NEED(4);
            pos += 4;
            TRY(memo_put(&c, rd32(p)));
            break;
        case 'h': /* BINGET */
            NEED(1);
            pos += 1;
            TRY(memo_get(&c, p[0]));
            break;
        case 'j': /* LONG_BINGET */
            NEED(4);
            pos += 4;
            TRY(memo_get(&c, rd32(p)));
            break;
        case ')': /* EMPTY_TUPLE */
            TRY(make_tuple(&c, vm->sp, &r));
            TRY(push(&c, r));
            break;
        case '}': /* EMPTY_DICT */
        case ']': /* EMPTY_LIST */
            TRY(new_node(&c, c.op == '}' ? FMT_PK_DICT : FMT_PK_LIST, &r));
            TRY(push(&c, r));
            break;
        case '(': /* MARK */
            if (vm->n_marks >= vm->max_depth)
                return FAIL(&c, HQ_ERR_LIMIT, "MARKs nested deeper than %llu (HQ_MAX_PICKLE_DEPTH)",
                            (unsigned long long)vm->max_depth);
            if (!grow((void **)&vm->marks, &vm->cap_marks, vm->n_marks + 1, sizeof *vm->marks))
                return FAIL(&c, HQ_ERR_NOMEM, "out of memory for marks");
            vm->marks[vm->n_marks++] = vm->sp;
            break;
        case 't': /* TUPLE */
            TRY(pop_mark(&c, &mark));
            TRY(make_tuple(&c, mark, &r));
            TRY(push(&c, r));
            break;
        case 0x85: /* TUPLE1 */
        case 0x86: /* TUPLE2 */
        case 0x87: { /* TUPLE3 */
            uint64_t k = (uint64_t)(c.op - 0x84);
            if (vm->sp < floor_of(vm) + k) return FAIL(&c, HQ_ERR_FORMAT, "stack underflow");
            TRY(make_tuple(&c, vm->sp - k, &r));
            TRY(push(&c, r));
            break;
        }
        case 'X': /* BINUNICODE */
        case 'U': { /* SHORT_BINSTRING */
            uint64_t hdr = c.op == 'X' ? 4 : 1;
            NEED(hdr);
            uint64_t n = c.op == 'X' ? rd32(p) : p[0];
            NEED(hdr + n);
            TRY(new_node(&c, c.op == 'X' ? FMT_PK_STR : FMT_PK_BYTES, &r));
            vm->nodes[r].len = (uint32_t)n;
            vm->nodes[r].u.str = pos + hdr;
            pos += hdr + n;
            TRY(push(&c, r));
            break;
        }
        case 'K': /* BININT1 */
            NEED(1);
            pos += 1;
            TRY(push_int(&c, p[0]));
            break;
        case 'M': /* BININT2 */
            NEED(2);
            pos += 2;
            TRY(push_int(&c, rd16(p)));
            break;
        case 'J': /* BININT */
            NEED(4);
            pos += 4;
            TRY(push_int(&c, (int32_t)rd32(p)));
            break;
        case 0x8a: { /* LONG1: n bytes little-endian two's complement */
            NEED(1);
            uint32_t n = p[0];
            NEED(1 + (uint64_t)n);
            if (n > 8) return FAIL(&c, HQ_ERR_UNSUPPORTED, "integer of %u bytes does not fit in 64 bits", n);
            uint64_t u = 0;
            for (uint32_t k = 0; k < n; k++) u |= (uint64_t)p[1 + k] << (8 * k);
            if (n > 0 && n < 8 && (p[n] & 0x80)) u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
            int64_t v;
            memcpy(&v, &u, sizeof v);
            pos += 1 + n;
            TRY(push_int(&c, v));
            break;
        }
        case 'G': { /* BINFLOAT: big-endian IEEE double */
            NEED(8);
            uint64_t u = 0;
            for (int k = 0; k < 8; k++) u = (u << 8) | p[k];
            pos += 8;
            TRY(new_node(&c, FMT_PK_FLOAT, &r));
            memcpy(&vm->nodes[r].u.f, &u, sizeof u);
            TRY(push(&c, r));
            break;
        }
        case 'N': TRY(push_simple(&c, FMT_PK_NONE, 0)); break;
        case 0x88: TRY(push_simple(&c, FMT_PK_BOOL, 1)); break; /* NEWTRUE */
        case 0x89: TRY(push_simple(&c, FMT_PK_BOOL, 0)); break; /* NEWFALSE */
        case 'R': TRY(do_reduce(&c)); break;
        case 'Q': { /* BINPERSID: only ('storage', ...) tuples */
            TRY(pop(&c, &a));
            if (fmt_pk_type_of(vm, a) != FMT_PK_TUPLE || !fmt_pk_str_eq(vm, fmt_pk_item(vm, a, 0), "storage"))
                return FAIL(&c, HQ_ERR_UNSUPPORTED, "persistent id is not a ('storage', ...) tuple");
            TRY(new_node(&c, FMT_PK_PERSID, &r));
            vm->nodes[r].u.pid = a;
            TRY(push(&c, r));
            break;
        }
        case 's': { /* SETITEM */
            fmt_pk_ref d = FMT_PK_NIL;
            TRY(pop(&c, &b));
            TRY(pop(&c, &a));
            TRY(top(&c, &d));
            if (vm->nodes[d].type != FMT_PK_DICT)
                return FAIL(&c, HQ_ERR_FORMAT, "SETITEM on a %s", type_name(vm->nodes[d].type));
            TRY(add_cell(&c, d, a, b));
            break;
        }
        case 'u': /* SETITEMS */
        case 'e': { /* APPENDS */
            fmt_pk_ref d = FMT_PK_NIL;
            TRY(pop_mark(&c, &mark));
            if (mark <= floor_of(vm)) return FAIL(&c, HQ_ERR_FORMAT, "stack underflow (no container below MARK)");
            d = vm->stack[mark - 1];
            bool dict = c.op == 'u';
            if (vm->nodes[d].type != (dict ? FMT_PK_DICT : FMT_PK_LIST))
                return FAIL(&c, HQ_ERR_FORMAT, "%s on a %s", OPNAME(&c), type_name(vm->nodes[d].type));
            uint64_t n = vm->sp - mark;
            if (dict && (n & 1)) return FAIL(&c, HQ_ERR_FORMAT, "odd number of items (%llu)", (unsigned long long)n);
            for (uint64_t k = mark; k < vm->sp; k += dict ? 2 : 1)
                TRY(add_cell(&c, d, dict ? vm->stack[k] : FMT_PK_NIL, vm->stack[dict ? k + 1 : k]));
            vm->sp = mark;
            break;
        }
        case 'a': { /* APPEND */
            fmt_pk_ref l = FMT_PK_NIL;
            TRY(pop(&c, &a));
            TRY(top(&c, &l));
            if (vm->nodes[l].type != FMT_PK_LIST)
                return FAIL(&c, HQ_ERR_FORMAT, "APPEND on a %s", type_name(vm->nodes[l].type));
            TRY(add_cell(&c, l, FMT_PK_NIL, a));
            break;
        }
        case 'b': { /* BUILD: OrderedDict state (nn.Module _metadata) or tensor state */
            fmt_pk_ref o = FMT_PK_NIL;
            TRY(pop(&c, &a));
            TRY(top(&c, &o));
            fmt_pk_node *on = &vm->nodes[o];
            if (on->type == FMT_PK_OBJ) on->u.obj.state = a;
            else if (!(on->type == FMT_PK_DICT && on->sym == 1))
                return FAIL(&c, HQ_ERR_UNSUPPORTED, "BUILD on a %s (only OrderedDict and tensors)", type_name(on->type));
            break;
        }
        case '.': /* STOP */
            if (vm->n_marks) return FAIL(&c, HQ_ERR_FORMAT, "%llu MARKs left open", (unsigned long long)vm->n_marks);
            if (vm->sp != 1)
                return FAIL(&c, HQ_ERR_FORMAT, "%llu values on the stack (expected 1)", (unsigned long long)vm->sp);
            *result = vm->stack[0];
            vm->sp = 0;
            *end = pos;
            return HQ_OK;
        default: {
            const char *nm = fmt_pk_opname(c.op);
            if (nm) return FAIL(&c, HQ_ERR_UNSUPPORTED, "opcode %s (0x%02x) is not allowed", nm, c.op);
            return FAIL(&c, HQ_ERR_FORMAT, "unknown opcode 0x%02x", c.op);
        }
        }
    }
}

fmt_pk_ref fmt_pk_item(const fmt_pk *vm, fmt_pk_ref t, uint64_t i) {
    const fmt_pk_node *n = fmt_pk_at(vm, t);
    if (!n || n->type != FMT_PK_TUPLE || i >= n->len) return FMT_PK_NIL;
    return vm->kids[n->u.kids + i];
}

const char *fmt_pk_str(const fmt_pk *vm, fmt_pk_ref r, uint32_t *len) {
    const fmt_pk_node *n = fmt_pk_at(vm, r);
    if (!n || (n->type != FMT_PK_STR && n->type != FMT_PK_BYTES)) return NULL;
    if (len) *len = n->len;
    return (const char *)vm->buf + n->u.str;
}

bool fmt_pk_str_eq(const fmt_pk *vm, fmt_pk_ref r, const char *s) {
    uint32_t n;
    const char *p = fmt_pk_str(vm, r, &n);
    return p && vm->nodes[r].type == FMT_PK_STR && strlen(s) == n && !memcmp(p, s, n);
}

bool fmt_pk_int(const fmt_pk *vm, fmt_pk_ref r, int64_t *v) {
    const fmt_pk_node *n = fmt_pk_at(vm, r);
    if (!n || n->type != FMT_PK_INT) return false;
    *v = n->u.i;
    return true;
}

uint32_t fmt_pk_first(const fmt_pk *vm, fmt_pk_ref r) {
    const fmt_pk_node *n = fmt_pk_at(vm, r);
    if (!n || (n->type != FMT_PK_DICT && n->type != FMT_PK_LIST)) return FMT_PK_NIL;
    return n->u.cells.head;
}

fmt_pk_ref fmt_pk_dict_get(const fmt_pk *vm, fmt_pk_ref dict, const char *key) {
    if (fmt_pk_type_of(vm, dict) != FMT_PK_DICT) return FMT_PK_NIL;
    for (uint32_t ci = fmt_pk_first(vm, dict); ci != FMT_PK_NIL; ci = vm->cells[ci].next)
        if (fmt_pk_str_eq(vm, vm->cells[ci].key, key)) return vm->cells[ci].val;
    return FMT_PK_NIL;
}

const fmt_pk_global *fmt_pk_global_of(const fmt_pk *vm, fmt_pk_ref r) {
    const fmt_pk_node *n = fmt_pk_at(vm, r);
    if (!n || (n->type != FMT_PK_GLOBAL && n->type != FMT_PK_OBJ)) return NULL;
    return &fmt_pk_globals[n->sym];
}
