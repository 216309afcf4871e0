/* tests/test_pickle.c — the allowlist pickle VM (formats/pickle.h): values,
 * memo sharing, and the hostile corpus (forbidden globals and opcodes, memo /
 * stack / depth bombs, truncated operands, cycles), each of which must end in
 * a clean error naming the problem. */
#include "../formats/pickle.h"
#include "test.h"
#include "torch_build.h"

static hq_status run(const tb_buf *b, fmt_pk *vm, fmt_pk_ref *res, char *err) {
    uint64_t end = 0;
    fmt_pk_init(vm, b->p, b->n, "t.pkl");
    hq_status st = fmt_pk_run(vm, 0, res, &end, err);
    if (!st && end != b->n) st = hq_fail(err, HQ_ERR_FORMAT, "end %llu", (unsigned long long)end);
    return st;
}

static void expect(const tb_buf *b, hq_status want, const char *frag, const char *what) {
    fmt_pk vm;
    fmt_pk_ref r;
    char err[HQ_ERR_LEN] = "";
    hq_status st = run(b, &vm, &r, err);
    CHECK(st == want, "%s: status %s (want %s): %s", what, hq_status_name(st), hq_status_name(want), err);
    CHECK(strstr(err, frag) != NULL, "%s: message '%s' lacks '%s'", what, err, frag);
    fmt_pk_free(&vm);
}

/* builds "PROTO 2 <body> STOP" from raw bytes */
static tb_buf raw(const char *body, size_t n) {
    tb_buf b = {0};
    pk_proto(&b);
    tb_put(&b, body, n);
    return b;
}
#define RAW(lit) raw(lit, sizeof lit - 1)
#define L(lit) lit, sizeof lit - 1

int main(void) {
    tb_buf b;
    fmt_pk vm;
    fmt_pk_ref r;
    char err[HQ_ERR_LEN];

    /* ---- values ---- */
    b = (tb_buf){0};
    pk_proto(&b);
    pk_op(&b, '}');
    pk_put(&b, 0);
    pk_op(&b, '(');
    pk_str(&b, "i1"), pk_int(&b, 200);
    pk_str(&b, "i2"), pk_op(&b, 'M'), tb_u16(&b, 0xBEEF);
    pk_str(&b, "i4"), pk_int(&b, -123456);
    pk_str(&b, "l0"), tb_u8(&b, 0x8a), tb_u8(&b, 0);                       /* LONG1 0 bytes = 0 */
    pk_str(&b, "l1"), tb_u8(&b, 0x8a), tb_u8(&b, 1), tb_u8(&b, 0xff);      /* -1 */
    pk_str(&b, "l3"), tb_u8(&b, 0x8a), tb_u8(&b, 3), tb_u8(&b, 0), tb_u8(&b, 0), tb_u8(&b, 0x80); /* -2^23 */
    pk_str(&b, "l8"), pk_int(&b, -(1ll << 62));
    pk_str(&b, "f"), tb_u8(&b, 'G');
    {
        double d = -2.75;
        uint64_t u;
        memcpy(&u, &d, 8);
        for (int k = 7; k >= 0; k--) tb_u8(&b, (uint8_t)(u >> (8 * k)));
    }
    pk_str(&b, "n"), pk_op(&b, 'N');
    pk_str(&b, "t"), pk_op(&b, 0x88);
    pk_str(&b, "bytes"), pk_op(&b, 'U'), tb_u8(&b, 2), tb_put(&b, "ab", 2);
    pk_str(&b, "tup"), pk_int(&b, 1), pk_int(&b, 2), pk_int(&b, 3), pk_op(&b, 0x87), pk_put(&b, 1);
    pk_str(&b, "same"), pk_get(&b, 1);
    pk_str(&b, "self"), pk_get(&b, 0); /* a cycle: the dict holds itself */
    pk_str(&b, "list"), pk_op(&b, ']'), pk_int(&b, 9), pk_op(&b, 'a'), pk_op(&b, '('), pk_int(&b, 8), pk_int(&b, 7);
    pk_op(&b, 'e');
    pk_str(&b, "od"), pk_global(&b, "collections", "OrderedDict"), pk_op(&b, ')'), pk_op(&b, 'R');
    pk_op(&b, '}'), pk_op(&b, 'b'); /* BUILD on OrderedDict: accepted, discarded */
    pk_str(&b, "size"), pk_global(&b, "torch", "Size"), pk_int(&b, 4), pk_op(&b, 0x85), pk_op(&b, 0x85), pk_op(&b, 'R');
    pk_str(&b, "enc"), pk_global(&b, "_codecs", "encode"), pk_str(&b, "xyz"), pk_str(&b, "latin1"), pk_op(&b, 0x86);
    pk_op(&b, 'R');
    pk_op(&b, 'u');
    pk_op(&b, '.');
    err[0] = 0;
    hq_status st = run(&b, &vm, &r, err);
    CHECK(st == HQ_OK, "value pickle: %s", err);
    if (!st) {
        int64_t v;
        CHECK(fmt_pk_type_of(&vm, r) == FMT_PK_DICT && fmt_pk_at(&vm, r)->len == 18, "dict of 18");
        CHECK(fmt_pk_int(&vm, fmt_pk_dict_get(&vm, r, "i1"), &v) && v == 200, "BININT1");
        CHECK(fmt_pk_int(&vm, fmt_pk_dict_get(&vm, r, "i2"), &v) && v == 0xBEEF, "BININT2");
        CHECK(fmt_pk_int(&vm, fmt_pk_dict_get(&vm, r, "i4"), &v) && v == -123456, "BININT negative");
        CHECK(fmt_pk_int(&vm, fmt_pk_dict_get(&vm, r, "l0"), &v) && v == 0, "LONG1 empty");
        CHECK(fmt_pk_int(&vm, fmt_pk_dict_get(&vm, r, "l1"), &v) && v == -1, "LONG1 -1");
        CHECK(fmt_pk_int(&vm, fmt_pk_dict_get(&vm, r, "l3"), &v) && v == -(1 << 23), "LONG1 3-byte sign");
        CHECK(fmt_pk_int(&vm, fmt_pk_dict_get(&vm, r, "l8"), &v) && v == -(1ll << 62), "LONG1 8 bytes");
        const fmt_pk_node *f = fmt_pk_at(&vm, fmt_pk_dict_get(&vm, r, "f"));
        CHECK(f && f->type == FMT_PK_FLOAT && f->u.f == -2.75, "BINFLOAT big-endian");
        CHECK(fmt_pk_type_of(&vm, fmt_pk_dict_get(&vm, r, "n")) == FMT_PK_NONE, "NONE");
        const fmt_pk_node *t = fmt_pk_at(&vm, fmt_pk_dict_get(&vm, r, "t"));
        CHECK(t && t->type == FMT_PK_BOOL && t->u.i == 1, "NEWTRUE");
        uint32_t n;
        const char *s = fmt_pk_str(&vm, fmt_pk_dict_get(&vm, r, "bytes"), &n);
        CHECK(s && n == 2 && !memcmp(s, "ab", 2) && fmt_pk_type_of(&vm, fmt_pk_dict_get(&vm, r, "bytes")) == FMT_PK_BYTES,
              "SHORT_BINSTRING");
        fmt_pk_ref tup = fmt_pk_dict_get(&vm, r, "tup");
        CHECK(fmt_pk_dict_get(&vm, r, "same") == tup, "BINGET shares the memoized node");
        CHECK(fmt_pk_dict_get(&vm, r, "self") == r, "cycle kept by reference");
        CHECK(fmt_pk_int(&vm, fmt_pk_item(&vm, tup, 2), &v) && v == 3 && fmt_pk_item(&vm, tup, 3) == FMT_PK_NIL,
              "tuple items");
        fmt_pk_ref l = fmt_pk_dict_get(&vm, r, "list");
        uint32_t c = fmt_pk_first(&vm, l);
        int64_t got[3] = {0};
        for (int k = 0; k < 3 && c != FMT_PK_NIL; k++, c = fmt_pk_cell_at(&vm, c)->next)
            fmt_pk_int(&vm, fmt_pk_cell_at(&vm, c)->val, &got[k]);
        CHECK(fmt_pk_at(&vm, l)->len == 3 && got[0] == 9 && got[1] == 8 && got[2] == 7, "APPEND/APPENDS order");
        const fmt_pk_node *od = fmt_pk_at(&vm, fmt_pk_dict_get(&vm, r, "od"));
        CHECK(od && od->type == FMT_PK_DICT && od->sym == 1 && od->len == 0, "OrderedDict() symbolic");
        fmt_pk_ref sz = fmt_pk_dict_get(&vm, r, "size");
        CHECK(fmt_pk_type_of(&vm, sz) == FMT_PK_TUPLE && fmt_pk_int(&vm, fmt_pk_item(&vm, sz, 0), &v) && v == 4,
              "torch.Size(t) yields t");
        s = fmt_pk_str(&vm, fmt_pk_dict_get(&vm, r, "enc"), &n);
        CHECK(s && n == 3 && fmt_pk_type_of(&vm, fmt_pk_dict_get(&vm, r, "enc")) == FMT_PK_BYTES, "_codecs.encode");
    }
    fmt_pk_free(&vm);
    /* every truncation of the value pickle fails cleanly */
    int bad = 0;
    for (size_t n = 0; n < b.n; n++) {
        uint8_t *cp = malloc(n ? n : 1);
        memcpy(cp, b.p, n);
        fmt_pk_init(&vm, cp, n, "t");
        uint64_t end;
        err[0] = 0;
        st = fmt_pk_run(&vm, 0, &r, &end, err);
        if (st != HQ_ERR_FORMAT || !err[0]) bad++;
        fmt_pk_free(&vm);
        free(cp);
    }
    CHECK(bad == 0, "%d truncations of the value pickle were not a clean FORMAT error", bad);
    /* random byte flips of it: any status but never a crash, always a message */
    uint64_t seed = 42;
    bad = 0;
    for (int i = 0; i < 2000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint8_t *cp = malloc(b.n);
        memcpy(cp, b.p, b.n);
        cp[(seed >> 33) % b.n] ^= (uint8_t)(seed >> 13);
        fmt_pk_init(&vm, cp, b.n, "t");
        uint64_t end;
        err[0] = 0;
        st = fmt_pk_run(&vm, 0, &r, &end, err);
        if (st != HQ_OK && (!err[0] || st == HQ_ERR_INTERNAL || st == HQ_ERR_ARG)) bad++;
        fmt_pk_free(&vm);
        free(cp);
    }
    CHECK(bad == 0, "%d byte flips gave an unclean result", bad);
    tb_free(&b);

    /* ---- forbidden globals: named, with their byte offset ---- */
    static const char *evil[][2] = {{"os", "system"},         {"builtins", "eval"},   {"posix", "system"},
                                    {"nt", "system"},         {"subprocess", "Popen"}, {"builtins", "exec"},
                                    {"torch", "load"},        {"collections", "Counter"},
                                    {"torch._utils", "_rebuild_tensor"}, {"__builtin__", "getattr"}};
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        b = (tb_buf){0};
        pk_proto(&b);
        pk_global(&b, evil[i][0], evil[i][1]);
        pk_str(&b, "id");
        pk_op(&b, 0x85);
        pk_op(&b, 'R');
        pk_op(&b, '.');
        char frag[96], what[96];
        snprintf(frag, sizeof frag, "global '%s.%s' is not in the allowlist", evil[i][0], evil[i][1]);
        snprintf(what, sizeof what, "global %s.%s", evil[i][0], evil[i][1]);
        expect(&b, HQ_ERR_UNSUPPORTED, frag, what);
        expect(&b, HQ_ERR_UNSUPPORTED, "at byte 2", what);
        tb_free(&b);
    }

    /* ---- forbidden opcodes ---- */
    static const struct { const char *body; size_t n; const char *frag; } ops[] = {
        {L("X\x02\x00\x00\x00osX\x06\x00\x00\x00system\x93."), "STACK_GLOBAL"},
        {L("(ios\nsystem\n."), "INST"},
        {L("(o."), "OBJ"},
        {L("N)\x81."), "NEWOBJ"},
        {L("P0\n."), "PERSID"},
        {L("N2."), "DUP"},
        {L("NN0."), "POP"},
        {L("\x95\x08\x00\x00\x00\x00\x00\x00\x00N."), "FRAME"},
        {L("N\x94."), "MEMOIZE"},
        {L("\x8c\x01x."), "SHORT_BINUNICODE"},
        {L("B\x01\x00\x00\x00x."), "BINBYTES"},
        {L("\x82\x01."), "EXT1"},
        {L("I1\n."), "INT"},
        {L("S'x'\n."), "STRING"},
        {L("\x8b\x01\x00\x00\x00\x01."), "LONG4"},
        {L("}\x8f."), "EMPTY_SET"},
        {L("\xff."), "unknown opcode 0xff"},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        b = raw(ops[i].body, ops[i].n);
        expect(&b, strstr(ops[i].frag, "unknown") ? HQ_ERR_FORMAT : HQ_ERR_UNSUPPORTED, ops[i].frag, ops[i].frag);
        tb_free(&b);
    }

    /* ---- structural errors ---- */
    static const struct { const char *body; size_t n; hq_status st; const char *frag; const char *what; } cases[] = {
        {L("Nr\xff\xff\xff\xff."), HQ_ERR_FORMAT, "memo index 4294967295 skips ahead", "memo bomb LONG_BINPUT"},
        {L("Nq\x05."), HQ_ERR_FORMAT, "skips ahead", "memo gap"},
        {L("h\x00."), HQ_ERR_FORMAT, "never set", "BINGET unset"},
        {L("j\x00\x00\x00\x10."), HQ_ERR_FORMAT, "never set", "LONG_BINGET unset"},
        {L("X\xff\xff\xff\x7f."), HQ_ERR_FORMAT, "runs past the end", "BINUNICODE length beyond end"},
        {L("X\x05\x00\x00\x00" "ab"), HQ_ERR_FORMAT, "runs past the end", "BINUNICODE short"},
        {L("U\x09" "ab"), HQ_ERR_FORMAT, "runs past the end", "SHORT_BINSTRING short"},
        {L("\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09."), HQ_ERR_UNSUPPORTED, "9 bytes", "LONG1 9 bytes"},
        {L("\x8a\x08\x01\x02"), HQ_ERR_FORMAT, "runs past", "LONG1 truncated"},
        {L("J\x01\x02"), HQ_ERR_FORMAT, "runs past", "BININT truncated"},
        {L("G\x01\x02\x03"), HQ_ERR_FORMAT, "runs past", "BINFLOAT truncated"},
        {L("cos"), HQ_ERR_FORMAT, "GLOBAL operand", "GLOBAL without newline"},
        {L("N"), HQ_ERR_FORMAT, "without STOP", "no STOP"},
        {L("."), HQ_ERR_FORMAT, "0 values", "STOP on empty stack"},
        {L("NN."), HQ_ERR_FORMAT, "2 values", "STOP with 2 values"},
        {L("(N."), HQ_ERR_FORMAT, "MARKs left open", "STOP inside MARK"},
        {L("t."), HQ_ERR_FORMAT, "no MARK", "TUPLE without MARK"},
        {L("N(\x85."), HQ_ERR_FORMAT, "underflow", "TUPLE1 across a MARK"},
        {L("N(q\x00."), HQ_ERR_FORMAT, "underflow", "BINPUT across a MARK"},
        {L("\x86."), HQ_ERR_FORMAT, "underflow", "TUPLE2 on empty stack"},
        {L("}(N."), HQ_ERR_FORMAT, "MARKs left open", "unterminated SETITEMS"},
        {L("}(Nu."), HQ_ERR_FORMAT, "odd number", "SETITEMS odd"},
        {L("]NNs."), HQ_ERR_FORMAT, "SETITEM on a list", "SETITEM on list"},
        {L("}Na."), HQ_ERR_FORMAT, "APPEND on a dict", "APPEND on dict"},
        {L("}(Ne."), HQ_ERR_FORMAT, "APPENDS on a dict", "APPENDS on dict"},
        {L("}}b."), HQ_ERR_UNSUPPORTED, "BUILD on a dict", "BUILD on plain dict"},
        {L("N)R."), HQ_ERR_UNSUPPORTED, "REDUCE on a None", "REDUCE on None"},
        {L("ctorch\nFloatStorage\n)R."), HQ_ERR_UNSUPPORTED, "not callable", "REDUCE on a storage class"},
        {L("ccollections\nOrderedDict\nNR."), HQ_ERR_FORMAT, "instead of an argument tuple", "REDUCE non-tuple"},
        {L("ccollections\nOrderedDict\nN\x85R."), HQ_ERR_UNSUPPORTED, "OrderedDict called with 1", "OrderedDict(x)"},
        {L("ctorch._utils\n_rebuild_tensor_v2\nN\x85R."), HQ_ERR_FORMAT, "called with 1 arguments", "rebuild arity"},
        {L("X\x01\x00\x00\x00x\x85Q."), HQ_ERR_UNSUPPORTED, "persistent id", "BINPERSID non-storage"},
        {L("NQ."), HQ_ERR_UNSUPPORTED, "persistent id", "BINPERSID on None"},
        {L("\x80\x04N."), HQ_ERR_FORMAT, "PROTO not at the start", "second PROTO"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        b = raw(cases[i].body, cases[i].n);
        expect(&b, cases[i].st, cases[i].frag, cases[i].what);
        tb_free(&b);
    }
    b = (tb_buf){0};
    tb_put(&b, "\x80\x04N.", 4);
    expect(&b, HQ_ERR_UNSUPPORTED, "protocol 4", "protocol 4");
    tb_free(&b);

    /* ---- bombs: stack, memo, depth, objects ---- */
    {
        size_t n = (size_t)HQ_MAX_PICKLE_STACK + 1;
        b = (tb_buf){0};
        pk_proto(&b);
        for (size_t i = 0; i < n; i++) pk_op(&b, 'N');
        pk_op(&b, '.');
        expect(&b, HQ_ERR_LIMIT, "HQ_MAX_PICKLE_STACK", "stack bomb (real limit)");
        tb_free(&b);
    }
    {
        b = (tb_buf){0};
        pk_proto(&b);
        pk_op(&b, 'N');
        for (uint32_t i = 0; i < 70; i++) pk_put(&b, i);
        pk_op(&b, '.');
        fmt_pk_init(&vm, b.p, b.n, "t");
        vm.max_memo = 64;
        uint64_t end;
        err[0] = 0;
        st = fmt_pk_run(&vm, 0, &r, &end, err);
        CHECK(st == HQ_ERR_LIMIT && strstr(err, "HQ_MAX_PICKLE_MEMO"), "memo limit: %s", err);
        fmt_pk_free(&vm);
        tb_free(&b);
    }
    {
        b = (tb_buf){0};
        pk_proto(&b);
        for (int i = 0; i < HQ_MAX_PICKLE_DEPTH + 1; i++) pk_op(&b, '(');
        pk_op(&b, '.');
        expect(&b, HQ_ERR_LIMIT, "HQ_MAX_PICKLE_DEPTH", "MARK nesting bomb");
        tb_free(&b);
        /* deep nesting without MARKs (lists in lists) is fine for the VM: iterative */
        b = (tb_buf){0};
        pk_proto(&b);
        pk_op(&b, ']');
        for (int i = 0; i < 10000; i++) pk_op(&b, ']');
        for (int i = 0; i < 10000; i++) pk_op(&b, 'a');
        pk_op(&b, '.');
        fmt_pk_init(&vm, b.p, b.n, "t");
        uint64_t end;
        st = fmt_pk_run(&vm, 0, &r, &end, err);
        CHECK(st == HQ_OK && fmt_pk_type_of(&vm, r) == FMT_PK_LIST, "10000-deep lists: %s", err);
        fmt_pk_free(&vm);
        tb_free(&b);
    }
    {
        b = (tb_buf){0};
        pk_proto(&b);
        pk_op(&b, ']');
        pk_op(&b, '(');
        for (int i = 0; i < 5000; i++) pk_op(&b, 'N');
        pk_op(&b, 'e');
        pk_op(&b, '.');
        fmt_pk_init(&vm, b.p, b.n, "t");
        vm.max_nodes = 4000;
        uint64_t end;
        err[0] = 0;
        st = fmt_pk_run(&vm, 0, &r, &end, err);
        CHECK(st == HQ_ERR_LIMIT && strstr(err, "HQ_MAX_PICKLE_NODES"), "node limit: %s", err);
        fmt_pk_free(&vm);
        /* tuple items count against the object limit too (BINGET fan-out) */
        tb_free(&b);
        b = (tb_buf){0};
        pk_proto(&b);
        pk_op(&b, 'N');
        pk_put(&b, 0);
        pk_op(&b, '(');
        for (int i = 0; i < 5000; i++) pk_get(&b, 0);
        pk_op(&b, 't');
        pk_op(&b, 0x86);
        pk_op(&b, '.');
        fmt_pk_init(&vm, b.p, b.n, "t");
        vm.max_nodes = 4000;
        err[0] = 0;
        st = fmt_pk_run(&vm, 0, &r, &end, err);
        CHECK(st == HQ_ERR_LIMIT && strstr(err, "HQ_MAX_PICKLE_NODES"), "kid limit: %s", err);
        fmt_pk_free(&vm);
        tb_free(&b);
    }

    /* ---- allocation failure at every point of a small run ---- */
    b = (tb_buf){0};
    pk_tensor t = {"w", "FloatStorage", "0", 6, 0, 2, 2, {2, 3}, {3, 1}, NULL, 0};
    pk_state_dict(&b, &t, 1);
    int nomem = 0, okc = 0;
    bad = 0;
    for (int64_t k = 1; k < 40; k++) {
        fmt_pk_init(&vm, b.p, b.n, "t");
        uint64_t end;
        err[0] = 0;
        hq_alloc_fail_at(k);
        st = fmt_pk_run(&vm, 0, &r, &end, err);
        hq_alloc_fail_at(0);
        if (st == HQ_ERR_NOMEM) nomem++;
        else if (st == HQ_OK) okc++;
        else bad++;
        fmt_pk_free(&vm);
    }
    CHECK(bad == 0 && nomem > 0 && okc > 0, "alloc failures: %d nomem, %d ok, %d other", nomem, okc, bad);
    tb_free(&b);
    TEST_END();
}
