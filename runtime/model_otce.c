/* runtime/model_otce.c — load an OTCE GGUF (docs/gguf-schema.md "OTCE
 * keys"; spec §2.3, §4.10): the otce.* hyper-parameters, then per layer its
 * mixer (Mamba `mamba.*`, attention `self_attn.*`, expression attention
 * `self_attention.*` + pre_dense_layernorm/dense/projection) and FFN
 * (tanh-SwiGLU MLP or the MoE with its expert type), every tensor by its
 * module path under blk.N. and shape-checked. A = −exp(A_log) is computed
 * here, once. The walk is runtime/forward.c (otce_layer). */
#include "model_load.h" // defines: ld_ctx, rt_ld_*
#include "../core/limits.h" // defines: HQ_MAX_FFN

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    int64_t E, N, K, R;           /* Mamba inner size, state, conv kernel, dt rank */
    bool ssm_rope, attn_rope;
    rt_otce_expert_type xtype;
    int64_t n_exp, k_exp, Is, Ip; /* experts, top-k, shared / private FFN sizes */
} otce_hp;

/* "blk.<i>.<path>" */
static const char *nm(char *buf, size_t cap, int64_t i, const char *path) {
    snprintf(buf, cap, "blk.%lld.%s", (long long)i, path);
    return buf;
}

static bool str_eq(const fmt_gguf_str *s, const char *lit) {
    return s->len == strlen(lit) && memcmp(s->s, lit, s->len) == 0;
}

static const fmt_gguf_str *str_array(ld_ctx *c, const char *key, uint64_t n) {
    const fmt_gguf_kv *kv = fmt_gguf_find_kv(c->g, key);
    if (!kv || kv->type != GGUF_VT_ARRAY || kv->v.arr.type != GGUF_VT_STRING || kv->v.arr.n != n) return NULL;
    return kv->v.arr.strs;
}

static hq_status read_hp(ld_ctx *c, otce_hp *hp) {
    rt_model *m = c->m;
    const char *lab = fmt_gguf_label(c->g);
    uint64_t E = 0, N = 0, K = 0, R = 0, ne = 0, ke = 0, Is = 0, Ip = 0;
    if (!rt_ld_u64(c, "ssm.inner_size", &E) || !rt_ld_u64(c, "ssm.state_size", &N) ||
        !rt_ld_u64(c, "ssm.conv_kernel", &K) || !rt_ld_u64(c, "ssm.time_step_rank", &R))
        return hq_fail(c->err, HQ_ERR_FORMAT, "%s: missing otce.ssm.inner_size / state_size / conv_kernel / "
                       "time_step_rank", lab);
    /* bounds keep every product below in int64 and the conv window on the stack (conv1d.c) */
    if (E < 1 || E > 1u << 20 || N < 1 || N > 4096 || N % 2 || K < 1 || K > 64 || R < 1 || R > E)
        return hq_fail(c->err, HQ_ERR_FORMAT,
                       "%s: OTCE Mamba sizes out of range (inner %llu <= 2^20, state %llu even <= 4096, conv kernel "
                       "%llu <= 64, dt rank %llu <= inner)", lab, (unsigned long long)E, (unsigned long long)N,
                       (unsigned long long)K, (unsigned long long)R);
    hp->E = (int64_t)E, hp->N = (int64_t)N, hp->K = (int64_t)K, hp->R = (int64_t)R;
    hp->ssm_rope = hp->attn_rope = true;
    rt_ld_bool(c, "ssm.rope", &hp->ssm_rope);
    rt_ld_bool(c, "attention.rope", &hp->attn_rope);
    fmt_gguf_str s;
    if (rt_ld_str(c, "ssm.act", &s) && !str_eq(&s, "silu"))
        return hq_fail(c->err, HQ_ERR_UNSUPPORTED, "%s: otce.ssm.act '%.*s' not supported (silu)", lab,
                       (int)(s.len > 32 ? 32 : s.len), s.s);
    hp->xtype = RT_OTCE_EXPANSIVE;
    if (rt_ld_str(c, "moe.expert_type", &s)) {
        if (str_eq(&s, "cohesive")) hp->xtype = RT_OTCE_COHESIVE;
        else if (str_eq(&s, "mlp")) hp->xtype = RT_OTCE_PLAIN;
        else if (!str_eq(&s, "expansive"))
            return hq_fail(c->err, HQ_ERR_UNSUPPORTED,
                           "%s: otce.moe.expert_type '%.*s' not supported (expansive, cohesive, mlp)", lab,
                           (int)(s.len > 32 ? 32 : s.len), s.s);
    }
    rt_ld_u64(c, "expert_count", &ne);
    rt_ld_u64(c, "expert_used_count", &ke);
    rt_ld_u64(c, "moe.shared_feed_forward_length", &Is);
    rt_ld_u64(c, "moe.expert_feed_forward_length", &Ip);
    if (ne > 4096 || ke > 64 || Is > HQ_MAX_FFN || Ip > HQ_MAX_FFN)
        return hq_fail(c->err, HQ_ERR_FORMAT, "%s: OTCE MoE sizes out of range (experts %llu <= 4096, top-k %llu <= "
                       "64, FFN %llu/%llu)", lab, (unsigned long long)ne, (unsigned long long)ke,
                       (unsigned long long)Is, (unsigned long long)Ip);
    hp->n_exp = (int64_t)ne, hp->k_exp = (int64_t)ke, hp->Is = (int64_t)Is, hp->Ip = (int64_t)Ip;
    if (m->I < 1) return hq_fail(c->err, HQ_ERR_FORMAT, "%s: otce.feed_forward_length missing", lab);
    return HQ_OK;
}

/* w, b: a pair "<path>.weight" / "<path>.bias" of length n (bias optional unless bias_req) */
static float *vec(ld_ctx *c, int64_t i, const char *path, int64_t n, bool req) {
    char b[160];
    return rt_ld_arr(c, nm(b, sizeof b, i, path), 1, &n, req);
}
static void mat(ld_ctx *c, int64_t i, const char *path, int64_t n_out, int64_t n_in, rt_weight *w) {
    char b[160];
    rt_ld_mat(c, nm(b, sizeof b, i, path), n_out, n_in, true, w);
}

static void load_mamba(ld_ctx *c, int64_t i, const otce_hp *hp, rt_mamba_layer *L) {
    const rt_model *m = c->m;
    int64_t d = m->d, E = hp->E, N = hp->N, K = hp->K, R = hp->R;
    char b[160];
    *L = (rt_mamba_layer){.d = d, .E = E, .N = N, .R = R, .K = K, .eps = m->eps, .rope_base = m->rope_theta,
                          .rope = hp->ssm_rope};
    mat(c, i, "mamba.in_proj.weight", 2 * E, d, &L->in_proj);
    L->in_proj_b = vec(c, i, "mamba.in_proj.bias", 2 * E, false);
    int64_t cw[3] = {E, 1, K};
    L->conv_w = rt_ld_arr(c, nm(b, sizeof b, i, "mamba.conv1d.weight"), 3, cw, true);
    L->conv_b = vec(c, i, "mamba.conv1d.bias", E, false);
    mat(c, i, "mamba.x_proj.weight", R + 2 * N, E, &L->x_proj);
    mat(c, i, "mamba.dt_proj.weight", E, R, &L->dt_proj);
    L->dt_proj_b = vec(c, i, "mamba.dt_proj.bias", E, false);
    int64_t ad[2] = {E, N};
    float *A = rt_ld_arr(c, nm(b, sizeof b, i, "mamba.A_log"), 2, ad, true);
    /* A = −exp(A_log.float()) (slow_forward), once at load */
    for (int64_t j = 0; A && j < E * N; j++) A[j] = -expf(A[j]);
    L->A = A;
    L->D = vec(c, i, "mamba.D", E, true);
    mat(c, i, "mamba.out_proj.weight", d, E, &L->out_proj);
    L->out_proj_b = vec(c, i, "mamba.out_proj.bias", d, false);
    L->dt_norm_w = vec(c, i, "mamba.dt_layernorm.weight", R, true);
    L->dt_norm_b = vec(c, i, "mamba.dt_layernorm.bias", R, true);
    L->B_norm_w = vec(c, i, "mamba.B_layernorm.weight", N, true);
    L->B_norm_b = vec(c, i, "mamba.B_layernorm.bias", N, true);
    L->C_norm_w = vec(c, i, "mamba.C_layernorm.weight", N, true);
    L->C_norm_b = vec(c, i, "mamba.C_layernorm.bias", N, true);
}

static void load_attn(ld_ctx *c, int64_t i, const otce_hp *hp, rt_layer *ly) {
    const rt_model *m = c->m;
    int64_t d = m->d, HP = m->H * m->P, KVP = m->KV * m->P;
    char b[160], p[96];
    ly->mixer = RT_MIX_ATTN;
    ly->expr = rt_ld_has(c, nm(b, sizeof b, i, "self_attention.q_proj.weight"));
    const char *a = ly->expr ? "self_attention" : "self_attn";
#define P_(s) (snprintf(p, sizeof p, "%s.%s", a, s), p)
    mat(c, i, P_("q_proj.weight"), HP, d, &ly->q);
    mat(c, i, P_("k_proj.weight"), KVP, d, &ly->k);
    mat(c, i, P_("v_proj.weight"), KVP, d, &ly->v);
    mat(c, i, P_("o_proj.weight"), d, HP, &ly->o);
    ly->bq = vec(c, i, P_("q_proj.bias"), HP, false);
    ly->bk = vec(c, i, P_("k_proj.bias"), KVP, false);
    ly->bv = vec(c, i, P_("v_proj.bias"), KVP, false);
    ly->bo = vec(c, i, P_("o_proj.bias"), d, false);
#undef P_
    ly->M = m->KV; /* β rows per kv head, all 0: plain causal softmax attention */
    ly->attn_rope = hp->attn_rope;
    if (!ly->expr) return;
    ly->pd_norm = vec(c, i, "pre_dense_layernorm.weight", d, true);
    ly->pd_norm_b = vec(c, i, "pre_dense_layernorm.bias", d, true);
    mat(c, i, "dense.weight", d, d, &ly->dense);
    ly->b_dense = vec(c, i, "dense.bias", d, false);
    mat(c, i, "projection.weight", d, d, &ly->proj);
    ly->b_proj = vec(c, i, "projection.bias", d, false);
}

/* an MLP "<pre>gate_proj", "up_proj" (unless no_up), "down_proj" of size I */
static void load_mlp(ld_ctx *c, int64_t i, const char *pre, int64_t I, bool no_up, rt_otce_mlp_w *w) {
    int64_t d = c->m->d;
    char p[128];
    memset(w, 0, sizeof *w);
    snprintf(p, sizeof p, "%sgate_proj.weight", pre), mat(c, i, p, I, d, &w->gate);
    snprintf(p, sizeof p, "%sgate_proj.bias", pre), w->gate_b = vec(c, i, p, I, false);
    if (!no_up) {
        snprintf(p, sizeof p, "%sup_proj.weight", pre), mat(c, i, p, I, d, &w->up);
        snprintf(p, sizeof p, "%sup_proj.bias", pre), w->up_b = vec(c, i, p, I, false);
    }
    snprintf(p, sizeof p, "%sdown_proj.weight", pre), mat(c, i, p, d, I, &w->down);
    snprintf(p, sizeof p, "%sdown_proj.bias", pre), w->down_b = vec(c, i, p, d, false);
}

static void load_moe(ld_ctx *c, int64_t i, const otce_hp *hp, rt_layer *ly) {
    const rt_model *m = c->m;
    int64_t d = m->d, E = hp->n_exp;
    rt_otce_moe_w *w = &ly->moe;
    if (E < 2 || hp->k_exp < 1 || hp->k_exp > E || hp->Ip < 1 || (hp->xtype != RT_OTCE_PLAIN && hp->Is < 1)) {
        if (c->st == HQ_OK)
            c->st = hq_fail(c->err, HQ_ERR_FORMAT, "%s: layer %lld is a MoE but otce.expert_count %lld, "
                            "expert_used_count %lld, FFN sizes %lld/%lld are inconsistent", fmt_gguf_label(c->g),
                            (long long)i, (long long)E, (long long)hp->k_exp, (long long)hp->Is, (long long)hp->Ip);
        return;
    }
    *w = (rt_otce_moe_w){.type = hp->xtype, .d = d, .E = E, .k = hp->k_exp};
    mat(c, i, "feed_forward.router.weight", E, d, &w->router);
    w->experts = hq_calloc((size_t)E, sizeof *w->experts);
    rt_weight *gates = hp->xtype == RT_OTCE_EXPANSIVE ? hq_calloc((size_t)E, sizeof *gates) : NULL;
    if (!rt_ld_own(c, w->experts) || (hp->xtype == RT_OTCE_EXPANSIVE && !rt_ld_own(c, gates))) return;
    ly->moe_gate = gates;
    char pre[96];
    if (hp->xtype == RT_OTCE_EXPANSIVE) load_mlp(c, i, "feed_forward.shared_", hp->Is, false, &w->shared);
    if (hp->xtype == RT_OTCE_COHESIVE) {
        char b[160];
        rt_ld_mat(c, nm(b, sizeof b, i, "feed_forward.shared_up_proj.weight"), hp->Is, d, true, &w->shared.up);
        w->shared.up_b = vec(c, i, "feed_forward.shared_up_proj.bias", hp->Is, false);
    }
    for (int64_t e = 0; e < E && c->st == HQ_OK; e++) {
        snprintf(pre, sizeof pre, "feed_forward.experts.%lld.", (long long)e);
        load_mlp(c, i, pre, hp->Ip, hp->xtype == RT_OTCE_COHESIVE, &w->experts[e]);
        if (gates) {
            char p[128];
            snprintf(p, sizeof p, "%sshared_expert_gate.weight", pre);
            mat(c, i, p, 1, d, &gates[e]);
        }
    }
    /* the cohesive expert's tanh input is shared_up x: its private gate must match it */
    if (c->st == HQ_OK && hp->xtype == RT_OTCE_COHESIVE && hp->Is != hp->Ip)
        c->st = hq_fail(c->err, HQ_ERR_FORMAT, "%s: cohesive experts of size %lld but shared_up of %lld",
                        fmt_gguf_label(c->g), (long long)hp->Ip, (long long)hp->Is);
}

hq_status rt_otce_load(ld_ctx *c) {
    rt_model *m = c->m;
    const char *lab = fmt_gguf_label(c->g);
    otce_hp hp;
    hq_status st = read_hp(c, &hp);
    if (st != HQ_OK) return st;
    const fmt_gguf_str *mix = str_array(c, "otce.layer_mixers", (uint64_t)m->L);
    const fmt_gguf_str *ffn = str_array(c, "otce.layer_ffns", (uint64_t)m->L);
    if (!mix || !ffn)
        return hq_fail(c->err, HQ_ERR_FORMAT, "%s: otce.layer_mixers / layer_ffns missing or not %lld strings", lab,
                       (long long)m->L);
    int64_t d = m->d;
    rt_ld_mat(c, "token_embd.weight", m->V, d, true, &m->tok_embd);
    uint64_t T = 0;
    rt_ld_u64(c, "token_type_count", &T);
    if (T > 0) {
        if (T > 1u << 16) return hq_fail(c->err, HQ_ERR_FORMAT, "%s: otce.token_type_count %llu > 65536", lab,
                                         (unsigned long long)T);
        int64_t td[2] = {(int64_t)T, d};
        /* type ids are never passed by the LM: row 0 is added to every token */
        m->tok_type0 = rt_ld_arr(c, "token_types.weight", 2, td, true);
    }
    m->out_norm = rt_ld_arr(c, "output_norm.weight", 1, &d, true);
    m->out_norm_b = rt_ld_arr(c, "output_norm.bias", 1, &d, true);
    rt_ld_mat(c, "output.weight", m->V, d, false, &m->output);
    m->tied = m->output.data == NULL;
    if (m->tied) m->output = m->tok_embd;
    m->ones = hq_malloc_array((size_t)d, sizeof(float));
    if (!rt_ld_own(c, m->ones)) return c->st;
    for (int64_t j = 0; j < d; j++) m->ones[j] = 1.0f;
    for (int64_t i = 0; i < m->L && c->st == HQ_OK; i++) {
        rt_layer *ly = &m->layers[i];
        ly->attn_norm = vec(c, i, "input_layernorm.weight", d, true);
        ly->attn_norm_b = vec(c, i, "input_layernorm.bias", d, true);
        ly->ffn_norm = vec(c, i, "pre_ff_layernorm.weight", d, true);
        ly->ffn_norm_b = vec(c, i, "pre_ff_layernorm.bias", d, true);
        if (str_eq(&mix[i], "mamba")) {
            ly->mixer = RT_MIX_MAMBA;
            load_mamba(c, i, &hp, &ly->mamba);
        } else if (str_eq(&mix[i], "attn")) {
            load_attn(c, i, &hp, ly);
        } else {
            return hq_fail(c->err, HQ_ERR_UNSUPPORTED, "%s: OTCE layer %lld has mixer '%.*s' (supported: mamba, attn)",
                           lab, (long long)i, (int)(mix[i].len > 32 ? 32 : mix[i].len), mix[i].s);
        }
        if (str_eq(&ffn[i], "mlp")) {
            rt_otce_mlp_w w;
            ly->ffn = RT_FFN_OTCE_MLP;
            load_mlp(c, i, "feed_forward.", m->I, false, &w);
            ly->gate = w.gate, ly->up = w.up, ly->down = w.down;
            ly->b_gate = (float *)w.gate_b, ly->b_up = (float *)w.up_b, ly->b_down = (float *)w.down_b;
        } else if (str_eq(&ffn[i], "otce_moe")) {
            ly->ffn = RT_FFN_OTCE_MOE;
            load_moe(c, i, &hp, ly);
        } else {
            return hq_fail(c->err, HQ_ERR_UNSUPPORTED, "%s: OTCE layer %lld has ffn '%.*s' (supported: mlp, otce_moe)",
                           lab, (long long)i, (int)(ffn[i].len > 32 ? 32 : ffn[i].len), ffn[i].s);
        }
    }
    return c->st;
}
