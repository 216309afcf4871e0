/* tests/test_quantize.c — policy rules, the streaming quantizer (dry-run size
 * == real size, error bounds, F32 bit-exactness, refusals) and imatrix I/O.
 * `test_quantize --write-fixture DIR` writes the synthetic model used by
 * tests/t_quantize.sh. */
#include "test.h"
#define TU_SEED 0x9e3779b97f4a7c15ull
#include "test_util.h" // defines: urand, nrand
#include "../cli/commands.h"
#include "../convert/convert.h"
#include "../runtime/runtime.h"
#include "../runtime/tokenizer.h"
#include "../formats/gguf.h"
#include "../quant/imatrix.h"
#include "../quant/policy.h"
#include "../quant/quant.h"
#include "../quant/quantize.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- synthetic model ---- */
enum { D = 256, V = 64, NE = 8, FF = 96 };

typedef struct {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[2];
    uint32_t type; /* F32 or Q8_0 */
} fx_tensor;

static const fx_tensor k_fx[] = {
    {"token_embd.weight", 2, {D, V}, GGML_T_F32},
    {"output_norm.weight", 1, {D, 1}, GGML_T_F32},
    {"blk.0.attn_norm.weight", 1, {D, 1}, GGML_T_F32},
    {"blk.0.attn_q.weight", 2, {D, 64}, GGML_T_F32},
    {"blk.0.attn_v.weight", 2, {D, 32}, GGML_T_F32},
    {"blk.0.attn_a", 1, {4, 1}, GGML_T_F32},
    {"blk.0.attn_dt.weight", 2, {32, 4}, GGML_T_F32},
    {"blk.0.ssm_b.weight", 2, {D, 16}, GGML_T_F32},
    {"blk.0.ffn_gate_inp.weight", 2, {D, 8}, GGML_T_F32},
    {"blk.0.ffn_down.weight", 2, {FF, D}, GGML_T_F32},
    {"blk.0.ffn_expert_down.weight", 2, {D, NE}, GGML_T_F32},
    {"blk.0.ffn_expert_up.weight", 2, {D, NE}, GGML_T_F32},
};
#define N_FX (sizeof k_fx / sizeof *k_fx)

/* writes the fixture; nan_in: name of a tensor to poison, quant_in: a tensor stored as Q8_0 */
static hq_status write_fixture(const char *path, const char *nan_in, const char *quant_in, char *err) {
    fmt_gguf_writer *w = NULL;
    hq_out o = {0};
    hq_status st = fmt_gguf_writer_init(&w, 32, err);
    if (st) return st;
    st = fmt_gguf_set_str(w, "general.architecture", "cheems", 6, err);
    if (!st) st = fmt_gguf_set_str(w, "general.name", "fixture", 7, err);
    if (!st) st = fmt_gguf_set_u32(w, "general.file_type", 0, err);
    if (!st) st = fmt_gguf_set_u32(w, "cheems.embedding_length", D, err);
    for (size_t i = 0; i < N_FX && !st; i++) {
        uint32_t ty = quant_in && !strcmp(quant_in, k_fx[i].name) ? GGML_T_Q8_0 : k_fx[i].type;
        st = fmt_gguf_add_tensor(w, k_fx[i].name, ty, k_fx[i].n_dims, k_fx[i].ne, err);
    }
    if (!st) st = hq_out_open(&o, path, err);
    if (st) {
        fmt_gguf_writer_free(w);
        return st;
    }
    st = fmt_gguf_write_header(w, &o, err);
    g_rng = 12345;
    for (size_t i = 0; i < N_FX && !st; i++) {
        uint64_t n = k_fx[i].ne[0] * k_fx[i].ne[1];
        float *x = malloc(n * 4);
        /* rows with different scales and a few outliers, like real weights */
        for (uint64_t j = 0; j < n; j++) {
            float s = 0.02f * (1.0f + (float)((j / k_fx[i].ne[0]) % 5));
            x[j] = nrand() * s;
            if (urand() < 0.01) x[j] *= 8;
        }
        if (strstr(k_fx[i].name, "norm")) for (uint64_t j = 0; j < n; j++) x[j] = 1.0f + x[j];
        if (nan_in && !strcmp(nan_in, k_fx[i].name)) x[n / 2 + 3] = NAN;
        if (quant_in && !strcmp(quant_in, k_fx[i].name)) {
            uint64_t bytes = n / 32 * 34;
            void *q = malloc(bytes);
            q_traits(GGML_T_Q8_0)->from_float_ref(x, q, (int64_t)n);
            st = fmt_gguf_write_tensor(w, &o, i, q, bytes, err);
            free(q);
        } else {
            st = fmt_gguf_write_tensor(w, &o, i, x, n * 4, err);
        }
        free(x);
    }
    if (!st) st = fmt_gguf_writer_finish(w, &o, err);
    if (!st) st = hq_out_commit(&o, err);
    else hq_out_abort(&o);
    fmt_gguf_writer_free(w);
    return st;
}

static uint64_t file_size(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* number of directory entries other than . and .. */
static int dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

/* ---- policy ---- */

static bool ref_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static void test_policy(void) {
    char err[HQ_ERR_LEN];
    enum { L = 16 };
    /* a 16-layer model: layers alternate ssd / attn; ffn_down everywhere */
    static char names[L * 8][64];
    q_tensor_desc t[L * 8 + 8];
    int n = 0;
#define ADD(nm, ne0, ne1)                                                                          \
    do {                                                                                           \
        t[n] = (q_tensor_desc){names[n], 2, {ne0, ne1, 1, 1}, GGML_T_F32};                        \
        snprintf(names[n], 64, "%s", nm);                                                          \
        n++;                                                                                       \
    } while (0)
    char nm[64];
    ADD("token_embd.weight", 1024, 100);
    ADD("output.weight", 1024, 100);
    for (int l = 0; l < L; l++) {
        if (l % 2) {
            snprintf(nm, 64, "blk.%d.attn_v.weight", l);
            ADD(nm, 1024, 256);
            snprintf(nm, 64, "blk.%d.attn_q.weight", l);
            ADD(nm, 1024, 1024);
        } else {
            snprintf(nm, 64, "blk.%d.ssm_b.weight", l);
            ADD(nm, 1024, 64);
            snprintf(nm, 64, "blk.%d.ssm_x.weight", l);
            ADD(nm, 1024, 1024);
        }
        snprintf(nm, 64, l % 2 ? "blk.%d.attn_output.weight" : "blk.%d.ssm_out.weight", l);
        ADD(nm, 1024, 1024);
        snprintf(nm, 64, "blk.%d.ffn_down.weight", l);
        ADD(nm, 2816 - 256, 1024); /* 2560 = 10·256 */
    }
    ADD("blk.0.ffn_expert_down.weight", 1024, 64);
    ADD("blk.0.ffn_gate_inp.weight", 1024, 16);
    ADD("blk.0.ssm_dt.weight", 1024, 8);
    ADD("blk.0.attn_dt.weight", 256, 8);
    ADD("blk.0.ffn_pk_query.weight", 1024, 256);
    t[n] = (q_tensor_desc){"blk.0.attn_norm.weight", 1, {1024, 1, 1, 1}, GGML_T_F32}, n++;
    t[n] = (q_tensor_desc){"blk.0.ssm_a", 2, {1, 8, 1, 1}, GGML_T_F32}, n++;
    t[n] = (q_tensor_desc){"blk.0.attn_q.bias", 1, {1024, 1, 1, 1}, GGML_T_F32}, n++;
    static const char *const presets[] = {"Q8_0",   "Q4_0",   "Q4_1",   "Q4_K_M", "Q4_K_S", "Q5_K_M", "Q6_K",
                                          "IQ4_NL", "Q2_K",   "Q3_K_S", "Q3_K_M", "Q3_K_L"};
    for (size_t p = 0; p < sizeof presets / sizeof *presets; p++) {
        q_policy *pol = NULL;
        hq_status st = q_policy_new(presets[p], &pol, err);
        CHECK(st == HQ_OK, "preset %s: %s", presets[p], err);
        if (st) continue;
        q_choice c[L * 8 + 8];
        q_model_info mi = {0};
        CHECK(q_policy_choose(pol, t, (uint64_t)n, &mi, c, err) == HQ_OK, "%s", err);
        uint32_t base = q_policy_default_type(pol);
        double base_bpw = q_type_bpw(base);
        const char *pn = presets[p];
        bool km = !strcmp(pn, "Q4_K_M") || !strcmp(pn, "Q5_K_M"), ks = !strcmp(pn, "Q4_K_S");
        /* llama.cpp's low-bit mixes; attn_v 1024×256 under attn_q 1024×1024: n_gqa = 4 */
        bool q2 = !strcmp(pn, "Q2_K"), q3m = !strcmp(pn, "Q3_K_M"), q3l = !strcmp(pn, "Q3_K_L");
        int iv = 0, id = 0, nv = L / 2, nd = L;
        for (int i = 0; i < n; i++) {
            const char *s = t[i].name;
            uint32_t want;
            if (strstr(s, "norm") || strstr(s, "ssm_a") || strstr(s, "bias") || strstr(s, "_dt.") ||
                strstr(s, "gate_inp") || strstr(s, "pk_query"))
                want = GGML_T_F32;
            else if (!strcmp(s, "token_embd.weight") || !strcmp(s, "output.weight"))
                want = base_bpw >= 6 ? base : GGML_T_Q6_K; /* untied, d = 1024 > 512 */
            else if (strstr(s, "ssm_b"))
                want = base_bpw >= 8 ? base : GGML_T_Q8_0;
            else if (strstr(s, "attn_v")) {
                want = km && ref_more_bits(iv, nv) ? GGML_T_Q6_K : ks && iv < 4 ? GGML_T_Q5_K : base;
                if (q2) want = GGML_T_Q4_K;
                if (q3m) want = iv < 2 ? GGML_T_Q5_K : GGML_T_Q4_K;
                if (q3l) want = GGML_T_Q5_K;
                iv++;
            } else if (strstr(s, "ffn_down")) {
                want = km && ref_more_bits(id, nd) ? GGML_T_Q6_K : ks && id < nd / 8 ? GGML_T_Q5_K : base;
                if (q2) want = GGML_T_Q3_K;
                if (q3m) want = id < nd / 16 ? GGML_T_Q5_K : GGML_T_Q4_K;
                if (q3l) want = GGML_T_Q5_K;
                id++;
            } else if (strstr(s, "attn_output") || strstr(s, "ssm_out")) {
                want = q2 ? GGML_T_Q3_K : q3m ? GGML_T_Q4_K : q3l ? GGML_T_Q5_K : base;
            } else
                want = base;
            CHECK(c[i].type == want, "%s: %s got %s, want %s", pn, s, ggml_type_name(c[i].type),
                  ggml_type_name(want));
        }
        q_policy_free(pol);
    }
    /* tied embedding: Q6_K (llama.cpp) where d fits 256-blocks, else Q8_0
     * (without a shape fallback); --tensor-type gives the 8-bit one back */
    {
        q_policy *pol = NULL;
        q_policy_new("q4_k_m", &pol, err);
        q_tensor_desc e[2] = {{"token_embd.weight", 2, {512, 100, 1, 1}, GGML_T_F32},
                              {"token_embd.weight", 2, {128, 100, 1, 1}, GGML_T_F32}};
        q_choice c[1];
        q_model_info mi = {.tied = true};
        q_policy_choose(pol, e, 1, &mi, c, err);
        CHECK(c[0].type == GGML_T_Q6_K && !c[0].fallback, "tied embd d=512: %s", ggml_type_name(c[0].type));
        q_policy_choose(pol, e + 1, 1, &mi, c, err);
        CHECK(c[0].type == GGML_T_Q8_0 && !c[0].fallback, "tied embd d=128: %s", ggml_type_name(c[0].type));
        q_policy *p8 = NULL;
        q_policy_new("Q3_K_M", &p8, err);
        CHECK(q_policy_add_override(p8, "token_embd.weight=Q8_0", err) == HQ_OK, "%s", err);
        q_policy_choose(p8, e, 1, &mi, c, err);
        CHECK(c[0].type == GGML_T_Q8_0 && c[0].overridden, "tied embd override: %s", ggml_type_name(c[0].type));
        q_policy_free(p8);
        /* overrides: last match wins, regex anywhere in the name */
        CHECK(q_policy_add_override(pol, "attn_(q|k)=Q8_0", err) == HQ_OK, "%s", err);
        CHECK(q_policy_add_override(pol, "blk\\.1\\.attn_q=Q6_K", err) == HQ_OK, "%s", err);
        q_tensor_desc o[3] = {{"blk.0.attn_q.weight", 2, {256, 256, 1, 1}, GGML_T_F32},
                              {"blk.1.attn_q.weight", 2, {256, 256, 1, 1}, GGML_T_F32},
                              {"blk.1.attn_norm.weight", 1, {256, 1, 1, 1}, GGML_T_F32}};
        q_choice oc[3];
        q_policy_choose(pol, o, 3, &mi, oc, err);
        CHECK(oc[0].type == GGML_T_Q8_0 && oc[0].overridden, "override 0: %s", ggml_type_name(oc[0].type));
        CHECK(oc[1].type == GGML_T_Q6_K, "override last wins: %s", ggml_type_name(oc[1].type));
        CHECK(oc[2].type == GGML_T_F32 && !oc[2].quantize, "norm untouched by overrides");
        CHECK(q_policy_add_override(pol, "attn_(q=Q8_0", err) == HQ_ERR_ARG, "bad regex accepted");
        CHECK(q_policy_add_override(pol, "attn_q=Q9_9", err) == HQ_ERR_ARG, "bad type accepted");
        CHECK(q_policy_add_override(pol, "attn_q", err) == HQ_ERR_ARG, "missing = accepted");
        q_policy_free(pol);
    }
    /* shape fallbacks */
    {
        struct { const char *type; uint64_t ne0; uint32_t want; } fb[] = {
            {"Q4_K", 96, q_type_available(GGML_T_Q5_0) ? GGML_T_Q5_0 : GGML_T_Q8_0},
            {"Q5_K", 96, q_type_available(GGML_T_Q5_1) ? GGML_T_Q5_1 : GGML_T_Q8_0},
            {"Q6_K", 576, GGML_T_Q8_0},
            {"Q3_K", 96, GGML_T_IQ4_NL},
            {"Q2_K", 160, GGML_T_IQ4_NL},
            {"Q4_K", 40, GGML_T_F16},
            {"Q8_0", 40, GGML_T_F16},
            {"IQ4_NL", 48, GGML_T_F16},
            {"Q4_K", 512, GGML_T_Q4_K},
        };
        for (size_t i = 0; i < sizeof fb / sizeof *fb; i++) {
            q_policy *pol = NULL;
            CHECK(q_policy_new(fb[i].type, &pol, err) == HQ_OK, "%s", err);
            q_tensor_desc d1[1] = {{"blk.0.attn_q.weight", 2, {fb[i].ne0, 8, 1, 1}, GGML_T_F32}};
            q_choice c[1];
            q_model_info mi = {0};
            q_policy_choose(pol, d1, 1, &mi, c, err);
            CHECK(c[0].type == fb[i].want && c[0].fallback == (fb[i].want != c[0].wanted ? true : c[0].fallback),
                  "fallback %s ne0 %llu: got %s want %s", fb[i].type, (unsigned long long)fb[i].ne0,
                  ggml_type_name(c[0].type), ggml_type_name(fb[i].want));
            CHECK(c[0].fallback == (fb[i].ne0 % ggml_type_get(c[0].wanted)->blck != 0), "fallback flag");
            q_policy_free(pol);
        }
    }
    q_policy *pol = NULL;
    CHECK(q_policy_new("Q3_XYZ", &pol, err) == HQ_ERR_ARG && strstr(err, "Q3_XYZ"), "unknown type: %s", err);
    CHECK(q_role_of("blk.3.ffn_expert_up.weight", 2, (uint64_t[]){256, 8, 1, 1}) == Q_ROLE_EXPERT_UP, "role");
    CHECK(q_role_of("blk.3.attn_q.weight", 1, (uint64_t[]){256, 1, 1, 1}) == Q_ROLE_KEEP, "1-D kept");
}

/* ---- quantizer on the synthetic model ---- */

static double type_bound(uint32_t t) { /* max |err| / max |x| within a 32-block */
    switch (t) {
    case GGML_T_Q8_0: return 1.0 / 100;
    case GGML_T_Q6_K: return 1.0 / 20;
    case GGML_T_Q5_0: case GGML_T_Q5_K: return 1.0 / 10;
    default: return 1.0 / 4;
    }
}

static void test_quantize_model(const char *dir) {
    char err[HQ_ERR_LEN], in[512], out[512], out2[512], imf[512];
    snprintf(in, sizeof in, "%s/model.gguf", dir);
    snprintf(out, sizeof out, "%s/q.gguf", dir);
    snprintf(out2, sizeof out2, "%s/q2.gguf", dir);
    snprintf(imf, sizeof imf, "%s/model.imatrix", dir);
    CHECK(write_fixture(in, NULL, NULL, err) == HQ_OK, "fixture: %s", err);
    q_policy *pol = NULL;
    q_policy_new("Q4_K_M", &pol, err);
    q_quantize_opts o = {.policy = pol, .method = Q_METHOD_RTN, .dry_run = true};
    q_quantize_report dry, real;
    CHECK(q_quantize_file(in, NULL, &o, &dry, err) == HQ_OK, "dry run: %s", err);
    CHECK(!hq_file_exists(out), "dry run wrote nothing");
    o.dry_run = false;
    CHECK(q_quantize_file(in, out, &o, &real, err) == HQ_OK, "quantize: %s", err);
    CHECK(dry.out_file_bytes == file_size(out) && real.out_file_bytes == file_size(out),
          "dry-run size %llu, real %llu, file %llu", (unsigned long long)dry.out_file_bytes,
          (unsigned long long)real.out_file_bytes, (unsigned long long)file_size(out));
    fmt_gguf *a = NULL, *b = NULL;
    CHECK(fmt_gguf_open(in, &a, err) == HQ_OK, "%s", err);
    CHECK(fmt_gguf_open(out, &b, err) == HQ_OK, "output opens: %s", err);
    if (!a || !b) return;
    uint32_t ft = 0, qv = 0;
    fmt_gguf_str s;
    CHECK(fmt_gguf_get_u32(b, "general.file_type", &ft) && ft == 15, "file_type %u", ft);
    CHECK(fmt_gguf_get_u32(b, "general.quantization_version", &qv) && qv == 2, "quantization_version");
    CHECK(fmt_gguf_get_str(b, "general.name", &s) && s.len == 7 && !memcmp(s.s, "fixture", 7), "KV copied");
    CHECK(fmt_gguf_n_tensors(b) == N_FX, "tensor count");
    int n_quant = 0;
    for (uint64_t i = 0; i < fmt_gguf_n_tensors(a); i++) {
        const fmt_gguf_tensor *ti = fmt_gguf_tensor_at(a, i), *to = fmt_gguf_find_tensor(b, ti->name);
        CHECK(to != NULL, "%s present", ti->name);
        if (!to) continue;
        if (to->type == GGML_T_F32) {
            CHECK(to->nbytes == ti->nbytes && !memcmp(to->data, ti->data, ti->nbytes), "%s bit-exact", ti->name);
            continue;
        }
        n_quant++;
        uint64_t nel = ti->ne[0] * ti->ne[1];
        float *y = malloc(nel * 4);
        const q_type_traits *tr = q_traits(to->type);
        CHECK(tr != NULL, "traits %s", ggml_type_name(to->type));
        if (tr) tr->to_float_ref(to->data, y, (int64_t)nel);
        const float *x = ti->data;
        double worst = 0;
        for (uint64_t g = 0; g + 32 <= nel; g += 32) {
            double amax = 0, emax = 0;
            for (int j = 0; j < 32; j++) {
                amax = fmax(amax, fabs(x[g + j]));
                emax = fmax(emax, fabs(x[g + j] - y[g + j]));
            }
            if (amax > 0) worst = fmax(worst, emax / amax);
        }
        CHECK(worst <= type_bound(to->type), "%s (%s): worst block error %.4f of max > %.4f", ti->name,
              ggml_type_name(to->type), worst, type_bound(to->type));
        free(y);
    }
    CHECK(n_quant == 7, "quantized tensors: %d", n_quant);
    /* expected types for the fixture (policy.h rules) */
    /* tied, d a multiple of 256: Q6_K as llama.cpp (bench_embd_policy: better per bpw than Q8_0) */
    CHECK(fmt_gguf_find_tensor(b, "token_embd.weight")->type == GGML_T_Q6_K, "tied embd Q6_K");
    CHECK(fmt_gguf_find_tensor(b, "blk.0.ssm_b.weight")->type == GGML_T_Q8_0, "ssm_b Q8_0");
    CHECK(fmt_gguf_find_tensor(b, "blk.0.attn_v.weight")->type == GGML_T_Q6_K, "attn_v use_more_bits");
    /* the only ffn_down is a use_more_bits layer: Q6_K, ne0 = 96 -> Q8_0 */
    CHECK(fmt_gguf_find_tensor(b, "blk.0.ffn_down.weight")->type == GGML_T_Q8_0, "ffn_down fallback");
    CHECK(fmt_gguf_find_tensor(b, "blk.0.ffn_gate_inp.weight")->type == GGML_T_F32, "router F32");
    fmt_gguf_close(b);

    /* imatrix: round trip, expert without tokens, mismatch */
    q_imatrix *im = hq_calloc(1, sizeof *im);
    im->chunk_count = 3;
    im->chunk_size = 64;
    im->datasets = hq_calloc(1, sizeof(char *));
    im->datasets[0] = hq_strdup("calib.txt");
    im->n_datasets = 1;
    q_imatrix_entry *e1 = q_imatrix_add(im, "blk.0.attn_q.weight", D, 1, true);
    q_imatrix_entry *e2 = q_imatrix_add(im, "blk.0.ffn_expert_down.weight", D, NE, false);
    e1 = &im->e[0]; /* q_imatrix_add may move the array */
    for (int j = 0; j < D; j++) e1->in_sum2[j] = (float)(1 + j % 7) * 100.0f;
    e1->counts[0] = 100;
    for (int j = 0; j < D * D; j++) e1->xtx[j] = (j / D == j % D) ? e1->in_sum2[j % D] : 0.5f;
    for (int m = 0; m < NE; m++) {
        e2->counts[m] = m == 3 ? 0 : (float)(10 + m);
        for (int j = 0; j < D; j++) e2->in_sum2[m * D + j] = m == 3 ? 0 : e2->counts[m] * (float)(1 + (j * m) % 5);
    }
    CHECK(q_imatrix_save(im, imf, err) == HQ_OK, "imatrix save: %s", err);
    q_imatrix *rd = NULL;
    CHECK(q_imatrix_load(imf, &rd, err) == HQ_OK, "imatrix load: %s", err);
    if (rd) {
        CHECK(rd->n == 2 && rd->chunk_count == 3 && rd->chunk_size == 64 && rd->n_datasets == 1 &&
                  !strcmp(rd->datasets[0], "calib.txt"), "imatrix header round trip");
        const q_imatrix_entry *r1 = q_imatrix_find(rd, "blk.0.attn_q.weight");
        const q_imatrix_entry *r2 = q_imatrix_find(rd, "blk.0.ffn_expert_down.weight");
        CHECK(r1 && r2 && r1->xtx && !r2->xtx, "entries");
        if (r1 && r2) {
            CHECK(!memcmp(r1->in_sum2, e1->in_sum2, D * 4) && !memcmp(r1->xtx, e1->xtx, (size_t)D * D * 4) &&
                      r1->counts[0] == 100, "attn_q round trip");
            CHECK(r2->n_mat == NE && !memcmp(r2->in_sum2, e2->in_sum2, (size_t)D * NE * 4) &&
                      !memcmp(r2->counts, e2->counts, NE * 4), "experts round trip");
        }
        float imp[D];
        CHECK(!q_imatrix_row_importance(e2, 3, imp) && imp[0] == 1.0f && imp[D - 1] == 1.0f, "no tokens: uniform");
        CHECK(q_imatrix_row_importance(e2, 2, imp) && imp[1] > 0 && isfinite(imp[1]), "expert 2 importance");
        /* quantize with it: expert 3 gets uniform importance, all values finite */
        for (int mth = Q_METHOD_IMATRIX; mth <= Q_METHOD_GPTQ; mth++) {
            q_quantize_opts oi = {.policy = pol, .method = (q_method)mth, .imatrix = rd, .imatrix_label = imf};
            q_quantize_report ri;
            hq_inputs_forget(); /* out2 was read back above */
            CHECK(q_quantize_file(in, out2, &oi, &ri, err) == HQ_OK, "imatrix quantize: %s", err);
            CHECK(ri.n_uniform_rows == 1, "uniform expert rows %llu", (unsigned long long)ri.n_uniform_rows);
            CHECK(ri.n_gptq == (mth == Q_METHOD_GPTQ ? 1u : 0u), "gptq tensors %llu", (unsigned long long)ri.n_gptq);
            fmt_gguf *c = NULL;
            if (fmt_gguf_open(out2, &c, err) == HQ_OK) {
                const fmt_gguf_tensor *t = fmt_gguf_find_tensor(c, "blk.0.ffn_expert_down.weight");
                float y[D * NE];
                q_traits(t->type)->to_float_ref(t->data, y, D * NE);
                bool fin = true;
                for (int j = 0; j < D * NE; j++) fin &= isfinite(y[j]) != 0;
                CHECK(fin, "expert table finite");
                fmt_gguf_close(c);
            }
        }
        q_imatrix_free(rd);
    }
    /* imatrix for a different model */
    e1->ncols = 128;
    CHECK(q_imatrix_check_model(im, a, "x.imatrix", err) == HQ_ERR_MISMATCH && strstr(err, "attn_q"),
          "column mismatch: %s", err);
    e1->ncols = D;
    hq_free(e2->name);
    e2->name = hq_strdup("blk.7.ffn_expert_down.weight");
    CHECK(q_imatrix_check_model(im, a, "x.imatrix", err) == HQ_ERR_MISMATCH && strstr(err, "blk.7"),
          "unknown name: %s", err);
    hq_inputs_forget(); /* imf was loaded above */
    CHECK(q_imatrix_save(im, imf, err) == HQ_OK, "%s", err);
    q_imatrix *bad = NULL;
    CHECK(q_imatrix_load(imf, &bad, err) == HQ_OK, "%s", err);
    q_quantize_opts ob = {.policy = pol, .method = Q_METHOD_IMATRIX, .imatrix = bad, .imatrix_label = imf};
    unlink(out2);
    CHECK(q_quantize_file(in, out2, &ob, &real, err) == HQ_ERR_MISMATCH && !hq_file_exists(out2),
          "different-model imatrix refused: %s", err);
    q_imatrix_free(bad);
    q_imatrix_free(im);
    fmt_gguf_close(a);
    q_policy_free(pol);
    unlink(out);
    unlink(out2);
    unlink(imf);
    unlink(in);
}

static void test_refusals(const char *dir) {
    char err[HQ_ERR_LEN], in[512], out[512];
    snprintf(in, sizeof in, "%s/nan.gguf", dir);
    snprintf(out, sizeof out, "%s/nan-q.gguf", dir);
    CHECK(write_fixture(in, "blk.0.attn_q.weight", NULL, err) == HQ_OK, "%s", err);
    q_policy *pol = NULL;
    q_policy_new("Q8_0", &pol, err);
    q_quantize_opts o = {.policy = pol};
    q_quantize_report r;
    int before = dir_entries(dir);
    hq_status st = q_quantize_file(in, out, &o, &r, err);
    CHECK(st == HQ_ERR_FORMAT && strstr(err, "blk.0.attn_q.weight"), "NaN refused naming the tensor: %s", err);
    CHECK(!hq_file_exists(out) && dir_entries(dir) == before, "no output / temp file after NaN");
    unlink(in);
    /* already quantized input */
    CHECK(write_fixture(in, NULL, "blk.0.attn_q.weight", err) == HQ_OK, "%s", err);
    q_policy_free(pol);
    q_policy_new("Q4_K_M", &pol, err);
    o.policy = pol;
    st = q_quantize_file(in, out, &o, &r, err);
    CHECK(st == HQ_ERR_UNSUPPORTED && strstr(err, "allow-requantize") && !hq_file_exists(out),
          "requantize refused: %s", err);
    o.allow_requantize = true;
    CHECK(q_quantize_file(in, out, &o, &r, err) == HQ_OK, "--allow-requantize: %s", err);
    /* Q8_0 input kept as Q8_0 by the Q8_0 preset is copied, not refused */
    q_policy_free(pol);
    q_policy_new("Q8_0", &pol, err);
    o.policy = pol;
    o.allow_requantize = false;
    CHECK(q_quantize_file(in, out, &o, &r, err) == HQ_OK, "same type is a copy: %s", err);
    unlink(in);
    unlink(out);
    q_policy_free(pol);
    /* the command: unknown type -> usage error, no output */
    CHECK(write_fixture(in, NULL, NULL, err) == HQ_OK, "%s", err);
    char *argv1[] = {"quantize", in, out, "--type", "Q9_K", "-q", NULL};
    CHECK(hq_cmd_quantize(6, argv1) == 2 && !hq_file_exists(out), "unknown --type -> exit 2, no output");
    char *argv2[] = {"quantize", in, out, "--type", "Q4_K_M", "--tensor-type", "attn_(q=Q8_0", "-q", NULL};
    CHECK(hq_cmd_quantize(8, argv2) == 2 && !hq_file_exists(out), "bad regex -> exit 2");
    char *argv3[] = {"quantize", in, out, "--type", "q4_k_m", "--tensor-type", "attn_q=Q8_0", "-q", NULL};
    CHECK(hq_cmd_quantize(8, argv3) == 0 && hq_file_exists(out), "quantize command");
    unlink(in);
    unlink(out);
}


/* ---- calibrate end to end on the converted Cheems fixture ----
 * The fixture's tokenizer has no usable merges, so the model is rewritten
 * with a one-character-per-token vocabulary of the same size (48). */
static const char k_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV";

static hq_status with_char_tokenizer(const char *src, const char *dst, char *err) {
    char json[4096];
    size_t o = (size_t)snprintf(json, sizeof json,
                                "{\"version\":\"1.0\",\"added_tokens\":[],\"normalizer\":null,\"pre_tokenizer\":null,"
                                "\"model\":{\"type\":\"BPE\",\"vocab\":{");
    for (int i = 0; i < 48; i++) o += (size_t)snprintf(json + o, sizeof json - o, "%s\"%c\":%d", i ? "," : "", k_chars[i], i);
    o += (size_t)snprintf(json + o, sizeof json - o, "},\"merges\":[]}}");
    fmt_gguf *g = NULL;
    fmt_gguf_writer *w = NULL;
    hq_out out = {0};
    hq_status st = fmt_gguf_open(src, &g, err);
    if (!st) st = fmt_gguf_writer_init(&w, fmt_gguf_alignment(g), err);
    for (uint64_t i = 0; !st && i < fmt_gguf_n_kv(g); i++) {
        const fmt_gguf_kv *kv = fmt_gguf_kv_at(g, i);
        if (!strcmp(kv->key, "tokenizer.huggingface.json")) st = fmt_gguf_set_str(w, kv->key, json, o, err);
        else st = fmt_gguf_copy_kv(w, kv, err);
    }
    for (uint64_t i = 0; !st && i < fmt_gguf_n_tensors(g); i++) {
        const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
        st = fmt_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, err);
    }
    if (!st) st = hq_out_open(&out, dst, err);
    if (!st) {
        st = fmt_gguf_write_header(w, &out, err);
        for (uint64_t i = 0; !st && i < fmt_gguf_n_tensors(g); i++) {
            const fmt_gguf_tensor *t = fmt_gguf_tensor_at(g, i);
            st = fmt_gguf_write_tensor(w, &out, i, t->data, t->nbytes, err);
        }
        if (!st) st = fmt_gguf_writer_finish(w, &out, err);
        if (!st) st = hq_out_commit(&out, err);
        else hq_out_abort(&out);
    }
    fmt_gguf_writer_free(w);
    fmt_gguf_close(g);
    return st;
}

typedef struct {
    const char *name;
    double *sum2; /* independent Σx² of one matrix's inputs */
    int64_t n_in;
    double tokens;
} probe;
static void probe_hook(void *ud, const char *name, const float *x, int64_t n, int64_t n_in) {
    probe *p = ud;
    if (strcmp(name, p->name)) return;
    p->n_in = n_in;
    for (int64_t t = 0; t < n; t++)
        for (int64_t j = 0; j < n_in && j < 64; j++) p->sum2[j] += (double)x[t * n_in + j] * x[t * n_in + j];
    p->tokens += (double)n;
}

static void test_calibrate(const char *dir) {
    char err[HQ_ERR_LEN], conv[512], model[512], text[512], imf[512], qf[512];
    snprintf(conv, sizeof conv, "%s/conv.gguf", dir);
    snprintf(model, sizeof model, "%s/model.gguf", dir);
    snprintf(text, sizeof text, "%s/calib.txt", dir);
    snprintf(imf, sizeof imf, "%s/c.imatrix", dir);
    snprintf(qf, sizeof qf, "%s/q.gguf", dir);
    cv_options co = {.quiet = true};
    hq_status st = cv_convert(FIXTURE("convert/cheems_alog"), conv, &co, err);
    CHECK(st == HQ_OK, "convert fixture: %s", err);
    if (st) return;
    CHECK(with_char_tokenizer(conv, model, err) == HQ_OK, "retokenize: %s", err);
    FILE *f = fopen(text, "w");
    g_rng = 99;
    for (int i = 0; i < 300; i++) fputc(k_chars[(int)(urand() * 20)], f);
    fclose(f);
    char *argv[] = {"calibrate", model, "--text", text, "-o", imf, "--ctx", "32", "--full-hessian", "-q", NULL};
    CHECK(hq_cmd_calibrate(10, argv) == 0, "calibrate ran");
    q_imatrix *im = NULL;
    CHECK(q_imatrix_load(imf, &im, err) == HQ_OK, "load: %s", err);
    if (!im) goto cleanup;
    /* the same chunks through the runtime with an independent probe */
    rt_model *m = NULL;
    rt_state *s = NULL;
    double sum2[64] = {0};
    probe pr = {"blk.0.ffn_down.weight", sum2, 0, 0};
    if (rt_model_load(model, &m, err) == HQ_OK && rt_state_new(m, 32, &s, err) == HQ_OK) {
        int32_t *ids = NULL;
        uint64_t n_ids = 0;
        char buf[400];
        f = fopen(text, "r");
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        rt_tokenize(rt_model_tokenizer(m), buf, len, false, &ids, &n_ids, err);
        rt_hooks h = {.ud = &pr, .on_matmul_input = probe_hook};
        rt_model_set_hooks(m, &h);
        int32_t bos = rt_model_bos(m);
        int64_t body = bos >= 0 ? 31 : 32;
        for (int64_t k = 0; k < (int64_t)n_ids / body; k++) {
            int32_t chunk[32];
            int n = 0;
            if (bos >= 0) chunk[n++] = bos;
            memcpy(chunk + n, ids + k * body, sizeof(int32_t) * (size_t)body);
            rt_state_reset(s);
            rt_forward(m, s, chunk, n + body, NULL, err);
        }
        hq_free(ids);
    }
    rt_state_free(s);
    rt_model_free(m);
    const q_imatrix_entry *e = q_imatrix_find(im, "blk.0.ffn_down.weight");
    CHECK(e && e->xtx && pr.tokens > 0 && e->counts[0] == (float)pr.tokens, "token count %g vs probe %g",
          e ? e->counts[0] : -1.0, pr.tokens);
    if (e) {
        double worst = 0;
        for (int64_t j = 0; j < e->ncols && j < 64; j++) {
            worst = fmax(worst, fabs(e->in_sum2[j] - sum2[j]) / (sum2[j] + 1e-20));
            /* Σxxᵀ diagonal = Σx² */
            worst = fmax(worst, fabs(e->xtx[j * e->ncols + j] - e->in_sum2[j]) / (e->in_sum2[j] + 1e-20));
        }
        CHECK(worst < 1e-4, "in_sum2 vs independent probe: rel err %g", worst);
    }
    const q_imatrix_entry *x = q_imatrix_find(im, "blk.1.ffn_expert_down.weight");
    const q_imatrix_entry *u = q_imatrix_find(im, "blk.1.ffn_expert_up.weight");
    CHECK(x && u && x->n_mat > 1 && u->n_mat == x->n_mat, "expert entries");
    if (x && u && e) {
        double routed = 0;
        for (int64_t k = 0; k < x->n_mat; k++) routed += x->counts[k];
        CHECK(routed > 0 && fmod(routed, e->counts[0]) == 0, "routings %g are a multiple of tokens %g", routed,
              e->counts[0]);
        CHECK(!memcmp(x->counts, u->counts, sizeof(float) * (size_t)x->n_mat), "up/down counts agree");
        CHECK(u->in_sum2[0] == u->counts[0], "expert_up importance is uniform");
    }
    /* the imatrix is accepted by quantize for this model (gptq + imatrix) */
    char *qa[] = {"quantize", model, qf, "--type", "Q4_0", "--imatrix", imf, "--method", "gptq", "-q", "--json", NULL};
    CHECK(hq_cmd_quantize(11, qa) == 0 && hq_file_exists(qf), "quantize with calibrated imatrix");
    /* and refused for a different model */
    char *qb[] = {"quantize", FIXTURE("nonexistent.gguf"), qf, "--type", "Q4_0", "-q", NULL};
    CHECK(hq_cmd_quantize(6, qb) == 1, "missing input -> 1");
    q_imatrix_free(im);
cleanup:
    unlink(conv);
    unlink(model);
    unlink(text);
    unlink(imf);
    unlink(qf);
}


/* every allocation failing in turn: a clean NOMEM, no output, no leak */
static void test_alloc_failures(const char *dir) {
    char err[HQ_ERR_LEN], in[512], out[512];
    snprintf(in, sizeof in, "%s/af.gguf", dir);
    snprintf(out, sizeof out, "%s/af-q.gguf", dir);
    CHECK(write_fixture(in, NULL, NULL, err) == HQ_OK, "%s", err);
    q_policy *pol = NULL;
    q_policy_new("Q4_K_M", &pol, err);
    q_quantize_opts o = {.policy = pol};
    q_quantize_report r;
    int fails = 0, oks = 0, bad = 0;
    for (int64_t n = 1; n < 400; n++) {
        hq_alloc_fail_at(n);
        hq_status st = q_quantize_file(in, out, &o, &r, err);
        hq_alloc_fail_at(0);
        if (st == HQ_OK) {
            oks++;
            unlink(out);
            break; /* past the last allocation */
        }
        fails++;
        if (st != HQ_ERR_NOMEM || hq_file_exists(out)) {
            bad++;
            fprintf(stderr, "alloc fail at %lld: %s (%s)\n", (long long)n, hq_status_name(st), err);
        }
    }
    CHECK(bad == 0 && oks == 1 && fails > 5, "allocation failures: %d failed cleanly, %d bad, %d ok", fails, bad, oks);
    q_policy_free(pol);
    unlink(in);
}

/* ---- write-fixture mode for t_quantize.sh ---- */
int main(int argc, char **argv) {
    char err[HQ_ERR_LEN];
    if (argc == 3 && !strcmp(argv[1], "--write-fixture")) {
        char p[512];
        snprintf(p, sizeof p, "%s/model.gguf", argv[2]);
        if (write_fixture(p, NULL, NULL, err)) return fprintf(stderr, "%s\n", err), 1;
        snprintf(p, sizeof p, "%s/nan.gguf", argv[2]);
        if (write_fixture(p, "blk.0.ffn_down.weight", NULL, err)) return fprintf(stderr, "%s\n", err), 1;
        return 0;
    }
    hq_quiet = 1; /* no progress lines */
    char dir[] = "/tmp/hq_test_quantize.XXXXXX";
    if (!mkdtemp(dir)) return fprintf(stderr, "mkdtemp failed\n"), 1;
    test_policy();
    test_quantize_model(dir);
    test_refusals(dir);
    test_calibrate(dir);
    test_alloc_failures(dir);
    rmdir(dir);
    TEST_END();
}
