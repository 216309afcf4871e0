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


/* OTCE checkpoints as the authors' code saves them (tests/fixtures/otce,
 * tools/make_otce_fixtures.py): config.json without num_hidden_layers, raw
 * state dicts repeating the shared expert modules. */
static cv_plan *otce_plan(const fmt_tensor *ts, uint64_t n, const char *cfg, hq_status want, const char *needle,
                          const char *what) {
    char err[HQ_ERR_LEN] = "";
    cv_plan *p = NULL;
    hq_status st = cv_plan_build(ts, n, cfg, "otce", &p, err);
    CHECK(st == want && (!needle || strstr(err, needle)), "%s: status %d, '%s'", what, (int)st, err);
    return p;
}

/* config.json text with `"key": old` replaced by `"key": new` (caller frees) */
static char *cfg_edit(const char *cfg, const char *from, const char *to) {
    const char *at = strstr(cfg, from);
    if (!at) return NULL;
    size_t n = strlen(cfg) - strlen(from) + strlen(to) + 1;
    char *o = hq_malloc(n);
    snprintf(o, n, "%.*s%s%s", (int)(at - cfg), cfg, to, at + strlen(from));
    return o;
}

static void test_otce(void) {
    char err[HQ_ERR_LEN] = "";
    fmt_ckpt *ck = NULL;
    if (fmt_ckpt_open(FIXTURE("otce/otce-expansive-bin"), &ck, err) != HQ_OK) {
        CHECK(0, "otce fixture: %s (run tools/make_otce_fixtures.py)", err);
        return;
    }
    const char *cfg = ck->config_json;
    CHECK(!strstr(cfg, "num_hidden_layers"), "the authors' config.json has no num_hidden_layers");
    cv_plan *p = otce_plan(ck->tensors, ck->n_tensors, cfg, HQ_OK, NULL, "otce-expansive");
    if (p) {
        static const cv_mixer mx[6] = {CV_MIX_MAMBA, CV_MIX_MAMBA, CV_MIX_ATTN, CV_MIX_MAMBA, CV_MIX_MAMBA, CV_MIX_ATTN};
        static const cv_ffn ff[6] = {CV_FFN_MLP, CV_FFN_OTCE_MOE, CV_FFN_OTCE_MOE, CV_FFN_OTCE_MOE, CV_FFN_MLP,
                                     CV_FFN_MLP};
        CHECK(p->variant == CV_VAR_OTCE && p->n_layer == 6, "otce: variant, 6 layers from the stage counts");
        bool ok = true;
        for (int l = 0; l < 6 && p->n_layer == 6; l++) ok = ok && p->mixers[l] == mx[l] && p->ffns[l] == ff[l];
        CHECK(ok, "otce layer layout observation/thinking/conseption/expression");
        CHECK(p->hp.mamba_dt_rank == 2 && p->hp.mamba_expand == 2 && p->hp.mamba_d_state == 16 &&
                  p->hp.mamba_d_conv == 4 && p->hp.type_vocab == 2 && p->hp.mamba_conv_bias && p->hp.mamba_proj_bias &&
                  !strcmp(p->hp.expert_type, "expansive"),
              "otce hyper-parameters");
        CHECK(p->n_expert == 4 && p->n_expert_used == 1, "otce experts %lld top-%lld", (long long)p->n_expert,
              (long long)p->n_expert_used);
        /* 3 MoE layers x 4 experts x shared gate/up/down */
        CHECK(p->n_shared_dedup == 36 && p->n_ignored == 36, "otce shared copies dropped: %lld",
              (long long)p->n_shared_dedup);
        const cv_tensor *t = pt(p, "blk.0.mamba.A_log");
        CHECK(t && t->keep_f32 && t->xform == CV_X_COPY && t->ne[0] == 16 && t->ne[1] == 48, "otce A_log verbatim");
        t = pt(p, "blk.0.mamba.conv1d.weight");
        CHECK(t && t->n_dims == 3 && t->ne[0] == 4 && t->ne[2] == 48 && t->keep_f32, "otce conv1d [E_in,1,K]");
        CHECK(pt(p, "blk.0.mamba.conv1d.bias") && pt(p, "blk.0.mamba.dt_proj.bias") && pt(p, "output_norm.bias") &&
                  pt(p, "token_types.weight") && pt(p, "output.weight"),
              "otce optional tensors present");
        t = pt(p, "blk.0.mamba.in_proj.weight");
        CHECK(t && !t->keep_f32, "otce in_proj follows --outtype");
        CHECK(pt(p, "blk.1.feed_forward.shared_up_proj.weight") &&
                  !pt(p, "blk.1.feed_forward.experts.0.shared_up_proj.weight") &&
                  pt(p, "blk.1.feed_forward.experts.3.shared_expert_gate.weight"),
              "otce shared kept once, per-expert gate kept");
        CHECK(pt(p, "blk.5.self_attention.q_proj.weight") && pt(p, "blk.5.dense.weight") &&
                  pt(p, "blk.2.self_attn.o_proj.weight"),
              "otce thinking / expression attention names");
        cv_plan_free(p);
    }
    /* a saver that kept only the expert copies of the shared modules: taken from experts.0 */
    uint64_t n = ck->n_tensors, m = 0;
    fmt_tensor *ts = hq_malloc_array(n, sizeof *ts);
    for (uint64_t i = 0; i < n; i++)
        if (!strstr(ck->tensors[i].name, ".feed_forward.shared_")) ts[m++] = ck->tensors[i];
    p = otce_plan(ts, m, cfg, HQ_OK, NULL, "otce shared only under experts.*");
    if (p) CHECK(pt(p, "blk.3.feed_forward.shared_down_proj.weight") && p->n_shared_dedup == 27, "otce from experts.0");
    cv_plan_free(p);
    /* copies that differ cannot come from the authors' shared module */
    memcpy(ts, ck->tensors, n * sizeof *ts);
    int64_t iu = -1, ig = -1;
    for (uint64_t i = 0; i < n; i++) {
        if (!strcmp(ts[i].name, "model.layers.2.feed_forward.experts.2.shared_up_proj.weight")) iu = (int64_t)i;
        if (!strcmp(ts[i].name, "model.layers.2.feed_forward.shared_gate_proj.weight")) ig = (int64_t)i;
    }
    CHECK(iu >= 0 && ig >= 0, "otce fixture names");
    if (iu >= 0 && ig >= 0) {
        const char *keep = ts[iu].name;
        ts[iu] = ts[ig];
        ts[iu].name = (char *)keep;
        otce_plan(ts, n, cfg, HQ_ERR_MISMATCH, "differs from", "otce unequal shared copy");
    }
    hq_free(ts);
    /* config.json edits */
    struct {
        const char *from, *to;
        hq_status want;
        const char *needle;
    } ed[] = {
        {"\"num_thinking_layers\": 1", "\"num_thinking_layers\": 2", HQ_ERR_MISMATCH, "stage counts"},
        {"\"num_expression_layers\": 1", "\"num_expression_layers\": 1, \"num_hidden_layers\": 7", HQ_ERR_FORMAT,
         "sum of the OTCE stage counts"},
        {"\"mamba_d_state\": 16", "\"mamba_d_state\": 8", HQ_ERR_MISMATCH, "x_proj"},
        {"\"mamba_dt_rank\": 2", "\"mamba_dt_rank\": \"auto\"", HQ_OK, NULL},
        {"\"mamba_dt_rank\": 2", "\"mamba_dt_rank\": \"big\"", HQ_ERR_FORMAT, "mamba_dt_rank"},
        {"\"expert_type\": \"expansive\"", "\"expert_type\": \"cohesive\"", HQ_ERR_MISMATCH, "shared_up_proj"},
        {"\"expert_type\": \"expansive\"", "\"expert_type\": \"wide\"", HQ_ERR_UNSUPPORTED, "expert_type"},
        {"\"type_vocab_size\": 2", "\"type_vocab_size\": null", HQ_ERR_MISMATCH, "unexpected tensor"},
        {"\"mamba_conv_bias\": true", "\"mamba_conv_bias\": false", HQ_ERR_MISMATCH, "unexpected tensor"},
        {"\"num_experts\": 4", "\"num_experts\": 1", HQ_ERR_MISMATCH, "missing tensor"},
        {"\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", HQ_ERR_UNSUPPORTED, "silu"},
    };
    for (size_t i = 0; i < sizeof ed / sizeof ed[0]; i++) {
        char *c2 = cfg_edit(cfg, ed[i].from, ed[i].to);
        CHECK(c2 != NULL, "otce config edit %zu: '%s' not in the fixture", i, ed[i].from);
        if (!c2) continue;
        cv_plan_free(otce_plan(ck->tensors, ck->n_tensors, c2, ed[i].want, ed[i].needle, ed[i].to));
        hq_free(c2);
    }
    fmt_ckpt_close(ck);
    /* cohesive, hidden_bias, dt_rank "auto" in config.json */
    if (fmt_ckpt_open(FIXTURE("otce/otce-cohesive-bin"), &ck, err) == HQ_OK) {
        p = otce_plan(ck->tensors, ck->n_tensors, ck->config_json, HQ_OK, NULL, "otce-cohesive");
        if (p) {
            CHECK(p->hp.mamba_dt_rank == 2 && p->n_expert == 3 && p->n_expert_used == 2 &&
                      !strcmp(p->hp.expert_type, "cohesive") && p->hp.type_vocab == 0,
                  "otce cohesive hyper-parameters");
            /* 3 MoE layers x 3 experts x shared_up weight + bias */
            CHECK(p->n_shared_dedup == 18, "otce cohesive copies: %lld", (long long)p->n_shared_dedup);
            CHECK(pt(p, "blk.2.self_attn.q_proj.bias") && pt(p, "blk.5.projection.bias") &&
                      pt(p, "blk.1.feed_forward.experts.2.down_proj.bias") && !pt(p, "token_types.weight"),
                  "otce hidden_bias biases");
            cv_plan_free(p);
        }
        fmt_ckpt_close(ck);
    } else {
        CHECK(0, "otce-cohesive fixture: %s", err);
    }
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

/* math-changing keys we do not implement: an error naming the key; their
 * neutral values pass (convert/config.c k_math_keys, docs/config-keys.md) */
static void test_config_math_keys(void) {
    static const struct {
        const char *extra, *want; /* want NULL: accepted */
    } cases[] = {
        {"\"partial_rotary_factor\": 0.5", "'partial_rotary_factor'"},
        {"\"partial_rotary_factor\": 1.0", NULL},
        {"\"attn_logit_softcapping\": 50.0", "'attn_logit_softcapping'"},
        {"\"final_logit_softcapping\": 30", "'final_logit_softcapping'"},
        {"\"final_logit_softcapping\": null, \"attn_logit_softcapping\": 0", NULL},
        {"\"logit_scale\": 0.0625", "'logit_scale'"},
        {"\"logits_scaling\": 8", "'logits_scaling'"},
        {"\"embedding_multiplier\": 12", "'embedding_multiplier'"},
        {"\"embedding_multiplier\": 1, \"residual_multiplier\": 1.0", NULL},
        {"\"scale_emb\": 12", "'scale_emb'"},
        {"\"residual_multiplier\": 0.22", "'residual_multiplier'"},
        {"\"scale_depth\": 1.4", "'scale_depth'"},
        {"\"dim_model_base\": 256", "'dim_model_base'"},
        {"\"attention_multiplier\": 0.0078125", "'attention_multiplier'"},
        {"\"query_pre_attn_scalar\": 256", "'query_pre_attn_scalar'"},
        {"\"use_sliding_window\": true", "'use_sliding_window'"},
        {"\"use_sliding_window\": false", NULL},
        {"\"layer_types\": [\"full_attention\", \"sliding_attention\"]", "'layer_types[1]' = 'sliding_attention'"},
        {"\"layer_types\": [\"full_attention\"]", NULL},
        {"\"layer_types\": \"full_attention\"", "'layer_types' must be a list"},
        {"\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1e4, \"partial_rotary_factor\": 0.25}",
         "'rope_parameters.partial_rotary_factor'"},
        {"\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1e4, \"mrope_section\": [1, 2]}",
         "'rope_parameters.mrope_section'"},
        {"\"rope_parameters\": {\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 1}",
         "'rope_parameters.rope_type' = 'llama3'"},
        {"\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}", "'rope_scaling.type' = 'linear'"},
        {"\"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 4, \"original_max_position_embeddings\": 64}", NULL},
        {"\"rope_theta\": 10000.0, \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 40000.0}",
         "'rope_theta' 10000 and 'rope_parameters.rope_theta' 40000 disagree"},
        {"\"rope_theta\": 40000.0, \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 40000.0}", NULL},
        {"\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 4}, \"rope_parameters\": {\"rope_type\": \"default\"}",
         "'rope_scaling' (dynamic, factor 4) and 'rope_parameters' (default, factor 1) disagree"},
        {"\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 4}, "
         "\"rope_parameters\": {\"rope_type\": \"dynamic\", \"factor\": 4.0, \"rope_theta\": 1e4}", NULL},
        /* informational: never an error */
        {"\"torch_dtype\": \"bfloat16\", \"dtype\": \"float32\", \"router_aux_loss_coef\": 0.01, "
         "\"output_router_logits\": true, \"hidden_dropout\": 0.1, \"transformers_version\": \"5.23.0\"", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char js[1024], err[HQ_ERR_LEN] = "";
        snprintf(js, sizeof js,
                 "{\"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, \"num_hidden_layers\": 1,"
                 " \"num_attention_heads\": 2, %s}", cases[i].extra);
        cv_hparams hp;
        hq_status st = cv_config_parse(js, "c", &hp, err);
        if (cases[i].want)
            CHECK(st != HQ_OK && strstr(err, cases[i].want), "config {%s}: want an error with \"%s\", got %d '%s'",
                  cases[i].extra, cases[i].want, (int)st, err);
        else
            CHECK(st == HQ_OK, "config {%s}: %s", cases[i].extra, err);
    }
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


/* ---------------- end to end over the checkpoint fixtures ---------------- */
#include <dirent.h>
#include <sys/stat.h>

static char g_tmp[256];

static uint32_t ggml_of(hq_dtype dt) {
    return dt == HQ_DT_F16 ? GGML_T_F16 : dt == HQ_DT_BF16 ? GGML_T_BF16 : GGML_T_F32;
}

static bool gguf_str_is(const fmt_gguf *g, const char *key, const char *want) {
    fmt_gguf_str s;
    if (!fmt_gguf_get_str(g, key, &s)) return false;
    return s.len == strlen(want) && !memcmp(s.s, want, s.len);
}

static uint8_t *slurp(const char *path, uint64_t *n) {
    char *b = NULL;
    char err[HQ_ERR_LEN];
    if (hq_read_file(path, 1ull << 30, &b, n, err) != HQ_OK) return NULL;
    return (uint8_t *)b;
}

/* no "<out>.tmp.*" left next to the output */
static int count_temps(void) {
    DIR *d = opendir(g_tmp);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

/* Converts dir with outtype ot and checks every tensor and key against the
 * source read through formats/ (the reference) and docs/gguf-schema.md. */
static bool check_fixture(const char *dir, cv_outtype ot, const char *out) {
    char err[HQ_ERR_LEN] = "";
    cv_options o = {.outtype = ot, .quiet = true, .name = "m"};
    hq_inputs_forget(); /* out was read back by the previous fixture's checks */
    hq_status st = cv_convert(dir, out, &o, err);
    CHECK(st == HQ_OK, "%s: convert: %s", dir, err);
    if (st != HQ_OK) return false;
    fmt_ckpt *ck = NULL;
    cv_plan *p = NULL;
    fmt_gguf *g = NULL;
    CHECK(fmt_ckpt_open(dir, &ck, err) == HQ_OK, "%s: %s", dir, err);
    if (ck) CHECK(cv_plan_build(ck->tensors, ck->n_tensors, ck->config_json, dir, &p, err) == HQ_OK, "%s", err);
    CHECK(fmt_gguf_open(out, &g, err) == HQ_OK, "%s: reading back: %s", out, err);
    if (!ck || !p || !g) {
        fmt_gguf_close(g), cv_plan_free(p), fmt_ckpt_close(ck);
        return false;
    }
    cv_outtype eff = ot == CV_OUT_AUTO ? cv_plan_default_outtype(p) : ot;
    const char *a = cv_variant_arch(p->variant);
    char k[128];
    CHECK(gguf_str_is(g, "general.architecture", a), "%s: architecture", dir);
    CHECK(gguf_str_is(g, "hyquant.variant", cv_variant_name(p->variant)), "%s: variant", dir);
    CHECK(gguf_str_is(g, "general.name", "m"), "%s: name", dir);
    CHECK(gguf_str_is(g, "hyquant.config_json", ck->config_json), "%s: config_json verbatim", dir);
    CHECK(!fmt_gguf_find_kv(g, "hyquant.source"), "%s: no container-specific key", dir);
    if (ck->tokenizer_json) CHECK(gguf_str_is(g, "tokenizer.huggingface.json", ck->tokenizer_json), "%s: tokenizer", dir);
    else CHECK(!fmt_gguf_find_kv(g, "tokenizer.huggingface.json"), "%s: no tokenizer key", dir);
    uint32_t u = 99;
    CHECK(fmt_gguf_get_u32(g, "general.file_type", &u) && u == (eff == CV_OUT_F16 ? 1u : eff == CV_OUT_BF16 ? 32u : 0u),
          "%s: file_type %u", dir, u);
    CHECK(fmt_gguf_alignment(g) == 32, "%s: alignment", dir);
    snprintf(k, sizeof k, "%s.block_count", a);
    CHECK(fmt_gguf_get_u32(g, k, &u) && u == p->n_layer, "%s: block_count", dir);
    static const char *const u32keys[] = {"vocab_size", "context_length", "embedding_length", "feed_forward_length",
                                          "attention.head_count", "attention.head_count_kv", "attention.key_length",
                                          "attention.keep_window_size", "attention.sliding_window",
                                          "attention.dynamic_mask_ratio", "rope.scaling.original_context_length",
                                          "expert_count", "expert_used_count"};
    int64_t want[] = {p->hp.vocab, p->hp.max_pos, p->hp.d, p->hp.inter, p->hp.n_head, p->hp.n_kv, p->hp.head_dim,
                      p->hp.keep_window, p->hp.sliding_window, 0, p->hp.rope_orig_ctx, p->n_expert, p->n_expert_used};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        snprintf(k, sizeof k, "%s.%s", a, u32keys[i]);
        CHECK(fmt_gguf_get_u32(g, k, &u) && u == (uint64_t)want[i], "%s: %s = %u, want %lld", dir, k, u,
              (long long)want[i]);
    }
    float f;
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", a);
    CHECK(fmt_gguf_get_f32(g, k, &f) && f == (float)p->hp.eps, "%s: eps", dir);
    snprintf(k, sizeof k, "%s.rope.freq_base", a);
    CHECK(fmt_gguf_get_f32(g, k, &f) && f == (float)p->hp.rope_theta, "%s: rope base", dir);
    snprintf(k, sizeof k, "%s.rope.scaling.type", a);
    CHECK(gguf_str_is(g, k, p->hp.rope_type), "%s: rope type", dir);
    bool b;
    snprintf(k, sizeof k, "%s.tie_word_embeddings", a);
    CHECK(fmt_gguf_get_bool(g, k, &b) && b == !p->has_output, "%s: tie flag", dir);
    CHECK(fmt_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b), "%s: add_bos", dir);
    if (ck->tokenizer_config_json && strstr(ck->tokenizer_config_json, "\"add_bos_token\": true"))
        CHECK(b, "%s: add_bos true from tokenizer_config.json", dir);
    if (p->hp.bos >= 0) CHECK(fmt_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &u) && u == p->hp.bos, "%s: bos", dir);
    if (p->n_pk) {
        snprintf(k, sizeof k, "%s.moe.product_key_count", a);
        CHECK(fmt_gguf_get_u32(g, k, &u) && u == p->n_pk, "%s: Kk", dir);
    }
    snprintf(k, sizeof k, "%s.layer_mixers", a);
    const fmt_gguf_kv *mx = fmt_gguf_find_kv(g, k);
    snprintf(k, sizeof k, "%s.layer_ffns", a);
    const fmt_gguf_kv *fx = fmt_gguf_find_kv(g, k);
    bool layers_ok = mx && fx && mx->type == GGUF_VT_ARRAY && fx->type == GGUF_VT_ARRAY &&
                     mx->v.arr.type == GGUF_VT_STRING && fx->v.arr.type == GGUF_VT_STRING &&
                     mx->v.arr.n == (uint64_t)p->n_layer && fx->v.arr.n == (uint64_t)p->n_layer;
    for (int64_t l = 0; layers_ok && l < p->n_layer; l++) {
        const char *m = cv_mixer_name(p->mixers[l]), *ff = cv_ffn_name(p->ffns[l]);
        layers_ok = mx->v.arr.strs[l].len == strlen(m) && !memcmp(mx->v.arr.strs[l].s, m, strlen(m)) &&
                    fx->v.arr.strs[l].len == strlen(ff) && !memcmp(fx->v.arr.strs[l].s, ff, strlen(ff));
    }
    CHECK(layers_ok, "%s: layer_mixers / layer_ffns", dir);
    /* tensors: same order, names, dims, types; data equal to the reader's conversion */
    CHECK(fmt_gguf_n_tensors(g) == p->n_tensors, "%s: %llu tensors, want %llu", dir,
          (unsigned long long)fmt_gguf_n_tensors(g), (unsigned long long)p->n_tensors);
    int bad = 0;
    for (uint64_t i = 0; i < p->n_tensors && i < fmt_gguf_n_tensors(g); i++) {
        const cv_tensor *t = &p->tensors[i];
        const fmt_gguf_tensor *gt = fmt_gguf_tensor_at(g, i);
        hq_dtype dt = cv_tensor_out_dtype(t, eff);
        bool ok = !strcmp(gt->name, t->name) && gt->n_dims == (uint32_t)t->src->ndim && gt->type == ggml_of(dt);
        for (uint32_t d = 0; ok && d < gt->n_dims; d++) ok = gt->ne[d] == (uint64_t)t->src->shape[gt->n_dims - 1 - d];
        /* 1-D tensors and the routing / dt matrices stay F32 whatever the outtype */
        if (t->src->ndim == 1 || strstr(t->name, "ffn_gate_inp") || strstr(t->name, "_dt.") ||
            strstr(t->name, "ffn_pk_"))
            ok = ok && gt->type == GGML_T_F32;
        uint64_t nb = fmt_tensor_nelem(t->src) * hq_dtype_size(dt);
        ok = ok && gt->nbytes == nb;
        void *ref = ok ? hq_malloc((size_t)nb) : NULL;
        if (ref && fmt_tensor_read(t->src, dt, ref, err) == HQ_OK) {
            if (t->xform == CV_X_NEG_EXP) { /* A = -exp(A_log), spec §6 item 1 */
                float *x = ref;
                for (uint64_t e = 0; e < nb / 4; e++) x[e] = -expf(x[e]);
            }
            ok = !memcmp(ref, gt->data, (size_t)nb);
        } else {
            ok = false;
        }
        /* bf16 -> f32 exact, checked on the raw source bits */
        if (ok && t->src->dtype == HQ_DT_BF16 && dt == HQ_DT_F32 && fmt_tensor_is_contiguous(t->src) &&
            t->xform == CV_X_COPY) {
            const uint8_t *sp = t->src->storage + (uint64_t)t->src->offset * 2;
            for (uint64_t e = 0; ok && e < nb / 4; e++) {
                uint16_t h16;
                uint32_t w;
                memcpy(&h16, sp + 2 * e, 2);
                memcpy(&w, (const uint8_t *)gt->data + 4 * e, 4);
                ok = w == (uint32_t)h16 << 16;
            }
        }
        hq_free(ref);
        if (!ok && bad++ < 5) fprintf(stderr, "  %s: tensor %s differs from the source\n", dir, t->name);
    }
    CHECK(bad == 0, "%s (outtype %d): %d tensors differ", dir, (int)ot, bad);
    fmt_gguf_close(g);
    cv_plan_free(p);
    fmt_ckpt_close(ck);
    return true;
}

static bool same_file(const char *a, const char *b) {
    uint64_t na = 0, nb = 0;
    uint8_t *x = slurp(a, &na), *y = slurp(b, &nb);
    bool same = x && y && na == nb && !memcmp(x, y, (size_t)na);
    hq_free(x);
    hq_free(y);
    return same;
}

static void e2e_pair(const char *a, const char *b, const char *what) {
    char oa[300], ob[300], err[HQ_ERR_LEN] = "";
    snprintf(oa, sizeof oa, "%s/pa.gguf", g_tmp);
    snprintf(ob, sizeof ob, "%s/pb.gguf", g_tmp);
    cv_options o = {.quiet = true, .name = "m"};
    hq_status sa = cv_convert(a, oa, &o, err);
    CHECK(sa == HQ_OK, "%s: %s", what, err);
    hq_status sb = cv_convert(b, ob, &o, err);
    CHECK(sb == HQ_OK, "%s: %s", what, err);
    if (sa == HQ_OK && sb == HQ_OK) CHECK(same_file(oa, ob), "%s: GGUF files differ", what);
    unlink(oa);
    unlink(ob);
}

static int n_fixture_dirs = 0, n_pairs = 0;
static int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }
static void e2e_dir(const char *root) {
    DIR *d = opendir(root);
    if (!d) return;
    struct dirent *e;
    char *names[64];
    int n = 0;
    while ((e = readdir(d)) && n < 64)
        if (e->d_name[0] != '.') names[n++] = hq_path_join(root, e->d_name);
    closedir(d);
    /* sorted, so the run order does not depend on the directory order */
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    for (int i = 0; i < n; i++) {
        char *cfg = hq_path_join(names[i], "config.json");
        bool is_ckpt = hq_is_dir(names[i]) && cfg && hq_file_exists(cfg);
        hq_free(cfg);
        if (!is_ckpt) continue;
        n_fixture_dirs++;
        char out[300];
        snprintf(out, sizeof out, "%s/e2e.gguf", g_tmp);
        check_fixture(names[i], CV_OUT_AUTO, out);
        check_fixture(names[i], CV_OUT_F32, out);
        if (!getenv("HQ_SANITIZED")) {
            check_fixture(names[i], CV_OUT_F16, out);
            check_fixture(names[i], CV_OUT_BF16, out);
        }
        unlink(out);
    }
    /* checkpoints with the same config.json and tokenizer are the same model in
     * another container / sharding: their GGUF files must be byte-identical */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            bool same = true;
            static const char *const files[] = {"config.json", "tokenizer.json", "tokenizer_config.json"};
            for (int f = 0; same && f < 3; f++) {
                char *a = hq_path_join(names[i], files[f]), *b = hq_path_join(names[j], files[f]);
                uint64_t na = 0, nb = 0;
                uint8_t *x = a && hq_file_exists(a) ? slurp(a, &na) : NULL;
                uint8_t *y = b && hq_file_exists(b) ? slurp(b, &nb) : NULL;
                same = (f > 0 && !x && !y) || (x && y && na == nb && !memcmp(x, y, (size_t)na));
                if (f == 0 && !x) same = false;
                hq_free(x), hq_free(y), hq_free(a), hq_free(b);
            }
            if (!same) continue;
            char what[600];
            snprintf(what, sizeof what, "%.290s == %.290s", names[i], names[j]);
            e2e_pair(names[i], names[j], what);
            n_pairs++;
        }
    for (int i = 0; i < n; i++) hq_free(names[i]);
}

static void test_e2e(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/hq_test_convert.XXXXXX");
    if (!mkdtemp(g_tmp)) {
        CHECK(0, "mkdtemp");
        return;
    }
    e2e_dir(FIXTURE("convert"));
    e2e_dir(FIXTURE("models"));
    e2e_dir(FIXTURE("otce"));
    CHECK(n_fixture_dirs >= 5, "found %d checkpoint fixtures", n_fixture_dirs);
    CHECK(n_pairs >= 2, "found %d same-model pairs", n_pairs);
    printf("e2e: %d checkpoint fixtures, %d same-model pairs compared byte for byte\n", n_fixture_dirs, n_pairs);
    /* same model, different containers / sharding / source order -> identical bytes */
    e2e_pair(FIXTURE("convert/cheems_alog"), FIXTURE("convert/cheems_alog_single"), "sharded == unsharded");
    e2e_pair(FIXTURE("convert/doge_old_pk"), FIXTURE("convert/doge_old_pk_bin"), ".bin == .safetensors");
    /* streaming in tiny pieces gives the same file */
    char a[300], b[300], err[HQ_ERR_LEN] = "";
    snprintf(a, sizeof a, "%s/whole.gguf", g_tmp);
    snprintf(b, sizeof b, "%s/chunked.gguf", g_tmp);
    cv_options o = {.quiet = true, .name = "m"};
    CHECK(cv_convert(FIXTURE("convert/cheems_alog"), a, &o, err) == HQ_OK, "%s", err);
    cv_options oc = o;
    oc.chunk_bytes = 100; /* < one row of most tensors: one row per piece */
    CHECK(cv_convert(FIXTURE("convert/cheems_alog"), b, &oc, err) == HQ_OK, "%s", err);
    CHECK(same_file(a, b), "row-chunked streaming changes the output");
    unlink(b);
    /* failures leave neither the output nor a temporary file */
    int fails = 0, wrong = 0;
    for (int64_t n = 1; n < 400; n++) {
        hq_alloc_fail_at(n);
        hq_status st = cv_convert(FIXTURE("convert/cheems_alog"), b, &o, err);
        hq_alloc_fail_at(0);
        if (st == HQ_OK) break;
        fails++;
        if (st != HQ_ERR_NOMEM || hq_file_exists(b) || count_temps()) wrong++;
    }
    CHECK(fails > 10 && wrong == 0, "alloc failures in convert: %d runs, %d left files or wrong status", fails, wrong);
    CHECK(same_file(a, b), "convert after the failure loop");
    unlink(a);
    unlink(b);
    CHECK(count_temps() == 0, "temporary files left");
    rmdir(g_tmp);
}

int main(void) {
    test_cheems();
    test_doge();
    test_otce();
    test_canonical_order();
    test_errors();
    test_config_spellings();
    test_config_math_keys();
    test_alloc_failures();
    test_e2e();
    TEST_END();
}
