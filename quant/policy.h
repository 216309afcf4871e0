/* quant/policy.h — which ggml type each tensor gets when quantizing
 * (spec model-architecture.md §7, file-formats.md §6 1.3).
 *
 * Roles come from the GGUF tensor name (docs/gguf-schema.md). Only 2-D
 * tensors whose name ends in ".weight" and whose role is a quantizable matrix
 * are ever changed; everything else keeps its input type, bit for bit:
 *
 *   quantized : attn_q/k/v/output, ssm_x, ssm_out, ssm_b/ssm_c (>= 8-bit),
 *               ffn_gate/up/down, ffn_expert_down/up (row = expert, blocks
 *               along d), token_embd and output (>= 6-bit),
 *               OTCE module paths as the tensor doing the same job
 *               (q/k/v/o_proj -> attn_*, mamba.in_proj -> ssm_x, mamba.x_proj
 *               -> ssm_b/c, mamba.out_proj -> ssm_out, gate/up/down_proj of
 *               the MLP, the shared MLP and every expert -> ffn_*), other
 *               2-D "*.weight" matrices (OTCE dense, projection) unless
 *               their name says norm/conv/dt/router.
 *   kept      : norms, residual scales, attn_a/ssm_a/ssm_d, attn_dt/ssm_dt,
 *               ffn_gate_inp, ffn_pk_query, ffn_pk_keys, biases, 1-D tensors.
 *
 * Presets (ftype id = llama.cpp LLAMA_FTYPE_MOSTLY_*):
 *   Q8_0 (7)    all Q8_0
 *   Q4_0 (2)    Q4_0; with an imatrix the first n/8 ffn_down get Q4_1
 *   Q4_1 (3)    Q4_1
 *   Q4_K_S (14) Q4_K; attn_v of the first 4 attention layers and ffn_down of
 *               the first n/8 layers get Q5_K
 *   Q4_K_M (15) Q4_K; attn_v and ffn_down on use_more_bits layers get Q6_K,
 *               use_more_bits(i,n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2
 *               (i counts attn_v resp. ffn_down tensors in file order, as
 *               llama-quantize does, so hybrid models index attention layers
 *               among themselves)
 *   Q5_K_M (17) Q5_K; the same use_more_bits rule with Q6_K
 *   Q6_K (18)   all Q6_K
 *   IQ4_NL (25) IQ4_NL
 *   Q2_K (10)   Q2_K; attn_v Q4_K when n_head/n_head_kv >= 4 (from the
 *               attn_q / attn_k row counts) else Q3_K; ffn_down and
 *               attn_output Q3_K
 *   Q3_K_S (11) Q3_K
 *   Q3_K_M (12) Q3_K; attn_v Q5_K for the first 2 attention layers, then
 *               Q4_K; ffn_down Q5_K for the first n/16, then Q4_K;
 *               attn_output Q4_K
 *   Q3_K_L (13) Q3_K; attn_v, ffn_down and attn_output Q5_K
 *   (llama.cpp llama_tensor_get_type's non-Falcon, non-8-expert branches;
 *   adapted: ssm_out, the SSD mixer's output projection, follows the
 *   attn_output rule)
 * A plain type name (Q3_K, Q4_K, Q5_K, Q6_K, Q8_0, Q4_0, Q4_1, IQ4_NL, Q5_0, F16,
 * BF16, F32) uses that type for every quantizable matrix (ftype = the
 * matching llama.cpp "mostly" id, or 0 / 1 / 32 for F32 / F16 / BF16).
 *
 * Protected roles (every preset and plain type, before overrides):
 *   token_embd, output   >= 6 bits: Q6_K (llama.cpp's head type, also for a
 *                        tied embedding), or Q8_0 when the rows (d) are not
 *                        a multiple of 256; a type that already has >= 6
 *                        bits (Q8_0, F16) is kept. Q8_0 for a tied
 *                        embedding (spec §7's recommendation) is one
 *                        `--tensor-type token_embd.weight=Q8_0` away; Q6_K
 *                        measured better per bpw (bench/README.md,
 *                        bench_embd_policy).
 *   ssm_b, ssm_c         >= 8 bits: Q8_0 (they enter every later step
 *                        through the SSD state).
 *   names with x_proj    >= 8 bits (OTCE x_proj, spec §7; also as ssm_b/c).
 *
 * --tensor-type REGEX=TYPE (POSIX extended regex, matched anywhere in the
 * name; the last matching rule wins, as in llama-quantize) applies to
 * quantizable tensors only and replaces the type chosen above.
 *
 * Shape fallbacks, applied last, when ne0 is not a multiple of the type's
 * block (32 or 256 elements):
 *
 *   | wanted          | falls back to                        |
 *   |-----------------|--------------------------------------|
 *   | Q4_K            | Q5_0 if this build has it, else Q8_0 |
 *   | Q5_K            | Q5_1 if available, else Q8_0         |
 *   | Q6_K            | Q8_0                                 |
 *   | Q2_K, Q3_K      | IQ4_NL                               |
 *   | IQ4_NL/Q4_0/... | (32-blocks) F16                      |
 *   | still no fit    | F16                                  |
 *
 * A type "is available" when q_traits() has a quantizer for it (or it is
 * F32/F16/BF16, converted here).
 */
#ifndef HQ_QUANT_POLICY_H
#define HQ_QUANT_POLICY_H
#include "../core/hq.h"

typedef enum {
    Q_ROLE_KEEP = 0,   /* never quantized (norms, scales, A, dt, router, biases, 1-D) */
    Q_ROLE_EMBD,       /* token_embd.weight */
    Q_ROLE_OUTPUT,     /* output.weight */
    Q_ROLE_ATTN_Q, Q_ROLE_ATTN_K, Q_ROLE_ATTN_V, Q_ROLE_ATTN_OUT,
    Q_ROLE_SSM_X, Q_ROLE_SSM_BC, Q_ROLE_SSM_OUT,
    Q_ROLE_FFN_GATE, Q_ROLE_FFN_UP, Q_ROLE_FFN_DOWN,
    Q_ROLE_EXPERT_DOWN, Q_ROLE_EXPERT_UP,
    Q_ROLE_OTHER,      /* unknown 2-D matrix that may be quantized */
    Q_ROLE_COUNT
} q_role;

/* the groups of the final per-role bpw table */
typedef enum { Q_GROUP_ATTN = 0, Q_GROUP_SSD, Q_GROUP_MLP, Q_GROUP_EXPERTS, Q_GROUP_EMBD, Q_GROUP_OTHER,
               Q_GROUP_COUNT } q_group;

/* role of a tensor from its GGUF name and shape (n_dims, ne innermost first) */
q_role q_role_of(const char *name, uint32_t n_dims, const uint64_t *ne);
const char *q_role_name(q_role r);
q_group q_role_group(q_role r, const char *name);
const char *q_group_name(q_group g);

/* true when `type` can be produced by this build (q_traits quantizer or F32/F16/BF16) */
bool q_type_available(uint32_t type);
/* bits per weight of a type (block bytes * 8 / block elements) */
double q_type_bpw(uint32_t type);

typedef struct q_policy q_policy;

/* type_name: a preset or plain type (case-insensitive). HQ_ERR_ARG with a
 * message listing the valid names when unknown or unavailable. */
hq_status q_policy_new(const char *type_name, q_policy **out, char *err);
void q_policy_free(q_policy *p);
/* "REGEX=TYPE"; HQ_ERR_ARG for a bad regex, a missing '=' or an unknown /
 * unavailable type */
hq_status q_policy_add_override(q_policy *p, const char *spec, char *err);
uint32_t q_policy_ftype(const q_policy *p);  /* general.file_type to write */
const char *q_policy_name(const q_policy *p); /* canonical preset/type name */
uint32_t q_policy_default_type(const q_policy *p);

typedef struct {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[4];
    uint32_t type; /* input type */
} q_tensor_desc;

typedef struct {
    uint32_t type;    /* output type */
    q_role role;
    bool quantize;    /* the role is a quantizable matrix (type may still equal the input) */
    bool fallback;    /* a shape fallback changed the type */
    bool overridden;  /* a --tensor-type rule matched */
    uint32_t wanted;  /* type before the shape fallback */
} q_choice;

typedef struct {
    bool has_imatrix; /* Q4_0/Q5_0 ffn_down bump (llama.cpp) */
    bool tied;        /* no output.weight: token_embd is the head */
    uint64_t n_embd;  /* d; 0 = unknown (taken from token_embd ne0) */
} q_model_info;

/* Chooses the type of each of the n tensors (file order matters for the
 * attn_v / ffn_down layer counters). */
hq_status q_policy_choose(const q_policy *p, const q_tensor_desc *t, uint64_t n, const q_model_info *mi,
                          q_choice *out, char *err);
#endif
