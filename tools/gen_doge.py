#!/usr/bin/env python3
"""tools/gen_doge.py — a random Doge checkpoint of any size, from a seed.

Writes an HF-style DogeForCausalLM directory (config.json, model.safetensors
in F16 or F32, the bundled model's tokenizer files) with the tensor names and
shapes that transformers' DogeForCausalLM saves (as tests/fixtures/models/
doge-dense): weights ~ N(0, 0.02²), norms and residual scales 1, A small
negative. It is for speed measurements (bench/bench_gpu.sh,
tools/gpu_check.sh), not for quality: the logits are those of a random net.
Needs only numpy, so it runs where torch is absent or slow to import.

  tools/gen_doge.py OUT_DIR [--hidden 2048 --layers 16 --intermediate 8192
                     --heads 16 --kv-heads 8 --vocab 32768 --dtype f16 --seed 1]
  tools/gen_doge.py OUT_DIR --dry-run     # print shapes, parameters and bytes only

The defaults give a ~1.07 B-parameter model (2.1 GB at F16)."""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np


def tensor_list(a):
    d, P = a.hidden, a.hidden // a.heads
    kvd = a.kv_heads * P
    out = [("model.embed_tokens.weight", (a.vocab, d), "w")]
    for i in range(a.layers):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (d,), "one"),
            (p + "self_attn.q_proj.weight", (d, d), "w"),
            (p + "self_attn.k_proj.weight", (kvd, d), "w"),
            (p + "self_attn.v_proj.weight", (kvd, d), "w"),
            (p + "self_attn.q_norm.weight", (P,), "one"),
            (p + "self_attn.k_norm.weight", (P,), "one"),
            (p + "self_attn.dt_proj.weight", (a.kv_heads, kvd), "w"),
            (p + "self_attn.A", (a.kv_heads,), "a"),
            (p + "self_attn.o_proj.weight", (d, d), "w"),
            (p + "input_residual", (d,), "one"),
            (p + "post_attention_layernorm.weight", (d,), "one"),
            (p + "mlp.gate_proj.weight", (a.intermediate, d), "w"),
            (p + "mlp.up_proj.weight", (a.intermediate, d), "w"),
            (p + "mlp.down_proj.weight", (d, a.intermediate), "w"),
            (p + "post_attention_residual", (d,), "one"),
        ]
    out.append(("model.norm.weight", (d,), "one"))
    return out


def config(a):
    return {
        "architectures": ["DogeForCausalLM"], "model_type": "doge", "attention_bias": False,
        "attention_dropout": 0.0, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2,
        "dtype": "float16" if a.dtype == "f16" else "float32", "hidden_act": "silu", "hidden_dropout": 0.0,
        "hidden_size": a.hidden, "initializer_range": 0.02, "intermediate_size": a.intermediate,
        "is_moe": False, "keep_window_size": a.keep_window, "max_position_embeddings": a.ctx,
        "mlp_bias": False, "norm_topk_prob": False, "num_attention_heads": a.heads,
        "num_experts": 16384, "num_experts_per_tok": 64, "num_hidden_layers": a.layers,
        "num_key_value_heads": a.kv_heads, "output_router_logits": False, "rms_norm_eps": 1e-06,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "router_aux_loss_coef": 0.001, "sliding_window": None, "tie_word_embeddings": True,
        "use_cache": True, "vocab_size": a.vocab,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--intermediate", type=int, default=8192)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--keep-window", type=int, default=4096)
    ap.add_argument("--dtype", choices=["f16", "f32"], default="f16")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dry-run", action="store_true", help="print shapes and sizes, write nothing")
    a = ap.parse_args()
    if a.hidden % a.heads or a.heads % a.kv_heads or min(a.hidden, a.layers, a.intermediate, a.vocab) < 1:
        sys.exit("gen_doge: hidden must divide by heads and heads by kv-heads; all sizes >= 1")
    ts = tensor_list(a)
    esz = 2 if a.dtype == "f16" else 4
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in ts:
        n = int(np.prod(shape)) * esz
        header[name] = {"dtype": "F16" if esz == 2 else "F32", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    n_params = sum(int(np.prod(s)) for _, s, _ in ts)
    print(f"gen_doge: {a.layers} layers, d {a.hidden}, I {a.intermediate}, heads {a.heads}/{a.kv_heads}, "
          f"vocab {a.vocab}: {n_params / 1e9:.3f} B parameters, {off / 2**30:.2f} GiB of {a.dtype.upper()} "
          f"in {len(ts)} tensors")
    if a.dry_run:
        for name, shape, _ in ts[:16]:
            print(f"  {name:48s} {list(shape)}")
        print(f"  ... ({len(ts)} tensors)")
        return
    os.makedirs(a.out, exist_ok=True)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    rng = np.random.default_rng(a.seed)
    dt = np.float16 if esz == 2 else np.float32
    path = os.path.join(a.out, "model.safetensors")
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb)
        for name, shape, kind in ts:
            if kind == "one":
                v = np.ones(shape, dtype=dt)
            elif kind == "a":
                v = (-rng.random(shape, dtype=np.float32) * 0.5).astype(dt)
            else:  # in row chunks: bounded memory for any size
                rows = shape[0]
                step = max(1, (1 << 24) // int(np.prod(shape[1:])))
                for r in range(0, rows, step):
                    c = rng.standard_normal((min(step, rows - r),) + tuple(shape[1:]), dtype=np.float32)
                    f.write((c * 0.02).astype(dt).tobytes())
                continue
            f.write(v.tobytes())
    os.replace(path + ".tmp", path)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config(a), f, indent=2)
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "cheems-tiny")
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(here, fn)):
            shutil.copy(os.path.join(here, fn), os.path.join(a.out, fn))
    print(f"gen_doge: wrote {a.out}")


if __name__ == "__main__":
    main()
