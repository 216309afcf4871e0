/* runtime/tok_internal.h — internals shared by the tokenizer's files:
 *   tok_json.c    tokenizer.json loading: model, normalizers, pre-tokenizers,
 *                 added tokens, post-processor, decoder
 *   tokenizer.c   the encode pipeline (added-token extraction, BPE cache,
 *                 post-processor ids), token_to_piece
 *   tok_bpe.c     string/pair hash maps and the BPE merge loop
 *   tok_pretok.c  normalizers, pre-tokenizers and the hand-written matchers
 *                 for the GPT-2 / Llama-3 split regexes
 * Pipeline (as HF tokenizers' Tokenizer::encode):
 *   raw text -> split on non-normalized added tokens -> per piece: normalize
 *   -> split on normalized added tokens -> pre-tokenizers -> BPE per piece
 *   -> post-processor (BOS/EOS when add_special). */
#ifndef HQ_TOK_INTERNAL_H
#define HQ_TOK_INTERNAL_H
#include "../core/hq.h"
#include "tokenizer.h"

/* ---- string -> int32 map (open addressing; keys are borrowed) ---- */
typedef struct {
    const char *s;
    uint32_t len;
    uint32_t hash;
    int32_t val;
} tk_kv;
typedef struct {
    tk_kv *e;
    uint64_t cap; /* power of two */
    uint64_t n;
} tk_map;
hq_status tk_map_init(tk_map *m, uint64_t n_expected);
void tk_map_free(tk_map *m);
int32_t tk_map_get(const tk_map *m, const char *s, uint64_t len); /* -1 if absent */
/* inserts or overwrites; *had (may be NULL) tells whether the key existed */
void tk_map_put(tk_map *m, const char *s, uint32_t len, int32_t val, bool *had);

/* ---- (id, id) -> (rank, new id) ---- */
typedef struct {
    uint64_t *key; /* (a << 32) | b, TK_PAIR_EMPTY when free */
    uint32_t *rank;
    int32_t *new_id;
    uint64_t cap;
} tk_pairmap;
#define TK_PAIR_EMPTY UINT64_MAX
hq_status tk_pairmap_init(tk_pairmap *m, uint64_t n_expected);
void tk_pairmap_free(tk_pairmap *m);
void tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id);
bool tk_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *new_id);

/* ---- growable id vector ---- */
typedef struct {
    int32_t *v;
    uint64_t n, cap;
} tk_ids;
hq_status tk_ids_push(tk_ids *x, int32_t id);

/* ---- normalizers and pre-tokenizers (flattened Sequences) ---- */
typedef enum { TK_NORM_PREPEND, TK_NORM_REPLACE, TK_NORM_NFC } tk_norm_kind;
typedef struct {
    tk_norm_kind kind;
    char *a; /* PREPEND: text; REPLACE: pattern */
    char *b; /* REPLACE: content */
} tk_norm;

typedef enum { TK_PRE_BYTELEVEL, TK_PRE_SPLIT, TK_PRE_METASPACE, TK_PRE_DIGITS } tk_pre_kind;
typedef enum { TK_RE_GPT2, TK_RE_LLAMA3, TK_RE_LITERAL } tk_re_kind;
typedef enum { TK_B_REMOVED, TK_B_ISOLATED, TK_B_MERGED_PREV, TK_B_MERGED_NEXT, TK_B_CONTIGUOUS } tk_behavior;
typedef enum { TK_PREPEND_ALWAYS, TK_PREPEND_FIRST, TK_PREPEND_NEVER } tk_prepend;
typedef struct {
    tk_pre_kind kind;
    /* BYTELEVEL */
    bool add_prefix_space, use_regex;
    /* SPLIT */
    tk_re_kind re;
    int max_digits; /* LLAMA3: \p{N}{1,max_digits} */
    char *literal;  /* LITERAL pattern */
    tk_behavior behavior;
    bool invert;
    /* METASPACE: replacement char (UTF-8), scheme, split */
    char repl[8];
    tk_prepend scheme;
    bool split;
    /* DIGITS */
    bool individual;
} tk_pre;

/* A list of pieces over one byte buffer. at_start: the piece begins at
 * offset 0 of the original text (Metaspace prepend_scheme "first"). */
typedef struct {
    uint64_t off, len;
    bool at_start;
} tk_piece;
typedef struct {
    char *buf;
    uint64_t len, cap;
    tk_piece *p;
    uint64_t n, pcap;
} tk_plist;
void tk_plist_clear(tk_plist *l);
void tk_plist_free(tk_plist *l);
hq_status tk_plist_add(tk_plist *l, const char *s, uint64_t len, bool at_start);
/* starts a piece whose bytes are appended with tk_plist_append */
hq_status tk_plist_begin(tk_plist *l, bool at_start);
hq_status tk_plist_append(tk_plist *l, const char *s, uint64_t len);

/* Normalizes s into out (cleared first) as one piece. */
hq_status tk_normalize(const tk_norm *ns, int n_norm, const char *s, uint64_t len, tk_plist *out);
/* Runs the pre-tokenizer sequence over in (pieces), result in out; tmp is
 * scratch. in is consumed (cleared). */
hq_status tk_pretokenize(const tk_pre *ps, int n_pre, tk_plist *in, tk_plist *out);
/* Regex matchers: end of the match starting exactly at pos, or 0 if none. */
uint64_t tk_re_match_gpt2(const uint8_t *s, uint64_t n, uint64_t pos);
uint64_t tk_re_match_llama3(const uint8_t *s, uint64_t n, uint64_t pos, int max_digits);
/* bytes_to_unicode (GPT-2): the code point standing for byte b */
uint32_t tk_byte_to_cp(uint8_t b);
int tk_cp_to_byte(uint32_t cp); /* -1 if cp is not a byte-level char */

/* ---- model ---- */
typedef struct {
    tk_map vocab;
    tk_pairmap merges;
    int32_t unk_id; /* -1: none */
    bool fuse_unk, byte_fallback, ignore_merges;
    char *cont_prefix, *eow_suffix; /* NULL when unset */
    int32_t byte_ids[256];          /* "<0xNN>" ids, -1 when absent */
    /* the vocab never holds U+2581 after a token's first char, so no merge
     * can cross the boundary before a U+2581: words are encoded piecewise
     * there (same ids, linear time for SentencePiece-style whole lines) */
    bool split_meta;
} tk_bpe;
/* Tokenizes one pre-token (HF BPE::tokenize) appending ids to out. */
hq_status tk_bpe_encode(const tk_bpe *m, const char *s, uint64_t len, tk_ids *out, char *err);

/* ---- added tokens ---- */
typedef struct {
    char *content;  /* as matched (normalized content when normalized) */
    uint32_t len;
    int32_t id;
    bool single_word, lstrip, rstrip, normalized, special;
} tk_added;

struct rt_tokenizer {
    char *label;
    char *pool; /* model token strings */
    int32_t n_vocab;
    const char **id_str; /* decode text per id (added tokens' content override) */
    uint32_t *id_len;
    bool *id_added; /* id is an added token */
    tk_bpe bpe;
    tk_added *added;
    int n_added;
    /* matching sets: [0] non-normalized tokens (matched in the raw text),
     * [1] normalized ones (matched in normalized text); set_order[k] lists
     * added[] indexes grouped by first byte, set_first[k][b]..[b+1] */
    int *set_order[2];
    int32_t set_first[2][257];
    tk_norm *norm;
    int n_norm;
    tk_pre *pre;
    int n_pre;
    int32_t *post_pre, *post_suf; /* ids added before / after the sequence */
    int n_post_pre, n_post_suf;
    bool dec_bytelevel, dec_bytefallback, dec_space; /* dec_space: '▁' -> ' ' */
    int32_t bos, eos;
};
#endif
