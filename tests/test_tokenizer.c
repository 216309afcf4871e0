/* tests/test_tokenizer.c — rt_tokenize against ids recorded from HF
 * `tokenizers` (tools/make_tokenizer_fixtures.py): short edge cases, a Unicode
 * stress file, prose, data/eval.txt, for byte-level (GPT-2 / Llama-3 / Qwen2
 * style, several Split behaviours) and SentencePiece-style (byte fallback,
 * unk, Metaspace) tokenizers and the bundled model's tokenizer. Also checks
 * token_to_piece round trips against HF decode, error paths (invalid UTF-8,
 * unsupported components, allocation failures) and prints throughput. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/hq.h"
#include "../runtime/tokenizer.h"
#include "test.h"

static const char *k_fixtures[] = {"gpt2",       "gpt2_prefix", "llama3", "qwen2",  "behaviors1",    "behaviors2",
                                   "behaviors3", "sp",          "sp_unk", "sp_meta", "sp_meta_split", "cheems_tiny"};

/* FNV-1a 64 as hex: detects inputs changed after the fixtures were made */
static void fnv_hex(const char *s, uint64_t n, char out[17]) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static rt_tokenizer *load_tok_hash(const char *path, char *err, char hash[17]) {
    char *buf;
    uint64_t len;
    rt_tokenizer *t = NULL;
    if (hq_read_file(path, 64u << 20, &buf, &len, err) != HQ_OK) return NULL;
    if (hash) fnv_hex(buf, len, hash);
    if (rt_tokenizer_load(buf, len, path, &t, err) != HQ_OK) t = NULL;
    hq_free(buf);
    return t;
}
static rt_tokenizer *load_tok(const char *path, char *err) { return load_tok_hash(path, err, NULL); }

/* concatenated pieces of ids (as a decoder would give them) */
static char *pieces(const rt_tokenizer *t, const int32_t *ids, uint64_t n, bool strip_first, uint64_t *out_len) {
    uint64_t cap = n * 16 + 16, len = 0;
    char *s = malloc(cap);
    for (uint64_t i = 0; i < n; i++) {
        int w;
        while ((w = rt_token_to_piece(t, ids[i], s + len, (int)(cap - len))) < 0) {
            if (cap - len > 4096) { free(s); return NULL; } /* a single piece never needs this much */
            cap *= 2;
            s = realloc(s, cap);
        }
        len += (uint64_t)w;
    }
    if (strip_first && len && s[0] == ' ') {
        memmove(s, s + 1, len - 1);
        len--;
    }
    *out_len = len;
    return s;
}

static int check_ids(const char *what, const int32_t *got, uint64_t ng, const cJSON *want) {
    uint64_t nw = (uint64_t)cJSON_GetArraySize(want);
    const cJSON *e = want->child;
    for (uint64_t i = 0; i < ng || i < nw; i++, e = e ? e->next : NULL) {
        int32_t w = e ? (int32_t)e->valuedouble : -1;
        int32_t g = i < ng ? got[i] : -1;
        if (w != g) {
            fprintf(stderr, "  %s: first difference at index %llu: got %d, want %d (lengths %llu vs %llu)\n", what,
                    (unsigned long long)i, g, w, (unsigned long long)ng, (unsigned long long)nw);
            return 0;
        }
    }
    return 1;
}

static void run_fixture(const char *name) {
    char path[256], err[HQ_ERR_LEN] = "";
    snprintf(path, sizeof path, FIXTURE("tokenizer/%s.expected.json"), name);
    char *buf;
    uint64_t len;
    if (hq_read_file(path, 64u << 20, &buf, &len, err) != HQ_OK) {
        CHECK(0, "%s", err);
        return;
    }
    cJSON *exp = cJSON_ParseWithLength(buf, len);
    hq_free(buf);
    CHECK(exp != NULL, "%s: bad JSON", path);
    if (!exp) return;
    const char *tok_path = cJSON_GetObjectItem(exp, "tokenizer")->valuestring;
    bool bytelevel = cJSON_IsTrue(cJSON_GetObjectItem(exp, "bytelevel"));
    bool strip = cJSON_IsTrue(cJSON_GetObjectItem(exp, "strip_first_space"));
    char th[17] = "";
    rt_tokenizer *t = load_tok_hash(tok_path, err, th);
    CHECK(t != NULL, "%s: %s", name, err);
    if (!t) {
        cJSON_Delete(exp);
        return;
    }
    const cJSON *tj = cJSON_GetObjectItem(exp, "tokenizer_fnv1a64");
    if (!tj || strcmp(tj->valuestring, th) != 0) {
        CHECK(0, "%s changed since %s was made: rerun tools/make_tokenizer_fixtures.py", tok_path, path);
        rt_tokenizer_free(t);
        cJSON_Delete(exp);
        return;
    }
    CHECK(rt_tokenizer_vocab_size(t) == (int32_t)cJSON_GetObjectItem(exp, "vocab_size")->valuedouble,
          "%s: vocab size %d", name, rt_tokenizer_vocab_size(t));
    CHECK(rt_tokenizer_bos(t) == (int32_t)cJSON_GetObjectItem(exp, "bos")->valuedouble &&
              rt_tokenizer_eos(t) == (int32_t)cJSON_GetObjectItem(exp, "eos")->valuedouble,
          "%s: bos %d eos %d", name, rt_tokenizer_bos(t), rt_tokenizer_eos(t));
    int n_ok = 0, n_cases = 0, n_dec_ok = 0, n_dec = 0, n_text = 0, n_text_want = 0;
    for (const cJSON *c = cJSON_GetObjectItem(exp, "cases")->child; c; c = c->next) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        bool add = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_special"));
        int32_t *ids;
        uint64_t n;
        hq_status st = rt_tokenize(t, text, strlen(text), add, &ids, &n, err);
        n_cases++;
        char what[160];
        snprintf(what, sizeof what, "%s case '%.60s' add_special=%d", name, text, add);
        if (st != HQ_OK) {
            fprintf(stderr, "  %s: %s\n", what, err);
            continue;
        }
        n_ok += check_ids(what, ids, n, cJSON_GetObjectItem(c, "ids"));
        const cJSON *dec = cJSON_GetObjectItem(c, "decoded");
        if (dec) {
            uint64_t pl;
            char *p = pieces(t, ids, n, strip, &pl);
            const char *want = dec->valuestring;
            bool ok = p && pl == strlen(want) && memcmp(p, want, pl) == 0;
            if (bytelevel && !strcmp(name, "gpt2") && !strstr(text, "<|sep|>")) { /* only <|sep|> strips spaces */
                n_text_want++;
                n_text += p && pl == strlen(text) && memcmp(p, text, pl) == 0;
            }
            if (!ok) fprintf(stderr, "  %s: pieces '%.*s' != decoded '%s'\n", what, p ? (int)pl : 0, p ? p : "", want);
            n_dec++;
            n_dec_ok += ok;
            free(p);
        }
        hq_free(ids);
    }
    CHECK(n_ok == n_cases, "%s: %d of %d short cases match HF ids", name, n_ok, n_cases);
    CHECK(n_dec_ok == n_dec, "%s: %d of %d short cases decode like HF", name, n_dec_ok, n_dec);
    /* byte-level without prefix space: decoding gives the text back, special tokens included */
    CHECK(n_text == n_text_want, "%s: %d of %d short cases decode to the input text", name, n_text, n_text_want);
    for (const cJSON *f = cJSON_GetObjectItem(exp, "files")->child; f; f = f->next) {
        const char *fp = cJSON_GetObjectItem(f, "path")->valuestring;
        bool add = cJSON_IsTrue(cJSON_GetObjectItem(f, "add_special"));
        char *text;
        uint64_t tl;
        if (hq_read_file(fp, 64u << 20, &text, &tl, err) != HQ_OK) {
            CHECK(0, "%s", err);
            continue;
        }
        char hs[17];
        fnv_hex(text, tl, hs);
        const cJSON *fh = cJSON_GetObjectItem(f, "fnv1a64");
        if (!fh || strcmp(fh->valuestring, hs) != 0) {
            CHECK(0, "%s changed since %s was made: rerun tools/make_tokenizer_fixtures.py", fp, path);
            hq_free(text);
            continue;
        }
        int32_t *ids;
        uint64_t n;
        hq_status st = rt_tokenize(t, text, tl, add, &ids, &n, err);
        char what[200];
        snprintf(what, sizeof what, "%s on %s add_special=%d", name, fp, add);
        CHECK(st == HQ_OK, "%s: %s", what, err);
        if (st == HQ_OK) {
            CHECK(check_ids(what, ids, n, cJSON_GetObjectItem(f, "ids")), "%s: ids equal HF (%llu ids)", what,
                  (unsigned long long)n);
            const cJSON *dec = cJSON_GetObjectItem(f, "decoded_hex");
            if (!add) {
                uint64_t pl, wl = tl;
                char *p = pieces(t, ids, n, strip, &pl), *want = text, *hex = NULL;
                if (dec) { /* HF decode differs from the text (prefix space, stripped spaces...) */
                    wl = strlen(dec->valuestring) / 2;
                    want = hex = malloc(wl + 1);
                    for (uint64_t i = 0; i < wl; i++) {
                        unsigned v;
                        sscanf(dec->valuestring + 2 * i, "%2x", &v);
                        hex[i] = (char)v;
                    }
                }
                CHECK(p && pl == wl && memcmp(p, want, pl) == 0, "%s: token_to_piece round trip%s", what,
                      dec ? " (HF decode)" : " (the text itself)");
                free(p);
                free(hex);
            }
            hq_free(ids);
        }
        hq_free(text);
    }
    rt_tokenizer_free(t);
    cJSON_Delete(exp);
}

/* a minimal tokenizer.json with one component replaced */
static hq_status load_snippet(const char *model_extra, const char *norm, const char *pre, char *err) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[],"
             "\"normalizer\":%s,\"pre_tokenizer\":%s,\"post_processor\":null,\"decoder\":null,"
             "\"model\":{\"type\":\"BPE\",%s\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}}",
             norm, pre, model_extra);
    rt_tokenizer *t = NULL;
    hq_status st = rt_tokenizer_load(json, strlen(json), "snippet", &t, err);
    rt_tokenizer_free(t);
    return st;
}

static void test_errors(void) {
    char err[HQ_ERR_LEN];
    CHECK(load_snippet("", "null", "null", err) == HQ_OK, "plain snippet loads: %s", err);
    CHECK(load_snippet("", "{\"type\":\"NFC\"}", "null", err) == HQ_ERR_UNSUPPORTED && strstr(err, "NFC"),
          "NFC refused: %s", err);
    CHECK(load_snippet("", "{\"type\":\"Lowercase\"}", "null", err) == HQ_ERR_UNSUPPORTED && strstr(err, "Lowercase"),
          "Lowercase refused: %s", err);
    CHECK(load_snippet("", "null", "{\"type\":\"Whitespace\"}", err) == HQ_ERR_UNSUPPORTED && strstr(err, "Whitespace"),
          "Whitespace pre-tokenizer refused: %s", err);
    CHECK(load_snippet("", "null", "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\d+\"},\"behavior\":\"Isolated\"}",
                       err) == HQ_ERR_UNSUPPORTED && strstr(err, "regex"),
          "unknown Split regex refused: %s", err);
    CHECK(load_snippet("\"dropout\":0.1,", "null", "null", err) == HQ_ERR_UNSUPPORTED && strstr(err, "dropout"),
          "dropout refused: %s", err);
    CHECK(load_snippet("\"unk_token\":\"<unk>\",", "null", "null", err) == HQ_ERR_FORMAT, "missing unk: %s", err);
    const char *wp = "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}";
    rt_tokenizer *t = NULL;
    CHECK(rt_tokenizer_load(wp, strlen(wp), "wp", &t, err) == HQ_ERR_UNSUPPORTED && strstr(err, "WordPiece"),
          "WordPiece refused: %s", err);
    CHECK(rt_tokenizer_load("{\"model\":", 9, "trunc", &t, err) == HQ_ERR_FORMAT, "truncated JSON: %s", err);
    const char *badm = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a z\"]}}";
    CHECK(rt_tokenizer_load(badm, strlen(badm), "badm", &t, err) == HQ_ERR_FORMAT && strstr(err, "'z'"),
          "merge with unknown token: %s", err);
    const char *big = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":2000000000},\"merges\":[]}}";
    CHECK(rt_tokenizer_load(big, strlen(big), "big", &t, err) == HQ_ERR_LIMIT, "huge id refused: %s", err);
    const char *pad = "{\"padding\":{\"strategy\":\"BatchLongest\"},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}";
    CHECK(rt_tokenizer_load(pad, strlen(pad), "pad", &t, err) == HQ_ERR_UNSUPPORTED, "padding refused: %s", err);

    t = load_tok(FIXTURE("tokenizer/gpt2.json"), err);
    CHECK(t != NULL, "gpt2 loads: %s", err);
    if (!t) return;
    static const struct {
        const char *s;
        uint64_t off;
    } bad[] = {{"abc\xff", 3}, {"\xc0\x80", 0}, {"ok \xed\xa0\x80", 3}, {"\xe2\x82", 0}, {"x\xf4\x90\x80\x80", 1},
               {"\x80", 0},    {"ab\xe2\x28\xa1", 2}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        int32_t *ids = NULL;
        uint64_t n;
        char want[64];
        snprintf(want, sizeof want, "offset %llu", (unsigned long long)bad[k].off);
        hq_status st = rt_tokenize(t, bad[k].s, strlen(bad[k].s), false, &ids, &n, err);
        CHECK(st == HQ_ERR_FORMAT && strstr(err, want) && !ids, "invalid UTF-8 case %zu: %s", k, err);
    }
    char piece[4];
    CHECK(rt_token_to_piece(t, -1, piece, 4) == -1 && rt_token_to_piece(t, 1 << 30, piece, 4) == -1, "bad ids");
    int32_t id_long = -1;
    for (int32_t i = 0; i < rt_tokenizer_vocab_size(t) && id_long < 0; i++) {
        char tmp[64];
        if (rt_token_to_piece(t, i, tmp, 64) > 4) id_long = i;
    }
    CHECK(id_long >= 0 && rt_token_to_piece(t, id_long, piece, 4) == -1, "piece longer than cap gives -1");
    rt_tokenizer_free(t);
}

/* hostile / odd tokenizer.json: a clean status, never a crash (ASan) */
static void test_hostile(void) {
    static const char *docs[] = {
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0.5},\"merges\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"0\"},\"merges\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[[\"a\"]]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a a a\"]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[7]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":[],\"merges\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":{}}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"a\":1},\"merges\":[]},"
        "\"added_tokens\":[{\"id\":5,\"content\":\"\"},{\"id\":9,\"content\":\"zz\",\"special\":true}]}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":[{\"id\":1}]}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":"
        "[{\"id\":1,\"content\":\"x\"},{\"id\":2,\"content\":\"x\"}]}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"post_processor\":{\"type\":"
        "\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],"
        "\"special_tokens\":{\"<s>\":{\"ids\":[99]}}}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"post_processor\":{\"type\":"
        "\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"B\"}}],\"special_tokens\":{}}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":"
        "\"Metaspace\",\"replacement\":\"ab\"}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":"
        "\"Split\",\"pattern\":{\"String\":\"\"},\"behavior\":\"Isolated\"}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":"
        "\"Split\",\"pattern\":{\"String\":\"a\"},\"behavior\":\"Sideways\"}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"normalizer\":{\"type\":"
        "\"Replace\",\"pattern\":{\"String\":\"\"},\"content\":\"x\"}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"decoder\":{\"type\":\"WordPiece\"}}",
        "[1,2,3]",
        "{}",
    };
    int clean = 0, n = (int)(sizeof docs / sizeof docs[0]);
    char err[HQ_ERR_LEN];
    for (int k = 0; k < n; k++) {
        rt_tokenizer *t = NULL;
        err[0] = 0;
        hq_status st = rt_tokenizer_load(docs[k], strlen(docs[k]), "hostile", &t, err);
        if (st == HQ_OK) { /* loads: it must still tokenize cleanly */
            int32_t *ids = NULL;
            uint64_t ni;
            st = rt_tokenize(t, "aa zz a", 7, true, &ids, &ni, err);
            hq_free(ids);
            rt_tokenizer_free(t);
            clean += st == HQ_OK || st == HQ_ERR_FORMAT;
        } else {
            clean += (st == HQ_ERR_FORMAT || st == HQ_ERR_UNSUPPORTED || st == HQ_ERR_LIMIT) && err[0] && !t;
        }
    }
    CHECK(clean == n, "hostile tokenizer.json: %d of %d handled cleanly", clean, n);
    /* nesting: Sequence in Sequence ... */
    char deep[4096] = "{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]},\"pre_tokenizer\":";
    for (int k = 0; k < 20; k++) strcat(deep, "{\"type\":\"Sequence\",\"pretokenizers\":[");
    strcat(deep, "{\"type\":\"Digits\"}");
    for (int k = 0; k < 20; k++) strcat(deep, "]}");
    strcat(deep, "}");
    rt_tokenizer *t = NULL;
    CHECK(rt_tokenizer_load(deep, strlen(deep), "deep", &t, err) == HQ_ERR_LIMIT, "deep nesting: %s", err);
    /* byte mutations of real files: any outcome but a crash or a wrong status */
    static const char *files[] = {FIXTURE("tokenizer/gpt2.json"), FIXTURE("tokenizer/sp.json"),
                                  FIXTURE("tokenizer/behaviors2.json")};
    const char *text = "Hi <s> there's 123 \xe2\x96\x81x <|sep|> \xf0\x9f\x91\x8d hyquant";
    uint32_t rng = 12345;
    int runs = 0, ok = 0;
    for (int f = 0; f < 3; f++) {
        char *buf;
        uint64_t len;
        if (hq_read_file(files[f], 1 << 20, &buf, &len, err) != HQ_OK) continue;
        char *m = malloc(len);
        for (int it = 0; it < 150; it++) {
            memcpy(m, buf, len);
            int nflip = 1 + it % 3;
            for (int k = 0; k < nflip; k++) {
                rng = rng * 1103515245u + 12345u;
                uint64_t at = (rng >> 8) % len;
                rng = rng * 1103515245u + 12345u;
                static const char pool[] = "\"{}[],:0123456789 aZ\\\xff";
                m[at] = pool[(rng >> 16) % (sizeof pool - 1)];
            }
            hq_status st = rt_tokenizer_load(m, len, "mutant", &t, err);
            runs++;
            if (st == HQ_OK) {
                int32_t *ids = NULL;
                uint64_t nid;
                st = rt_tokenize(t, text, strlen(text), true, &ids, &nid, err);
                hq_free(ids);
                rt_tokenizer_free(t);
                t = NULL;
            }
            ok += st == HQ_OK || st == HQ_ERR_FORMAT || st == HQ_ERR_UNSUPPORTED || st == HQ_ERR_LIMIT;
        }
        free(m);
        hq_free(buf);
    }
    CHECK(runs == 450 && ok == runs, "mutated tokenizer.json: %d of %d runs ended cleanly", ok, runs);
}

/* every allocation in load + tokenize may fail: no crash, no leak (ASan), an error */
static void test_alloc_failures(void) {
    char *buf, err[HQ_ERR_LEN];
    uint64_t len;
    if (hq_read_file(FIXTURE("tokenizer/sp.json"), 64u << 20, &buf, &len, err) != HQ_OK) {
        CHECK(0, "%s", err);
        return;
    }
    const char *text = "Hello <s> wörld 漢字 \xf0\x9f\x91\x8d hyquant  x";
    int failures = 0, bad = 0;
    for (int64_t at = 1; at < 400; at++) {
        hq_alloc_fail_at(at); /* also resets the allocation counter */
        rt_tokenizer *t = NULL;
        hq_status st = rt_tokenizer_load(buf, len, "sp.json", &t, err);
        if (st == HQ_OK) {
            int32_t *ids = NULL;
            uint64_t n;
            st = rt_tokenize(t, text, strlen(text), true, &ids, &n, err);
            if (st == HQ_OK) hq_free(ids);
            else if (st != HQ_ERR_NOMEM) bad++;
            rt_tokenizer_free(t);
        } else if (st != HQ_ERR_NOMEM) {
            bad++;
        }
        if (st != HQ_OK) failures++;
        int64_t used = hq_alloc_count();
        hq_alloc_fail_at(0);
        if (used < at) break; /* the run made fewer allocations: every one has been failed once */
    }
    hq_alloc_fail_at(0);
    CHECK(failures > 10 && bad == 0, "allocation failures: %d injected, %d with a wrong status", failures, bad);
    hq_free(buf);
}

/* CPU time of this process: the shared build machine makes wall time noisy */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void bench(const char *name, const char *tok_path) {
    char err[HQ_ERR_LEN], *prose;
    uint64_t pl;
    rt_tokenizer *t = load_tok(tok_path, err);
    if (!t || hq_read_file(FIXTURE("tokenizer/prose.txt"), 1 << 20, &prose, &pl, err) != HQ_OK) {
        CHECK(0, "bench %s: %s", name, err);
        rt_tokenizer_free(t);
        return;
    }
    const char *san = getenv("HQ_SANITIZED");
    uint64_t reps = (san && *san == '1') ? 4 : 100; /* ~3 MB normally */
    char *big = malloc(pl * reps);
    for (uint64_t r = 0; r < reps; r++) memcpy(big + r * pl, prose, pl);
    int32_t *ids;
    uint64_t n;
    double t0 = hq_now(), c0 = cpu_now();
    hq_status st = rt_tokenize(t, big, pl * reps, false, &ids, &n, err);
    double dt = hq_now() - t0, dc = cpu_now() - c0;
    CHECK(st == HQ_OK, "bench %s: %s", name, err);
    if (st == HQ_OK) {
        double mb = (double)(pl * reps) / 1e6;
        printf("throughput %-8s %6.2f MB: %.3f s wall = %6.1f MB/s, %.3f s cpu = %6.1f MB/s (%llu ids)\n", name, mb, dt,
               mb / dt, dc, mb / (dc > 0 ? dc : 1e-9), (unsigned long long)n);
        hq_free(ids);
    }
    free(big);
    hq_free(prose);
    rt_tokenizer_free(t);
}

/* `test_tokenizer --batch TOKENIZER.json TEXTS` prints the ids of each
 * record of TEXTS (records separated by 0x1E) on its own line, "ERR msg" on
 * failure: the C side of tools/tokenizer_fuzz.py's differential runs. */
static int batch(const char *tok_path, const char *texts) {
    char err[HQ_ERR_LEN], *t;
    uint64_t tl;
    rt_tokenizer *tk = load_tok(tok_path, err);
    if (!tk || hq_read_file(texts, 1u << 30, &t, &tl, err) != HQ_OK) {
        printf("ERR %s\n", err);
        rt_tokenizer_free(tk);
        return 1;
    }
    uint64_t a = 0;
    for (uint64_t i = 0; i <= tl; i++) {
        if (i < tl && t[i] != '\x1e') continue;
        int32_t *ids;
        uint64_t n;
        if (rt_tokenize(tk, t + a, i - a, false, &ids, &n, err) != HQ_OK) {
            printf("ERR %s", err);
        } else {
            for (uint64_t k = 0; k < n; k++) printf("%d ", ids[k]);
            hq_free(ids);
        }
        printf("\n");
        a = i + 1;
    }
    hq_free(t);
    rt_tokenizer_free(tk);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--batch")) return batch(argv[2], argv[3]);
    for (size_t k = 0; k < sizeof k_fixtures / sizeof k_fixtures[0]; k++) run_fixture(k_fixtures[k]);
    test_errors();
    test_hostile();
    test_alloc_failures();
    bench("gpt2", FIXTURE("tokenizer/gpt2.json"));
    bench("llama3", FIXTURE("tokenizer/llama3.json"));
    bench("sp", FIXTURE("tokenizer/sp.json"));
    TEST_END();
}
