/* formats/ckpt.c — the checkpoint container: tensor list, name index, opening
 * a file or an HF directory (single or sharded), and gathering/converting a
 * tensor view into a contiguous buffer. The per-format parsers live in
 * safetensors.c and torch.c.
 *
 * Decisions (documented here and in ckpt.h):
 *  - Directory: the HF loader's order is followed: model.safetensors,
 *    model.safetensors.index.json, pytorch_model.bin,
 *    pytorch_model.bin.index.json; otherwise exactly one *.safetensors.index.json
 *    or one *.bin.index.json; otherwise the single weights file
 *    (.safetensors preferred over .bin, .pt, .pth, .ckpt). Several candidates
 *    of the chosen kind is an error naming two of them.
 *  - Sharded: every weight_map entry must name a tensor found in that shard,
 *    and every tensor of every shard must be listed (an unlisted tensor means
 *    the index and the shards do not belong together: HQ_ERR_MISMATCH).
 */
#include "ckpt.h" // defines: fmt_ckpt_*, fmt_tensor_*, hq_dtype_*
#include "../core/half.h"
#include "../core/vec.h" // defines: hq_f16_to_f32_row, hq_f32_to_bf16_row
#include "nameset.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------- dtypes ---------------- */

static const struct {
    const char *name;
    uint32_t size;
} k_dtypes[HQ_DT_COUNT] = {
    [HQ_DT_F32] = {"F32", 4}, [HQ_DT_F16] = {"F16", 2}, [HQ_DT_BF16] = {"BF16", 2}, [HQ_DT_F64] = {"F64", 8},
    [HQ_DT_I64] = {"I64", 8}, [HQ_DT_I32] = {"I32", 4}, [HQ_DT_I16] = {"I16", 2},   [HQ_DT_I8] = {"I8", 1},
    [HQ_DT_U8] = {"U8", 1},   [HQ_DT_BOOL] = {"BOOL", 1},
};

const char *hq_dtype_name(hq_dtype t) { return (unsigned)t < HQ_DT_COUNT ? k_dtypes[t].name : "?"; }
uint32_t hq_dtype_size(hq_dtype t) { return (unsigned)t < HQ_DT_COUNT ? k_dtypes[t].size : 0; }

/* ---------------- container ---------------- */

static const char *tensor_name_get(const void *ctx, uint64_t i, uint64_t *len) {
    const fmt_ckpt *ck = ctx;
    *len = strlen(ck->tensors[i].name);
    return ck->tensors[i].name;
}

fmt_ckpt *fmt_ckpt_new(void) {
    fmt_ckpt *ck = hq_calloc(1, sizeof *ck);
    if (!ck) return NULL;
    ck->name_index = hq_calloc(1, sizeof(fmt_nameset));
    if (!ck->name_index) {
        hq_free(ck);
        return NULL;
    }
    return ck;
}

void fmt_ckpt_close(fmt_ckpt *ck) {
    if (!ck) return;
    for (uint64_t i = 0; i < ck->n_tensors; i++) hq_free(ck->tensors[i].name);
    hq_free(ck->tensors);
    for (uint64_t i = 0; i < ck->n_maps; i++) hq_map_close(&ck->maps[i]);
    hq_free(ck->maps);
    hq_free(ck->config_json);
    hq_free(ck->tokenizer_json);
    hq_free(ck->tokenizer_config_json);
    hq_free(ck->generation_config_json);
    hq_free(ck->path);
    hq_free(ck->kind);
    if (ck->priv) {
        if (ck->priv_free)
            ck->priv_free(ck->priv);
        else
            hq_free(ck->priv);
    }
    if (ck->name_index) {
        fmt_nameset_free(ck->name_index);
        hq_free(ck->name_index);
    }
    hq_free(ck);
}

const fmt_tensor *fmt_ckpt_find(const fmt_ckpt *ck, const char *name) {
    if (!ck || !name || !ck->name_index) return NULL;
    uint64_t i = fmt_nameset_find(ck->name_index, name, strlen(name), tensor_name_get, ck);
    return i == UINT64_MAX ? NULL : &ck->tensors[i];
}

int fmt_ckpt_keep_map(fmt_ckpt *ck, hq_map *m) {
    if (ck->n_maps >= (uint64_t)HQ_MAX_SHARDS * 2) return -1;
    hq_map *nm = hq_realloc(ck->maps, (size_t)(ck->n_maps + 1) * sizeof *nm);
    if (!nm) return -1;
    ck->maps = nm;
    ck->maps[ck->n_maps] = *m;
    memset(m, 0, sizeof *m);
    return (int)ck->n_maps++;
}

uint64_t fmt_tensor_nelem(const fmt_tensor *t) {
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || !hq_mul_u64(n, (uint64_t)t->shape[i], &n)) return 0;
    }
    return n;
}

bool fmt_tensor_is_contiguous(const fmt_tensor *t) {
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != expect) return false;
        if (!hq_mul_i64(expect, t->shape[i], &expect)) return false;
    }
    return true;
}

/* Checks the view against its storage (file-formats.md §1.5): no negative
 * numbers, element count without overflow, every addressed byte inside. */
static hq_status check_view(const fmt_tensor *t, const char *label, char *err) {
    const char *nm = t->name ? t->name : "?";
    if ((unsigned)t->dtype >= HQ_DT_COUNT)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' has an invalid dtype", label, nm);
    if (t->ndim < 0 || t->ndim > HQ_MAX_DIMS)
        return hq_fail(err, HQ_ERR_LIMIT, "%s: tensor '%s' has %d dims but at most %d are supported", label, nm,
                       t->ndim, HQ_MAX_DIMS);
    if (t->offset < 0)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' has a negative storage offset", label, nm);
    uint64_t last = (uint64_t)t->offset, n = 1; /* last = index of the last element addressed */
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || t->stride[i] < 0)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' has a negative size or stride in dim %d", label, nm,
                           i);
        if (!hq_mul_u64(n, (uint64_t)t->shape[i], &n))
            return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s': element count overflows", label, nm);
    }
    if (n == 0) return HQ_OK; /* empty: addresses nothing */
    for (int i = 0; i < t->ndim; i++) {
        uint64_t d;
        if (!hq_mul_u64((uint64_t)t->shape[i] - 1, (uint64_t)t->stride[i], &d) || !hq_add_u64(last, d, &last))
            return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s': view extent overflows", label, nm);
    }
    uint64_t end;
    if (!hq_add_u64(last, 1, &end) || !hq_mul_u64(end, hq_dtype_size(t->dtype), &end) || end > t->storage_bytes)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' addresses elements beyond its storage of %llu bytes",
                       label, nm, (unsigned long long)t->storage_bytes);
    if (!t->storage) return hq_fail(err, HQ_ERR_INTERNAL, "%s: tensor '%s' has no storage", label, nm);
    return HQ_OK;
}

hq_status fmt_ckpt_add(fmt_ckpt *ck, const fmt_tensor *t, const char *label, char *err) {
    if (!t->name) return hq_fail(err, HQ_ERR_INTERNAL, "%s: tensor without a name", label);
    size_t nl = strlen(t->name);
    if (nl > HQ_MAX_NAME)
        return hq_fail(err, HQ_ERR_LIMIT, "%s: tensor name of %zu bytes exceeds the limit of %d", label, nl,
                       HQ_MAX_NAME);
    if (ck->n_tensors >= HQ_MAX_TENSORS)
        return hq_fail(err, HQ_ERR_LIMIT, "%s: more than %d tensors", label, HQ_MAX_TENSORS);
    hq_status st = check_view(t, label, err);
    if (st) return st;
    if (fmt_ckpt_find(ck, t->name)) {
        const fmt_tensor *o = fmt_ckpt_find(ck, t->name);
        if (o->file_index != t->file_index)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: tensor '%s' appears in two files (%d and %d)", label, t->name,
                           o->file_index, t->file_index);
        return hq_fail(err, HQ_ERR_FORMAT, "%s: duplicate tensor name '%s'", label, t->name);
    }
    if (ck->n_tensors == ck->cap_tensors) {
        uint64_t nc = ck->cap_tensors ? ck->cap_tensors * 2 : 64;
        fmt_tensor *nt = hq_realloc(ck->tensors, (size_t)nc * sizeof *nt);
        if (!nt) return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory adding tensor '%s'", label, t->name);
        ck->tensors = nt;
        ck->cap_tensors = nc;
    }
    fmt_tensor c = *t;
    c.name = hq_strndup(t->name, nl);
    if (!c.name) return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory adding tensor '%s'", label, t->name);
    for (int i = c.ndim; i < HQ_MAX_DIMS; i++) c.shape[i] = 1, c.stride[i] = 0;
    ck->tensors[ck->n_tensors] = c;
    if (fmt_nameset_insert(ck->name_index, ck->n_tensors, tensor_name_get, ck, NULL) != 1) {
        hq_free(c.name);
        return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory adding tensor '%s'", label, t->name);
    }
    ck->n_tensors++;
    return HQ_OK;
}

/* ---------------- gather + convert ----------------
 * A run is n elements of a source dtype, sstride bytes apart, converted into
 * n consecutive elements of the output dtype. Contiguous runs take tight
 * loops (memcpy when the dtypes agree); f16/bf16 <-> f32 use the shared row
 * helpers of core/vec.h, SIMD by CPU level (same rounding as core/half.h:
 * round to nearest even, quiet NaN). */

static inline uint16_t ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline float ldf(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }

static inline float load_f32(hq_dtype dt, const uint8_t *p) {
    switch (dt) {
    case HQ_DT_F32: return ldf(p);
    case HQ_DT_F16: return hq_f16_to_f32_quiet(ld16(p));
    case HQ_DT_BF16: return hq_bf16_to_f32(ld16(p));
    case HQ_DT_F64: { double d; memcpy(&d, p, 8); return (float)d; }
    case HQ_DT_I64: { int64_t v; memcpy(&v, p, 8); return (float)v; }
    case HQ_DT_I32: { int32_t v; memcpy(&v, p, 4); return (float)v; }
    default: return 0.0f;
    }
}

/* scalar reference: any supported pair, any source stride */
static void cvt_run_ref(hq_dtype sdt, const uint8_t *src, uint64_t sstride, hq_dtype ddt, uint8_t *dst, uint64_t n) {
    for (uint64_t i = 0; i < n; i++, src += sstride) {
        if (sdt == ddt) {
            memcpy(dst + i * hq_dtype_size(ddt), src, hq_dtype_size(ddt));
            continue;
        }
        float f = load_f32(sdt, src);
        if (ddt == HQ_DT_F32) {
            memcpy(dst + i * 4, &f, 4);
        } else {
            uint16_t h = ddt == HQ_DT_F16 ? hq_f32_to_f16(f) : hq_f32_to_bf16(f);
            memcpy(dst + i * 2, &h, 2);
        }
    }
}

/* contiguous source: dtype-pair specific tight loops */
static void cvt_run_contig(hq_dtype sdt, const uint8_t *src, hq_dtype ddt, uint8_t *dst, uint64_t n) {
    if (sdt == ddt) {
        memcpy(dst, src, (size_t)(n * hq_dtype_size(sdt)));
        return;
    }
    /* the four half <-> f32 pairs: core/vec.h (exact at every CPU level) */
    if (sdt == HQ_DT_BF16 && ddt == HQ_DT_F32) {
        hq_bf16_to_f32_row(src, dst, (int64_t)n);
        return;
    }
    if (sdt == HQ_DT_F16 && ddt == HQ_DT_F32) {
        hq_f16_to_f32_row(src, dst, (int64_t)n);
        return;
    }
    if (sdt == HQ_DT_F32 && ddt == HQ_DT_F16) {
        hq_f32_to_f16_row(src, dst, (int64_t)n);
        return;
    }
    if (sdt == HQ_DT_F32 && ddt == HQ_DT_BF16) {
        hq_f32_to_bf16_row(src, dst, (int64_t)n);
        return;
    }
    uint32_t ses = hq_dtype_size(sdt);
    if (ddt == HQ_DT_F32) {
        for (uint64_t i = 0; i < n; i++) {
            float f = load_f32(sdt, src + i * ses);
            memcpy(dst + 4 * i, &f, 4);
        }
        return;
    }
    /* anything else -> F16/BF16 goes through F32 in cache-sized chunks; exact,
     * since every source is first rounded to f32 (as torch does) */
    float tmp[2048];
    uint32_t des = hq_dtype_size(ddt);
    for (uint64_t i = 0; i < n; i += 2048) {
        uint64_t k = n - i < 2048 ? n - i : 2048;
        cvt_run_contig(sdt, src + i * ses, HQ_DT_F32, (uint8_t *)tmp, k);
        cvt_run_contig(HQ_DT_F32, (const uint8_t *)tmp, ddt, dst + i * des, k);
    }
}

/* a strided source is gathered into a small contiguous buffer first, then
 * converted by the contiguous paths */
static void cvt_run(hq_dtype sdt, const uint8_t *src, uint64_t sstride, hq_dtype ddt, uint8_t *dst, uint64_t n) {
    uint32_t ses = hq_dtype_size(sdt), des = hq_dtype_size(ddt);
    if (sstride == ses) {
        cvt_run_contig(sdt, src, ddt, dst, n);
        return;
    }
    uint64_t buf[1024]; /* 1024 elements of up to 8 bytes */
    for (uint64_t i = 0; i < n; i += 1024) {
        uint64_t k = n - i < 1024 ? n - i : 1024;
        uint8_t *b = (uint8_t *)buf;
        const uint8_t *s = src + i * sstride;
        switch (ses) {
        case 1: for (uint64_t j = 0; j < k; j++) b[j] = s[j * sstride]; break;
        case 2: for (uint64_t j = 0; j < k; j++) memcpy(b + 2 * j, s + j * sstride, 2); break;
        case 4: for (uint64_t j = 0; j < k; j++) memcpy(b + 4 * j, s + j * sstride, 4); break;
        default: for (uint64_t j = 0; j < k; j++) memcpy(b + 8 * j, s + j * sstride, 8); break;
        }
        cvt_run_contig(sdt, b, ddt, dst + i * des, k);
    }
}

static bool read_supported_src(hq_dtype t) {
    return t == HQ_DT_F32 || t == HQ_DT_F16 || t == HQ_DT_BF16 || t == HQ_DT_F64 || t == HQ_DT_I64 ||
           t == HQ_DT_I32;
}

/* shared by fmt_tensor_read and its reference twin (use_ref) */
static hq_status tensor_read_impl(const fmt_tensor *t, hq_dtype out, void *dstv, bool use_ref, char *err) {
    const char *nm = t->name ? t->name : "?";
    if (out != HQ_DT_F32 && out != HQ_DT_F16 && out != HQ_DT_BF16)
        return hq_fail(err, HQ_ERR_ARG, "tensor '%s': cannot read into %s (F32, F16 or BF16 only)", nm,
                       hq_dtype_name(out));
    if (!read_supported_src(t->dtype) && t->dtype != out)
        return hq_fail(err, HQ_ERR_UNSUPPORTED, "tensor '%s' has dtype %s, which cannot be converted to %s", nm,
                       hq_dtype_name(t->dtype), hq_dtype_name(out));
    hq_status st = check_view(t, "fmt_tensor_read", err);
    if (st) return st;
    uint64_t n = fmt_tensor_nelem(t);
    if (n == 0) return HQ_OK;
    uint8_t *dst = dstv;
    uint32_t ses = hq_dtype_size(t->dtype), des = hq_dtype_size(out);
    const uint8_t *base = t->storage + (uint64_t)t->offset * ses;
    if (!use_ref && fmt_tensor_is_contiguous(t)) {
        cvt_run(t->dtype, base, ses, out, dst, n);
        return HQ_OK;
    }
    /* odometer over all dims but the last; the last is one run */
    int nd = t->ndim;
    uint64_t inner = nd ? (uint64_t)t->shape[nd - 1] : 1;
    uint64_t istride = nd ? (uint64_t)t->stride[nd - 1] * ses : ses;
    int64_t idx[HQ_MAX_DIMS] = {0};
    uint64_t outer = n / inner;
    for (uint64_t r = 0; r < outer; r++) {
        uint64_t off = 0;
        for (int i = 0; i < nd - 1; i++) off += (uint64_t)idx[i] * (uint64_t)t->stride[i];
        const uint8_t *s = base + off * ses;
        if (use_ref)
            cvt_run_ref(t->dtype, s, istride, out, dst + r * inner * des, inner);
        else
            cvt_run(t->dtype, s, istride, out, dst + r * inner * des, inner);
        for (int i = nd - 2; i >= 0; i--) {
            if (++idx[i] < t->shape[i]) break;
            idx[i] = 0;
        }
    }
    return HQ_OK;
}

hq_status fmt_tensor_read(const fmt_tensor *t, hq_dtype out, void *dst, char *err) {
    return tensor_read_impl(t, out, dst, false, err);
}

/* Scalar reference twin of fmt_tensor_read (tests compare the two). */
hq_status fmt_tensor_read_ref(const fmt_tensor *t, hq_dtype out, void *dst, char *err) {
    return tensor_read_impl(t, out, dst, true, err);
}

/* ---------------- opening ---------------- */

static const uint8_t k_legacy_magic[15] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                           0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

typedef enum { SNIFF_SAFETENSORS, SNIFF_TORCH_ZIP, SNIFF_TORCH_LEGACY } sniff_kind;

static sniff_kind sniff(const hq_map *m) {
    if (m->size >= 4 && memcmp(m->data, "PK\x03\x04", 4) == 0) return SNIFF_TORCH_ZIP;
    if (m->size >= sizeof k_legacy_magic && memcmp(m->data, k_legacy_magic, sizeof k_legacy_magic) == 0)
        return SNIFF_TORCH_LEGACY;
    return SNIFF_SAFETENSORS;
}

static const char *sniff_name(sniff_kind k) {
    return k == SNIFF_TORCH_ZIP ? "torch zip" : k == SNIFF_TORCH_LEGACY ? "torch legacy" : "safetensors";
}

/* maps path, parses it into ck as file file_index; *kind gets what it was */
static hq_status load_file(fmt_ckpt *ck, const char *path, int file_index, sniff_kind *kind, char *err) {
    hq_map m;
    hq_status st = hq_map_open(path, &m, err);
    if (st) return st;
    int mi = fmt_ckpt_keep_map(ck, &m);
    if (mi < 0) {
        hq_map_close(&m);
        return hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", path);
    }
    const hq_map *km = &ck->maps[mi];
    *kind = sniff(km);
    if (*kind == SNIFF_SAFETENSORS) return fmt_safetensors_parse(km->data, km->size, path, file_index, ck, err);
    return fmt_torch_parse(km->data, km->size, path, file_index, ck, err);
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static char *dir_of(const char *path) {
    const char *sl = strrchr(path, '/');
    if (!sl) return hq_strdup(".");
    if (sl == path) return hq_strdup("/");
    return hq_strndup(path, (size_t)(sl - path));
}

/* True when real (a resolved path) lies under the directory real_dir. */
static bool path_under(const char *real, const char *real_dir) {
    size_t n = strlen(real_dir);
    if (n == 1 && real_dir[0] == '/') return true;
    return strncmp(real, real_dir, n) == 0 && real[n] == '/';
}

/* A file that is embedded verbatim in the GGUF may be a symlink only when its
 * target stays inside the checkpoint directory, or, for a Hugging Face cache
 * snapshot (.../models--ORG--NAME/snapshots/REV/), inside that repository's
 * blob store (.../models--ORG--NAME/blobs/), which is how every downloaded
 * model looks. Anything else (a link to ~/.aws/credentials in a cloned repo)
 * would publish the target inside the GGUF. */
static hq_status embed_link_ok(const char *dir, const char *p, char *err) {
    struct stat lst;
    if (lstat(p, &lst) != 0 || !S_ISLNK(lst.st_mode)) return HQ_OK;
    char *rp = realpath(p, NULL), *rd = realpath(dir, NULL);
    bool ok = false;
    if (rp && rd) {
        ok = path_under(rp, rd);
        /* rd = <repo>/snapshots/<rev>, the blobs are <repo>/blobs/ */
        char *s1 = strrchr(rd, '/');
        if (!ok && s1 && s1 > rd) {
            *s1 = 0;
            char *s2 = strrchr(rd, '/');
            if (s2 && !strcmp(s2 + 1, "snapshots")) {
                *s2 = 0;
                char *s3 = strrchr(rd, '/');
                if (s3 && !strncmp(s3 + 1, "models--", 8)) {
                    strcpy(s2, "/blobs");
                    ok = path_under(rp, rd);
                }
            }
        }
    }
    hq_status st = ok ? HQ_OK
                      : hq_fail(err, HQ_ERR_UNSUPPORTED,
                                "%s: a symlink to %s, outside the checkpoint directory; refusing to embed it in the "
                                "GGUF (copy the file in if it belongs to the model)",
                                p, rp ? rp : "a missing file");
    free(rp); /* realpath's allocations */
    free(rd);
    return st;
}

/* config.json, tokenizer.json, tokenizer_config.json: embedded in the GGUF,
 * so each must be a JSON object within its size limit (core/limits.h). */
static hq_status carry_json(const char *dir, const char *name, uint64_t max, char **out, char *err) {
    char *p = hq_path_join(dir, name);
    if (!p) return hq_fail(err, HQ_ERR_NOMEM, "out of memory");
    struct stat lst;
    hq_status st = HQ_OK;
    if (lstat(p, &lst) == 0) {
        uint64_t len;
        if ((st = embed_link_ok(dir, p, err)) == HQ_OK && (st = hq_read_file(p, max, out, &len, err)) == HQ_OK) {
            cJSON *j = cJSON_ParseWithLength(*out, (size_t)len);
            if (!j || !cJSON_IsObject(j))
                st = hq_fail(err, HQ_ERR_FORMAT, "%s: not a JSON object; refusing to embed it in the GGUF", p);
            cJSON_Delete(j);
            if (st) {
                hq_free(*out);
                *out = NULL;
            }
        }
    }
    hq_free(p);
    return st;
}

static hq_status set_kind(fmt_ckpt *ck, const char *base, uint64_t shards, char *err) {
    char buf[64];
    if (shards)
        snprintf(buf, sizeof buf, "%s (%llu shard%s)", base, (unsigned long long)shards, shards == 1 ? "" : "s");
    else
        snprintf(buf, sizeof buf, "%s", base);
    hq_free(ck->kind);
    ck->kind = hq_strdup(buf);
    return ck->kind ? HQ_OK : hq_fail(err, HQ_ERR_NOMEM, "out of memory");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* HF shard-name rules (huggingface_hub load_sharded_checkpoint): a plain file
 * name in the index's directory with the index's extension. */
static bool shard_name_ok(const char *s, bool safetensors) {
    if (!*s || s[0] == '/' || strchr(s, '/') || strchr(s, '\\') || strstr(s, "..")) return false;
    if (strlen(s) >= 2 && s[1] == ':') return false; /* drive letter */
    return safetensors ? ends_with(s, ".safetensors") : ends_with(s, ".bin");
}

static hq_status open_index(fmt_ckpt *ck, const char *dir, const char *index_path, bool safetensors, char *err) {
    char *txt = NULL;
    uint64_t len = 0;
    hq_status st = hq_read_file(index_path, HQ_MAX_INDEX_JSON, &txt, &len, err);
    if (st) return st;
    cJSON *root = cJSON_ParseWithLength(txt, (size_t)len);
    hq_free(txt);
    char **names = NULL;
    uint64_t n_names = 0;
    fmt_nameset seen = {0};
    if (!root || !cJSON_IsObject(root)) {
        st = hq_fail(err, HQ_ERR_FORMAT, "%s: not a JSON object", index_path);
        goto done;
    }
    const cJSON *wm = NULL;
    for (const cJSON *c = root->child; c; c = c->next)
        if (c->string && strcmp(c->string, "weight_map") == 0) {
            if (wm) {
                st = hq_fail(err, HQ_ERR_FORMAT, "%s: duplicate key 'weight_map'", index_path);
                goto done;
            }
            wm = c;
        }
    if (!wm || !cJSON_IsObject(wm)) {
        st = hq_fail(err, HQ_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
        goto done;
    }
    /* collect the distinct shard names */
    uint64_t n_entries = 0;
    for (const cJSON *c = wm->child; c; c = c->next) {
        n_entries++;
        if (n_entries > HQ_MAX_TENSORS) {
            st = hq_fail(err, HQ_ERR_LIMIT, "%s: more than %d weight_map entries", index_path, HQ_MAX_TENSORS);
            goto done;
        }
        if (!cJSON_IsString(c) || !c->string) {
            st = hq_fail(err, HQ_ERR_FORMAT, "%s: weight_map entry '%s' is not a string", index_path,
                         c->string ? c->string : "?");
            goto done;
        }
        const char *sh = c->valuestring;
        if (!shard_name_ok(sh, safetensors)) {
            st = hq_fail(err, HQ_ERR_FORMAT,
                         "%s: tensor '%s' names shard '%s', which is not a plain %s file name in the same folder",
                         index_path, c->string, sh, safetensors ? ".safetensors" : ".bin");
            goto done;
        }
        bool have = false;
        for (uint64_t i = n_names; i-- > 0;) /* shards are few; entries are grouped */
            if (strcmp(names[i], sh) == 0) {
                have = true;
                break;
            }
        if (have) continue;
        if (n_names >= HQ_MAX_SHARDS) {
            st = hq_fail(err, HQ_ERR_LIMIT, "%s: more than %d shards", index_path, HQ_MAX_SHARDS);
            goto done;
        }
        char **nn = hq_realloc(names, (size_t)(n_names + 1) * sizeof *nn);
        if (!nn) {
            st = hq_fail(err, HQ_ERR_NOMEM, "%s: out of memory", index_path);
            goto done;
        }
        names = nn;
        names[n_names++] = (char *)sh; /* owned by root */
    }
    if (n_names == 0) {
        st = hq_fail(err, HQ_ERR_FORMAT, "%s: weight_map is empty", index_path);
        goto done;
    }
    qsort(names, (size_t)n_names, sizeof *names, cmp_str);
    sniff_kind first = SNIFF_SAFETENSORS;
    bool mixed = false;
    for (uint64_t i = 0; i < n_names; i++) {
        char *p = hq_path_join(dir, names[i]);
        if (!p) {
            st = hq_fail(err, HQ_ERR_NOMEM, "out of memory");
            goto done;
        }
        sniff_kind k;
        st = load_file(ck, p, (int)i, &k, err);
        hq_free(p);
        if (st) goto done;
        if (i == 0) first = k;
        else if (k != first) mixed = true;
    }
    /* every listed tensor is in its shard; every shard tensor is listed */
    uint64_t n_listed = 0;
    for (const cJSON *c = wm->child; c; c = c->next) {
        const fmt_tensor *t = fmt_ckpt_find(ck, c->string);
        if (!t) {
            st = hq_fail(err, HQ_ERR_MISMATCH, "%s: tensor '%s' is listed for %s but that shard does not hold it",
                         index_path, c->string, c->valuestring);
            goto done;
        }
        if (strcmp(names[t->file_index], c->valuestring) != 0) {
            st = hq_fail(err, HQ_ERR_MISMATCH, "%s: tensor '%s' is listed for %s but found in %s", index_path,
                         c->string, c->valuestring, names[t->file_index]);
            goto done;
        }
        uint64_t ti = (uint64_t)(t - ck->tensors);
        int r = fmt_nameset_insert(&seen, ti, tensor_name_get, ck, NULL);
        if (r < 0) {
            st = hq_fail(err, HQ_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (r == 0) {
            st = hq_fail(err, HQ_ERR_FORMAT, "%s: weight_map lists tensor '%s' twice", index_path, c->string);
            goto done;
        }
        n_listed++;
    }
    if (n_listed != ck->n_tensors) {
        for (uint64_t i = 0; i < ck->n_tensors; i++) {
            const char *tn = ck->tensors[i].name;
            if (fmt_nameset_find(&seen, tn, strlen(tn), tensor_name_get, ck) == UINT64_MAX) {
                st = hq_fail(err, HQ_ERR_MISMATCH, "%s: shard %s holds tensor '%s', which the index does not list",
                             index_path, names[ck->tensors[i].file_index], tn);
                goto done;
            }
        }
    }
    st = set_kind(ck, mixed ? "torch" : sniff_name(first), n_names, err);
done:
    fmt_nameset_free(&seen);
    hq_free(names);
    cJSON_Delete(root);
    return st;
}

static bool is_weights_name(const char *n, bool *is_st) {
    *is_st = ends_with(n, ".safetensors");
    return *is_st || ends_with(n, ".bin") || ends_with(n, ".pt") || ends_with(n, ".pth") || ends_with(n, ".ckpt");
}

/* Picks what to load from a directory: *file = a weights file or an index
 * (*is_index), relative to dir. */
static hq_status pick_in_dir(const char *dir, char **file, bool *is_index, bool *index_st, char *err) {
    static const struct {
        const char *name;
        bool index, st;
    } k_fixed[] = {
        {"model.safetensors", false, true},
        {"model.safetensors.index.json", true, true},
        {"pytorch_model.bin", false, false},
        {"pytorch_model.bin.index.json", true, false},
    };
    *file = NULL;
    for (size_t i = 0; i < sizeof k_fixed / sizeof k_fixed[0]; i++) {
        char *p = hq_path_join(dir, k_fixed[i].name);
        if (!p) return hq_fail(err, HQ_ERR_NOMEM, "out of memory");
        bool ex = hq_file_exists(p);
        hq_free(p);
        if (ex) {
            *file = hq_strdup(k_fixed[i].name);
            *is_index = k_fixed[i].index;
            *index_st = k_fixed[i].st;
            return *file ? HQ_OK : hq_fail(err, HQ_ERR_NOMEM, "out of memory");
        }
    }
    DIR *d = opendir(dir);
    if (!d) return hq_fail(err, HQ_ERR_IO, "%s: cannot list the directory", dir);
    /* candidates by class: 0 safetensors index, 1 bin index, 2 safetensors, 3 other weights */
    char *first[4] = {0}, *second[4] = {0};
    struct dirent *e;
    hq_status st = HQ_OK;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (n[0] == '.') continue;
        int cls = -1;
        bool is_st;
        if (ends_with(n, ".safetensors.index.json")) cls = 0;
        else if (ends_with(n, ".bin.index.json")) cls = 1;
        else if (is_weights_name(n, &is_st)) cls = is_st ? 2 : 3;
        if (cls < 0) continue;
        char *p = hq_path_join(dir, n);
        if (!p) {
            st = hq_fail(err, HQ_ERR_NOMEM, "out of memory");
            break;
        }
        bool reg = hq_file_exists(p);
        hq_free(p);
        if (!reg) continue;
        char **slot = !first[cls] ? &first[cls] : !second[cls] ? &second[cls] : NULL;
        if (!slot) continue;
        *slot = hq_strdup(n);
        if (!*slot) {
            st = hq_fail(err, HQ_ERR_NOMEM, "out of memory");
            break;
        }
    }
    closedir(d);
    if (!st) {
        int cls = first[0] ? 0 : first[1] ? 1 : first[2] ? 2 : first[3] ? 3 : -1;
        if (cls < 0) {
            st = hq_fail(err, HQ_ERR_ARG,
                         "%s: no checkpoint found (looked for model.safetensors, *.safetensors[.index.json], "
                         "pytorch_model.bin[.index.json], *.bin, *.pt, *.pth, *.ckpt)",
                         dir);
        } else if (second[cls]) {
            st = hq_fail(err, HQ_ERR_ARG, "%s: ambiguous: both '%s' and '%s' could be the checkpoint; name the file",
                         dir, first[cls], second[cls]);
        } else {
            *file = first[cls];
            first[cls] = NULL;
            *is_index = cls <= 1;
            *index_st = cls == 0;
        }
    }
    for (int i = 0; i < 4; i++) hq_free(first[i]), hq_free(second[i]);
    return st;
}

hq_status fmt_ckpt_open(const char *path, fmt_ckpt **out, char *err) {
    *out = NULL;
    fmt_ckpt *ck = fmt_ckpt_new();
    if (!ck) return hq_fail(err, HQ_ERR_NOMEM, "out of memory");
    hq_status st = HQ_OK;
    char *dir = NULL, *file = NULL, *full = NULL;
    ck->path = hq_strdup(path);
    if (!ck->path) {
        st = hq_fail(err, HQ_ERR_NOMEM, "out of memory");
        goto done;
    }
    bool is_index = false, index_st = false;
    if (hq_is_dir(path)) {
        dir = hq_strdup(path);
        if (!dir) {
            st = hq_fail(err, HQ_ERR_NOMEM, "out of memory");
            goto done;
        }
        st = pick_in_dir(dir, &file, &is_index, &index_st, err);
        if (st) goto done;
        full = hq_path_join(dir, file);
    } else {
        struct stat sb;
        if (stat(path, &sb) != 0) {
            st = hq_fail(err, HQ_ERR_IO, "%s: no such file or directory", path);
            goto done;
        }
        dir = dir_of(path);
        full = hq_strdup(path);
        is_index = ends_with(path, ".index.json");
        index_st = ends_with(path, ".safetensors.index.json");
    }
    if (!dir || !full) {
        st = hq_fail(err, HQ_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (is_index) {
        st = open_index(ck, dir, full, index_st, err);
    } else {
        sniff_kind k;
        st = load_file(ck, full, 0, &k, err);
        if (!st) st = set_kind(ck, sniff_name(k), 0, err);
    }
    if (st) goto done;
    if ((st = carry_json(dir, "config.json", HQ_MAX_CONFIG_JSON, &ck->config_json, err))) goto done;
    if ((st = carry_json(dir, "tokenizer.json", HQ_MAX_TOKENIZER_JSON, &ck->tokenizer_json, err))) goto done;
    if ((st = carry_json(dir, "tokenizer_config.json", HQ_MAX_CONFIG_JSON, &ck->tokenizer_config_json, err)))
        goto done;
    if ((st = carry_json(dir, "generation_config.json", HQ_MAX_CONFIG_JSON, &ck->generation_config_json, err)))
        goto done;
done:
    hq_free(dir);
    hq_free(file);
    hq_free(full);
    if (st) {
        fmt_ckpt_close(ck);
        return st;
    }
    *out = ck;
    return HQ_OK;
}
