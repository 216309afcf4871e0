/* convert/config.c — config.json -> cv_hparams (spec §2). Accepts the key
 * spellings of every version: num_cdmoe_* / num_cdmmoe_* / num_experts*,
 * rope_scaling {type|rope_type} and HF v5 rope_parameters. */
#include "convert.h" // defines: cv_config_parse

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

/* first item named key; refuses duplicates (cJSON keeps both, style.md §6) */
static const cJSON *item(const cJSON *obj, const char *key) {
    const cJSON *found = NULL;
    for (const cJSON *c = obj ? obj->child : NULL; c; c = c->next)
        if (c->string && !strcmp(c->string, key)) {
            if (!found) found = c;
        }
    return found;
}

static bool has_dup_keys(const cJSON *obj, const char **dup) {
    for (const cJSON *a = obj->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (a->string && b->string && !strcmp(a->string, b->string)) {
                *dup = a->string;
                return true;
            }
    return false;
}

/* integer key: absent/null -> def; arrays take their first element (eos lists) */
static hq_status get_int(const cJSON *obj, const char *key, int64_t def, int64_t *v, const char *label, char *err) {
    const cJSON *x = item(obj, key);
    if (x && cJSON_IsArray(x)) x = cJSON_GetArrayItem(x, 0);
    if (!x || cJSON_IsNull(x)) {
        *v = def;
        return HQ_OK;
    }
    if (!cJSON_IsNumber(x))
        return hq_fail(err, HQ_ERR_FORMAT, "%s: '%s' must be an integer", label, key);
    double d = x->valuedouble;
    if (!(d >= -1 && d <= 9007199254740992.0) || d != floor(d))
        return hq_fail(err, HQ_ERR_FORMAT, "%s: '%s' = %g is not a valid integer", label, key, d);
    *v = (int64_t)d;
    return HQ_OK;
}

/* first present key of a list of spellings */
static hq_status get_int_any(const cJSON *obj, const char *const *keys, int64_t def, int64_t *v, const char *label,
                             char *err) {
    for (; *keys; keys++)
        if (item(obj, *keys)) return get_int(obj, *keys, def, v, label, err);
    *v = def;
    return HQ_OK;
}

static hq_status get_num(const cJSON *obj, const char *key, double def, double *v, const char *label, char *err) {
    const cJSON *x = item(obj, key);
    if (!x || cJSON_IsNull(x)) {
        *v = def;
        return HQ_OK;
    }
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
        return hq_fail(err, HQ_ERR_FORMAT, "%s: '%s' must be a number", label, key);
    *v = x->valuedouble;
    return HQ_OK;
}

static hq_status get_bool(const cJSON *obj, const char *key, int def, int *v, const char *label, char *err) {
    const cJSON *x = item(obj, key);
    if (!x || cJSON_IsNull(x)) {
        *v = def;
        return HQ_OK;
    }
    if (!cJSON_IsBool(x)) return hq_fail(err, HQ_ERR_FORMAT, "%s: '%s' must be true or false", label, key);
    *v = cJSON_IsTrue(x) ? 1 : 0;
    return HQ_OK;
}

static hq_status get_str(const cJSON *obj, const char *key, const char *def, char *v, size_t cap, const char *label,
                         char *err) {
    const cJSON *x = item(obj, key);
    const char *s = def;
    if (x && !cJSON_IsNull(x)) {
        if (!cJSON_IsString(x)) return hq_fail(err, HQ_ERR_FORMAT, "%s: '%s' must be a string", label, key);
        s = x->valuestring;
    }
    if (strlen(s) >= cap) return hq_fail(err, HQ_ERR_LIMIT, "%s: '%s' is too long", label, key);
    strcpy(v, s);
    return HQ_OK;
}

#define TRY(x)                                                                                                       \
    do {                                                                                                             \
        hq_status st_ = (x);                                                                                         \
        if (st_ != HQ_OK) {                                                                                          \
            cJSON_Delete(root);                                                                                      \
            return st_;                                                                                              \
        }                                                                                                            \
    } while (0)

static hq_status parse_rope(const cJSON *root, cv_hparams *hp, const char *label, char *err) {
    /* rope_scaling (older) or rope_parameters (HF v5, also carries rope_theta) */
    const cJSON *rs = item(root, "rope_scaling");
    const cJSON *rp = item(root, "rope_parameters");
    hq_status st = get_num(root, "rope_theta", 10000.0, &hp->rope_theta, label, err);
    if (st != HQ_OK) return st;
    const cJSON *sc = NULL;
    if (rs && cJSON_IsObject(rs)) sc = rs;
    else if (rs && !cJSON_IsNull(rs)) return hq_fail(err, HQ_ERR_FORMAT, "%s: 'rope_scaling' must be an object", label);
    if (rp && cJSON_IsObject(rp)) {
        if (item(rp, "rope_theta") && (st = get_num(rp, "rope_theta", 10000.0, &hp->rope_theta, label, err)) != HQ_OK)
            return st;
        if (!sc) sc = rp;
    } else if (rp && !cJSON_IsNull(rp)) {
        return hq_fail(err, HQ_ERR_FORMAT, "%s: 'rope_parameters' must be an object", label);
    }
    char type[32] = "default";
    if (sc) {
        const char *tk = item(sc, "rope_type") ? "rope_type" : "type"; /* `type` is an alias */
        if ((st = get_str(sc, tk, "default", type, sizeof type, label, err)) != HQ_OK) return st;
    }
    hp->rope_factor = 1.0;
    hp->rope_orig_ctx = hp->max_pos;
    if (!strcmp(type, "default") || !strcmp(type, "none")) {
        strcpy(hp->rope_type, "none");
    } else if (!strcmp(type, "dynamic")) {
        strcpy(hp->rope_type, "dynamic");
        if ((st = get_num(sc, "factor", 1.0, &hp->rope_factor, label, err)) != HQ_OK) return st;
        if (!(hp->rope_factor >= 1.0))
            return hq_fail(err, HQ_ERR_FORMAT, "%s: rope scaling factor %g must be >= 1", label, hp->rope_factor);
        if ((st = get_int(sc, "original_max_position_embeddings", hp->max_pos, &hp->rope_orig_ctx, label, err)) !=
            HQ_OK)
            return st;
    } else {
        return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: config.json key '%s.%s' = '%s' is not supported (only default and "
                       "dynamic)", label, sc == rs ? "rope_scaling" : "rope_parameters",
                       item(sc, "rope_type") ? "rope_type" : "type", type);
    }
    if (!(hp->rope_theta > 0)) return hq_fail(err, HQ_ERR_FORMAT, "%s: rope_theta %g must be > 0", label, hp->rope_theta);
    return HQ_OK;
}

/* OTCE (CheemsOTCEConfig, spec §2.3 / §6 item 15): only when a stage count
 * key is present. num_hidden_layers is a property of the authors' config
 * class, never serialised: derive it from the four stage counts (absent ones
 * take the class defaults 12/2/9/1); when config.json does carry it, it must
 * agree. Other absent keys take the class defaults. */
static hq_status parse_otce(const cJSON *root, cv_hparams *hp, const char *label, char *err) {
    static const char *const stage[4] = {"num_observation_layers", "num_thinking_layers", "num_conseption_layers",
                                         "num_expression_layers"};
    static const int64_t stage_def[4] = {12, 2, 9, 1};
    for (int i = 0; i < 4; i++)
        if (item(root, stage[i])) hp->otce = true;
    if (!hp->otce) return HQ_OK;
    hq_status st;
    int64_t sum = 0;
    for (int i = 0; i < 4; i++) {
        if ((st = get_int(root, stage[i], stage_def[i], &hp->n_stage[i], label, err)) != HQ_OK) return st;
        if (hp->n_stage[i] < 0 || hp->n_stage[i] > 100000)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: '%s' = %lld is out of range", label, stage[i],
                           (long long)hp->n_stage[i]);
        sum += hp->n_stage[i];
    }
    if (hp->n_layer < 0) hp->n_layer = sum;
    else if (hp->n_layer != sum)
        return hq_fail(err, HQ_ERR_FORMAT,
                       "%s: num_hidden_layers %lld differs from the sum of the OTCE stage counts %lld+%lld+%lld+%lld",
                       label, (long long)hp->n_layer, (long long)hp->n_stage[0], (long long)hp->n_stage[1],
                       (long long)hp->n_stage[2], (long long)hp->n_stage[3]);
    if ((st = get_int(root, "type_vocab_size", 0, &hp->type_vocab, label, err)) != HQ_OK) return st;
    if ((st = get_int(root, "mamba_d_state", 64, &hp->mamba_d_state, label, err)) != HQ_OK) return st;
    if ((st = get_int(root, "mamba_d_conv", 4, &hp->mamba_d_conv, label, err)) != HQ_OK) return st;
    if ((st = get_int(root, "mamba_expand", 1, &hp->mamba_expand, label, err)) != HQ_OK) return st;
    /* mamba_dt_rank: an integer, or "auto" = ceil(hidden_size / 16) (resolved later, d may follow) */
    const cJSON *r = item(root, "mamba_dt_rank");
    if (r && cJSON_IsString(r)) {
        if (strcmp(r->valuestring, "auto"))
            return hq_fail(err, HQ_ERR_FORMAT, "%s: 'mamba_dt_rank' must be an integer or \"auto\"", label);
        hp->mamba_dt_rank = 0;
    } else if ((st = get_int(root, "mamba_dt_rank", 0, &hp->mamba_dt_rank, label, err)) != HQ_OK) {
        return st;
    }
    int b;
    static const char *const bk[4] = {"mamba_conv_bias", "mamba_proj_bias", "mamba_rope", "attention_rope"};
    static const int bdef[4] = {0, 0, 1, 1};
    bool *bv[4] = {&hp->mamba_conv_bias, &hp->mamba_proj_bias, &hp->mamba_rope, &hp->attention_rope};
    for (int i = 0; i < 4; i++) {
        if ((st = get_bool(root, bk[i], bdef[i], &b, label, err)) != HQ_OK) return st;
        *bv[i] = b;
    }
    if ((st = get_str(root, "mamba_act", "silu", hp->mamba_act, sizeof hp->mamba_act, label, err)) != HQ_OK)
        return st;
    /* expert_type: "expansive" (class default) | "cohesive" | null = plain MLP experts */
    const cJSON *et = item(root, "expert_type");
    if (et && cJSON_IsNull(et)) strcpy(hp->expert_type, "mlp");
    else if ((st = get_str(root, "expert_type", "expansive", hp->expert_type, sizeof hp->expert_type, label, err)) !=
             HQ_OK)
        return st;
    if (strcmp(hp->expert_type, "expansive") && strcmp(hp->expert_type, "cohesive") && strcmp(hp->expert_type, "mlp"))
        return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: expert_type '%s' is not one of expansive, cohesive, null", label,
                       hp->expert_type);
    return HQ_OK;
}

/* ---- math-changing keys we do not implement (docs/config-keys.md) ----
 * Configs of other families carry keys that change the forward pass. A
 * Doge/Cheems config never sets them, so one present with anything but its
 * neutral value means a model we would compute wrongly: an error naming the
 * key instead of a silent default. Training-only and informational keys
 * (dropout, router_aux_loss_coef, dtype/torch_dtype, use_cache, ...) are not
 * listed: they do not change what the model computes. */
typedef enum { NEUTRAL_ONE, NEUTRAL_OFF, NEUTRAL_NULL } cv_neutral;
static const struct {
    const char *key;
    cv_neutral neutral; /* ONE: null or 1; OFF: null, false or 0; NULL: null only */
    const char *what;
} k_math_keys[] = {
    {"partial_rotary_factor", NEUTRAL_ONE, "RoPE on part of each head"},
    {"attn_logit_softcapping", NEUTRAL_OFF, "attention logit soft-capping"},
    {"final_logit_softcapping", NEUTRAL_OFF, "final logit soft-capping"},
    {"logit_scale", NEUTRAL_ONE, "scaled output logits"},
    {"logits_scaling", NEUTRAL_ONE, "scaled output logits"},
    {"embedding_multiplier", NEUTRAL_ONE, "scaled embeddings"},
    {"scale_emb", NEUTRAL_ONE, "scaled embeddings"},
    {"residual_multiplier", NEUTRAL_ONE, "scaled residual branches"},
    {"scale_depth", NEUTRAL_NULL, "depth-scaled residual branches"},
    {"dim_model_base", NEUTRAL_NULL, "width-scaled output logits"},
    {"attention_multiplier", NEUTRAL_NULL, "an attention scale other than 1/sqrt(head_dim)"},
    {"query_pre_attn_scalar", NEUTRAL_NULL, "an attention scale other than 1/sqrt(head_dim)"},
    {"use_sliding_window", NEUTRAL_OFF, "per-layer sliding-window attention"},
};

static bool is_neutral(const cJSON *x, cv_neutral n) {
    if (!x || cJSON_IsNull(x)) return true;
    if (n == NEUTRAL_NULL) return false;
    if (n == NEUTRAL_OFF && cJSON_IsFalse(x)) return true;
    return cJSON_IsNumber(x) && x->valuedouble == (n == NEUTRAL_ONE ? 1.0 : 0.0);
}

static hq_status check_math_keys_in(const cJSON *obj, const char *where, const char *label, char *err) {
    for (size_t i = 0; i < sizeof k_math_keys / sizeof k_math_keys[0]; i++)
        if (!is_neutral(item(obj, k_math_keys[i].key), k_math_keys[i].neutral))
            return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: config.json key '%s%s' (%s) is not supported", label, where,
                           k_math_keys[i].key, k_math_keys[i].what);
    return HQ_OK;
}

static const char *rope_type_of(const cJSON *rd) {
    const cJSON *x = item(rd, "rope_type");
    if (!x) x = item(rd, "type");
    return x && cJSON_IsString(x) ? x->valuestring : "default";
}

/* rope_scaling / rope_parameters: only the keys of the default and dynamic
 * types (another type is refused by parse_rope, naming the type). */
static hq_status check_rope_dict(const cJSON *rd, const char *name, const char *label, char *err) {
    static const char *const known[] = {"rope_type", "type", "rope_theta", "factor",
                                        "original_max_position_embeddings", "partial_rotary_factor"};
    if (!rd || !cJSON_IsObject(rd)) return HQ_OK;
    const char *t = rope_type_of(rd);
    if (strcmp(t, "default") && strcmp(t, "none") && strcmp(t, "dynamic")) return HQ_OK;
    for (const cJSON *c = rd->child; c; c = c->next) {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0] && !ok; i++) ok = c->string && !strcmp(c->string, known[i]);
        if (!ok)
            return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: config.json key '%s.%s' is not supported (RoPE: only the "
                           "default and dynamic types)", label, name, c->string ? c->string : "?");
    }
    char where[40];
    snprintf(where, sizeof where, "%s.", name);
    return check_math_keys_in(rd, where, label, err);
}


/* Both spellings at once (a config edited by hand, or written by transformers
 * 4 and extended by 5) must say the same thing: which one wins is not ours to
 * guess. */
static hq_status check_rope_agree(const cJSON *root, const char *label, char *err) {
    const cJSON *rs = item(root, "rope_scaling"), *rp = item(root, "rope_parameters"), *th = item(root, "rope_theta");
    const cJSON *pth = rp ? item(rp, "rope_theta") : NULL;
    if (th && pth && cJSON_IsNumber(th) && cJSON_IsNumber(pth) && th->valuedouble != pth->valuedouble)
        return hq_fail(err, HQ_ERR_FORMAT, "%s: config.json 'rope_theta' %g and 'rope_parameters.rope_theta' %g disagree",
                       label, th->valuedouble, pth->valuedouble);
    if (rs && rp && cJSON_IsObject(rs) && cJSON_IsObject(rp)) {
        const char *a = rope_type_of(rs), *b = rope_type_of(rp);
        const cJSON *fa = item(rs, "factor"), *fb = item(rp, "factor");
        double va = fa && cJSON_IsNumber(fa) ? fa->valuedouble : 1.0, vb = fb && cJSON_IsNumber(fb) ? fb->valuedouble : 1.0;
        if (strcmp(a, b) || va != vb)
            return hq_fail(err, HQ_ERR_FORMAT, "%s: config.json 'rope_scaling' (%s, factor %g) and 'rope_parameters' "
                           "(%s, factor %g) disagree", label, a, va, b, vb);
    }
    return HQ_OK;
}

/* layer_types (transformers 5): every layer must be plain full attention. */
static hq_status check_layer_types(const cJSON *root, const char *label, char *err) {
    const cJSON *lt = item(root, "layer_types");
    if (!lt || cJSON_IsNull(lt)) return HQ_OK;
    if (!cJSON_IsArray(lt)) return hq_fail(err, HQ_ERR_FORMAT, "%s: config.json 'layer_types' must be a list", label);
    int i = 0;
    for (const cJSON *c = lt->child; c; c = c->next, i++)
        if (!cJSON_IsString(c) || strcmp(c->valuestring, "full_attention"))
            return hq_fail(err, HQ_ERR_UNSUPPORTED, "%s: config.json 'layer_types[%d]' = '%s' is not supported (only "
                           "full_attention)", label, i, cJSON_IsString(c) ? c->valuestring : "?");
    return HQ_OK;
}

static hq_status check_math_keys(const cJSON *root, const char *label, char *err) {
    hq_status st;
    if ((st = check_math_keys_in(root, "", label, err)) != HQ_OK) return st;
    if ((st = check_rope_dict(item(root, "rope_scaling"), "rope_scaling", label, err)) != HQ_OK) return st;
    if ((st = check_rope_dict(item(root, "rope_parameters"), "rope_parameters", label, err)) != HQ_OK) return st;
    if ((st = check_rope_agree(root, label, err)) != HQ_OK) return st;
    return check_layer_types(root, label, err);
}

hq_status cv_config_parse(const char *json, const char *label, cv_hparams *hp, char *err) {
    memset(hp, 0, sizeof *hp);
    if (!json) return hq_fail(err, HQ_ERR_FORMAT, "%s: config.json is missing", label);
    cJSON *root = cJSON_Parse(json);
    if (!root) return hq_fail(err, HQ_ERR_FORMAT, "%s: config.json is not valid JSON", label);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return hq_fail(err, HQ_ERR_FORMAT, "%s: config.json is not a JSON object", label);
    }
    const char *dup;
    if (has_dup_keys(root, &dup)) {
        hq_status st = hq_fail(err, HQ_ERR_FORMAT, "%s: config.json has the key '%s' twice", label, dup);
        cJSON_Delete(root); /* dup points into root */
        return st;
    }
    TRY(get_int(root, "vocab_size", -1, &hp->vocab, label, err));
    TRY(get_int(root, "hidden_size", -1, &hp->d, label, err));
    TRY(get_int(root, "intermediate_size", -1, &hp->inter, label, err));
    TRY(get_int(root, "num_hidden_layers", -1, &hp->n_layer, label, err));
    TRY(get_int(root, "num_attention_heads", -1, &hp->n_head, label, err));
    TRY(get_int(root, "num_key_value_heads", hp->n_head, &hp->n_kv, label, err));
    TRY(get_int(root, "max_position_embeddings", 2048, &hp->max_pos, label, err));
    TRY(parse_otce(root, hp, label, err));
    static const char *const need[] = {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                       "num_attention_heads"};
    int64_t *needv[] = {&hp->vocab, &hp->d, &hp->inter, &hp->n_layer, &hp->n_head};
    for (int i = 0; i < 5; i++)
        if (*needv[i] <= 0) {
            cJSON_Delete(root);
            return hq_fail(err, HQ_ERR_FORMAT, "%s: config.json lacks a positive '%s'", label, need[i]);
        }
    if (hp->n_kv <= 0 || hp->n_head % hp->n_kv) {
        cJSON_Delete(root);
        return hq_fail(err, HQ_ERR_FORMAT, "%s: num_key_value_heads %lld must divide num_attention_heads %lld", label,
                       (long long)hp->n_kv, (long long)hp->n_head);
    }
    TRY(get_int(root, "head_dim", -1, &hp->head_dim, label, err));
    if (hp->head_dim <= 0) {
        if (hp->d % hp->n_head) {
            cJSON_Delete(root);
            return hq_fail(err, HQ_ERR_FORMAT, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld",
                           label, (long long)hp->d, (long long)hp->n_head);
        }
        hp->head_dim = hp->d / hp->n_head;
    }
    TRY(get_num(root, "rms_norm_eps", 1e-6, &hp->eps, label, err));
    TRY(parse_rope(root, hp, label, err));
    TRY(check_math_keys(root, label, err));
    TRY(get_int(root, "keep_window_size", 0, &hp->keep_window, label, err));
    TRY(get_int(root, "sliding_window", 0, &hp->sliding_window, label, err));
    TRY(get_num(root, "dynamic_mask_ratio", 0.0, &hp->dynamic_mask_ratio, label, err));
    TRY(get_int(root, "ssd_chunk_size", 256, &hp->ssd_chunk, label, err));
    TRY(get_int(root, "attn_layer_period", -1, &hp->attn_period, label, err));
    TRY(get_int(root, "attn_layer_offset", -1, &hp->attn_offset, label, err));
    TRY(get_bool(root, "is_moe", -1, &hp->is_moe, label, err));
    static const char *const k_exp[] = {"num_experts", "num_cdmoe_experts", "num_cdmmoe_experts", NULL};
    static const char *const k_used[] = {"num_experts_per_tok", "num_cdmoe_experts_per_head",
                                         "num_cdmmoe_experts_per_head", NULL};
    static const char *const k_heads[] = {"num_cdmoe_heads", "num_cdmmoe_heads", NULL};
    static const char *const k_rsize[] = {"expert_retrieval_size", NULL};
    TRY(get_int_any(root, k_exp, -1, &hp->n_expert, label, err));
    TRY(get_int_any(root, k_used, -1, &hp->n_expert_used, label, err));
    TRY(get_int_any(root, k_heads, -1, &hp->n_rhead, label, err));
    TRY(get_int_any(root, k_rsize, -1, &hp->retrieval_size, label, err));
    int b;
    TRY(get_bool(root, "norm_topk_prob", 0, &b, label, err));
    hp->norm_topk = b;
    TRY(get_bool(root, "tie_word_embeddings", -1, &hp->tie, label, err));
    TRY(get_bool(root, "hidden_bias", 0, &b, label, err));
    hp->hidden_bias = b;
    TRY(get_bool(root, "attention_bias", 0, &b, label, err));
    hp->attention_bias = b;
    TRY(get_bool(root, "mlp_bias", 0, &b, label, err));
    hp->mlp_bias = b;
    TRY(get_bool(root, "is_causal", 0, &b, label, err));
    hp->is_causal = b;
    TRY(get_str(root, "hidden_act", "silu", hp->hidden_act, sizeof hp->hidden_act, label, err));
    TRY(get_int(root, "bos_token_id", -1, &hp->bos, label, err));
    TRY(get_int(root, "eos_token_id", -1, &hp->eos, label, err));
    TRY(get_int(root, "pad_token_id", -1, &hp->pad, label, err));
    if (hp->otce) {
        /* the authors' class defaults for keys the MoE needs */
        if (!item(root, "num_experts")) hp->n_expert = 4;
        if (!item(root, "num_experts_per_tok")) hp->n_expert_used = 1;
        if (hp->mamba_dt_rank <= 0) hp->mamba_dt_rank = (hp->d + 15) / 16; /* "auto" = ceil(d / 16) */
        if (hp->type_vocab < 0) hp->type_vocab = 0;
    }
    cJSON_Delete(root);
    if (hp->keep_window < 0) hp->keep_window = 0;
    if (hp->sliding_window < 0) hp->sliding_window = 0;
    return HQ_OK;
}
