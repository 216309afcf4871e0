/* runtime/tok_pretok.c — normalizers and pre-tokenizers of HF tokenizers,
 * including hand-written matchers for the two split regexes in use:
 *   GPT-2  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   Llama-3 (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * Each matcher returns what a backtracking engine (Oniguruma, as used by
 * tokenizers) returns at a given start: the first alternative that matches,
 * greedy quantifiers backed off only as far as the rest of the alternative
 * needs. Character classes come from runtime/unicode.h. */
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"

/* ---- piece lists ---- */
void tk_plist_clear(tk_plist *l) { l->len = l->n = 0; }
void tk_plist_free(tk_plist *l) {
    hq_free(l->buf);
    hq_free(l->p);
    memset(l, 0, sizeof *l);
}

hq_status tk_plist_append(tk_plist *l, const char *s, uint64_t len) {
    if (l->len + len > l->cap) {
        uint64_t nc = l->cap ? l->cap : 256;
        while (nc < l->len + len) {
            if (!hq_mul_u64(nc, 2, &nc)) return HQ_ERR_NOMEM;
        }
        char *nb = hq_realloc(l->buf, nc);
        if (!nb) return HQ_ERR_NOMEM;
        l->buf = nb;
        l->cap = nc;
    }
    if (len) memcpy(l->buf + l->len, s, len);
    l->len += len;
    if (l->n) l->p[l->n - 1].len += len;
    return HQ_OK;
}

hq_status tk_plist_begin(tk_plist *l, bool at_start) {
    tk_piece *np = hq_grow(l->p, &l->pcap, l->n, sizeof *np, 64);
    if (!np) return HQ_ERR_NOMEM;
    l->p = np;
    l->p[l->n++] = (tk_piece){l->len, 0, at_start};
    return HQ_OK;
}

hq_status tk_plist_add(tk_plist *l, const char *s, uint64_t len, bool at_start) {
    hq_status st = tk_plist_begin(l, at_start);
    return st ? st : tk_plist_append(l, s, len);
}

int rt_utf8_enc(uint32_t cp, char out[4]) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

uint64_t rt_utf8_validate(const uint8_t *s, uint64_t n) {
    uint64_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        int k;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return i;
        if ((uint64_t)k > n - i - 1) return i;
        for (int j = 1; j <= k; j++) {
            if ((s[i + (uint64_t)j] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + (uint64_t)j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return i;
        i += (uint64_t)k + 1;
    }
    return n;
}

/* ---- byte-level alphabet (GPT-2 bytes_to_unicode): printable bytes stand
 * for themselves, the other 68 map to U+0100.. in byte order ---- */
/* The 68 non-printable bytes are 0..32, 127..160 and 173. */
uint32_t tk_byte_to_cp(uint8_t b) {
    if (b <= 32) return 256u + b;
    if (b >= 127 && b <= 160) return 256u + 33u + (b - 127u);
    if (b == 173) return 256u + 67u;
    return b;
}
int tk_cp_to_byte(uint32_t cp) {
    if (cp < 256) return (cp <= 32 || (cp >= 127 && cp <= 160) || cp == 173) ? -1 : (int)cp;
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 67) return (int)(cp - 256 - 33 + 127);
    return cp == 256 + 67 ? 173 : -1;
}

/* ---- matchers ---- */
typedef struct {
    uint32_t cp;
    unsigned f; /* RT_UNI_* */
    int len;    /* 0 past the end */
} tk_ch;
static inline tk_ch tk_at(const uint8_t *s, uint64_t n, uint64_t i) {
    tk_ch c = {0, 0, 0};
    if (i >= n) return c;
    c.len = rt_utf8_dec(s + i, n - i, &c.cp);
    c.f = rt_uni_flags(c.cp);
    return c;
}
#define TK_IS_P(c) ((c).len && !((c).f & (RT_UNI_WS | RT_UNI_L | RT_UNI_N))) /* [^\s\p{L}\p{N}] */
static uint64_t tk_run(const uint8_t *s, uint64_t n, uint64_t i, unsigned flag) {
    for (;;) {
        tk_ch c = tk_at(s, n, i);
        if (!c.len || !(c.f & flag)) return i;
        i += (uint64_t)c.len;
    }
}
static uint64_t tk_run_p(const uint8_t *s, uint64_t n, uint64_t i) {
    for (;;) {
        tk_ch c = tk_at(s, n, i);
        if (!TK_IS_P(c)) return i;
        i += (uint64_t)c.len;
    }
}
/* \s+(?!\S)|\s+ at pos (s[pos] is whitespace): the run, backed off by its
 * last char when it is followed by a non-space and is longer than one char */
static uint64_t tk_ws_tail(const uint8_t *s, uint64_t n, uint64_t pos) {
    uint64_t e = pos, last = pos;
    for (;;) {
        tk_ch c = tk_at(s, n, e);
        if (!c.len || !(c.f & RT_UNI_WS)) break;
        last = e;
        e += (uint64_t)c.len;
    }
    if (e == n || last == pos) return e;
    return last;
}

static bool tk_lc(uint8_t c, char want) { return c == want || c == want - 32; }

uint64_t tk_re_match_gpt2(const uint8_t *s, uint64_t n, uint64_t pos) {
    tk_ch c0 = tk_at(s, n, pos);
    if (!c0.len) return 0;
    if (c0.cp == '\'' && pos + 1 < n) { /* 's|'t|'re|'ve|'m|'ll|'d (case-sensitive) */
        uint8_t a = s[pos + 1], b = pos + 2 < n ? s[pos + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return pos + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return pos + 3;
    }
    uint64_t st = pos;
    tk_ch c = c0;
    if (c0.cp == ' ') { /* optional leading space of the next three */
        st = pos + 1;
        c = tk_at(s, n, st);
    }
    if (c.len && (c.f & RT_UNI_L)) return tk_run(s, n, st, RT_UNI_L);
    if (c.len && (c.f & RT_UNI_N)) return tk_run(s, n, st, RT_UNI_N);
    if (TK_IS_P(c)) return tk_run_p(s, n, st);
    if (c0.f & RT_UNI_WS) return tk_ws_tail(s, n, pos);
    return 0;
}

uint64_t tk_re_match_llama3(const uint8_t *s, uint64_t n, uint64_t pos, int max_digits) {
    tk_ch c0 = tk_at(s, n, pos);
    if (!c0.len) return 0;
    if (c0.cp == '\'' && pos + 1 < n) { /* (?i:'s|'t|'re|'ve|'m|'ll|'d); U+017F folds to s */
        uint8_t a = s[pos + 1], b = pos + 2 < n ? s[pos + 2] : 0;
        if (tk_lc(a, 's') || tk_lc(a, 't') || tk_lc(a, 'm') || tk_lc(a, 'd')) return pos + 2;
        if (a == 0xC5 && b == 0xBF) return pos + 3;
        if ((tk_lc(a, 'r') && tk_lc(b, 'e')) || (tk_lc(a, 'v') && tk_lc(b, 'e')) || (tk_lc(a, 'l') && tk_lc(b, 'l')))
            return pos + 3;
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (c0.f & RT_UNI_L) return tk_run(s, n, pos, RT_UNI_L);
    tk_ch c1 = tk_at(s, n, pos + (uint64_t)c0.len);
    if (c0.cp != '\r' && c0.cp != '\n' && !(c0.f & RT_UNI_N) && c1.len && (c1.f & RT_UNI_L))
        return tk_run(s, n, pos + (uint64_t)c0.len, RT_UNI_L);
    /* \p{N}{1,max} */
    if (c0.f & RT_UNI_N) {
        uint64_t e = pos;
        for (int k = 0; k < max_digits; k++) {
            tk_ch c = tk_at(s, n, e);
            if (!c.len || !(c.f & RT_UNI_N)) break;
            e += (uint64_t)c.len;
        }
        return e;
    }
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
    uint64_t st = (c0.cp == ' ' && TK_IS_P(c1)) ? pos + 1 : pos;
    if (TK_IS_P(tk_at(s, n, st))) {
        uint64_t e = tk_run_p(s, n, st);
        while (e < n && (s[e] == '\r' || s[e] == '\n')) e++;
        return e;
    }
    if (!(c0.f & RT_UNI_WS)) return 0;
    /* \s*[\r\n]+ : the whitespace run up to and including its last \r or \n */
    uint64_t e = pos, nl_end = 0;
    for (;;) {
        tk_ch c = tk_at(s, n, e);
        if (!c.len || !(c.f & RT_UNI_WS)) break;
        e += (uint64_t)c.len;
        if (c.cp == '\r' || c.cp == '\n') nl_end = e;
    }
    if (nl_end) return nl_end;
    return tk_ws_tail(s, n, pos);
}

/* ---- Split: matches -> pieces with one of HF's SplitDelimiterBehavior ---- */
typedef struct {
    uint64_t a, b;
    bool m;
} tk_span;
typedef struct {
    tk_span *v;
    uint64_t n, cap;
} tk_spans;
static hq_status tk_spans_push(tk_spans *x, uint64_t a, uint64_t b, bool m) {
    tk_span *nv = hq_grow(x->v, &x->cap, x->n, sizeof *nv, 64);
    if (!nv) return HQ_ERR_NOMEM;
    x->v = nv;
    x->v[x->n++] = (tk_span){a, b, m};
    return HQ_OK;
}

/* Finds all matches of pre-tokenizer p in s (HF Pattern::find_matches:
 * spans covering s, matches flagged). Char-predicate patterns (Digits,
 * Metaspace's split char) give one match per char. */
static hq_status tk_find(const tk_pre *p, const uint8_t *s, uint64_t n, tk_spans *sp) {
    sp->n = 0;
    uint64_t prev = 0, i = 0;
    hq_status st = HQ_OK;
    uint64_t rlen = p->kind == TK_PRE_METASPACE ? strlen(p->repl) : p->literal ? strlen(p->literal) : 0;
    while (i < n) {
        uint64_t e = 0;
        if (p->kind == TK_PRE_DIGITS) {
            tk_ch c = tk_at(s, n, i);
            if (c.f & RT_UNI_N) e = i + (uint64_t)c.len;
        } else if (p->kind == TK_PRE_METASPACE || (p->kind == TK_PRE_SPLIT && p->re == TK_RE_LITERAL)) {
            const char *lit = p->kind == TK_PRE_METASPACE ? p->repl : p->literal;
            if (rlen && rlen <= n - i && memcmp(s + i, lit, rlen) == 0) e = i + rlen;
        } else if (p->kind == TK_PRE_BYTELEVEL || p->re == TK_RE_GPT2) {
            e = tk_re_match_gpt2(s, n, i);
        } else {
            e = tk_re_match_llama3(s, n, i, p->max_digits);
        }
        if (e > i) {
            if (prev < i && (st = tk_spans_push(sp, prev, i, false))) return st;
            if ((st = tk_spans_push(sp, i, e, true))) return st;
            prev = i = e;
        } else {
            i += (uint64_t)rt_utf8_len(s[i]);
        }
    }
    if (prev < n && (st = tk_spans_push(sp, prev, n, false))) return st;
    return HQ_OK;
}

/* Applies the behaviour in place (HF NormalizedString::split). */
static void tk_behave(tk_spans *sp, tk_behavior b, bool invert) {
    if (invert)
        for (uint64_t k = 0; k < sp->n; k++) sp->v[k].m = !sp->v[k].m;
    uint64_t o = 0;
    bool prev_match = false;
    switch (b) {
    case TK_B_ISOLATED:
        return;
    case TK_B_REMOVED:
        for (uint64_t k = 0; k < sp->n; k++)
            if (!sp->v[k].m) sp->v[o++] = sp->v[k];
        break;
    case TK_B_MERGED_PREV:
        for (uint64_t k = 0; k < sp->n; k++) {
            tk_span x = sp->v[k];
            if (x.m && !prev_match && o > 0) sp->v[o - 1].b = x.b;
            else sp->v[o++] = x;
            prev_match = x.m;
        }
        break;
    case TK_B_MERGED_NEXT: /* walk backwards, write from the end */
        o = sp->n;
        for (uint64_t k = sp->n; k-- > 0;) {
            tk_span x = sp->v[k];
            if (x.m && !prev_match && o < sp->n) sp->v[o].a = x.a;
            else sp->v[--o] = x;
            prev_match = x.m;
        }
        memmove(sp->v, sp->v + o, (sp->n - o) * sizeof *sp->v);
        o = sp->n - o;
        break;
    case TK_B_CONTIGUOUS:
        for (uint64_t k = 0; k < sp->n; k++) {
            tk_span x = sp->v[k];
            if (x.m == prev_match && o > 0) sp->v[o - 1].b = x.b;
            else sp->v[o++] = x;
            prev_match = x.m;
        }
        break;
    }
    sp->n = o;
}

/* ---- normalizers ---- */
/* Replaces every (non-overlapping, leftmost) occurrence of pat by rep. */
static hq_status tk_replace_into(tk_plist *out, const char *s, uint64_t len, const char *pat, const char *rep) {
    uint64_t pl = strlen(pat), rl = strlen(rep), last = 0;
    hq_status st = HQ_OK;
    if (pl == 0) return tk_plist_append(out, s, len);
    for (uint64_t i = 0; i + pl <= len;) {
        if (memcmp(s + i, pat, pl) == 0) {
            if ((st = tk_plist_append(out, s + last, i - last)) || (st = tk_plist_append(out, rep, rl))) return st;
            i += pl;
            last = i;
        } else {
            i++;
        }
    }
    return tk_plist_append(out, s + last, len - last);
}

hq_status tk_normalize(const tk_norm *ns, int n_norm, const char *s, uint64_t len, tk_plist *out) {
    tk_plist a = {0}, b = {0};
    hq_status st = HQ_OK;
    tk_plist_clear(out);
    if ((st = tk_plist_add(&a, s, len, true))) goto done;
    for (int k = 0; k < n_norm; k++) {
        const tk_norm *nm = &ns[k];
        tk_plist_clear(&b);
        if ((st = tk_plist_begin(&b, true))) goto done;
        switch (nm->kind) {
        case TK_NORM_PREPEND: /* only a non-empty string gets the prefix */
            if (a.len && (st = tk_plist_append(&b, nm->a, strlen(nm->a)))) goto done;
            st = tk_plist_append(&b, a.buf, a.len);
            break;
        case TK_NORM_REPLACE:
            st = tk_replace_into(&b, a.buf, a.len, nm->a, nm->b);
            break;
        case TK_NORM_NFC:
            st = HQ_ERR_UNSUPPORTED; /* refused at load time */
            break;
        }
        if (st) goto done;
        tk_plist t = a;
        a = b;
        b = t;
    }
    st = tk_plist_add(out, a.buf, a.len, true);
done:
    tk_plist_free(&a);
    tk_plist_free(&b);
    return st;
}

/* ---- pre-tokenizers ---- */
static hq_status tk_pre_one(const tk_pre *p, const tk_plist *in, tk_plist *out, tk_spans *sp) {
    hq_status st = HQ_OK;
    tk_plist_clear(out);
    for (uint64_t k = 0; k < in->n; k++) {
        const char *s = in->buf + in->p[k].off;
        uint64_t n = in->p[k].len;
        bool at0 = in->p[k].at_start;
        const char *src = s;
        tk_plist pre = {0}; /* piece text after the per-piece rewrite */
        if (p->kind == TK_PRE_BYTELEVEL && p->add_prefix_space && (n == 0 || s[0] != ' ')) {
            if ((st = tk_plist_add(&pre, " ", 1, at0)) || (st = tk_plist_append(&pre, s, n))) goto piece_done;
            src = pre.buf;
            n = pre.len;
        } else if (p->kind == TK_PRE_METASPACE) {
            uint64_t rl = strlen(p->repl);
            if ((st = tk_plist_begin(&pre, at0))) goto piece_done;
            bool starts = n >= 1 && s[0] == ' '; /* becomes the replacement */
            if (!starts && n >= rl && memcmp(s, p->repl, rl) == 0) starts = true;
            bool prepend = p->scheme == TK_PREPEND_ALWAYS || (p->scheme == TK_PREPEND_FIRST && at0);
            if (prepend && !starts && (st = tk_plist_append(&pre, p->repl, rl))) goto piece_done;
            if ((st = tk_replace_into(&pre, s, n, " ", p->repl))) goto piece_done;
            src = pre.buf;
            n = pre.len;
        }
        bool do_split = p->kind == TK_PRE_SPLIT || p->kind == TK_PRE_DIGITS || (p->kind == TK_PRE_METASPACE && p->split) ||
                        (p->kind == TK_PRE_BYTELEVEL && p->use_regex);
        if (do_split && n > 0) {
            if ((st = tk_find(p, (const uint8_t *)src, n, sp))) goto piece_done;
            tk_behavior b = p->kind == TK_PRE_SPLIT      ? p->behavior
                            : p->kind == TK_PRE_DIGITS   ? (p->individual ? TK_B_ISOLATED : TK_B_CONTIGUOUS)
                            : p->kind == TK_PRE_METASPACE ? TK_B_MERGED_NEXT
                                                          : TK_B_ISOLATED;
            tk_behave(sp, b, p->kind == TK_PRE_SPLIT && p->invert);
        } else {
            sp->n = 0;
            if (n > 0 && (st = tk_spans_push(sp, 0, n, false))) goto piece_done;
        }
        for (uint64_t j = 0; j < sp->n; j++) {
            uint64_t a = sp->v[j].a, len = sp->v[j].b - a;
            if (len == 0) continue;
            if ((st = tk_plist_begin(out, at0 && a == 0))) goto piece_done;
            if (p->kind == TK_PRE_BYTELEVEL) { /* every byte becomes its alphabet char */
                for (uint64_t i = 0; i < len; i++) {
                    char u[4];
                    int ul = rt_utf8_enc(tk_byte_to_cp((uint8_t)src[a + i]), u);
                    if ((st = tk_plist_append(out, u, (uint64_t)ul))) goto piece_done;
                }
            } else if ((st = tk_plist_append(out, src + a, len))) {
                goto piece_done;
            }
        }
    piece_done:
        tk_plist_free(&pre);
        if (st) return st;
    }
    return HQ_OK;
}

hq_status tk_pretokenize(const tk_pre *ps, int n_pre, tk_plist *in, tk_plist *out) {
    tk_spans sp = {0};
    hq_status st = HQ_OK;
    if (n_pre == 0) { /* the whole piece goes to the model */
        tk_plist_clear(out);
        for (uint64_t k = 0; k < in->n && !st; k++)
            if (in->p[k].len) st = tk_plist_add(out, in->buf + in->p[k].off, in->p[k].len, in->p[k].at_start);
        hq_free(sp.v);
        return st;
    }
    for (int k = 0; k < n_pre && !st; k++) {
        st = tk_pre_one(&ps[k], in, out, &sp);
        if (!st && k + 1 < n_pre) { /* out becomes the next input */
            tk_plist t = *in;
            *in = *out;
            *out = t;
        }
    }
    hq_free(sp.v);
    return st;
}
