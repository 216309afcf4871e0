#!/usr/bin/env python3
"""tools/make_convert_fixtures.py — tiny checkpoints for tests/test_convert.c and
tests/t_convert*.sh, covering the converter's edge cases (the general model
fixtures live in tests/fixtures/models/, made by tools/make_fixtures.py):

  cheems_alog/         Cheems, SSD with A_log + D + dt_bias (A -> -exp(A_log)),
                       product-key CDMoE, 2 safetensors shards + index, tokenizer files
  cheems_alog_single/  the same tensors in one model.safetensors (sharded == unsharded)
  doge_old_pk/         Doge old names, product-key CDMoE (num_cdmmoe_* spelling),
                       rotary buffer, tied lm_head stored as a bit-identical copy
  doge_old_pk_bin/     the same model as pytorch_model.bin, lm_head sharing the
                       embedding's storage (.bin == .safetensors GGUF)
  doge_old_pk_bf16/    the same model in bf16 (bf16 -> f32 exact)
  cheems_apos/         dense Cheems with the raw SSD A = +1 as the authors initialise it
                       (inspect must warn, spec §4.5), fp16 weights

Run from the repository root: python3 tools/make_convert_fixtures.py
"""
import json
import os
import shutil

import torch
from safetensors.torch import save_file

OUT = os.path.join("tests", "fixtures", "convert")

V, D, I, H, KV, P = 48, 16, 32, 2, 1, 8
HR, R, E = 2, 4, 9  # Kk = floor(sqrt(9)) = 3
KK = 3


def rnd(g, *shape):
    return torch.randn(*shape, generator=g, dtype=torch.float32)


def ffn_pk(g, sd, fp):
    sd[fp + "gate_proj.weight"] = rnd(g, I, D)
    sd[fp + "up_proj.weight"] = rnd(g, I, D)
    sd[fp + "down_proj.weight"] = rnd(g, D, I)
    sd[fp + "queries.weight"] = rnd(g, HR * R, D)
    sd[fp + "keys"] = rnd(g, HR, KK, 2, R // 2)
    sd[fp + "down_embed.weight"] = rnd(g, E, D)
    sd[fp + "up_embed.weight"] = rnd(g, E, D)


def attn(g, sd, ap):
    sd[ap + "q_proj.weight"] = rnd(g, H * P, D)
    sd[ap + "k_proj.weight"] = rnd(g, KV * P, D)
    sd[ap + "v_proj.weight"] = rnd(g, KV * P, D)
    sd[ap + "A"] = rnd(g, H)
    sd[ap + "dt_proj.weight"] = rnd(g, H, KV * P)
    sd[ap + "o_proj.weight"] = rnd(g, D, H * P)


def cheems(g):
    L = 3
    sd = {"model.word_embed.weight": rnd(g, V, D), "model.final_layernorm.weight": rnd(g, D)}
    for i in range(L):
        p = f"model.layers.{i}."
        for n in ("pre_sequence_layernorm", "post_sequence_residual", "pre_state_layernorm", "post_state_residual"):
            sd[p + n + ".weight"] = rnd(g, D)
        if i == 2:
            attn(g, sd, p + "attn.")
        else:
            s = p + "ssd."
            sd[s + "x_proj.weight"] = rnd(g, H * P, D)
            sd[s + "b_proj.weight"] = rnd(g, H * P, D)
            sd[s + "c_proj.weight"] = rnd(g, H * P, D)
            sd[s + "dt_proj.weight"] = rnd(g, H, D)
            sd[s + "dt_bias"] = rnd(g, H)
            sd[s + "A_log"] = rnd(g, H)
            sd[s + "D"] = rnd(g, H)
            sd[s + "out_proj.weight"] = rnd(g, D, H * P)
        ffn_pk(g, sd, p + "feed_forward.")
    cfg = {
        "model_type": "cheems", "vocab_size": V, "hidden_size": D, "intermediate_size": I, "num_hidden_layers": L,
        "num_attention_heads": H, "num_key_value_heads": KV, "attn_layer_period": 3, "attn_layer_offset": 2,
        "is_moe": True, "num_cdmoe_experts": E, "num_cdmoe_heads": HR, "num_cdmoe_experts_per_head": 2,
        "expert_retrieval_size": R, "tie_word_embeddings": True, "hidden_bias": False, "ssd_chunk_size": 64,
        "max_position_embeddings": 128, "rope_theta": 10000.0,
        "rope_scaling": {"type": "dynamic", "factor": 4.0, "original_max_position_embeddings": 128},
        "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2, "rms_norm_eps": 1e-6, "hidden_act": "silu",
    }
    return sd, cfg


def doge_old(g):
    L = 2
    sd = {"model.word_embed.weight": rnd(g, V, D), "model.final_layernorm.weight": rnd(g, D)}
    for i in range(L):
        p = f"model.layers.{i}."
        for n in ("pre_layernorm", "pre_residual", "post_layernorm", "post_residual"):
            sd[p + n + ".weight"] = rnd(g, D)
        attn(g, sd, p + "self_attn.")
        ffn_pk(g, sd, p + "feed_forward.")
    sd["model.rotary_emb.original_inv_freq"] = 1.0 / (10000 ** (torch.arange(0, P, 2).float() / P))
    cfg = {
        "model_type": "doge", "vocab_size": V, "hidden_size": D, "intermediate_size": I, "num_hidden_layers": L,
        "num_attention_heads": H, "num_key_value_heads": KV, "is_moe": True, "num_cdmmoe_experts": E,
        "num_cdmmoe_heads": HR, "num_cdmmoe_experts_per_head": 2, "expert_retrieval_size": R,
        "tie_word_embeddings": True, "max_position_embeddings": 64, "rope_theta": 10000.0, "rope_scaling": None,
        "dynamic_mask_ratio": 0.0, "keep_window_size": 64, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2,
    }
    return sd, cfg


def write_dir(name, cfg, tok=False):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    if tok:
        vocab = {f"t{i}": i for i in range(V)}
        tj = {"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None,
              "model": {"type": "BPE", "vocab": vocab, "merges": []}}
        with open(os.path.join(d, "tokenizer.json"), "w") as f:
            json.dump(tj, f)
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump({"add_bos_token": True, "bos_token": "t0", "eos_token": "t1"}, f)
    return d


def main():
    g = torch.Generator().manual_seed(20250101)
    sd, cfg = cheems(g)
    d = write_dir("cheems_alog", cfg, tok=True)
    names = list(sd)
    half = len(names) // 2
    shards = [names[half:], names[:half]]  # deliberately not in canonical order
    wm = {}
    for k, part in enumerate(shards):
        fn = f"model-{k + 1:05d}-of-00002.safetensors"
        save_file({n: sd[n].contiguous() for n in part}, os.path.join(d, fn), metadata={"format": "pt"})
        wm.update({n: fn for n in part})
    total = sum(t.numel() * 4 for t in sd.values())
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2)
    d = write_dir("cheems_alog_single", cfg, tok=True)
    save_file(dict(reversed(list(sd.items()))), os.path.join(d, "model.safetensors"), metadata={"format": "pt"})

    sd, cfg = doge_old(g)
    d = write_dir("doge_old_pk", cfg)
    st = dict(sd)
    st["lm_head.weight"] = sd["model.word_embed.weight"].clone()  # safetensors cannot share storage
    save_file(st, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    d = write_dir("doge_old_pk_bin", cfg)
    tb = dict(reversed(list(sd.items())))
    tb["lm_head.weight"] = sd["model.word_embed.weight"]  # same storage, as torch.save writes tied weights
    torch.save(tb, os.path.join(d, "pytorch_model.bin"))
    cfg16 = dict(cfg, torch_dtype="bfloat16")
    d = write_dir("doge_old_pk_bf16", cfg16)
    save_file({k: v.to(torch.bfloat16) for k, v in sd.items()}, os.path.join(d, "model.safetensors"),
              metadata={"format": "pt"})
    # dense Cheems, raw A = +1 (WM init), f16 storage
    sd = {"model.word_embed.weight": rnd(g, V, D), "model.final_layernorm.weight": rnd(g, D)}
    for i in range(2):
        p = f"model.layers.{i}."
        for n in ("pre_sequence_layernorm", "post_sequence_residual", "pre_state_layernorm", "post_state_residual"):
            sd[p + n + ".weight"] = rnd(g, D)
        if i == 1:
            attn(g, sd, p + "attn.")
        else:
            s = p + "ssd."
            for n in ("x_proj", "b_proj", "c_proj"):
                sd[s + n + ".weight"] = rnd(g, H * P, D)
            sd[s + "dt_proj.weight"] = rnd(g, H, D)
            sd[s + "A"] = torch.ones(H)
            sd[s + "out_proj.weight"] = rnd(g, D, H * P)
        f = p + "feed_forward."
        sd[f + "gate_proj.weight"] = rnd(g, I, D)
        sd[f + "up_proj.weight"] = rnd(g, I, D)
        sd[f + "down_proj.weight"] = rnd(g, D, I)
    sd["lm_head.weight"] = rnd(g, V, D)
    cfg = {"model_type": "cheems", "vocab_size": V, "hidden_size": D, "intermediate_size": I,
           "num_hidden_layers": 2, "num_attention_heads": H, "num_key_value_heads": KV, "attn_layer_period": 2,
           "attn_layer_offset": 1, "is_moe": False, "tie_word_embeddings": False, "max_position_embeddings": 64}
    d = write_dir("cheems_apos", cfg)
    save_file({k: v.half() for k, v in sd.items()}, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    print("wrote", OUT)


if __name__ == "__main__":
    main()
