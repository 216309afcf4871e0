#!/usr/bin/env python3
"""Fixtures for the DMAttn keep window beyond keep_window_size (docs/doge-keep-window.md; run by `make fixtures`).

Writes
  tests/fixtures/topk/torch_topk_ties.json
      rows with many tied values and the index set torch.topk(row, k, largest=True, sorted=False) returns for them
      on the CPU (both libstdc++ paths ATen uses: nth_element when k*64 > n, partial_sort when k*64 <= n);
      tests/test_ops.c checks runtime/topk_torch.c against it.
  tests/fixtures/models/doge-kw-dense, doge-kw-moe
      small random HF DogeForCausalLM models with keep_window_size = 8 < 24 tokens of context. In every layer
      A = [0, a] (kv head 0: A = 0 as transformers initialises it, every beta = 1, so the kept set is decided by
      torch.topk's tie order; kv head 1: random A, distinct betas). References, float64:
        ref_logits.f32              token by token with the KV cache (what generate's decode steps compute)
        ref_logits_hf_prefill.f32   one multi-token forward, model(input_ids)
      ref.json also holds the llama-perplexity-protocol PPL of both at ctx 24 for `hyquant perplexity` on
      ppl_text.txt (tests/t_keep_window.sh) and the greedy continuation of the decode path.

Deterministic (fixed seeds). The tokenizer files are copied from tests/fixtures/models/doge-dense.
"""
import json
import os
import random
import shutil

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
TOK_SRC = os.path.join(FIX, "models", "doge-dense")
KEEP = 8
T_CTX = 24
PROMPT_LEN = 6
N_GREEDY = 10
PPL_TEXT = ("def greet(name):\n    \"\"\"Return a greeting.\"\"\"\n    return 'Hello, ' + name + '!'  # tiny example\n"
            "for i in range(10):\n    print(greet(str(i)))\n")

torch.use_deterministic_algorithms(True)


# ------------------------------------------------------------------ torch.topk tie sets

def topk_fixture():
    rng = random.Random(12)
    fmin = float(torch.finfo(torch.float32).min)
    values = [1.0, 0.5, 2.0, 0.25, fmin, 0.0, 3.0]
    cases = []
    for i in range(240):
        if i < 40:  # partial_sort path: k * 64 <= n
            k = rng.randint(1, 3)
            n = rng.randint(64 * k, 64 * k + 40)
        else:
            n = rng.randint(2, 90)
            k = rng.randint(1, n)
        nv = rng.choice([1, 2, 3, 4])
        x = [rng.randrange(nv) for _ in range(n)]
        if rng.random() < 0.5:  # a causal row of a multi-token call: tail at finfo.min
            c = rng.randint(1, n)
            x = x[:c] + [4] * (n - c)
        if rng.random() < 0.15:
            x = [rng.choice([0, 5, 6]) for _ in range(n)]
        row = torch.tensor([values[v] for v in x], dtype=torch.float32)
        idx = sorted(torch.topk(row, k, largest=True, sorted=False).indices.tolist())
        cases.append({"x": "".join(chr(ord("a") + v) for v in x), "k": k, "topk": idx})
    out = {"source": "torch %s torch.topk(row, k, largest=True, sorted=False) on the CPU; row[i] = values[x[i] - 'a'] "
                     "(float32)" % torch.__version__,
           "values": values, "cases": cases}
    d = os.path.join(FIX, "topk")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "torch_topk_ties.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    return "topk/torch_topk_ties.json"


if __name__ == "__main__":
    torch.set_num_threads(2)
    print(topk_fixture())
