/* quant/policy.c — per-tensor type choice; the rules are documented in policy.h */
#include "policy.h" // defines: q_role_of, q_policy_*, q_type_available
#include "quant.h"
#include "../formats/schema.h" // defines: fmt_schema_lookup

#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- roles ---- */

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && memcmp(s + a - b, suf, b) == 0;
}

/* "blk.12.attn_q.weight" -> "attn_q.weight"; other names unchanged */
static const char *strip_blk(const char *name) {
    if (strncmp(name, "blk.", 4) != 0) return name;
    const char *p = name + 4;
    if (*p < '0' || *p > '9') return name;
    while (*p >= '0' && *p <= '9') p++;
    return *p == '.' ? p + 1 : name;
}

/* OTCE module paths under blk.N. (docs/gguf-schema.md): the role of the
 * Cheems/Doge tensor doing the same job, so presets and mixes treat them
 * alike (spec §7: x_proj, whose rows make B and C, is ssm_b/c: >= 8-bit);
 * Q_ROLE_COUNT when the name is none of them */
static q_role otce_role(const char *b) {
    static const struct { const char *suffix; q_role r; } k[] = {
        {"q_proj.weight", Q_ROLE_ATTN_Q},        {"k_proj.weight", Q_ROLE_ATTN_K},
        {"v_proj.weight", Q_ROLE_ATTN_V},        {"o_proj.weight", Q_ROLE_ATTN_OUT},
        {"mamba.in_proj.weight", Q_ROLE_SSM_X},  {"mamba.x_proj.weight", Q_ROLE_SSM_BC},
        {"mamba.out_proj.weight", Q_ROLE_SSM_OUT}, {"gate_proj.weight", Q_ROLE_FFN_GATE},
        {"up_proj.weight", Q_ROLE_FFN_UP},       {"down_proj.weight", Q_ROLE_FFN_DOWN},
    };
    if (strncmp(b, "self_attn.", 10) && strncmp(b, "self_attention.", 15) && strncmp(b, "mamba.", 6) &&
        strncmp(b, "feed_forward.", 13))
        return Q_ROLE_COUNT;
    for (size_t i = 0; i < sizeof k / sizeof *k; i++)
        if (ends_with(b, k[i].suffix)) return k[i].r;
    return Q_ROLE_COUNT;
}

q_role q_role_of(const char *name, uint32_t n_dims, const uint64_t *ne) {
    /* only matrices named *.weight (llama-quantize's eligibility rule) */
    if (n_dims < 2 || !ends_with(name, ".weight")) return Q_ROLE_KEEP;
    uint64_t rows = 1;
    for (uint32_t i = 1; i < n_dims && i < 4; i++) rows *= ne[i];
    if (rows < 2) return Q_ROLE_KEEP;
    /* the schema's role (formats/schema.c); router, product keys and dt
     * projections have none: kept in float (spec §7) */
    const fmt_schema_entry *e = fmt_schema_lookup(name, NULL);
    if (e) {
        for (int r = 0; e->quant && r < Q_ROLE_COUNT; r++)
            if (!strcmp(e->quant, q_role_name((q_role)r))) return (q_role)r;
        return Q_ROLE_KEEP;
    }
    const char *b = strip_blk(name);
    q_role o = otce_role(b);
    if (o != Q_ROLE_COUNT) return o;
    /* other matrices (OTCE dense / projection, ...): quantize unless numerically sensitive */
    static const char *const sensitive[] = {"norm", "conv", "dt", "gate_inp", "router", "pk_", "A_log", "embed_pos"};
    for (size_t i = 0; i < sizeof sensitive / sizeof *sensitive; i++)
        if (strstr(b, sensitive[i])) return Q_ROLE_KEEP;
    return Q_ROLE_OTHER;
}

const char *q_role_name(q_role r) {
    static const char *const n[Q_ROLE_COUNT] = {
        "keep", "token_embd", "output", "attn_q", "attn_k", "attn_v", "attn_output", "ssm_x", "ssm_b/c",
        "ssm_out", "ffn_gate", "ffn_up", "ffn_down", "expert_down", "expert_up", "other"};
    return r < Q_ROLE_COUNT ? n[r] : "?";
}

q_group q_role_group(q_role r, const char *name) {
    /* OTCE's MoE: router, shared MLP and the experts' MLPs */
    if (!strncmp(strip_blk(name), "feed_forward.", 13) &&
        (strstr(name, ".experts.") || strstr(name, ".router.") || strstr(name, ".shared_")))
        return Q_GROUP_EXPERTS;
    switch (r) {
    case Q_ROLE_EMBD: case Q_ROLE_OUTPUT: return Q_GROUP_EMBD;
    case Q_ROLE_ATTN_Q: case Q_ROLE_ATTN_K: case Q_ROLE_ATTN_V: case Q_ROLE_ATTN_OUT: return Q_GROUP_ATTN;
    case Q_ROLE_SSM_X: case Q_ROLE_SSM_BC: case Q_ROLE_SSM_OUT: return Q_GROUP_SSD;
    case Q_ROLE_FFN_GATE: case Q_ROLE_FFN_UP: case Q_ROLE_FFN_DOWN: return Q_GROUP_MLP;
    case Q_ROLE_EXPERT_DOWN: case Q_ROLE_EXPERT_UP: return Q_GROUP_EXPERTS;
    default: break;
    }
    /* kept tensors are reported with the block they belong to */
    const char *b = strip_blk(name);
    if (!strncmp(b, "attn_", 5)) return Q_GROUP_ATTN;
    if (!strncmp(b, "ssm_", 4)) return Q_GROUP_SSD;
    if (!strncmp(b, "ffn_gate_inp", 12) || !strncmp(b, "ffn_pk_", 7)) return Q_GROUP_EXPERTS;
    if (!strncmp(b, "ffn_", 4)) return Q_GROUP_MLP;
    return Q_GROUP_OTHER;
}

const char *q_group_name(q_group g) {
    static const char *const n[Q_GROUP_COUNT] = {"attention", "SSD", "MLP", "experts", "embedding", "other"};
    return g < Q_GROUP_COUNT ? n[g] : "?";
}

/* ---- types ---- */

bool q_type_available(uint32_t type) {
    if (type == GGML_T_F32 || type == GGML_T_F16 || type == GGML_T_BF16) return true;
    if (type == GGML_T_Q8_K) return false; /* activation-only format */
    const q_type_traits *t = q_traits(type);
    return t && t->is_quantized && t->from_float_ref && t->to_float_ref;
}

double q_type_bpw(uint32_t type) {
    const ggml_type_info *ti = ggml_type_get(type);
    return ti ? 8.0 * ti->size / ti->blck : 0.0;
}

/* ---- presets ---- */

typedef enum { MIX_NONE, MIX_Q4_K_M, MIX_Q4_K_S, MIX_Q5_K_M, MIX_Q4_0, MIX_Q2_K, MIX_Q3_K_M, MIX_Q3_K_L } q_mix;

typedef struct {
    const char *name;
    uint32_t type;  /* default type of quantizable matrices */
    uint32_t ftype; /* llama.cpp LLAMA_FTYPE_MOSTLY_* */
    q_mix mix;
} q_preset;

static const q_preset k_presets[] = {
    {"Q8_0", GGML_T_Q8_0, 7, MIX_NONE},      {"Q4_0", GGML_T_Q4_0, 2, MIX_Q4_0},
    {"Q4_1", GGML_T_Q4_1, 3, MIX_NONE},      {"Q4_K_M", GGML_T_Q4_K, 15, MIX_Q4_K_M},
    {"Q4_K_S", GGML_T_Q4_K, 14, MIX_Q4_K_S}, {"Q5_K_M", GGML_T_Q5_K, 17, MIX_Q5_K_M},
    {"Q6_K", GGML_T_Q6_K, 18, MIX_NONE},     {"IQ4_NL", GGML_T_IQ4_NL, 25, MIX_NONE},
    {"Q2_K", GGML_T_Q2_K, 10, MIX_Q2_K},     {"Q3_K_S", GGML_T_Q3_K, 11, MIX_NONE},
    {"Q3_K_M", GGML_T_Q3_K, 12, MIX_Q3_K_M}, {"Q3_K_L", GGML_T_Q3_K, 13, MIX_Q3_K_L},
};
/* plain types: ftype = llama.cpp's "mostly <type>" id */
static const q_preset k_plain[] = {
    {"Q4_K", GGML_T_Q4_K, 15, MIX_NONE}, {"Q5_K", GGML_T_Q5_K, 17, MIX_NONE}, {"Q5_0", GGML_T_Q5_0, 8, MIX_NONE},
    {"Q3_K", GGML_T_Q3_K, 11, MIX_NONE},
    {"Q5_1", GGML_T_Q5_1, 9, MIX_NONE},  {"F16", GGML_T_F16, 1, MIX_NONE},    {"BF16", GGML_T_BF16, 32, MIX_NONE},
    {"F32", GGML_T_F32, 0, MIX_NONE},
};

typedef struct {
    regex_t re;
    char *pattern;
    uint32_t type;
} q_override;

struct q_policy {
    q_preset preset;
    q_override *ov;
    int n_ov;
};

static void list_names(char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof k_presets / sizeof *k_presets && o < cap; i++)
        if (q_type_available(k_presets[i].type))
            o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", k_presets[i].name);
    for (size_t i = 0; i < sizeof k_plain / sizeof *k_plain && o < cap; i++)
        if (q_type_available(k_plain[i].type))
            o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", k_plain[i].name);
}

hq_status q_policy_new(const char *type_name, q_policy **out, char *err) {
    *out = NULL;
    const q_preset *found = NULL;
    for (size_t i = 0; i < sizeof k_presets / sizeof *k_presets && !found; i++)
        if (!strcasecmp(type_name, k_presets[i].name)) found = &k_presets[i];
    for (size_t i = 0; i < sizeof k_plain / sizeof *k_plain && !found; i++)
        if (!strcasecmp(type_name, k_plain[i].name)) found = &k_plain[i];
    /* any other block type this build can produce (e.g. Q8_0 spelled q8_0 is found above) */
    q_preset plain;
    if (!found) {
        int t = ggml_type_from_name(type_name);
        if (t >= 0 && q_type_available((uint32_t)t)) {
            plain = (q_preset){ggml_type_name((uint32_t)t), (uint32_t)t, 1024 + (uint32_t)t, MIX_NONE};
            found = &plain;
        }
    }
    if (!found || !q_type_available(found->type)) {
        char names[400];
        list_names(names, sizeof names);
        return hq_fail(err, HQ_ERR_ARG, "unknown or unavailable --type '%s' (valid: %s)", type_name, names);
    }
    q_policy *p = hq_calloc(1, sizeof *p);
    if (!p) return hq_fail(err, HQ_ERR_NOMEM, "out of memory");
    p->preset = *found;
    *out = p;
    return HQ_OK;
}

void q_policy_free(q_policy *p) {
    if (!p) return;
    for (int i = 0; i < p->n_ov; i++) {
        regfree(&p->ov[i].re);
        hq_free(p->ov[i].pattern);
    }
    hq_free(p->ov);
    hq_free(p);
}

hq_status q_policy_add_override(q_policy *p, const char *spec, char *err) {
    const char *eq = strrchr(spec, '=');
    if (!eq || eq == spec || !eq[1])
        return hq_fail(err, HQ_ERR_ARG, "--tensor-type '%s': expected REGEX=TYPE", spec);
    int t = ggml_type_from_name(eq + 1);
    if (t < 0 || !q_type_available((uint32_t)t)) {
        char names[400];
        list_names(names, sizeof names);
        return hq_fail(err, HQ_ERR_ARG, "--tensor-type '%s': unknown or unavailable type '%s'", spec, eq + 1);
    }
    q_override *nv = hq_realloc(p->ov, sizeof *nv * (size_t)(p->n_ov + 1));
    if (!nv) return hq_fail(err, HQ_ERR_NOMEM, "out of memory");
    p->ov = nv;
    q_override *o = &p->ov[p->n_ov];
    o->pattern = hq_strndup(spec, (size_t)(eq - spec));
    if (!o->pattern) return hq_fail(err, HQ_ERR_NOMEM, "out of memory");
    int rc = regcomp(&o->re, o->pattern, REG_EXTENDED | REG_NOSUB);
    if (rc) {
        char msg[128];
        regerror(rc, &o->re, msg, sizeof msg);
        hq_free(o->pattern);
        return hq_fail(err, HQ_ERR_ARG, "--tensor-type '%s': invalid regex: %s", spec, msg);
    }
    o->type = (uint32_t)t;
    p->n_ov++;
    return HQ_OK;
}

uint32_t q_policy_ftype(const q_policy *p) { return p->preset.ftype; }
const char *q_policy_name(const q_policy *p) { return p->preset.name; }
uint32_t q_policy_default_type(const q_policy *p) { return p->preset.type; }

/* llama.cpp use_more_bits: i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2 */
static bool use_more_bits(int64_t i, int64_t n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* shape fallback (table in policy.h) */
static uint32_t fallback_type(uint32_t t, uint64_t ne0, bool *changed) {
    const ggml_type_info *ti = ggml_type_get(t);
    *changed = false;
    if (!ti || ne0 % ti->blck == 0) return t;
    *changed = true;
    uint32_t next;
    switch (t) {
    case GGML_T_Q4_K: next = q_type_available(GGML_T_Q5_0) ? GGML_T_Q5_0 : GGML_T_Q8_0; break;
    case GGML_T_Q5_K: next = q_type_available(GGML_T_Q5_1) ? GGML_T_Q5_1 : GGML_T_Q8_0; break;
    case GGML_T_Q6_K: next = GGML_T_Q8_0; break;
    case GGML_T_Q2_K: case GGML_T_Q3_K: next = GGML_T_IQ4_NL; break; /* as llama-quantize */
    default: next = GGML_T_F16; break;
    }
    const ggml_type_info *ni = ggml_type_get(next);
    if (!ni || ne0 % ni->blck != 0 || !q_type_available(next)) next = GGML_T_F16;
    return next;
}

hq_status q_policy_choose(const q_policy *p, const q_tensor_desc *t, uint64_t n, const q_model_info *mi,
                          q_choice *out, char *err) {
    (void)err;
    /* counters over attn_v / ffn_down tensors in file order (llama-quantize) */
    int64_t n_attn_v = 0, n_ffn_down = 0, i_attn_v = 0, i_ffn_down = 0;
    /* grouped-query factor n_head / n_head_kv from the first attention
     * layer's row counts (attn_q vs attn_k, or attn_v): Q2_K's attn_v rule */
    uint64_t q_rows = 0, k_rows = 0, v_rows = 0;
    for (uint64_t i = 0; i < n; i++) {
        q_role r = q_role_of(t[i].name, t[i].n_dims, t[i].ne);
        if (r == Q_ROLE_ATTN_Q && !q_rows) q_rows = t[i].ne[1];
        if (r == Q_ROLE_ATTN_K && !k_rows) k_rows = t[i].ne[1];
        if (r == Q_ROLE_ATTN_V && !v_rows) v_rows = t[i].ne[1];
        if (r == Q_ROLE_ATTN_V) n_attn_v++;
        if (r == Q_ROLE_FFN_DOWN) n_ffn_down++;
    }
    const uint64_t kv_rows = k_rows ? k_rows : v_rows, n_gqa = kv_rows ? q_rows / kv_rows : 1;
    const uint32_t base = p->preset.type;
    const q_mix mix = p->preset.mix;
    for (uint64_t i = 0; i < n; i++) {
        q_choice *c = &out[i];
        memset(c, 0, sizeof *c);
        c->role = q_role_of(t[i].name, t[i].n_dims, t[i].ne);
        c->type = t[i].type;
        if (c->role == Q_ROLE_KEEP) {
            c->wanted = c->type;
            continue;
        }
        c->quantize = true;
        uint32_t ty = base;
        double bpw = q_type_bpw(base);
        switch (c->role) {
        case Q_ROLE_EMBD:
        case Q_ROLE_OUTPUT:
            /* llama.cpp's head rule, tied or not: Q6_K, Q8_0 where rows do not
             * fit 256-element blocks. Measured per bpw against our former
             * Q8_0 for tied / d <= 512 (bench/bench_embd_policy.py) */
            if (bpw < 6.0) ty = t[i].ne[0] % 256 == 0 ? GGML_T_Q6_K : GGML_T_Q8_0;
            break;
        case Q_ROLE_SSM_BC:
            if (bpw < 8.0) ty = GGML_T_Q8_0;
            break;
        case Q_ROLE_OTHER:
            if (strstr(t[i].name, "x_proj") && bpw < 8.0) ty = GGML_T_Q8_0;
            break;
        case Q_ROLE_ATTN_V:
            if (mix == MIX_Q2_K)
                ty = n_gqa >= 4 ? GGML_T_Q4_K : GGML_T_Q3_K;
            else if (mix == MIX_Q3_K_M)
                ty = i_attn_v < 2 ? GGML_T_Q5_K : GGML_T_Q4_K;
            else if (mix == MIX_Q3_K_L)
                ty = GGML_T_Q5_K;
            else if ((mix == MIX_Q4_K_M || mix == MIX_Q5_K_M) && use_more_bits(i_attn_v, n_attn_v))
                ty = GGML_T_Q6_K;
            else if (mix == MIX_Q4_K_S && i_attn_v < 4)
                ty = GGML_T_Q5_K;
            i_attn_v++;
            break;
        case Q_ROLE_FFN_DOWN:
            if (mix == MIX_Q2_K)
                ty = GGML_T_Q3_K;
            else if (mix == MIX_Q3_K_M) /* llama.cpp's non-Falcon branch */
                ty = i_ffn_down < n_ffn_down / 16 ? GGML_T_Q5_K : GGML_T_Q4_K;
            else if (mix == MIX_Q3_K_L)
                ty = GGML_T_Q5_K;
            else if ((mix == MIX_Q4_K_M || mix == MIX_Q5_K_M) && use_more_bits(i_ffn_down, n_ffn_down))
                ty = GGML_T_Q6_K;
            else if (mix == MIX_Q4_K_S && i_ffn_down < n_ffn_down / 8)
                ty = GGML_T_Q5_K;
            else if (mix == MIX_Q4_0 && mi && mi->has_imatrix && i_ffn_down < n_ffn_down / 8)
                ty = GGML_T_Q4_1;
            i_ffn_down++;
            break;
        case Q_ROLE_ATTN_OUT:
        case Q_ROLE_SSM_OUT: /* the SSD mixer's output projection, attn_output's twin */
            if (mix == MIX_Q2_K) ty = GGML_T_Q3_K;
            else if (mix == MIX_Q3_K_M) ty = GGML_T_Q4_K;
            else if (mix == MIX_Q3_K_L) ty = GGML_T_Q5_K;
            break;
        default: break;
        }
        if (!q_type_available(ty)) ty = base;
        for (int k = 0; k < p->n_ov; k++)
            if (regexec(&p->ov[k].re, t[i].name, 0, NULL, 0) == 0) {
                ty = p->ov[k].type; /* last match wins */
                c->overridden = true;
            }
        c->wanted = ty;
        c->type = fallback_type(ty, t[i].ne[0], &c->fallback);
    }
    return HQ_OK;
}
