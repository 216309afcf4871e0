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
      ppl_text.txt (tests/t_keep_window.sh), the greedy continuation of the decode path (prompt fed one token per
      call) and transformers' generate() greedy from a 14-token prompt (prompt in one call, longer than the window).

Deterministic (fixed seeds). The tokenizer files are copied from tests/fixtures/models/doge-dense.
"""
import json
import os
import random
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import doge_decode_logits as decode_logits, init_doge_weights  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
TOK_SRC = os.path.join(FIX, "models", "doge-dense")
KEEP = 8
T_CTX = 24
PROMPT_LEN = 6
HF_PROMPT_LEN = 14  # > KEEP: the prompt call itself drops keys
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


# ------------------------------------------------------------------ Doge models with keep_window < context

def doge_config(is_moe, V):
    from transformers import DogeConfig

    kw = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=2048, keep_window_size=KEEP,
              rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, tie_word_embeddings=True,
              bos_token_id=0, eos_token_id=1, pad_token_id=2, rms_norm_eps=1e-6, hidden_act="silu", is_moe=is_moe)
    if is_moe:
        kw.update(num_experts=16, num_experts_per_tok=4, norm_topk_prob=False)
    return DogeConfig(**kw)  # attention implementation: transformers' default (sdpa)


def make_doge(is_moe, seed, V):
    from transformers import DogeForCausalLM

    torch.manual_seed(seed)
    # kv head 0 keeps transformers' init A = 0 (every beta = 1: torch.topk's tie order decides);
    # kv head 1 gets a random A (distinct betas: no ties)
    return init_doge_weights(DogeForCausalLM(doge_config(is_moe, V)), seed,
                             lambda shape, g: torch.tensor([0.0, float(2 * torch.rand(1, generator=g) - 1)]))


@torch.no_grad()
def hf_generate(model, prompt, n):
    """Greedy as GenerationMixin.generate runs it: the prompt in one forward, then one token per call."""
    r = model(input_ids=torch.tensor([prompt]), use_cache=True)
    past, ids = r.past_key_values, [int(r.logits[0, -1].argmax())]
    while len(ids) < n:
        r = model(input_ids=torch.tensor([[ids[-1]]]), past_key_values=past, use_cache=True)
        past = r.past_key_values
        ids.append(int(r.logits[0, -1].argmax()))
    return ids


def ppl_of(logits, tokens):
    """llama-perplexity protocol of runtime/ppl.c on one chunk: positions ctx/2 .. ctx-2 predict the next token."""
    n = len(tokens)
    lp = torch.log_softmax(logits.double(), dim=-1)
    nll = [-float(lp[j, tokens[j + 1]]) for j in range(n // 2, n - 1)]
    return float(np.exp(np.mean(nll)))


def doge_kw_fixtures():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(TOK_SRC)
    V = len(tok)
    ids = tok(PPL_TEXT)["input_ids"]
    assert ids[0] == 0 and len(ids) >= T_CTX, ids
    tokens = ids[:T_CTX]
    prompt = tokens[:PROMPT_LEN]
    written = []
    for is_moe, name, seed in ((False, "doge-kw-dense", 31), (True, "doge-kw-moe", 32)):
        model = make_doge(is_moe, seed, V)
        d = os.path.join(FIX, "models", name)
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
        model.save_pretrained(d)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(TOK_SRC, f), d)
        with open(os.path.join(d, "ppl_text.txt"), "w") as f:
            f.write(PPL_TEXT)
        m64 = make_doge(is_moe, seed, V).double()
        impl = m64.config._attn_implementation
        with torch.no_grad():
            dec = decode_logits(m64, tokens)
            full = m64(input_ids=torch.tensor([tokens])).logits[0]
            m64.config._attn_implementation = "eager"
            dec_e = decode_logits(m64, tokens)
            full_e = m64(input_ids=torch.tensor([tokens])).logits[0]
            m64.config._attn_implementation = impl
        d_impl = max(float((dec - dec_e).abs().max()), float((full - full_e).abs().max()))
        assert d_impl < 1e-5, d_impl  # eager and the default implementation agree on both paths
        d_paths = float((full - dec).abs().max())
        assert d_paths > 1e-2, d_paths  # the tie order must matter, or the fixture tests nothing
        ids_g, margin = list(prompt), float("inf")
        for _ in range(N_GREEDY):
            lg = decode_logits(m64, ids_g)[-1]
            top2 = torch.topk(lg, 2).values
            margin = min(margin, float(top2[0] - top2[1]))
            ids_g.append(int(lg.argmax()))
        # transformers' own generate: the prompt (longer than the window) in one call, then one token per call
        hf_prompt = tokens[:HF_PROMPT_LEN]
        hf_gen = hf_generate(m64, hf_prompt, N_GREEDY)
        with torch.no_grad():
            out = m64.generate(torch.tensor([hf_prompt]), max_new_tokens=N_GREEDY, do_sample=False,
                               eos_token_id=None, pad_token_id=2)
        assert out[0, HF_PROMPT_LEN:].tolist() == hf_gen, (out, hf_gen)
        np.ascontiguousarray(dec.numpy(), dtype="<f4").tofile(os.path.join(d, "ref_logits.f32"))
        np.ascontiguousarray(full.numpy(), dtype="<f4").tofile(os.path.join(d, "ref_logits_hf_prefill.f32"))
        ref = {
            "tokens": tokens, "n_vocab": V, "logits_file": "ref_logits.f32", "logits_shape": [len(tokens), V],
            "greedy_prompt": prompt, "greedy_tokens": ids_g[len(prompt):], "greedy_min_margin": margin,
            "hf_prefill_logits_file": "ref_logits_hf_prefill.f32",
            "hf_generate_prompt": hf_prompt, "hf_generate_tokens": hf_gen,
            "keep_window_size": KEEP,
            "ppl_text": "ppl_text.txt", "ppl_ctx": T_CTX,
            "ppl_decode": ppl_of(dec, tokens), "ppl_hf_prefill": ppl_of(full, tokens),
            "max_abs_diff_decode_vs_full_forward": d_paths, "max_abs_diff_eager_vs_default_attention": d_impl,
            "source": ("HF transformers %s DogeForCausalLM (%s), random init seed %d, keep_window_size %d < %d tokens; "
                       "A = [0, random] per layer (kv head 0 all-tied beta); model.double(), default attention "
                       "implementation (%s; eager agrees to %.1e). ref_logits.f32: one token per call with the KV "
                       "cache (decode path); ref_logits_hf_prefill.f32: one multi-token forward model(input_ids); "
                       "they differ by up to %.3g. Greedy: decode path. ppl_*: runtime/ppl.c protocol on "
                       "ppl_text.txt at ctx %d (tokens = its first chunk)."
                       % (_tf_version(), "router CDMoE" if is_moe else "dense MLP", seed, KEEP, T_CTX, impl, d_impl,
                          d_paths, T_CTX)),
        }
        with open(os.path.join(d, "ref.json"), "w") as f:
            json.dump(ref, f, indent=1)
            f.write("\n")
        written.append("models/" + name)
    return written


def _tf_version():
    import transformers

    return transformers.__version__


def main():
    torch.set_num_threads(2)
    for w in [topk_fixture()] + doge_kw_fixtures():
        p = os.path.join(FIX, w)
        size = sum(os.path.getsize(os.path.join(p, f)) for f in os.listdir(p)) if os.path.isdir(p) else \
            os.path.getsize(p)
        print("%-32s %8d bytes" % (w, size))


if __name__ == "__main__":
    main()
