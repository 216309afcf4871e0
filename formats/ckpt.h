/* formats/ckpt.h — one view of a checkpoint, whatever it was saved as.
 *
 * fmt_ckpt_open accepts:
 *  - a directory (HF layout): model.safetensors | model.safetensors.index.json
 *    + shards | pytorch_model.bin | pytorch_model.bin.index.json + shards |
 *    a single *.safetensors / *.bin / *.pt / *.pth / *.ckpt; plus config.json,
 *    tokenizer.json, tokenizer_config.json, generation_config.json when present
 *    (carried through raw);
 *  - a single file, recognised by its first bytes (not its extension):
 *    "PK\3\4" torch zip, the legacy torch pickle magic, else safetensors;
 *    a path ending in .index.json is opened as a sharded index.
 * Directory order (as transformers): model.safetensors,
 * model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json,
 * then the only *.safetensors.index.json / *.bin.index.json / *.safetensors /
 * other weights file, in that order of preference; two candidates of the same
 * class are refused as ambiguous. Side files come from the same directory.
 * Sharded: shard names must be plain file names (no '/', '\', '..', drive,
 * absolute path) with the index's extension (.safetensors or .bin); every
 * weight_map entry must be found in its shard and every tensor of a shard
 * must be listed (HQ_ERR_MISMATCH otherwise); a name in two shards is
 * refused. file_index = position of the shard in sorted shard-name order.
 * Safetensors storages may be unaligned in the mapping: use fmt_tensor_read
 * or memcpy, never cast t->storage to float*.
 * Every tensor is a *view* into a read-only mapping of its file: dtype, shape
 * (PyTorch order), element strides and element offset. Nothing is copied
 * until fmt_tensor_read. Names are the state-dict keys after unwrapping a
 * nested container ({"state_dict": {...}} / {"model": {...}}).
 */
#ifndef HQ_CKPT_H
#define HQ_CKPT_H
#include "../core/hq.h"
#include "../core/limits.h"

typedef enum {
    HQ_DT_F32, HQ_DT_F16, HQ_DT_BF16, HQ_DT_F64, HQ_DT_I64, HQ_DT_I32, HQ_DT_I16,
    HQ_DT_I8, HQ_DT_U8, HQ_DT_BOOL, HQ_DT_COUNT
} hq_dtype;
const char *hq_dtype_name(hq_dtype t);      /* "F32", "BF16", ... (safetensors spelling) */
uint32_t hq_dtype_size(hq_dtype t);         /* bytes per element */

typedef struct {
    char *name;
    hq_dtype dtype;
    int ndim;
    int64_t shape[HQ_MAX_DIMS];   /* PyTorch order, outermost first */
    int64_t stride[HQ_MAX_DIMS];  /* in elements; row-major contiguous for safetensors */
    int64_t offset;               /* element offset into storage */
    const uint8_t *storage;       /* start of the storage bytes in the mapping */
    uint64_t storage_bytes;       /* validated: every addressed element lies inside */
    int storage_id;               /* equal ids = same storage (tied weights, views) */
    int file_index;               /* which file of a sharded checkpoint */
} fmt_tensor;

typedef struct fmt_ckpt {
    fmt_tensor *tensors;
    uint64_t n_tensors;
    char *config_json;            /* raw, NUL-terminated; NULL if absent */
    char *tokenizer_json;
    char *tokenizer_config_json;
    char *generation_config_json; /* read for bos/eos only (convert.c), not embedded */
    char *path;                   /* what was opened */
    char *kind;                   /* "safetensors", "safetensors (3 shards)", "torch zip", ... */
    /* private */
    hq_map *maps;
    uint64_t n_maps;
    uint64_t cap_tensors;
    int next_storage_id;
    void *priv;                   /* reader-owned extra allocations (freed by close) */
    void (*priv_free)(void *priv); /* how close frees priv; NULL = hq_free(priv) */
    void *name_index;             /* ckpt.c: hash of tensor names (add/find) */
} fmt_ckpt;

hq_status fmt_ckpt_open(const char *path, fmt_ckpt **out, char *err);
void fmt_ckpt_close(fmt_ckpt *ck);
const fmt_tensor *fmt_ckpt_find(const fmt_ckpt *ck, const char *name);

uint64_t fmt_tensor_nelem(const fmt_tensor *t);
bool fmt_tensor_is_contiguous(const fmt_tensor *t);
/* Gathers the tensor into dst as a contiguous row-major array of out_dtype
 * (F32, F16 or BF16 from any of F32/F16/BF16/F64/I64/I32). bf16->f32 and
 * f16->f32 are exact; narrowing rounds to nearest even. */
hq_status fmt_tensor_read(const fmt_tensor *t, hq_dtype out_dtype, void *dst, char *err);
/* Plain scalar twin of fmt_tensor_read (element by element, no fast paths);
 * tests compare the two. HQ_CPU=scalar (core/cpu.h) also turns off the SIMD
 * row conversions of the fast path. */
hq_status fmt_tensor_read_ref(const fmt_tensor *t, hq_dtype out_dtype, void *dst, char *err);

/* ---- used by the individual readers (safetensors.c, torch.c) ---- */
/* Appends a tensor (name copied). Rejects duplicate names, names longer than
 * HQ_MAX_NAME, more than HQ_MAX_TENSORS tensors, rank > HQ_MAX_DIMS, negative
 * shape/stride/offset and views whose addressed elements do not all lie
 * inside storage_bytes (the §1.5 extent check), so every reader gets them.
 * Readers set storage_id themselves (ck->next_storage_id++ per storage). */
hq_status fmt_ckpt_add(fmt_ckpt *ck, const fmt_tensor *t, const char *label, char *err);
/* Keeps a mapping alive for the lifetime of ck (ownership moves to ck);
 * returns its index, or -1 on allocation failure. */
int fmt_ckpt_keep_map(fmt_ckpt *ck, hq_map *m);
fmt_ckpt *fmt_ckpt_new(void);

/* Readers append the tensors of one file (already mapped) to ck.
 * label names the file in error messages. */
hq_status fmt_safetensors_parse(const uint8_t *buf, uint64_t len, const char *label, int file_index,
                                fmt_ckpt *ck, char *err);
hq_status fmt_torch_parse(const uint8_t *buf, uint64_t len, const char *label, int file_index, fmt_ckpt *ck,
                          char *err);
#endif
