#!/usr/bin/env python3
"""Generate the OTCE fixtures under tests/fixtures/otce/ (run by `make fixtures`).

Checkpoints saved exactly as the authors' CheemsOTCEForCausalLM saves them
(tools/otce_ref.py: config.json without num_hidden_layers, state dict with the
repeated experts.{e}.shared_* entries), random weights (seeded), at odd sizes:
d = 24, H = 4 (P = 6), KV = 2 (GQA), expand 2 (E_in = 48 != d), N = 16,
dt_rank "auto" = ceil(24/16) = 2, conv 4, I = 32, stages 2+1+2+1 (one
expression layer), V = 320 (the tokenizer of tests/fixtures/models/doge-dense).

  otce-expansive      expansive experts E=4 top-1, token-type embedding (2 types),
                      conv and mamba proj biases, config dt_rank written as 2
  otce-expansive-bin  the same weights as pytorch_model.bin (torch.save of the
                      state dict; shared modules share storage)
  otce-cohesive       cohesive experts E=3 top-2, hidden_bias (every Linear of
                      attn/MLP/experts/dense/projection), config dt_rank "auto"
  otce-cohesive-bin   the same as pytorch_model.bin
  otce-plain          plain MLP experts (expert_type null) E=4 top-2, token types (1)
  otce-dense          num_experts 1 (every FFN an MLP), stages 1+1+1+1,
                      mamba_rope and attention_rope false

Each directory: config.json, weights, tokenizer.json, tokenizer_config.json,
  ref.json        {"tokens", "logits_shape", "ppl_all", "prefill_vs_decode_max_abs_diff",
                   "greedy_prompt", "greedy_tokens", ...}
  ref_logits.f32  [T, V] little-endian float32 of the float64 prefill logits
  ops.safetensors per-op references computed in float64 from float32 inputs:
                  mamba.x [n, d] (input of the mixer = input_layernorm output of
                  layer mamba.layer), mamba.y [n, d] (F64), mamba.conv_state [E_in, K],
                  mamba.ssm_state [E_in, N] (F64, after the n tokens); moe.x, moe.y,
                  moe.ids [n, k] (I64), moe.w [n, k] (F64) for layer moe.layer
                  (absent for otce-dense); mlp.x / mlp.y for layer 0's MLP.
Deterministic (fixed seeds).
"""
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import otce_ref as orf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "otce")
TOK_DIR = os.path.join(ROOT, "tests", "fixtures", "models", "doge-dense")
N_GREEDY = 6
PROMPT_LEN = 6

torch.use_deterministic_algorithms(True)

COMMON = dict(vocab_size=320, hidden_size=24, intermediate_size=32, num_attention_heads=4, num_key_value_heads=2,
              mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_dt_rank="auto", max_position_embeddings=2048,
              rope_theta=10000.0, rms_norm_eps=1e-6, pad_token_id=2, bos_token_id=0, eos_token_id=1,
              num_observation_layers=2, num_thinking_layers=1, num_conseption_layers=2, num_expression_layers=1)

SPECS = [
    # name, seed, overrides, write dt_rank as "auto", bin copy
    ("otce-expansive", 31, dict(expert_type="expansive", num_experts=4, num_experts_per_tok=1, type_vocab_size=2,
                                mamba_conv_bias=True, mamba_proj_bias=True), False, True),
    ("otce-cohesive", 32, dict(expert_type="cohesive", num_experts=3, num_experts_per_tok=2, hidden_bias=True),
     True, True),
    ("otce-plain", 33, dict(expert_type=None, num_experts=4, num_experts_per_tok=2, type_vocab_size=1), False, False),
    ("otce-dense", 34, dict(num_experts=1, num_observation_layers=1, num_thinking_layers=1, num_conseption_layers=1,
                            num_expression_layers=1, mamba_rope=False, attention_rope=False), False, False),
]


def init_weights(m, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():  # shared modules are visited once
            if name.endswith("A_log"):
                # the authors' init log(1..N) per row, jittered so channels differ
                p.copy_(p + 0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith(".D"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif "layernorm.weight" in name:
                p.copy_(0.8 + 0.4 * torch.rand(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("conv1d.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif name.endswith("mamba.dt_proj.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif name.endswith("router.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.8)
            elif "embeddings" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / p.shape[-1] ** 0.5))
    m.eval()
    return m


def write_tokenizer(d):
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOK_DIR, f), d)


def fresh_dir(name):
    d = os.path.join(OUT, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    return d


@torch.no_grad()
def greedy(m64, prompt, n):
    ids, margin = list(prompt), float("inf")
    for _ in range(n):
        lg = m64(torch.tensor(ids))[-1]
        top2 = torch.topk(lg, 2).values
        margin = min(margin, float(top2[0] - top2[1]))
        ids.append(int(lg.argmax()))
    return ids[len(prompt):], margin


@torch.no_grad()
def op_refs(m64, tokens):
    """Inputs of one mamba mixer, one MoE and one MLP, rounded to float32, and their float64 outputs."""
    hidden = []
    m64(torch.tensor(tokens), hidden=hidden)
    layers = m64.model.layers
    out = {}
    n = len(tokens)
    pos = torch.arange(n)
    # the last mamba layer with a bias-carrying conv if any; else the first
    lm = [i for i, l in enumerate(layers) if l.kind == "mamba"][-1]
    x = layers[lm].input_layernorm(hidden[lm]).float().double()
    st = {"conv": torch.zeros(layers[lm].mamba.E, layers[lm].mamba.K, dtype=torch.float64),
          "ssm": torch.zeros(layers[lm].mamba.E, layers[lm].mamba.N, dtype=torch.float64), "filled": False}
    y = layers[lm].mamba(x, pos, st)
    out.update({"mamba.layer": torch.tensor([lm]), "mamba.x": x.float(), "mamba.y": y,
                "mamba.conv_state": st["conv"].float(), "mamba.ssm_state": st["ssm"]})
    moe = [i for i, l in enumerate(layers) if isinstance(l.feed_forward, orf.SharedMoeLayer)]
    if moe:
        lf = moe[0]
        h = hidden[lf]
        h = h + layers[lf].mixer()(layers[lf].input_layernorm(h), pos, None)
        x = layers[lf].pre_ff_layernorm(h).float().double()
        y, _, sel, w = layers[lf].feed_forward(x)
        out.update({"moe.layer": torch.tensor([lf]), "moe.x": x.float(), "moe.y": y, "moe.ids": sel.long(),
                    "moe.w": w})
    x = layers[0].pre_ff_layernorm(hidden[1] if len(hidden) > 1 else hidden[0]).float().double()
    out.update({"mlp.layer": torch.tensor([0]), "mlp.x": x.float(), "mlp.y": layers[0].feed_forward(x)})
    return out


def main():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    from safetensors.torch import save_file

    with open(os.path.join(ROOT, "tests", "fixtures", "models", "doge-dense", "ref.json")) as f:
        tokens = json.load(f)["tokens"]
    prompt = tokens[:PROMPT_LEN]
    for name, seed, over, dt_auto, want_bin in SPECS:
        kw = dict(COMMON)
        kw.update(over)
        cfg = orf.OTCEConfig(**kw)
        torch.manual_seed(seed)
        m = init_weights(orf.OTCEForCausalLM(cfg), seed)
        d = fresh_dir(name)
        orf.save_pretrained(m, d, safetensors=True, bin=False, dt_rank_as_auto=dt_auto)
        write_tokenizer(d)
        m64 = orf.load_pretrained(d, dtype=torch.float64)
        with torch.no_grad():
            full = m64(torch.tensor(tokens))
            dec = orf.decode_logits(m64, tokens)
        diff = float((full - dec).abs().max())
        assert diff < 1e-10, diff
        lp = torch.log_softmax(full, dim=-1)
        nll = -lp[:-1].gather(1, torch.tensor(tokens[1:])[:, None])[:, 0]
        g, margin = greedy(m64, prompt, N_GREEDY)
        np.ascontiguousarray(full.numpy(), dtype="<f4").tofile(os.path.join(d, "ref_logits.f32"))
        ref = {"tokens": tokens, "n_vocab": cfg.vocab_size, "logits_file": "ref_logits.f32",
               "logits_shape": [len(tokens), cfg.vocab_size],
               "ppl_all": float(torch.exp(nll.mean())),
               "ppl_note": "exp(mean NLL of tokens[1:] given the prefix), one prefill of all tokens, float64",
               "prefill_vs_decode_max_abs_diff": diff,
               "greedy_prompt": prompt, "greedy_tokens": g, "greedy_min_margin": margin,
               "layers_block_type": cfg.layers_block_type,
               "source": "tools/otce_ref.py (authors' OTCE forward, patched; see its docstring), random init "
                         "seed %d, float64 from the float32 weights; logits = one prefill; token-by-token decode "
                         "with the conv/SSM/KV cache agrees to %.1e" % (seed, diff)}
        with open(os.path.join(d, "ref.json"), "w") as f:
            json.dump(ref, f, indent=1)
            f.write("\n")
        ops = {k: v.contiguous() for k, v in op_refs(m64, tokens).items()}
        save_file(ops, os.path.join(d, "ops.safetensors"), metadata={"format": "pt"})
        written = [name]
        if want_bin:
            db = fresh_dir(name + "-bin")
            orf.save_pretrained(m, db, safetensors=False, bin=True, dt_rank_as_auto=dt_auto)
            write_tokenizer(db)
            for f in ("ref.json", "ref_logits.f32", "ops.safetensors"):
                shutil.copy(os.path.join(d, f), db)
            written.append(name + "-bin")
        for w in written:
            dd = os.path.join(OUT, w)
            size = sum(os.path.getsize(os.path.join(dd, f)) for f in os.listdir(dd))
            print("%-22s %8d bytes  %s" % (w, size, " ".join(sorted(os.listdir(dd)))))


if __name__ == "__main__":
    main()
