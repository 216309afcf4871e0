/* formats/schema.c — the GGUF tensor table (formats/schema.h). The order of
 * the rows is the enum's; the shapes are docs/gguf-schema.md's. */
#include "schema.h" // defines: fmt_schema_entry, fmt_schema_lookup

#include <stdio.h>
#include <string.h>

#define G(ID, NAME, PART, Q, REQ, SHAPE) [ID] = {ID, NAME, false, PART, Q, REQ, SHAPE}
#define B(ID, NAME, PART, Q, REQ, SHAPE) [ID] = {ID, NAME, true, PART, Q, REQ, SHAPE}

static const fmt_schema_entry k_schema[FMT_T_COUNT] = {
    G(FMT_T_TOKEN_EMBD, "token_embd.weight", FMT_PART_GLOBAL, "token_embd", true, "(V, d)"),
    G(FMT_T_OUTPUT_NORM, "output_norm.weight", FMT_PART_GLOBAL, NULL, true, "(d)"),
    G(FMT_T_OUTPUT, "output.weight", FMT_PART_GLOBAL, "output", false, "(V, d)"), /* absent: tied */
    B(FMT_T_ATTN_NORM, "attn_norm.weight", FMT_PART_LAYER, NULL, true, "(d)"),
    B(FMT_T_ATTN_RES, "attn_residual.weight", FMT_PART_LAYER, NULL, true, "(d)"),
    B(FMT_T_FFN_NORM, "ffn_norm.weight", FMT_PART_LAYER, NULL, true, "(d)"),
    B(FMT_T_FFN_RES, "ffn_residual.weight", FMT_PART_LAYER, NULL, true, "(d)"),
    /* attention mixer */
    B(FMT_T_ATTN_Q, "attn_q.weight", FMT_PART_ATTN, "attn_q", true, "(H*P, d)"),
    B(FMT_T_ATTN_K, "attn_k.weight", FMT_PART_ATTN, "attn_k", true, "(KV*P, d)"),
    B(FMT_T_ATTN_V, "attn_v.weight", FMT_PART_ATTN, "attn_v", true, "(KV*P, d)"),
    B(FMT_T_ATTN_OUT, "attn_output.weight", FMT_PART_ATTN, "attn_output", true, "(d, H*P)"),
    B(FMT_T_ATTN_Q_B, "attn_q.bias", FMT_PART_ATTN, NULL, false, "(H*P)"),
    B(FMT_T_ATTN_K_B, "attn_k.bias", FMT_PART_ATTN, NULL, false, "(KV*P)"),
    B(FMT_T_ATTN_V_B, "attn_v.bias", FMT_PART_ATTN, NULL, false, "(KV*P)"),
    B(FMT_T_ATTN_OUT_B, "attn_output.bias", FMT_PART_ATTN, NULL, false, "(d)"),
    B(FMT_T_ATTN_Q_NORM, "attn_q_norm.weight", FMT_PART_ATTN, NULL, false, "(P)"),
    B(FMT_T_ATTN_K_NORM, "attn_k_norm.weight", FMT_PART_ATTN, NULL, false, "(P)"),
    B(FMT_T_ATTN_A, "attn_a", FMT_PART_ATTN, NULL, true, "(M)"),
    B(FMT_T_ATTN_DT, "attn_dt.weight", FMT_PART_ATTN, NULL, true, "(M, KV*P)"),
    B(FMT_T_ATTN_DT_B, "attn_dt.bias", FMT_PART_ATTN, NULL, false, "(M)"),
    /* SSD mixer */
    B(FMT_T_SSM_X, "ssm_x.weight", FMT_PART_SSD, "ssm_x", true, "(H*P, d)"),
    B(FMT_T_SSM_B, "ssm_b.weight", FMT_PART_SSD, "ssm_b/c", true, "(H*P, d)"),
    B(FMT_T_SSM_C, "ssm_c.weight", FMT_PART_SSD, "ssm_b/c", true, "(H*P, d)"),
    B(FMT_T_SSM_DT, "ssm_dt.weight", FMT_PART_SSD, NULL, true, "(H, d)"),
    B(FMT_T_SSM_OUT, "ssm_out.weight", FMT_PART_SSD, "ssm_out", true, "(d, H*P)"),
    B(FMT_T_SSM_X_B, "ssm_x.bias", FMT_PART_SSD, NULL, false, "(H*P)"),
    B(FMT_T_SSM_B_B, "ssm_b.bias", FMT_PART_SSD, NULL, false, "(H*P)"),
    B(FMT_T_SSM_C_B, "ssm_c.bias", FMT_PART_SSD, NULL, false, "(H*P)"),
    B(FMT_T_SSM_DT_B, "ssm_dt.bias", FMT_PART_SSD, NULL, false, "(H)"),
    B(FMT_T_SSM_OUT_B, "ssm_out.bias", FMT_PART_SSD, NULL, false, "(d)"),
    B(FMT_T_SSM_A, "ssm_a", FMT_PART_SSD, NULL, true, "(H)"),
    B(FMT_T_SSM_D, "ssm_d", FMT_PART_SSD, NULL, false, "(H)"),
    /* MLP (also the shared MLP of a CDMoE block) */
    B(FMT_T_FFN_GATE, "ffn_gate.weight", FMT_PART_MLP, "ffn_gate", true, "(I, d)"),
    B(FMT_T_FFN_UP, "ffn_up.weight", FMT_PART_MLP, "ffn_up", true, "(I, d)"),
    B(FMT_T_FFN_DOWN, "ffn_down.weight", FMT_PART_MLP, "ffn_down", true, "(d, I)"),
    B(FMT_T_FFN_GATE_B, "ffn_gate.bias", FMT_PART_MLP, NULL, false, "(I)"),
    B(FMT_T_FFN_UP_B, "ffn_up.bias", FMT_PART_MLP, NULL, false, "(I)"),
    B(FMT_T_FFN_DOWN_B, "ffn_down.bias", FMT_PART_MLP, NULL, false, "(d)"),
    /* CDMoE experts */
    B(FMT_T_EXPERT_DOWN, "ffn_expert_down.weight", FMT_PART_EXPERTS, "expert_down", true, "(E, d)"),
    B(FMT_T_EXPERT_UP, "ffn_expert_up.weight", FMT_PART_EXPERTS, "expert_up", true, "(E, d)"),
    B(FMT_T_ROUTER, "ffn_gate_inp.weight", FMT_PART_EXPERTS, NULL, true, "(2*K, d)"),
    B(FMT_T_ROUTER_B, "ffn_gate_inp.bias", FMT_PART_EXPERTS, NULL, false, "(2*K)"),
    B(FMT_T_PK_KEYS, "ffn_pk_keys", FMT_PART_EXPERTS, NULL, true, "(Hr, K, 2, R/2)"),
    B(FMT_T_PK_QUERY, "ffn_pk_query.weight", FMT_PART_EXPERTS, NULL, true, "(Hr*R, d)"),
};

const fmt_schema_entry *fmt_schema_get(fmt_tensor_id id) {
    return (unsigned)id < FMT_T_COUNT && k_schema[id].name ? &k_schema[id] : NULL;
}

const fmt_schema_entry *fmt_schema_lookup(const char *name, int64_t *layer) {
    const char *b = name;
    int64_t l = -1;
    if (!strncmp(name, "blk.", 4) && name[4] >= '0' && name[4] <= '9') {
        const char *p = name + 4;
        l = 0;
        while (*p >= '0' && *p <= '9' && l < ((int64_t)1 << 40)) l = l * 10 + (*p++ - '0');
        if (*p != '.') return NULL;
        b = p + 1;
    }
    for (int i = 0; i < FMT_T_COUNT; i++)
        if (k_schema[i].name && k_schema[i].per_layer == (l >= 0) && !strcmp(b, k_schema[i].name)) {
            if (layer) *layer = l;
            return &k_schema[i];
        }
    return NULL;
}

const char *fmt_schema_name(fmt_tensor_id id, int64_t layer, char *buf, size_t cap) {
    const fmt_schema_entry *e = fmt_schema_get(id);
    if (!e) return NULL;
    int w = e->per_layer ? snprintf(buf, cap, "blk.%lld.%s", (long long)layer, e->name) : snprintf(buf, cap, "%s", e->name);
    return w >= 0 && (size_t)w < cap ? buf : NULL;
}

const char *fmt_part_name(fmt_part p) {
    static const char *const n[FMT_PART_COUNT] = {"global", "layer", "attention", "ssd", "mlp", "experts"};
    return (unsigned)p < FMT_PART_COUNT ? n[p] : "?";
}
