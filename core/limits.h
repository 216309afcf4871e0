/* core/limits.h — every limit an input file or option can run into, in one
 * place (SECURITY.md refers here). Readers fail with HQ_ERR_LIMIT and a
 * message naming the limit when one is exceeded. */
#ifndef HQ_LIMITS_H
#define HQ_LIMITS_H

#define HQ_MAX_DIMS 8                         /* tensor rank in checkpoints (GGUF: 4) */
#define HQ_MAX_NAME 512                       /* tensor name bytes in checkpoints */
#define HQ_MAX_GGUF_NAME 63                   /* ggml's GGML_MAX_NAME - 1 */
#define HQ_MAX_TENSORS 1000000                /* tensors per checkpoint / GGUF */
#define HQ_MAX_ST_HEADER 100000000ull         /* safetensors header (reference MAX_HEADER_SIZE) */
#define HQ_MAX_CONFIG_JSON (4ull << 20)       /* config.json, tokenizer_config.json (real: < 1 MiB) */
#define HQ_MAX_TOKENIZER_JSON (64ull << 20)   /* tokenizer.json (largest real: ~33 MiB) */
#define HQ_MAX_INDEX_JSON (64ull << 20)       /* *.index.json of a sharded checkpoint (real: < 10 MiB) */
#define HQ_MAX_PICKLE (1ull << 30)            /* data.pkl bytes */
#define HQ_MAX_PICKLE_STACK 1000000           /* VM stack entries */
#define HQ_MAX_PICKLE_MEMO 10000000           /* memo slots */
#define HQ_MAX_PICKLE_DEPTH 64                /* container nesting */
#define HQ_MAX_PICKLE_NODES 50000000          /* objects created by one pickle */
#define HQ_MAX_ZIP_ENTRIES 1000000            /* entries in a torch zip */
#define HQ_MAX_DEFLATE_RATIO 1000             /* uncompressed/compressed for deflated records */
#define HQ_MAX_GGUF_STRING (1ull << 30)       /* GGUF string bytes (ggml: 1 GiB) */
#define HQ_MAX_GGUF_ARRAY (1ull << 30)        /* GGUF array elements (ggml: 1 GiB) */
#define HQ_MAX_GGUF_KV 100000                 /* metadata pairs */
#define HQ_MAX_GGUF_ALIGN 65536               /* general.alignment upper bound */
#define HQ_MAX_SHARDS 10000                   /* files in a sharded checkpoint */
#define HQ_MAX_TEXT (1ull << 31)              /* evaluation / calibration text bytes */
#define HQ_MAX_VOCAB (1 << 24)                /* token ids in tokenizer.json / GGUF vocab_size (largest real: ~1M) */
/* model hyper-parameters of a GGUF (runtime/model.c); real models are far below */
#define HQ_MAX_EMBD 65536                     /* embedding_length d */
#define HQ_MAX_LAYERS 4096                    /* block_count */
#define HQ_MAX_HEADS 1024                     /* attention.head_count (and _kv) */
#define HQ_MAX_HEAD_DIM 1024                  /* attention.key_length */
#define HQ_MAX_FFN (1 << 20)                  /* feed_forward_length */
#define HQ_MAX_CTX (1 << 24)                  /* context_length */

#endif
