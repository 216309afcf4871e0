/* formats/torch.c — fmt_torch_parse: the tensors of one torch.save file
 * (file-formats.md §1), as views into the caller's mapping.
 *
 * Containers: zip (torch ≥ 1.6: "<prefix>/data.pkl" + "<prefix>/data/<key>"
 * records, see zip.h) and the legacy stream (_use_new_zipfile_serialization=
 * False: magic pickle, protocol pickle, sys_info pickle, object pickle, key
 * list pickle, then per key an int64 LE element count + raw bytes). Both go
 * through the same allowlist VM (pickle.h). The tar format (torch ≤ 0.1.x)
 * and the 2018 "PYTORCH1" preview container are refused.
 *
 * The pickled object is searched for the state dict: a dict whose values
 * include tensors is it; otherwise the first of "state_dict",
 * "model_state_dict", "model", "module" that holds one, otherwise the only
 * dict value that holds one (several ⇒ ambiguous, refused). Non-tensor
 * values of the state dict (ints, strings, nested metadata) are ignored.
 *
 * Each tensor is checked (§1.5): offset, sizes and strides ≥ 0, at most
 * HQ_MAX_DIMS dims, extent of the strided view ≤ the storage's element count,
 * element count × element size ≤ the record's bytes, one storage key ↔ one
 * dtype. Views of one storage share a storage_id.
 */
#include "ckpt.h"    // defines: fmt_tensor, fmt_ckpt_add
#include "nameset.h" // defines: fmt_nameset
#include "pickle.h"  // defines: fmt_pk VM
#include "zip.h"     // defines: fmt_zip

#include <string.h> // defines: memcmp, memcpy

static const uint8_t k_legacy_magic[15] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                           0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
#define LEGACY_PROTOCOL 1001

typedef struct {
    const char *key; /* in the pickle buffer */
    uint32_t key_len;
    uint8_t cls;        /* storage class (index in fmt_pk_globals) */
    int dtype;          /* element type seen by tensors (-1 until one uses it) */
    int storage_id;     /* -1 until a tensor uses it */
    uint64_t numel;     /* from the pid: elements of cls (bytes if untyped) */
    const uint8_t *data; /* record bytes; NULL until located */
    uint64_t bytes;
    bool located;
} tstorage;

typedef struct {
    const char *label;
    int file_index;
    fmt_ckpt *ck;
    char *err;
    fmt_pk vm;
    const fmt_zip *zip; /* NULL for the legacy stream */
    tstorage *st;
    uint64_t n_st, cap_st;
    fmt_nameset st_index;
    uint8_t *seen; /* per node: 0 unknown, 1 visiting, 2 holds tensors, 3 not */
} tctx;

static const char *st_key(const void *ctx, uint64_t i, uint64_t *len) {
    const tctx *t = ctx;
    *len = t->st[i].key_len;
    return t->st[i].key;
}

/* printable copy of a pickle string for messages */
static const char *shown(const char *s, uint32_t n, char out[80]) {
    uint32_t k = 0;
    for (; k < n && k < 76; k++) out[k] = (s[k] >= 0x20 && s[k] < 0x7f) ? s[k] : '?';
    if (n > 76) out[k++] = '.', out[k++] = '.';
    out[k] = 0;
    return out;
}

static bool is_tensor(const fmt_pk *vm, fmt_pk_ref r) {
    const fmt_pk_node *n = fmt_pk_at(vm, r);
    return n && n->type == FMT_PK_OBJ;
}

/* ---- storages: every persistent id in the pickle ---- */

/* Registers the storage of one pid tuple (zip: 5 items; legacy: 6, the last
 * being None). Returns its index in t->st. */
static hq_status add_storage(tctx *t, fmt_pk_ref pid, bool legacy, uint64_t *idx) {
    fmt_pk *vm = &t->vm;
    uint32_t want = legacy ? 6 : 5;
    const fmt_pk_node *tn = fmt_pk_at(vm, pid);
    fmt_pk_ref cls = fmt_pk_item(vm, pid, 1), key = fmt_pk_item(vm, pid, 2), loc = fmt_pk_item(vm, pid, 3);
    const fmt_pk_global *g = fmt_pk_global_of(vm, cls);
    int64_t numel;
    uint32_t kl;
    const char *ks = fmt_pk_str(vm, key, &kl);
    if (!tn || tn->len != want || !g || fmt_pk_type_of(vm, cls) != FMT_PK_GLOBAL ||
        (g->kind != FMT_PK_G_STORAGE && g->kind != FMT_PK_G_UNTYPED) || fmt_pk_type_of(vm, key) != FMT_PK_STR ||
        fmt_pk_type_of(vm, loc) != FMT_PK_STR || !fmt_pk_int(vm, fmt_pk_item(vm, pid, 4), &numel))
        return hq_fail(t->err, HQ_ERR_FORMAT,
                       "%s: storage persistent id is not ('storage', <Storage class>, key, location, numel%s)",
                       t->label, legacy ? ", None" : "");
    char kb[80];
    if (legacy && fmt_pk_type_of(vm, fmt_pk_item(vm, pid, 5)) != FMT_PK_NONE)
        return hq_fail(t->err, HQ_ERR_UNSUPPORTED, "%s: storage '%s' is a legacy storage view (not supported)",
                       t->label, shown(ks, kl, kb));
    if (numel < 0)
        return hq_fail(t->err, HQ_ERR_FORMAT, "%s: storage '%s' has a negative size %lld", t->label, shown(ks, kl, kb),
                       (long long)numel);
    uint8_t sym = fmt_pk_at(vm, cls)->sym;
    if (t->zip) { /* zip keys name records "data/<key>": keep them plain */
        for (uint32_t i = 0; i < kl; i++) {
            char ch = ks[i];
            if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
                  ch == '-'))
                return hq_fail(t->err, HQ_ERR_FORMAT, "%s: storage key '%s' has characters other than [A-Za-z0-9_-]",
                               t->label, shown(ks, kl, kb));
        }
    }
    if (kl == 0 || kl > 64)
        return hq_fail(t->err, HQ_ERR_FORMAT, "%s: storage key of %u bytes (expected 1..64)", t->label, kl);
    if (t->n_st == t->cap_st) {
        uint64_t nc = t->cap_st ? t->cap_st * 2 : 64;
        tstorage *ns = hq_realloc(t->st, (size_t)nc * sizeof *ns);
        if (!ns) return hq_fail(t->err, HQ_ERR_NOMEM, "%s: out of memory for storages", t->label);
        t->st = ns;
        t->cap_st = nc;
    }
    t->st[t->n_st] = (tstorage){ks, kl, sym, -1, -1, (uint64_t)numel, NULL, 0, false};
    uint64_t dup = 0;
    int r = fmt_nameset_insert(&t->st_index, t->n_st, st_key, t, &dup);
    if (r < 0) return hq_fail(t->err, HQ_ERR_NOMEM, "%s: out of memory for storages", t->label);
    if (r == 0) { /* seen before: same class and size, torch never mixes them */
        const tstorage *o = &t->st[dup];
        if (o->cls != sym)
            return hq_fail(t->err, HQ_ERR_FORMAT, "%s: storage '%s' is used as both %s.%s and %s.%s", t->label,
                           shown(ks, kl, kb), fmt_pk_globals[o->cls].module, fmt_pk_globals[o->cls].name, g->module,
                           g->name);
        if (o->numel != (uint64_t)numel)
            return hq_fail(t->err, HQ_ERR_FORMAT, "%s: storage '%s' is declared with sizes %llu and %lld", t->label,
                           shown(ks, kl, kb), (unsigned long long)o->numel, (long long)numel);
        *idx = dup;
        return HQ_OK;
    }
    *idx = t->n_st++;
    return HQ_OK;
}

/* Registers every persistent id the pickle created (also those of values we
 * ignore, e.g. optimizer state: the legacy stream needs every storage's
 * element size to walk its data section). */
static hq_status scan_storages(tctx *t, bool legacy) {
    for (uint64_t r = 0; r < t->vm.n_nodes; r++) {
        if (t->vm.nodes[r].type != FMT_PK_PERSID) continue;
        uint64_t idx;
        hq_status s = add_storage(t, t->vm.nodes[r].u.pid, legacy, &idx);
        if (s) return s;
    }
    return HQ_OK;
}

/* zip: storage key -> record "data/<key>", stored (not deflated). */
static hq_status locate_zip(tctx *t, tstorage *s) {
    char rel[80], kb[80];
    snprintf(rel, sizeof rel, "data/%.*s", (int)s->key_len, s->key);
    const fmt_zip_entry *e = fmt_zip_find(t->zip, rel);
    if (!e)
        return hq_fail(t->err, HQ_ERR_FORMAT, "%s: storage '%s' has no record '%s' in the archive", t->label,
                       shown(s->key, s->key_len, kb), rel);
    if (e->method != 0)
        return hq_fail(t->err, HQ_ERR_UNSUPPORTED,
                       "%s: record '%s' is compressed; tensor data must be stored (torch never compresses it)",
                       t->label, rel);
    s->data = t->zip->buf + e->data_off;
    s->bytes = e->usize;
    s->located = true;
    return HQ_OK;
}

/* ---- tensors ---- */

static hq_status read_dims(tctx *t, fmt_pk_ref tup, const char *what, const char *name, int64_t *out, int *ndim) {
    const fmt_pk_node *n = fmt_pk_at(&t->vm, tup);
    if (!n || n->type != FMT_PK_TUPLE)
        return hq_fail(t->err, HQ_ERR_FORMAT, "%s: tensor '%s': %s is not a tuple", t->label, name, what);
    if (n->len > HQ_MAX_DIMS)
        return hq_fail(t->err, HQ_ERR_LIMIT, "%s: tensor '%s' has %u dims but at most %d are supported", t->label,
                       name, n->len, HQ_MAX_DIMS);
    for (uint32_t i = 0; i < n->len; i++) {
        if (!fmt_pk_int(&t->vm, fmt_pk_item(&t->vm, tup, i), &out[i]))
            return hq_fail(t->err, HQ_ERR_FORMAT, "%s: tensor '%s': %s[%u] is not an integer", t->label, name, what, i);
        if (out[i] < 0)
            return hq_fail(t->err, HQ_ERR_FORMAT, "%s: tensor '%s': %s[%u] = %lld is negative", t->label, name, what,
                           i, (long long)out[i]);
    }
    *ndim = (int)n->len;
    return HQ_OK;
}

/* One REDUCE'd tensor (or Parameter wrapping one) -> fmt_tensor. */
static hq_status decode_tensor(tctx *t, fmt_pk_ref v, const char *name, fmt_tensor *o, int depth) {
    fmt_pk *vm = &t->vm;
    const fmt_pk_node *n = fmt_pk_at(vm, v);
    const fmt_pk_global *g = fmt_pk_global_of(vm, v);
    fmt_pk_ref args = n->u.obj.args;
    if (g->kind == FMT_PK_G_PARAM || g->kind == FMT_PK_G_PARAM_STATE) {
        fmt_pk_ref inner = fmt_pk_item(vm, args, 0);
        if (depth > 2 || !is_tensor(vm, inner))
            return hq_fail(t->err, HQ_ERR_FORMAT, "%s: parameter '%s' does not wrap a tensor", t->label, name);
        return decode_tensor(t, inner, name, o, depth + 1);
    }
    bool v3 = g->kind == FMT_PK_G_REBUILD_V3;
    fmt_pk_ref pid = fmt_pk_item(vm, args, 0);
    const fmt_pk_node *pn = fmt_pk_at(vm, pid);
    if (!pn || pn->type != FMT_PK_PERSID)
        return hq_fail(t->err, HQ_ERR_FORMAT, "%s: tensor '%s': first argument is not a storage", t->label, name);
    uint32_t kl;
    const char *ks = fmt_pk_str(vm, fmt_pk_item(vm, pn->u.pid, 2), &kl);
    uint64_t si = ks ? fmt_nameset_find(&t->st_index, ks, kl, st_key, t) : UINT64_MAX;
    if (si == UINT64_MAX) return hq_fail(t->err, HQ_ERR_INTERNAL, "%s: tensor '%s': storage not registered", t->label, name);
    tstorage *s = &t->st[si];
    const fmt_pk_global *sc = &fmt_pk_globals[s->cls];
    char kb[80];
    shown(s->key, s->key_len, kb);
    memset(o, 0, sizeof *o);
    /* dtype: from the storage class (v2) or the dtype argument (v3) */
    int dtype;
    if (v3) {
        fmt_pk_ref dt = fmt_pk_item(vm, args, 6);
        const fmt_pk_global *dg = fmt_pk_type_of(vm, dt) == FMT_PK_GLOBAL ? fmt_pk_global_of(vm, dt) : NULL;
        if (!dg || dg->kind != FMT_PK_G_DTYPE)
            return hq_fail(t->err, HQ_ERR_FORMAT, "%s: tensor '%s': _rebuild_tensor_v3 without a torch dtype", t->label,
                           name);
        if (dg->dtype < 0)
            return hq_fail(t->err, HQ_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype torch.%s, which is not supported",
                           t->label, name, dg->name);
        dtype = dg->dtype;
        if (sc->kind != FMT_PK_G_UNTYPED && sc->dtype != dtype)
            return hq_fail(t->err, HQ_ERR_FORMAT, "%s: tensor '%s': dtype torch.%s on a %s", t->label, name, dg->name,
                           sc->name);
    } else {
        if (sc->kind == FMT_PK_G_UNTYPED)
            return hq_fail(t->err, HQ_ERR_FORMAT, "%s: tensor '%s': _rebuild_tensor_v2 on an UntypedStorage", t->label,
                           name);
        if (sc->dtype < 0)
            return hq_fail(t->err, HQ_ERR_UNSUPPORTED, "%s: tensor '%s' has storage type torch.%s, which is not supported",
                           t->label, name, sc->name);
        dtype = sc->dtype;
    }
    if (s->dtype >= 0 && s->dtype != dtype)
        return hq_fail(t->err, HQ_ERR_FORMAT, "%s: tensor '%s' views storage '%s' as %s but another tensor as %s",
                       t->label, name, kb, hq_dtype_name((hq_dtype)dtype), hq_dtype_name((hq_dtype)s->dtype));
    s->dtype = dtype;
    uint64_t esize = hq_dtype_size((hq_dtype)dtype);
    /* storage size in elements of dtype; untyped numel counts bytes */
    uint64_t numel = s->numel, need;
    if (sc->kind == FMT_PK_G_UNTYPED) {
        if (numel % esize)
            return hq_fail(t->err, HQ_ERR_FORMAT, "%s: storage '%s' of %llu bytes is not a whole number of %s", t->label,
                           kb, (unsigned long long)numel, hq_dtype_name((hq_dtype)dtype));
        numel /= esize;
    }
    if (!s->located && !t->zip)
        return hq_fail(t->err, HQ_ERR_FORMAT, "%s: storage '%s' of tensor '%s' is missing from the legacy key list",
                       t->label, kb, name);
    if (!s->located) {
        hq_status r = locate_zip(t, s);
        if (r) return r;
    }
    if (!s->data)
        return hq_fail(t->err, HQ_ERR_FORMAT, "%s: storage '%s' of tensor '%s' has no data in the file", t->label, kb,
                       name);
    if (!hq_mul_u64(numel, esize, &need) || need > s->bytes)
        return hq_fail(t->err, HQ_ERR_FORMAT, "%s: storage '%s' declares %llu x %llu bytes but its record holds %llu",
                       t->label, kb, (unsigned long long)numel, (unsigned long long)esize,
                       (unsigned long long)s->bytes);
    /* view: offset, size, stride */
    int64_t off;
    if (!fmt_pk_int(vm, fmt_pk_item(vm, args, 1), &off) || off < 0)
        return hq_fail(t->err, HQ_ERR_FORMAT, "%s: tensor '%s': storage offset is not a non-negative integer",
                       t->label, name);
    int nd = 0, ns = 0;
    hq_status r = read_dims(t, fmt_pk_item(vm, args, 2), "size", name, o->shape, &nd);
    if (!r) r = read_dims(t, fmt_pk_item(vm, args, 3), "stride", name, o->stride, &ns);
    if (r) return r;
    if (nd != ns)
        return hq_fail(t->err, HQ_ERR_FORMAT, "%s: tensor '%s' has %d sizes but %d strides", t->label, name, nd, ns);
    /* extent = offset + 1 + sum (size_k - 1) * stride_k elements, 0 if empty */
    uint64_t nel = 1, last = (uint64_t)off;
    for (int i = 0; i < nd; i++)
        if (!hq_mul_u64(nel, (uint64_t)o->shape[i], &nel))
            return hq_fail(t->err, HQ_ERR_FORMAT, "%s: tensor '%s': element count overflows", t->label, name);
    if (nel) {
        for (int i = 0; i < nd; i++) {
            uint64_t d;
            if (!hq_mul_u64((uint64_t)o->shape[i] - 1, (uint64_t)o->stride[i], &d) || !hq_add_u64(last, d, &last))
                return hq_fail(t->err, HQ_ERR_FORMAT, "%s: tensor '%s': view extent overflows", t->label, name);
        }
        if (last >= numel)
            return hq_fail(t->err, HQ_ERR_FORMAT,
                           "%s: tensor '%s' addresses element %llu but storage '%s' holds %llu elements", t->label, name,
                           (unsigned long long)last, kb, (unsigned long long)numel);
    } else if ((uint64_t)off > numel) {
        return hq_fail(t->err, HQ_ERR_FORMAT, "%s: tensor '%s': storage offset %lld beyond storage '%s' (%llu elements)",
                       t->label, name, (long long)off, kb, (unsigned long long)numel);
    }
    if (s->storage_id < 0) s->storage_id = t->ck->next_storage_id++;
    o->dtype = (hq_dtype)dtype;
    o->ndim = nd;
    o->offset = off;
    o->storage = s->data;
    o->storage_bytes = need;
    o->storage_id = s->storage_id;
    o->file_index = t->file_index;
    return HQ_OK;
}

/* ---- finding the state dict ---- */

static bool has_direct_tensors(const fmt_pk *vm, fmt_pk_ref d) {
    for (uint32_t c = fmt_pk_first(vm, d); c != FMT_PK_NIL; c = fmt_pk_cell_at(vm, c)->next)
        if (is_tensor(vm, fmt_pk_cell_at(vm, c)->val)) return true;
    return false;
}

/* Does dict d (or a dict below it) hold tensors? Memoized per node, cycle-
 * and depth-safe. */
static bool holds_tensors(tctx *t, fmt_pk_ref d, int depth) {
    if (fmt_pk_type_of(&t->vm, d) != FMT_PK_DICT || depth > HQ_MAX_PICKLE_DEPTH) return false;
    if (t->seen[d]) return t->seen[d] == 2;
    t->seen[d] = 1;
    bool yes = has_direct_tensors(&t->vm, d);
    for (uint32_t c = fmt_pk_first(&t->vm, d); !yes && c != FMT_PK_NIL; c = fmt_pk_cell_at(&t->vm, c)->next)
        yes = holds_tensors(t, fmt_pk_cell_at(&t->vm, c)->val, depth + 1);
    t->seen[d] = yes ? 2 : 3;
    return yes;
}

static hq_status find_state_dict(tctx *t, fmt_pk_ref d, int depth, fmt_pk_ref *out) {
    fmt_pk *vm = &t->vm;
    if (fmt_pk_type_of(vm, d) != FMT_PK_DICT) {
        int ty = fmt_pk_type_of(vm, d);
        return hq_fail(t->err, HQ_ERR_UNSUPPORTED, "%s: the saved object is a %s, not a dict of tensors", t->label,
                       ty == FMT_PK_OBJ ? "single tensor" : ty == FMT_PK_LIST ? "list" : ty == FMT_PK_TUPLE ? "tuple"
                                                                                                           : "scalar");
    }
    if (has_direct_tensors(vm, d)) {
        *out = d;
        return HQ_OK;
    }
    if (depth >= HQ_MAX_PICKLE_DEPTH)
        return hq_fail(t->err, HQ_ERR_LIMIT, "%s: dicts nested deeper than %d", t->label, HQ_MAX_PICKLE_DEPTH);
    static const char *preferred[] = {"state_dict", "model_state_dict", "model", "module"};
    for (size_t i = 0; i < sizeof preferred / sizeof preferred[0]; i++) {
        fmt_pk_ref v = fmt_pk_dict_get(vm, d, preferred[i]);
        if (v != FMT_PK_NIL && holds_tensors(t, v, 0)) return find_state_dict(t, v, depth + 1, out);
    }
    fmt_pk_ref only = FMT_PK_NIL;
    uint32_t n_found = 0, first_c = FMT_PK_NIL, second_c = FMT_PK_NIL;
    for (uint32_t c = fmt_pk_first(vm, d); c != FMT_PK_NIL; c = fmt_pk_cell_at(vm, c)->next) {
        if (!holds_tensors(t, fmt_pk_cell_at(vm, c)->val, 0)) continue;
        if (n_found == 0) first_c = c, only = fmt_pk_cell_at(vm, c)->val;
        else if (n_found == 1) second_c = c;
        n_found++;
    }
    if (n_found == 1) return find_state_dict(t, only, depth + 1, out);
    if (n_found == 0) return hq_fail(t->err, HQ_ERR_FORMAT, "%s: no tensors found in the saved object", t->label);
    uint32_t l1 = 0, l2 = 0;
    const char *k1 = fmt_pk_str(vm, fmt_pk_cell_at(vm, first_c)->key, &l1);
    const char *k2 = fmt_pk_str(vm, fmt_pk_cell_at(vm, second_c)->key, &l2);
    char b1[80], b2[80];
    return hq_fail(t->err, HQ_ERR_UNSUPPORTED,
                   "%s: %u entries hold tensors ('%s', '%s', ...); cannot tell which is the state dict", t->label,
                   n_found, k1 ? shown(k1, l1, b1) : "?", k2 ? shown(k2, l2, b2) : "?");
}

static hq_status add_tensors(tctx *t, fmt_pk_ref d) {
    fmt_pk *vm = &t->vm;
    char name[HQ_MAX_NAME + 1];
    for (uint32_t c = fmt_pk_first(vm, d); c != FMT_PK_NIL; c = fmt_pk_cell_at(vm, c)->next) {
        const fmt_pk_cell *cell = fmt_pk_cell_at(vm, c);
        if (!is_tensor(vm, cell->val)) continue; /* metadata, epoch, ... */
        uint32_t nl;
        const char *ns = fmt_pk_str(vm, cell->key, &nl);
        if (!ns || fmt_pk_type_of(vm, cell->key) != FMT_PK_STR)
            return hq_fail(t->err, HQ_ERR_FORMAT, "%s: a tensor's key is not a string", t->label);
        char nb[80];
        if (nl > HQ_MAX_NAME)
            return hq_fail(t->err, HQ_ERR_LIMIT, "%s: tensor name '%s' is %u bytes (limit HQ_MAX_NAME = %d)", t->label,
                           shown(ns, nl, nb), nl, HQ_MAX_NAME);
        bool ctrl = false; /* names end up in one-line messages and GGUF keys */
        for (uint32_t i = 0; i < nl && !ctrl; i++) ctrl = (unsigned char)ns[i] < 0x20 || ns[i] == 0x7f;
        if (nl == 0 || ctrl)
            return hq_fail(t->err, HQ_ERR_FORMAT, "%s: tensor name '%s' is empty or contains NUL/control bytes",
                           t->label, shown(ns, nl, nb));
        memcpy(name, ns, nl);
        name[nl] = 0;
        fmt_tensor ft;
        hq_status r = decode_tensor(t, cell->val, name, &ft, 0);
        if (r) return r;
        ft.name = name;
        r = fmt_ckpt_add(t->ck, &ft, t->label, t->err);
        if (r) return r;
    }
    return HQ_OK;
}

static hq_status walk(tctx *t, fmt_pk_ref root) {
    t->seen = hq_calloc(t->vm.n_nodes ? (size_t)t->vm.n_nodes : 1, 1);
    if (!t->seen) return hq_fail(t->err, HQ_ERR_NOMEM, "%s: out of memory", t->label);
    fmt_pk_ref sd = FMT_PK_NIL;
    hq_status r = find_state_dict(t, root, 0, &sd);
    if (!r) r = add_tensors(t, sd);
    return r;
}

/* ---- the two containers ---- */

static hq_status parse_zip(tctx *t, const uint8_t *buf, uint64_t len) {
    fmt_zip z;
    hq_status r = fmt_zip_open_from_buffer(buf, len, t->label, &z, t->err);
    if (r) return r;
    t->zip = &z;
    const uint8_t *pk = NULL, *bo = NULL;
    uint8_t *pk_owned = NULL, *bo_owned = NULL;
    const fmt_zip_entry *e = fmt_zip_find(&z, "byteorder");
    if (e) {
        r = fmt_zip_read(&z, e, true, t->label, &bo, &bo_owned, t->err);
        if (!r) {
            uint64_t n = e->usize;
            if (n && bo[n - 1] == '\n') n--;
            if (n == 3 && !memcmp(bo, "big", 3))
                r = hq_fail(t->err, HQ_ERR_UNSUPPORTED, "%s: big-endian checkpoint (byteorder record says 'big')",
                            t->label);
            else if (!(n == 6 && !memcmp(bo, "little", 6)))
                r = hq_fail(t->err, HQ_ERR_FORMAT, "%s: byteorder record is neither 'little' nor 'big'", t->label);
        }
        hq_free(bo_owned);
    }
    e = fmt_zip_find(&z, "data.pkl");
    if (!r && !e)
        r = hq_fail(t->err, HQ_ERR_UNSUPPORTED, "%s: archive has no data.pkl record%s", t->label,
                    fmt_zip_find(&z, "constants.pkl") ? " (a TorchScript archive: save a state_dict instead)" : "");
    if (!r && e->usize > HQ_MAX_PICKLE)
        r = hq_fail(t->err, HQ_ERR_LIMIT, "%s: data.pkl is %llu bytes (limit HQ_MAX_PICKLE = %llu)", t->label,
                    (unsigned long long)e->usize, (unsigned long long)HQ_MAX_PICKLE);
    if (!r) r = fmt_zip_read(&z, e, true, t->label, &pk, &pk_owned, t->err);
    if (!r) {
        char lbl[HQ_ERR_LEN];
        snprintf(lbl, sizeof lbl, "%s: data.pkl", t->label);
        fmt_pk_init(&t->vm, pk, e->usize, lbl);
        fmt_pk_ref root;
        uint64_t end = 0;
        r = fmt_pk_run(&t->vm, 0, &root, &end, t->err);
        t->vm.label = t->label; /* lbl goes out of scope */
        if (!r && end != e->usize)
            r = hq_fail(t->err, HQ_ERR_FORMAT, "%s: data.pkl has %llu bytes after STOP", t->label,
                        (unsigned long long)(e->usize - end));
        if (!r) r = scan_storages(t, false);
        if (!r) r = walk(t, root);
    }
    fmt_pk_free(&t->vm);
    hq_free(pk_owned);
    fmt_zip_free(&z);
    t->zip = NULL;
    return r;
}

static hq_status parse_legacy(tctx *t, const uint8_t *buf, uint64_t len) {
    fmt_pk *vm = &t->vm;
    fmt_pk_init(vm, buf, len, t->label);
    uint64_t pos = sizeof k_legacy_magic, end = 0;
    fmt_pk_ref proto, info, root, keys;
    int64_t pv = 0;
    hq_status r = fmt_pk_run(vm, pos, &proto, &end, t->err);
    if (!r && (!fmt_pk_int(vm, proto, &pv) || pv != LEGACY_PROTOCOL))
        r = hq_fail(t->err, HQ_ERR_UNSUPPORTED, "%s: legacy torch file with protocol version %lld (expected %d)",
                    t->label, (long long)pv, LEGACY_PROTOCOL);
    if (!r) r = fmt_pk_run(vm, pos = end, &info, &end, t->err);
    if (!r) {
        fmt_pk_ref le = fmt_pk_dict_get(vm, info, "little_endian");
        const fmt_pk_node *n = fmt_pk_at(vm, le);
        if (!n || n->type != FMT_PK_BOOL)
            r = hq_fail(t->err, HQ_ERR_FORMAT, "%s: legacy sys_info has no little_endian flag", t->label);
        else if (!n->u.i)
            r = hq_fail(t->err, HQ_ERR_UNSUPPORTED, "%s: big-endian legacy checkpoint", t->label);
    }
    if (!r) r = fmt_pk_run(vm, pos = end, &root, &end, t->err);
    if (!r) r = fmt_pk_run(vm, pos = end, &keys, &end, t->err);
    if (!r && fmt_pk_type_of(vm, keys) != FMT_PK_LIST)
        r = hq_fail(t->err, HQ_ERR_FORMAT, "%s: legacy storage key list is not a list", t->label);
    if (!r) r = scan_storages(t, true);
    /* data section: for each key in list order, int64 LE count + raw bytes */
    pos = end;
    for (uint32_t c = r ? FMT_PK_NIL : fmt_pk_first(vm, keys); c != FMT_PK_NIL; c = fmt_pk_cell_at(vm, c)->next) {
        uint32_t kl;
        fmt_pk_ref kr = fmt_pk_cell_at(vm, c)->val;
        const char *ks = fmt_pk_str(vm, kr, &kl);
        uint64_t si = ks && fmt_pk_type_of(vm, kr) == FMT_PK_STR ? fmt_nameset_find(&t->st_index, ks, kl, st_key, t)
                                                                 : UINT64_MAX;
        char kb[80];
        if (si == UINT64_MAX) {
            r = hq_fail(t->err, HQ_ERR_FORMAT, "%s: legacy key list names storage '%s' that no tensor uses", t->label,
                        ks ? shown(ks, kl, kb) : "?");
            break;
        }
        tstorage *s = &t->st[si];
        if (s->located) {
            r = hq_fail(t->err, HQ_ERR_FORMAT, "%s: legacy key list names storage '%s' twice", t->label,
                        shown(ks, kl, kb));
            break;
        }
        uint64_t count = 0, bytes;
        if (len - pos < 8) {
            r = hq_fail(t->err, HQ_ERR_FORMAT, "%s: legacy data of storage '%s' is truncated", t->label,
                        shown(ks, kl, kb));
            break;
        }
        for (int k = 7; k >= 0; k--) count = (count << 8) | buf[pos + (uint64_t)k];
        pos += 8;
        if (count > INT64_MAX || !hq_mul_u64(count, fmt_pk_globals[s->cls].esize, &bytes) || bytes > len - pos) {
            r = hq_fail(t->err, HQ_ERR_FORMAT, "%s: legacy storage '%s' claims %llu elements, beyond the end of the file",
                        t->label, shown(ks, kl, kb), (unsigned long long)count);
            break;
        }
        s->data = buf + pos;
        s->bytes = bytes;
        s->located = true;
        pos += bytes;
    }
    if (!r && pos != len)
        r = hq_fail(t->err, HQ_ERR_FORMAT, "%s: %llu unexpected bytes after the legacy storages", t->label,
                    (unsigned long long)(len - pos));
    if (!r) r = walk(t, root);
    fmt_pk_free(vm);
    return r;
}

hq_status fmt_torch_parse(const uint8_t *buf, uint64_t len, const char *label, int file_index, fmt_ckpt *ck,
                          char *err) {
    if (!label) label = "(buffer)";
    if (!ck || (!buf && len)) return hq_fail(err, HQ_ERR_ARG, "%s: fmt_torch_parse: NULL argument", label);
    tctx t;
    memset(&t, 0, sizeof t);
    t.label = label;
    t.file_index = file_index;
    t.ck = ck;
    t.err = err;
    hq_status r;
    if (len >= 4 && !memcmp(buf, "PK\x03\x04", 4))
        r = parse_zip(&t, buf, len);
    else if (len >= sizeof k_legacy_magic && !memcmp(buf, k_legacy_magic, sizeof k_legacy_magic))
        r = parse_legacy(&t, buf, len);
    else if (len >= 262 && !memcmp(buf + 257, "ustar", 5))
        r = hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: tar-format torch checkpoint (torch <= 0.1.x) is not supported; "
                                             "re-save it with a current torch", label);
    else if (len >= 8 && !memcmp(buf, "PYTORCH1", 8))
        r = hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: 2018 preview TorchScript container (PYTORCH1) is not supported",
                    label);
    else if (len >= 2 && buf[0] == 0x80)
        r = hq_fail(err, HQ_ERR_FORMAT, "%s: a pickle stream without the torch legacy magic number", label);
    else
        r = hq_fail(err, HQ_ERR_FORMAT, "%s: not a torch checkpoint (no zip or legacy magic)", label);
    fmt_nameset_free(&t.st_index);
    hq_free(t.st);
    hq_free(t.seen);
    return r;
}
