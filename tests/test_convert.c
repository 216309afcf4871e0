/* tests/test_convert.c — layout detection, name mapping and shape validation
 * (convert/mapping.c, convert/config.c) over synthetic tensor lists, plus
 * end-to-end conversion of the model fixtures when they are present. */
#include "../convert/convert.h"
#include "../formats/gguf.h"
#include "../core/half.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- synthetic checkpoints: views into one zero buffer ---- */
static uint8_t g_zero[1 << 16];

typedef struct {
    fmt_tensor t[600];
    char names[600][128];
    int n;
} tlist;

static void add(tlist *l, const char *name, int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
    fmt_tensor *t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    snprintf(l->names[l->n], sizeof l->names[l->n], "%s", name);
    t->name = l->names[l->n];
    t->dtype = HQ_DT_F32;
    t->ndim = nd;
    int64_t sh[4] = {a, b, c, d};
    for (int k = 0; k < nd; k++) t->shape[k] = sh[k];
    int64_t s = 1;
    for (int k = nd - 1; k >= 0; k--) {
        t->stride[k] = s;
        s *= t->shape[k];
    }
    t->storage = g_zero;
    t->storage_bytes = (uint64_t)s * 4;
    t->storage_id = l->n;
    l->n++;
}
static int find_t(tlist *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->t[i].name, name)) return i;
    return -1;
}
static void del(tlist *l, const char *name) {
    int i = find_t(l, name);
    if (i < 0) return;
    l->t[i] = l->t[l->n - 1];
    memcpy(l->names[i], l->names[l->n - 1], sizeof l->names[i]);
    l->t[i].name = l->names[i];
    l->n--;
}
/* re-point names after copying a tlist */
static void fixup(tlist *l) {
    for (int i = 0; i < l->n; i++) l->t[i].name = l->names[i];
}

/* dims: d=16 H=4 KV=2 P=4 I=24 V=32, L=4, E=16 (Kk=4), Hr=2 R=8 */
enum { D = 16, H = 4, KV = 2, P = 4, I = 24, V = 32, L = 4, E = 16, KK = 4, HR = 2, R = 8 };

typedef enum { FFN_MLP, FFN_PK, FFN_ROUTER } ffn_kind;

static void add_ffn(tlist *l, const char *fp, ffn_kind k, bool router_bias) {
    char s[160];
    snprintf(s, sizeof s, "%sgate_proj.weight", fp), add(l, s, 2, I, D, 0, 0);
    snprintf(s, sizeof s, "%sup_proj.weight", fp), add(l, s, 2, I, D, 0, 0);
    snprintf(s, sizeof s, "%sdown_proj.weight", fp), add(l, s, 2, D, I, 0, 0);
    if (k == FFN_MLP) return;
    if (k == FFN_ROUTER) {
        snprintf(s, sizeof s, "%srouter_gate.weight", fp), add(l, s, 2, 2 * KK, D, 0, 0);
        if (router_bias) snprintf(s, sizeof s, "%srouter_gate.bias", fp), add(l, s, 1, 2 * KK, 0, 0, 0);
    } else {
        snprintf(s, sizeof s, "%squeries.weight", fp), add(l, s, 2, HR * R, D, 0, 0);
        snprintf(s, sizeof s, "%skeys", fp), add(l, s, 4, HR, KK, 2, R / 2);
    }
    snprintf(s, sizeof s, "%sdown_embed.weight", fp), add(l, s, 2, E, D, 0, 0);
    snprintf(s, sizeof s, "%sup_embed.weight", fp), add(l, s, 2, E, D, 0, 0);
}

static void add_attn(tlist *l, const char *ap, int64_t M, bool qk_norm) {
    char s[160];
    snprintf(s, sizeof s, "%sq_proj.weight", ap), add(l, s, 2, H * P, D, 0, 0);
    snprintf(s, sizeof s, "%sk_proj.weight", ap), add(l, s, 2, KV * P, D, 0, 0);
    snprintf(s, sizeof s, "%sv_proj.weight", ap), add(l, s, 2, KV * P, D, 0, 0);
    snprintf(s, sizeof s, "%so_proj.weight", ap), add(l, s, 2, D, H * P, 0, 0);
    snprintf(s, sizeof s, "%sA", ap), add(l, s, 1, M, 0, 0, 0);
    snprintf(s, sizeof s, "%sdt_proj.weight", ap), add(l, s, 2, M, KV * P, 0, 0);
    if (qk_norm) {
        snprintf(s, sizeof s, "%sq_norm.weight", ap), add(l, s, 1, P, 0, 0, 0);
        snprintf(s, sizeof s, "%sk_norm.weight", ap), add(l, s, 1, P, 0, 0, 0);
    }
}

/* Cheems: layers 0..2 SSD, layer 3 attention (period 4, offset 3) */
static void make_cheems(tlist *l, ffn_kind k) {
    l->n = 0;
    char s[160], p[64];
    add(l, "model.word_embed.weight", 2, V, D, 0, 0);
    add(l, "model.final_layernorm.weight", 1, D, 0, 0, 0);
    for (int i = 0; i < L; i++) {
        snprintf(p, sizeof p, "model.layers.%d.", i);
        static const char *const nn[] = {"pre_sequence_layernorm.weight", "post_sequence_residual.weight",
                                         "pre_state_layernorm.weight", "post_state_residual.weight"};
        for (int j = 0; j < 4; j++) snprintf(s, sizeof s, "%s%s", p, nn[j]), add(l, s, 1, D, 0, 0, 0);
        if (i == 3) {
            snprintf(s, sizeof s, "%sattn.", p);
            add_attn(l, s, H, false);
        } else {
            snprintf(s, sizeof s, "%sssd.x_proj.weight", p), add(l, s, 2, H * P, D, 0, 0);
            snprintf(s, sizeof s, "%sssd.b_proj.weight", p), add(l, s, 2, H * P, D, 0, 0);
            snprintf(s, sizeof s, "%sssd.c_proj.weight", p), add(l, s, 2, H * P, D, 0, 0);
            snprintf(s, sizeof s, "%sssd.dt_proj.weight", p), add(l, s, 2, H, D, 0, 0);
            snprintf(s, sizeof s, "%sssd.A", p), add(l, s, 1, H, 0, 0, 0);
            snprintf(s, sizeof s, "%sssd.out_proj.weight", p), add(l, s, 2, D, H * P, 0, 0);
        }
        snprintf(s, sizeof s, "%sfeed_forward.", p);
        add_ffn(l, s, k, false);
    }
}

static const char *cfg_cheems(bool moe) {
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"vocab_size\": %d, \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d,"
             " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"attn_layer_period\": 4,"
             " \"attn_layer_offset\": 3, \"is_moe\": %s, \"num_cdmoe_experts\": %d, \"num_cdmoe_heads\": %d,"
             " \"num_cdmoe_experts_per_head\": 3, \"expert_retrieval_size\": %d, \"tie_word_embeddings\": true,"
             " \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 4.0, \"original_max_position_embeddings\": 64},"
             " \"max_position_embeddings\": 128, \"bos_token_id\": 0, \"eos_token_id\": 1, \"pad_token_id\": 2}",
             V, D, I, L, H, KV, moe ? "true" : "false", E, HR, R);
    return buf;
}

typedef enum { DOGE_OLD, DOGE_NEW, DOGE_HF } doge_kind;

static void make_doge(tlist *l, doge_kind dk, ffn_kind k, bool router_bias) {
    l->n = 0;
    char s[160], p[64];
    add(l, dk == DOGE_OLD ? "model.word_embed.weight" : "model.embed_tokens.weight", 2, V, D, 0, 0);
    add(l, dk == DOGE_OLD ? "model.final_layernorm.weight" : "model.norm.weight", 1, D, 0, 0, 0);
    for (int i = 0; i < L; i++) {
        snprintf(p, sizeof p, "model.layers.%d.", i);
        static const char *const on[] = {"pre_layernorm.weight", "pre_residual.weight", "post_layernorm.weight",
                                         "post_residual.weight"};
        static const char *const nn[] = {"input_layernorm.weight", "input_residual", "post_attention_layernorm.weight",
                                         "post_attention_residual"};
        for (int j = 0; j < 4; j++)
            snprintf(s, sizeof s, "%s%s", p, dk == DOGE_OLD ? on[j] : nn[j]), add(l, s, 1, D, 0, 0, 0);
        snprintf(s, sizeof s, "%sself_attn.", p);
        add_attn(l, s, dk == DOGE_HF ? KV : H, dk == DOGE_HF);
        snprintf(s, sizeof s, "%s%s", p, dk == DOGE_OLD ? "feed_forward." : "mlp.");
        add_ffn(l, s, k, router_bias);
    }
}

static const char *cfg_doge(bool moe, const char *extra) {
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"vocab_size\": %d, \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d,"
             " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"is_moe\": %s, \"num_experts\": %d,"
             " \"num_experts_per_tok\": 3, \"num_cdmoe_heads\": %d, \"expert_retrieval_size\": %d,"
             " \"rope_parameters\": {\"rope_theta\": 40000.0, \"rope_type\": \"default\"},"
             " \"keep_window_size\": 64, \"sliding_window\": null%s%s}",
             V, D, I, L, H, KV, moe ? "true" : "false", E, HR, R, extra ? ", " : "", extra ? extra : "");
    return buf;
}

static const cv_tensor *pt(const cv_plan *p, const char *name) {
    for (uint64_t i = 0; i < p->n_tensors; i++)
        if (!strcmp(p->tensors[i].name, name)) return &p->tensors[i];
    return NULL;
}

/* a plan must map every non-ignored source tensor exactly once */
static void check_complete(const cv_plan *p, const tlist *l, const char *what) {
    CHECK(p->n_tensors + p->n_ignored == (uint64_t)l->n, "%s: %llu mapped + %llu ignored != %d sources", what,
          (unsigned long long)p->n_tensors, (unsigned long long)p->n_ignored, l->n);
    int bad_dims = 0, dups = 0;
    for (uint64_t i = 0; i < p->n_tensors; i++) {
        const cv_tensor *t = &p->tensors[i];
        bool ok = t->n_dims == (uint32_t)t->src->ndim;
        for (uint32_t k = 0; ok && k < t->n_dims; k++) ok = t->ne[k] == (uint64_t)t->src->shape[t->n_dims - 1 - k];
        bad_dims += !ok;
        for (uint64_t j = 0; j < i; j++) dups += !strcmp(p->tensors[j].name, t->name);
    }
    CHECK(bad_dims == 0, "%s: %d tensors whose dims are not the reversed source shape", what, bad_dims);
    CHECK(dups == 0, "%s: %d GGUF names used twice", what, dups);
}

static void test_cheems(void) {
    tlist *l = hq_calloc(1, sizeof *l);
    char err[HQ_ERR_LEN] = "";
    cv_plan *p = NULL;
    make_cheems(l, FFN_MLP);
    hq_status st = cv_plan_build(l->t, (uint64_t)l->n, cfg_cheems(false), "synthetic", &p, err);
    CHECK(st == HQ_OK, "cheems dense: %s", err);
    if (p) {
        CHECK(p->variant == CV_VAR_CHEEMS, "variant %s", cv_variant_name(p->variant));
        CHECK(!strcmp(cv_variant_arch(p->variant), "cheems"), "arch");
        CHECK(p->n_layer == L, "layers");
        for (int i = 0; i < L; i++) {
            CHECK(p->mixers[i] == (i == 3 ? CV_MIX_ATTN : CV_MIX_SSD), "layer %d mixer %s", i, cv_mixer_name(p->mixers[i]));
            CHECK(p->ffns[i] == CV_FFN_MLP, "layer %d ffn", i);
        }
        CHECK(!p->has_output, "tied (lm_head absent)");
        CHECK(pt(p, "blk.0.ssm_x.weight") && pt(p, "blk.0.ssm_a") && pt(p, "blk.3.attn_dt.weight") &&
                  pt(p, "blk.3.attn_a") && pt(p, "blk.2.ffn_residual.weight") && !pt(p, "output.weight"),
              "cheems names");
        const cv_tensor *t = pt(p, "blk.0.ssm_dt.weight");
        CHECK(t && t->keep_f32 && t->ne[0] == D && t->ne[1] == H, "ssm_dt kept f32, ne reversed");
        t = pt(p, "blk.0.ssm_x.weight");
        CHECK(t && !t->keep_f32 && t->cat == CV_CAT_SSD, "ssm_x follows outtype");
        CHECK(!strcmp(p->hp.rope_type, "dynamic") && p->hp.rope_factor == 4.0 && p->hp.rope_orig_ctx == 64,
              "rope_scaling `type` alias");
        CHECK(p->hp.bos == 0 && p->hp.eos == 1 && p->hp.pad == 2, "token ids");
        CHECK(!strcmp(p->tensors[0].name, "token_embd.weight"), "canonical order starts with token_embd");
        check_complete(p, l, "cheems dense");
        cv_plan_free(p);
    }
    /* product-key CDMoE */
    make_cheems(l, FFN_PK);
    st = cv_plan_build(l->t, (uint64_t)l->n, cfg_cheems(true), "synthetic", &p, err);
    CHECK(st == HQ_OK, "cheems pk: %s", err);
    if (p) {
        CHECK(p->ffns[0] == CV_FFN_CDMOE_PK && p->n_pk == KK && p->n_rhead == HR && p->retrieval_size == R &&
                  p->n_expert == E && p->n_expert_used == 3,
              "pk params");
        const cv_tensor *t = pt(p, "blk.1.ffn_pk_keys");
        CHECK(t && t->n_dims == 4 && t->ne[0] == R / 2 && t->ne[1] == 2 && t->ne[2] == KK && t->ne[3] == HR &&
                  t->keep_f32,
              "keys ne {R/2,2,Kk,Hr}");
        CHECK(pt(p, "blk.1.ffn_pk_query.weight") && pt(p, "blk.1.ffn_expert_down.weight") &&
                  pt(p, "blk.1.ffn_expert_up.weight"),
              "pk names");
        check_complete(p, l, "cheems pk");
        cv_plan_free(p);
    }
    /* A_log -> ssm_a with -exp */
    make_cheems(l, FFN_MLP);
    int i = find_t(l, "model.layers.0.ssd.A");
    snprintf(l->names[i], sizeof l->names[i], "model.layers.0.ssd.A_log");
    st = cv_plan_build(l->t, (uint64_t)l->n, cfg_cheems(false), "synthetic", &p, err);
    CHECK(st == HQ_OK, "A_log: %s", err);
    if (p) {
        const cv_tensor *t = pt(p, "blk.0.ssm_a");
        CHECK(t && t->xform == CV_X_NEG_EXP, "A_log transformed");
        CHECK(pt(p, "blk.1.ssm_a")->xform == CV_X_COPY, "A verbatim");
        cv_plan_free(p);
    }
    /* attention layer at the wrong place for the config */
    make_cheems(l, FFN_MLP);
    const char *bad = "{\"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 4,"
                      " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"attn_layer_period\": 4,"
                      " \"attn_layer_offset\": 2}";
    st = cv_plan_build(l->t, (uint64_t)l->n, bad, "synthetic", &p, err);
    CHECK(st == HQ_ERR_MISMATCH && strstr(err, "layer 2") && strstr(err, "attn_layer_period"), "period: %s", err);
    hq_free(l);
}

static void test_doge(void) {
    tlist *l = hq_calloc(1, sizeof *l);
    char err[HQ_ERR_LEN] = "";
    cv_plan *p = NULL;
    /* old names, dense, rotary buffers, lm_head sharing the embedding's storage */
    make_doge(l, DOGE_OLD, FFN_MLP, false);
    add(l, "model.rotary_emb.original_inv_freq", 1, P / 2, 0, 0, 0);
    add(l, "lm_head.weight", 2, V, D, 0, 0);
    l->t[l->n - 1].storage_id = l->t[find_t(l, "model.word_embed.weight")].storage_id;
    hq_status st = cv_plan_build(l->t, (uint64_t)l->n, cfg_doge(false, NULL), "synthetic", &p, err);
    CHECK(st == HQ_OK, "doge old: %s", err);
    if (p) {
        CHECK(p->variant == CV_VAR_DOGE_OLD && !strcmp(cv_variant_arch(p->variant), "doge"), "doge-old");
        CHECK(!p->has_output && p->n_ignored == 2, "rotary + tied lm_head ignored (%llu)",
              (unsigned long long)p->n_ignored);
        CHECK(p->hp.rope_theta == 40000.0 && !strcmp(p->hp.rope_type, "none"), "rope_parameters");
        CHECK(p->hp.keep_window == 64 && p->hp.sliding_window == 0, "windows");
        CHECK(pt(p, "blk.0.attn_norm.weight") && pt(p, "blk.0.attn_residual.weight") &&
                  pt(p, "blk.0.ffn_norm.weight") && pt(p, "blk.0.ffn_residual.weight") && pt(p, "blk.3.ffn_down.weight"),
              "doge old names");
        check_complete(p, l, "doge old");
        cv_plan_free(p);
    }
    /* untied lm_head with different values (non-zero storage) */
    static uint8_t ones[V * D * 4];
    for (size_t k = 0; k < sizeof ones; k += 4) memcpy(ones + k, &(float){1.0f}, 4);
    make_doge(l, DOGE_NEW, FFN_ROUTER, true);
    add(l, "lm_head.weight", 2, V, D, 0, 0);
    l->t[l->n - 1].storage = ones;
    st = cv_plan_build(l->t, (uint64_t)l->n, cfg_doge(true, "\"tie_word_embeddings\": false"), "synthetic", &p, err);
    CHECK(st == HQ_OK, "doge new router: %s", err);
    if (p) {
        CHECK(p->variant == CV_VAR_DOGE_NEW, "doge-new");
        CHECK(p->has_output && pt(p, "output.weight"), "untied output");
        CHECK(p->ffns[2] == CV_FFN_CDMOE_ROUTER && p->n_pk == KK && p->n_rhead == 1, "router kind");
        const cv_tensor *t = pt(p, "blk.2.ffn_gate_inp.weight");
        CHECK(t && t->keep_f32 && t->cat == CV_CAT_EXPERTS, "router kept f32");
        CHECK(pt(p, "blk.2.ffn_gate_inp.bias"), "router bias mapped");
        check_complete(p, l, "doge new");
        cv_plan_free(p);
    }
    /* tied config but a different lm_head: refused */
    st = cv_plan_build(l->t, (uint64_t)l->n, cfg_doge(true, "\"tie_word_embeddings\": true"), "synthetic", &p, err);
    CHECK(st == HQ_ERR_MISMATCH && strstr(err, "lm_head.weight"), "tie mismatch: %s", err);
    /* tied and bit-identical in another storage: aliased */
    l->t[l->n - 1].storage = g_zero;
    st = cv_plan_build(l->t, (uint64_t)l->n, cfg_doge(true, "\"tie_word_embeddings\": true"), "synthetic", &p, err);
    CHECK(st == HQ_OK && p && !p->has_output, "bit-identical lm_head aliased: %s", err);
    cv_plan_free(p);
    /* untied config without lm_head */
    del(l, "lm_head.weight");
    st = cv_plan_build(l->t, (uint64_t)l->n, cfg_doge(true, "\"tie_word_embeddings\": false"), "synthetic", &p, err);
    CHECK(st == HQ_ERR_MISMATCH && strstr(err, "lm_head.weight"), "missing lm_head: %s", err);
    /* HF-native: q/k norm, A sized KV */
    make_doge(l, DOGE_HF, FFN_MLP, false);
    st = cv_plan_build(l->t, (uint64_t)l->n, cfg_doge(false, NULL), "synthetic", &p, err);
    CHECK(st == HQ_OK, "doge hf: %s", err);
    if (p) {
        CHECK(p->variant == CV_VAR_DOGE_HF, "doge-hf");
        const cv_tensor *t = pt(p, "blk.0.attn_a");
        CHECK(t && t->ne[0] == KV, "A sized KV");
        t = pt(p, "blk.0.attn_dt.weight");
        CHECK(t && t->ne[0] == KV * P && t->ne[1] == KV && t->keep_f32, "dt [KV, KV*P]");
        CHECK(pt(p, "blk.1.attn_q_norm.weight") && pt(p, "blk.1.attn_k_norm.weight"), "q/k norm");
        check_complete(p, l, "doge hf");
        cv_plan_free(p);
    }
    /* HF layout missing one k_norm */
    del(l, "model.layers.2.self_attn.k_norm.weight");
    st = cv_plan_build(l->t, (uint64_t)l->n, cfg_doge(false, NULL), "synthetic", &p, err);
    CHECK(st == HQ_ERR_MISMATCH && strstr(err, "model.layers.2.self_attn.k_norm.weight"), "missing k_norm: %s", err);
    hq_free(l);
}

static void test_canonical_order(void) {
    tlist *a = hq_calloc(1, sizeof *a), *b = hq_calloc(1, sizeof *b);
    char err[HQ_ERR_LEN];
    make_doge(a, DOGE_NEW, FFN_ROUTER, false);
    *b = *a;
    fixup(b);
    /* deterministic shuffle of b */
    uint32_t s = 12345;
    for (int i = b->n - 1; i > 0; i--) {
        s = s * 1664525u + 1013904223u;
        int j = (int)(s % (uint32_t)(i + 1));
        fmt_tensor t = b->t[i];
        b->t[i] = b->t[j];
        b->t[j] = t;
    }
    cv_plan *pa = NULL, *pb = NULL;
    CHECK(cv_plan_build(a->t, (uint64_t)a->n, cfg_doge(true, NULL), "a", &pa, err) == HQ_OK, "a: %s", err);
    CHECK(cv_plan_build(b->t, (uint64_t)b->n, cfg_doge(true, NULL), "b", &pb, err) == HQ_OK, "b: %s", err);
    if (pa && pb) {
        bool same = pa->n_tensors == pb->n_tensors;
        for (uint64_t i = 0; same && i < pa->n_tensors; i++) same = !strcmp(pa->tensors[i].name, pb->tensors[i].name);
        CHECK(same, "tensor order independent of the source order");
    }
    cv_plan_free(pa);
    cv_plan_free(pb);
    hq_free(a);
    hq_free(b);
}

static void expect_err(tlist *l, const char *cfg, hq_status want, const char *needle, const char *what) {
    char err[HQ_ERR_LEN] = "";
    cv_plan *p = NULL;
    hq_status st = cv_plan_build(l->t, (uint64_t)l->n, cfg, "ckpt", &p, err);
    CHECK(st == want && strstr(err, needle) && !strchr(err, '\n') && !p, "%s: got %s '%s' (want %s with '%s')", what,
          hq_status_name(st), err, hq_status_name(want), needle);
    cv_plan_free(p);
}

static void test_errors(void) {
    tlist *l = hq_calloc(1, sizeof *l);
    /* shape mismatch: message names the tensor, found and expected shapes */
    make_doge(l, DOGE_OLD, FFN_MLP, false);
    l->t[find_t(l, "model.layers.1.self_attn.k_proj.weight")].shape[0] = 12;
    expect_err(l, cfg_doge(false, NULL), HQ_ERR_MISMATCH, "'model.layers.1.self_attn.k_proj.weight' has shape [12, 16] but config says [8, 16]",
               "shape");
    /* config disagrees with the tensors */
    make_doge(l, DOGE_OLD, FFN_MLP, false);
    expect_err(l, "{\"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 32, \"num_hidden_layers\": 4,"
                  " \"num_attention_heads\": 4, \"num_key_value_heads\": 2}",
               HQ_ERR_MISMATCH, "gate_proj.weight' has shape [24, 16] but config says [32, 16]", "intermediate");
    /* missing */
    del(l, "model.layers.3.feed_forward.up_proj.weight");
    expect_err(l, cfg_doge(false, NULL), HQ_ERR_MISMATCH, "missing tensor 'model.layers.3.feed_forward.up_proj.weight'",
               "missing");
    /* extra: unknown tensor, and a layer beyond num_hidden_layers */
    make_doge(l, DOGE_OLD, FFN_MLP, false);
    add(l, "model.layers.0.self_attn.bogus", 1, 3, 0, 0, 0);
    expect_err(l, cfg_doge(false, NULL), HQ_ERR_MISMATCH, "unexpected tensor 'model.layers.0.self_attn.bogus'", "extra");
    make_doge(l, DOGE_OLD, FFN_MLP, false);
    add(l, "model.layers.4.pre_layernorm.weight", 1, D, 0, 0, 0);
    expect_err(l, cfg_doge(false, NULL), HQ_ERR_MISMATCH, "unexpected tensor 'model.layers.4.pre_layernorm.weight'",
               "extra layer");
    /* fewer layers than config */
    make_doge(l, DOGE_OLD, FFN_MLP, false);
    expect_err(l,
               "{\"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 5,"
               " \"num_attention_heads\": 4, \"num_key_value_heads\": 2}",
               HQ_ERR_MISMATCH, "missing tensor 'model.layers.4.", "layer count");
    /* unknown layout */
    l->n = 0;
    add(l, "transformer.wte.weight", 2, V, D, 0, 0);
    expect_err(l, cfg_doge(false, NULL), HQ_ERR_UNSUPPORTED, "unknown model layout", "unknown");
    /* queries_proj sub-variant */
    make_doge(l, DOGE_OLD, FFN_MLP, false);
    add(l, "model.layers.0.feed_forward.queries_proj.weight", 2, 16, D, 0, 0);
    expect_err(l, cfg_doge(false, NULL), HQ_ERR_UNSUPPORTED, "queries_proj", "queries_proj");
    /* pre-2025-01 DMAttn: dt_proj d -> H with KV != H */
    make_doge(l, DOGE_OLD, FFN_MLP, false);
    int i = find_t(l, "model.layers.0.self_attn.dt_proj.weight");
    l->t[i].shape[1] = D + 4;
    expect_err(l, cfg_doge(false, NULL), HQ_ERR_UNSUPPORTED, "pre-2025-01 DMAttn", "hard-mask DMAttn");
    /* dynamic_mask_ratio */
    make_doge(l, DOGE_OLD, FFN_MLP, false);
    expect_err(l, cfg_doge(false, "\"dynamic_mask_ratio\": 0.1"), HQ_ERR_UNSUPPORTED, "dynamic_mask_ratio", "ratio");
    /* A of a size that is neither H nor KV */
    l->t[find_t(l, "model.layers.0.self_attn.A")].shape[0] = 3;
    expect_err(l, cfg_doge(false, NULL), HQ_ERR_MISMATCH, "'model.layers.0.self_attn.A' has shape [3]", "A size");
    /* is_moe mismatch both ways */
    make_doge(l, DOGE_NEW, FFN_MLP, false);
    expect_err(l, cfg_doge(true, NULL), HQ_ERR_MISMATCH, "is_moe=true", "is_moe true, dense tensors");
    make_doge(l, DOGE_NEW, FFN_ROUTER, false);
    expect_err(l, cfg_doge(false, NULL), HQ_ERR_MISMATCH, "is_moe=false", "is_moe false, moe tensors");
    /* expert count disagrees with router rows */
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%s", cfg_doge(true, NULL));
    char *e = strstr(cfg, "\"num_experts\": 16");
    memcpy(e, "\"num_experts\": 25", 17);
    expect_err(l, cfg, HQ_ERR_MISMATCH, "router_gate.weight' has shape [8, 16] but config says [10, 16]", "E vs Kk");
    /* missing config key */
    expect_err(l,
               "{\"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 4,"
               " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"is_moe\": true}",
               HQ_ERR_MISMATCH, "lacks a positive 'num_experts'", "no num_experts");
    expect_err(l, "{\"hidden_size\": 16}", HQ_ERR_FORMAT, "vocab_size", "no vocab");
    expect_err(l, "{not json", HQ_ERR_FORMAT, "not valid JSON", "bad json");
    expect_err(l, NULL, HQ_ERR_FORMAT, "config.json is missing", "no config");
    expect_err(l, "{\"vocab_size\": 32, \"vocab_size\": 33}", HQ_ERR_FORMAT, "twice", "dup key");
    expect_err(l, cfg_doge(true, "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 2}"), HQ_ERR_UNSUPPORTED,
               "yarn", "rope type");
    /* integer dtype */
    make_doge(l, DOGE_OLD, FFN_MLP, false);
    l->t[find_t(l, "model.layers.0.pre_layernorm.weight")].dtype = HQ_DT_I64;
    expect_err(l, cfg_doge(false, NULL), HQ_ERR_UNSUPPORTED, "dtype I64", "int dtype");
    /* duplicate names */
    make_doge(l, DOGE_OLD, FFN_MLP, false);
    add(l, "model.layers.0.pre_layernorm.weight", 1, D, 0, 0, 0);
    expect_err(l, cfg_doge(false, NULL), HQ_ERR_FORMAT, "appears twice", "dup tensor");
    hq_free(l);
}

static void test_config_spellings(void) {
    cv_hparams hp;
    char err[HQ_ERR_LEN];
    CHECK(cv_config_parse("{\"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8,"
                          " \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
                          " \"num_cdmmoe_experts\": 4096, \"num_cdmmoe_heads\": 4, \"num_cdmmoe_experts_per_head\": 8,"
                          " \"eos_token_id\": [7, 9], \"head_dim\": 16}",
                          "c", &hp, err) == HQ_OK,
          "cdmmoe: %s", err);
    CHECK(hp.n_expert == 4096 && hp.n_rhead == 4 && hp.n_expert_used == 8, "num_cdmmoe_* spelling");
    CHECK(hp.n_kv == 2 && hp.head_dim == 16 && hp.eos == 7 && hp.bos == -1 && hp.tie == -1, "defaults");
    CHECK(!strcmp(hp.rope_type, "none") && hp.rope_theta == 10000.0 && hp.rope_factor == 1.0, "rope default");
    CHECK(cv_config_parse("{\"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8,"
                          " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"max_position_embeddings\": 99,"
                          " \"rope_parameters\": {\"rope_theta\": 5.0, \"rope_type\": \"dynamic\", \"factor\": 2}}",
                          "c", &hp, err) == HQ_OK &&
              hp.rope_theta == 5.0 && !strcmp(hp.rope_type, "dynamic") && hp.rope_factor == 2 &&
              hp.rope_orig_ctx == 99,
          "rope_parameters dynamic: %s", err);
    CHECK(cv_config_parse("{\"vocab_size\": 10, \"hidden_size\": 9, \"intermediate_size\": 8,"
                          " \"num_hidden_layers\": 1, \"num_attention_heads\": 2}",
                          "c", &hp, err) == HQ_ERR_FORMAT &&
              strstr(err, "multiple"),
          "d %% H: %s", err);
    CHECK(cv_config_parse("{\"vocab_size\": 1.5, \"hidden_size\": 8}", "c", &hp, err) == HQ_ERR_FORMAT, "fraction");
}

/* allocation failures anywhere in plan building: a clean status, never a crash or leak */
static void test_alloc_failures(void) {
    tlist *l = hq_calloc(1, sizeof *l);
    make_cheems(l, FFN_PK);
    char err[HQ_ERR_LEN];
    int bad = 0, ok = 0;
    for (int64_t n = 1; n < 200; n++) {
        cv_plan *p = NULL;
        hq_alloc_fail_at(n);
        hq_status st = cv_plan_build(l->t, (uint64_t)l->n, cfg_cheems(true), "s", &p, err);
        hq_alloc_fail_at(0);
        if (st == HQ_OK) ok++;
        else if (st != HQ_ERR_NOMEM) bad++;
        cv_plan_free(p);
        if (st == HQ_OK && n > 50) break;
    }
    CHECK(bad == 0 && ok > 0, "alloc failure loop: %d wrong statuses, %d successes", bad, ok);
    hq_free(l);
}

int main(void) {
    test_cheems();
    test_doge();
    test_canonical_order();
    test_errors();
    test_config_spellings();
    test_alloc_failures();
    TEST_END();
}
