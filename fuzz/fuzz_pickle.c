/* fuzz/fuzz_pickle.c — the allowlist pickle VM (formats/pickle.h) on raw
 * bytes: run up to 8 pickles back to back (as the legacy torch format does)
 * and walk every value through the public accessors. Contracts: see
 * fuzz_common.h; every reference a value holds resolves. */
#include "fuzz_common.h"
#include "../formats/pickle.h"

static void pk_walk(const fmt_pk *vm, fmt_pk_ref r, int depth, uint64_t *budget) {
    if (r == FMT_PK_NIL || depth > 200 || *budget == 0) return;
    (*budget)--;
    const fmt_pk_node *nd = fmt_pk_at(vm, r);
    FZ_ASSERT(nd != NULL, "dangling reference %u", r);
    uint32_t len;
    int64_t iv;
    switch (nd->type) {
    case FMT_PK_STR:
    case FMT_PK_BYTES: {
        const char *s = fmt_pk_str(vm, r, &len);
        FZ_ASSERT(s && (const uint8_t *)s >= vm->buf && (uint64_t)((const uint8_t *)s - vm->buf) + len <= vm->len,
                  "string outside the input");
        break;
    }
    case FMT_PK_INT: (void)fmt_pk_int(vm, r, &iv); break;
    case FMT_PK_TUPLE:
        for (uint64_t i = 0; i < nd->len; i++) {
            fmt_pk_ref k = fmt_pk_item(vm, r, i);
            FZ_ASSERT(k != FMT_PK_NIL, "tuple item %llu missing", (unsigned long long)i);
            pk_walk(vm, k, depth + 1, budget);
        }
        break;
    case FMT_PK_LIST:
    case FMT_PK_DICT: {
        uint64_t cnt = 0;
        for (uint32_t c = fmt_pk_first(vm, r); c != FMT_PK_NIL && cnt <= nd->len; c = fmt_pk_cell_at(vm, c)->next) {
            FZ_ASSERT(c < vm->n_cells, "dangling cell");
            const fmt_pk_cell *cell = fmt_pk_cell_at(vm, c);
            if (nd->type == FMT_PK_DICT) pk_walk(vm, cell->key, depth + 1, budget);
            pk_walk(vm, cell->val, depth + 1, budget);
            cnt++;
        }
        FZ_ASSERT(cnt == nd->len, "container length %u but %llu cells", nd->len, (unsigned long long)cnt);
        if (nd->type == FMT_PK_DICT) (void)fmt_pk_dict_get(vm, r, "state_dict");
        break;
    }
    case FMT_PK_GLOBAL: FZ_ASSERT(fmt_pk_global_of(vm, r) != NULL, "global outside the allowlist"); break;
    case FMT_PK_OBJ:
        FZ_ASSERT(fmt_pk_global_of(vm, r) != NULL, "object of a callable outside the allowlist");
        pk_walk(vm, nd->u.obj.args, depth + 1, budget);
        pk_walk(vm, nd->u.obj.state, depth + 1, budget);
        break;
    case FMT_PK_PERSID: pk_walk(vm, nd->u.pid, depth + 1, budget); break;
    default: break;
    }
}

int fuzz_pickle(const uint8_t *d, size_t n) {
    fmt_pk vm;
    fmt_pk_init(&vm, d, n, "fuzz.pkl");
    uint64_t start = 0;
    for (int k = 0; k < 8 && start < n; k++) {
        char err[HQ_ERR_LEN] = "";
        fmt_pk_ref res = FMT_PK_NIL;
        uint64_t end = 0;
        hq_status st = fmt_pk_run(&vm, start, &res, &end, err);
        if (st) {
            fz_check_err(st, err);
            break;
        }
        FZ_ASSERT(end > start && end <= n, "end offset %llu outside (%llu, %zu]", (unsigned long long)end,
                  (unsigned long long)start, n);
        uint64_t budget = 100000;
        pk_walk(&vm, res, 0, &budget);
        start = end;
    }
    fmt_pk_free(&vm);
    return 0;
}

#ifndef FUZZ_NO_ENTRY
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return fuzz_pickle(d, n); }
#endif
