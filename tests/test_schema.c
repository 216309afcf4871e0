/* tests/test_schema.c — the GGUF tensor table (formats/schema.h) and the
 * modules that read it: every id has its row, names round-trip through
 * fmt_schema_name / fmt_schema_lookup, and quantize's roles and verify's
 * kinds are what the string tables they replaced gave (listed here). */
#include "test.h"
#include "../formats/schema.h"
#include "../quant/policy.h"
#include "../verify/verify.h"

#include <string.h>

int main(void) {
    char buf[128];
    for (int i = 0; i < FMT_T_COUNT; i++) {
        const fmt_schema_entry *e = fmt_schema_get((fmt_tensor_id)i);
        CHECK(e && e->id == (fmt_tensor_id)i && e->name && e->shape, "id %d has no complete row", i);
        if (!e) continue;
        CHECK(fmt_schema_name(e->id, 17, buf, sizeof buf) != NULL, "%s: name does not fit", e->name);
        int64_t l = -2;
        const fmt_schema_entry *back = fmt_schema_lookup(buf, &l);
        CHECK(back == e && l == (e->per_layer ? 17 : -1), "%s: lookup of '%s' gives %s layer %lld", e->name, buf,
              back ? back->name : "NULL", (long long)l);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(fmt_schema_get((fmt_tensor_id)j)->name, e->name) != 0, "%s listed twice", e->name);
    }
    CHECK(fmt_schema_name(FMT_T_ATTN_Q, 3, buf, 8) == NULL, "a short buffer is refused");
    CHECK(!fmt_schema_lookup("blk.3.token_embd.weight", NULL), "a global under blk.N. is not the global");
    CHECK(!fmt_schema_lookup("attn_q.weight", NULL), "a per-layer name without blk.N. is unknown");
    CHECK(!fmt_schema_lookup("blk.x.attn_q.weight", NULL) && !fmt_schema_lookup("blk.3attn_q.weight", NULL),
          "malformed block prefixes");

    /* quant/policy.c's former name table, role by role */
    static const struct { const char *n; q_role r; } roles[] = {
        {"token_embd.weight", Q_ROLE_EMBD},          {"output.weight", Q_ROLE_OUTPUT},
        {"blk.0.attn_q.weight", Q_ROLE_ATTN_Q},      {"blk.1.attn_k.weight", Q_ROLE_ATTN_K},
        {"blk.2.attn_v.weight", Q_ROLE_ATTN_V},      {"blk.3.attn_output.weight", Q_ROLE_ATTN_OUT},
        {"blk.0.ssm_x.weight", Q_ROLE_SSM_X},        {"blk.0.ssm_b.weight", Q_ROLE_SSM_BC},
        {"blk.0.ssm_c.weight", Q_ROLE_SSM_BC},       {"blk.0.ssm_out.weight", Q_ROLE_SSM_OUT},
        {"blk.9.ffn_gate.weight", Q_ROLE_FFN_GATE},  {"blk.9.ffn_up.weight", Q_ROLE_FFN_UP},
        {"blk.9.ffn_down.weight", Q_ROLE_FFN_DOWN},  {"blk.9.ffn_expert_down.weight", Q_ROLE_EXPERT_DOWN},
        {"blk.9.ffn_expert_up.weight", Q_ROLE_EXPERT_UP}, {"blk.9.ffn_gate_inp.weight", Q_ROLE_KEEP},
        {"blk.9.ffn_pk_query.weight", Q_ROLE_KEEP},  {"blk.1.attn_dt.weight", Q_ROLE_KEEP},
        {"blk.0.ssm_dt.weight", Q_ROLE_KEEP},        {"blk.4.feed_forward.w1.weight", Q_ROLE_OTHER},
        {"blk.4.mamba.conv1d.weight", Q_ROLE_KEEP},
        /* OTCE module paths (spec §7) */
        {"blk.0.mamba.in_proj.weight", Q_ROLE_SSM_X},       {"blk.0.mamba.x_proj.weight", Q_ROLE_SSM_BC},
        {"blk.0.mamba.out_proj.weight", Q_ROLE_SSM_OUT},    {"blk.0.mamba.dt_proj.weight", Q_ROLE_KEEP},
        {"blk.2.self_attn.q_proj.weight", Q_ROLE_ATTN_Q},   {"blk.5.self_attention.v_proj.weight", Q_ROLE_ATTN_V},
        {"blk.2.self_attn.o_proj.weight", Q_ROLE_ATTN_OUT}, {"blk.1.feed_forward.router.weight", Q_ROLE_KEEP},
        {"blk.1.feed_forward.experts.3.down_proj.weight", Q_ROLE_FFN_DOWN},
        {"blk.1.feed_forward.shared_up_proj.weight", Q_ROLE_FFN_UP}, {"blk.0.feed_forward.gate_proj.weight", Q_ROLE_FFN_GATE},
        {"blk.5.dense.weight", Q_ROLE_OTHER},               {"blk.5.projection.weight", Q_ROLE_OTHER},
    };
    const uint64_t ne[2] = {64, 64};
    for (size_t i = 0; i < sizeof roles / sizeof *roles; i++) {
        q_role r = q_role_of(roles[i].n, 2, ne);
        CHECK(r == roles[i].r, "q_role_of(%s) = %s, want %s", roles[i].n, q_role_name(r), q_role_name(roles[i].r));
    }
    /* verify/weights.c's former prefix rules, kind by kind */
    static const struct { const char *n; int k; } kinds[] = {
        {"blk.0.ssm_x.weight", VF_KIND_SSD},       {"blk.0.ssm_a", VF_KIND_SSD},
        {"blk.0.attn_norm.weight", VF_KIND_OTHER}, {"blk.0.attn_residual.weight", VF_KIND_OTHER},
        {"blk.0.attn_q.weight", VF_KIND_ATTN},     {"blk.0.attn_a", VF_KIND_ATTN},
        {"blk.0.ffn_expert_up.weight", VF_KIND_EXPERTS}, {"blk.0.ffn_pk_keys", VF_KIND_EXPERTS},
        {"blk.0.ffn_gate_inp.weight", VF_KIND_EXPERTS},  {"blk.0.ffn_gate.weight", VF_KIND_MLP},
        {"blk.0.ffn_down.bias", VF_KIND_MLP},      {"blk.0.ffn_norm.weight", VF_KIND_OTHER},
        {"token_embd.weight", VF_KIND_OTHER},      {"blk.2.ssm_conv1d.weight", VF_KIND_SSD},
        {"blk.0.mamba.A_log", VF_KIND_SSD},        {"blk.2.self_attn.k_proj.weight", VF_KIND_ATTN},
        {"blk.5.self_attention.q_proj.bias", VF_KIND_ATTN}, {"blk.1.feed_forward.experts.0.up_proj.weight", VF_KIND_EXPERTS},
        {"blk.1.feed_forward.router.weight", VF_KIND_EXPERTS}, {"blk.0.feed_forward.down_proj.weight", VF_KIND_MLP},
        {"blk.0.input_layernorm.weight", VF_KIND_OTHER}, {"blk.5.dense.weight", VF_KIND_OTHER},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        CHECK(vf_kind_of_tensor(kinds[i].n) == kinds[i].k, "vf_kind_of_tensor(%s) = %d, want %d", kinds[i].n,
              vf_kind_of_tensor(kinds[i].n), kinds[i].k);
    TEST_END();
}
