#!/usr/bin/env python3
"""Writes the checkpoint-format fixtures under tests/fixtures/formats/ (rerun to regenerate):

  mixed.safetensors       one tensor per dtype (F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL), odd shapes,
                          a 0-dim scalar, an empty tensor, special values (NaN, +-Inf, subnormals,
                          values that overflow F16)
  mixed_ref.safetensors   torch's conversions of every convertible tensor X of mixed.safetensors:
                          X.f32 = X.to(float32), X.f16 = X.to(float16), X.bf16 = X.to(bfloat16)
                          plus strided views of 'base' (torch.as_strided, the VIEWS list below, which
                          tests/test_ckpt.c repeats) as view<k>.f32 / .f16 / .bf16
  single/                 model.safetensors + config.json + tokenizer.json + tokenizer_config.json
  sharded/                the same tensors in 3 shards + model.safetensors.index.json + config.json
  torch_zip/              pytorch_model.bin (torch.save, zip) of the same tensors + config.json
  torch_legacy/           model.pt (torch.save legacy stream) of the same tensors
  sharded_torch/          pytorch_model.bin.index.json + 2 shards

Needs torch and safetensors (tools/requirements.txt).
"""
import json
import os
import shutil

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "formats")

# (size, stride, storage_offset) over base.flatten() of 48 elements; repeated in tests/test_ckpt.c
VIEWS = [
    ((6, 4), (1, 6), 0),        # transpose of (4, 6)
    ((4, 3), (6, 2), 1),        # every other column, offset 1
    ((3, 5), (0, 1), 7),        # stride 0 (expand)
    ((2, 3, 2), (24, 1, 12), 3),  # permuted 3-d
    ((5,), (9,), 2),            # 1-d strided
    ((), (), 11),               # scalar view
    ((2, 0, 3), (3, 3, 1), 0),  # empty
]


def specials(dtype, n, gen):
    v = torch.randn(n, generator=gen, dtype=torch.float64) * 3
    sp = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 65504.0, 65520.0, 1e6,
                       6e-8, 3e-8, 1e-40, -2.5e-39, 1.0 + 2 ** -11, 1.0 + 3 * 2 ** -11], dtype=torch.float64)
    v[: len(sp)] = sp
    return v.to(dtype)


def model_tensors(gen):
    t = {}
    t["model.embed_tokens.weight"] = torch.randn(16, 8, generator=gen).to(torch.bfloat16)
    t["model.layers.0.mlp.up_proj.weight"] = torch.randn(12, 8, generator=gen).to(torch.bfloat16)
    t["model.layers.0.mlp.down_proj.weight"] = torch.randn(8, 12, generator=gen).to(torch.bfloat16)
    t["model.layers.0.input_layernorm.weight"] = torch.randn(8, generator=gen)
    t["model.layers.0.self_attn.q_proj.weight"] = torch.randn(8, 8, generator=gen).to(torch.float16)
    t["model.layers.1.self_attn.A"] = torch.randn(2, 3, 4, generator=gen)
    t["model.norm.weight"] = torch.randn(8, generator=gen).to(torch.float16)
    t["lm_head.weight"] = torch.randn(16, 8, generator=gen).to(torch.bfloat16)
    return t


def main():
    gen = torch.Generator().manual_seed(20240611)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)

    mixed = {
        "f32": specials(torch.float32, 37, gen).reshape(37),
        "f16": specials(torch.float16, 30, gen).reshape(5, 6),
        "bf16": specials(torch.bfloat16, 24, gen).reshape(2, 3, 4),
        "f64": specials(torch.float64, 21, gen).reshape(3, 7),
        "i64": torch.tensor([0, 1, -1, 2 ** 24 + 1, -(2 ** 40) - 3, 2 ** 62, 123456789], dtype=torch.int64),
        "i32": torch.tensor([[0, 7, -7], [2 ** 24 + 1, -(2 ** 31), 2 ** 31 - 1]], dtype=torch.int32),
        "i16": torch.tensor([1, -2, 300], dtype=torch.int16),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([[0, 255], [1, 2]], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True], dtype=torch.bool),
        "scalar": torch.tensor(3.5, dtype=torch.float32),
        "empty": torch.zeros(0, 3, dtype=torch.float16),
        "base": (torch.randn(48, generator=gen) * 10).to(torch.float16),
    }
    save_file(mixed, os.path.join(OUT, "mixed.safetensors"), metadata={"format": "pt"})

    ref = {}
    for k, v in mixed.items():
        if v.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32):
            ref[k + ".f32"] = v.to(torch.float32).contiguous().clone()
            ref[k + ".f16"] = v.to(torch.float16).contiguous().clone()
            ref[k + ".bf16"] = v.to(torch.bfloat16).contiguous().clone()
    for i, (size, stride, off) in enumerate(VIEWS):
        view = torch.as_strided(mixed["base"], size, stride, off)
        ref[f"view{i}.f32"] = view.to(torch.float32).contiguous().clone()
        ref[f"view{i}.f16"] = view.to(torch.float16).contiguous().clone()
        ref[f"view{i}.bf16"] = view.to(torch.bfloat16).contiguous().clone()
    save_file(ref, os.path.join(OUT, "mixed_ref.safetensors"))

    model = model_tensors(gen)
    config = {"architectures": ["DogeForCausalLM"], "hidden_size": 8, "vocab_size": 16}
    tokenizer = {"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}}
    tok_cfg = {"add_bos_token": False, "eos_token": "</s>"}

    def side_files(d, all_three=True):
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f, indent=1)
        if all_three:
            with open(os.path.join(d, "tokenizer.json"), "w") as f:
                json.dump(tokenizer, f)
            with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
                json.dump(tok_cfg, f)

    d = os.path.join(OUT, "single")
    os.makedirs(d)
    save_file(model, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    side_files(d)

    # 3 shards in HF naming; weight_map lists every tensor
    d = os.path.join(OUT, "sharded")
    os.makedirs(d)
    names = list(model)
    groups = [names[0:3], names[3:5], names[5:]]
    wm = {}
    for i, g in enumerate(groups):
        fn = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        save_file({k: model[k] for k in g}, os.path.join(d, fn), metadata={"format": "pt"})
        for k in g:
            wm[k] = fn
    total = sum(v.numel() * v.element_size() for v in model.values())
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wm.items()))}, f, indent=2)
    side_files(d, all_three=False)

    d = os.path.join(OUT, "torch_zip")
    os.makedirs(d)
    torch.save(model, os.path.join(d, "pytorch_model.bin"))
    side_files(d, all_three=False)

    d = os.path.join(OUT, "torch_legacy")
    os.makedirs(d)
    torch.save(model, os.path.join(d, "model.pt"), _use_new_zipfile_serialization=False)

    d = os.path.join(OUT, "sharded_torch")
    os.makedirs(d)
    groups = [names[0:4], names[4:]]
    wm = {}
    for i, g in enumerate(groups):
        fn = f"pytorch_model-{i + 1:05d}-of-{len(groups):05d}.bin"
        torch.save({k: model[k] for k in g}, os.path.join(d, fn))
        for k in g:
            wm[k] = fn
    with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2)

    print("wrote", OUT)


if __name__ == "__main__":
    main()
