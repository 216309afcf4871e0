#!/usr/bin/env python3
"""Fixtures shaped like every released Doge configuration (issue 12 items 3 and 6; run by `make fixtures`).

Small random HF DogeForCausalLM models made and saved by transformers itself (save_pretrained; tokenizer files by
tokenizer.save_pretrained, i.e. as transformers 5 writes them), one per row of the spec §2.2 table:

  doge-like-20m      H=2, KV=1, P=128, tied, F32; config rewritten in the older style (rope_theta + rope_scaling
                     {"type": "dynamic", factor 4}, torch_dtype) as the hub Doge-20M has it — transformers 5 reads it
                     back to the same logits (checked below)
  doge-like-20m-moe  the same attention with router CDMoE: E = 256 (Kk = 16), top-k 16, F32
  doge-like-40m      H=2, KV=1, P=128, tied, BF16 weights, rope_parameters {default, theta 4e4}, max_pos 4096 (the
                     transformers 5 config as save_pretrained writes it: `dtype`, `rope_parameters`)
  doge2-like         H=9, KV=3, P=64 (GQA 3), untied lm_head, F32
  doge-like-40m-bin  the doge-like-40m weights as pytorch_model.bin written with torch.save(state_dict) as
                     transformers 4 did (lm_head.weight shares the embedding's storage)
  doge-like-20m-oldnames  doge-like-20m-kw2048 with the small-doge names of spec §3.2 (model.word_embed,
                     pre_layernorm, pre_residual.weight, feed_forward., final_layernorm) and no q/k norm (references from
                     the HF model with q_norm/k_norm replaced by identities); keep_window > context only, because the
                     old code's keep rule is another one (spec §6 item 10b) that transformers cannot produce

Every model has keep_window_size = 8 < 24 tokens of context; each has a sibling `<name>-kw<N>` whose config has the
released keep_window_size N (2048 or 4096, > context) and whose weights are a symlink to the first's. To stay far
under 1 MB per model, d is 64 and P is given by an explicit head_dim (head counts, head dim, tying, dtype and
config style are the released ones; Doge2's d = 576 is not kept: see docs/config-keys.md).

References (float64, written as f32), as tools/make_keep_window_fixtures.py: ref_logits.f32 token by token with the
KV cache (the default semantics), ref_logits_hf_prefill.f32 one multi-token forward model(input_ids), ref.json with
the perplexity of both on ppl_text.txt at ctx 24, the greedy continuation of the decode path and of generate(), and
the text `hyquant generate` must print for a 13-token prompt with and without --hf-prefill-quirk.
"""
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import doge_decode_logits as decode_logits  # noqa: E402
from make_keep_window_fixtures import hf_generate, ppl_of, PPL_TEXT  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
TOK_SRC = os.path.join(MODELS, "doge-dense")
KEEP, T_CTX, N_GREEDY = 8, 24, 10
GEN_PROMPT = "for i in range(10):\n    print"  # 13 tokens with BOS: longer than the window
N_GEN = 12

torch.use_deterministic_algorithms(True)

# name: (seed, DogeConfig kwargs, dtype, released keep_window_size, config style)
LAYOUTS = {
    "doge-like-20m": (41, dict(hidden_size=64, head_dim=128, intermediate_size=32, num_hidden_layers=2,
                               num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
                               max_position_embeddings=2048,
                               rope_parameters={"rope_type": "dynamic", "factor": 4.0, "rope_theta": 10000.0}),
                      torch.float32, 2048, "old"),
    "doge-like-20m-moe": (42, dict(hidden_size=64, head_dim=128, intermediate_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
                                   max_position_embeddings=2048, is_moe=True, num_experts=256,
                                   num_experts_per_tok=16, norm_topk_prob=False,
                                   rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
                          torch.float32, 2048, "new"),
    "doge-like-40m": (43, dict(hidden_size=64, head_dim=128, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
                               max_position_embeddings=4096,
                               rope_parameters={"rope_type": "default", "rope_theta": 40000.0}),
                      torch.bfloat16, 4096, "new"),
    "doge2-like": (44, dict(hidden_size=64, head_dim=64, intermediate_size=48, num_hidden_layers=1,
                            num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=False,
                            max_position_embeddings=2048,
                            rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
                   torch.float32, 2048, "new"),
}

OLD_NAMES = [("model.embed_tokens.", "model.word_embed."), ("model.norm.", "model.final_layernorm."),
             (".input_layernorm.", ".pre_layernorm."), (".input_residual", ".pre_residual.weight"),
             (".post_attention_layernorm.", ".post_layernorm."),
             (".post_attention_residual", ".post_residual.weight"), (".mlp.", ".feed_forward.")]


def make_model(cfg_kw, keep, seed, V):
    from transformers import DogeConfig, DogeForCausalLM

    cfg = DogeConfig(vocab_size=V, keep_window_size=keep, bos_token_id=0, eos_token_id=1, pad_token_id=2,
                     rms_norm_eps=1e-6, hidden_act="silu", **cfg_kw)
    torch.manual_seed(seed)
    model = DogeForCausalLM(cfg)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "lm_head.weight" and cfg.tie_word_embeddings:
                continue
            if name.endswith("self_attn.A"):  # kv head 0 keeps HF's init 0 (all beta tied), the others random
                p.copy_(torch.cat([torch.zeros(1), 2 * torch.rand(p.shape[0] - 1, generator=g) - 1]))
            elif name.endswith("norm.weight") or name.endswith("residual"):
                p.copy_(0.8 + 0.4 * torch.rand(p.shape, generator=g))
            elif name.endswith("dt_proj.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif name.endswith("embed_tokens.weight") or name.endswith("_embed.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
    return model.eval()


def weights_as(model, dtype):
    """float64 model whose parameters are the dtype-rounded ones; buffers (RoPE inv_freq) stay exact, not rounded
    to bfloat16 as model.to(torch.bfloat16) would round them."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype))
    return model.double()


def to_old_config_style(path):
    """The config as transformers 4 wrote it (and the hub Doge-20M has it): rope_theta + rope_scaling, torch_dtype."""
    c = json.load(open(path))
    rp = c.pop("rope_parameters")
    c["rope_theta"] = rp.pop("rope_theta")
    rt = rp.pop("rope_type")
    # the hub Doge-20M spells out original_max_position_embeddings (transformers 5 takes max_position_embeddings)
    c["rope_scaling"] = None if rt == "default" else dict(
        type=rt, original_max_position_embeddings=c["max_position_embeddings"], **rp)
    c["torch_dtype"] = c.pop("dtype", "float32")
    c["transformers_version"] = "4.49.0"
    json.dump(c, open(path, "w"), indent=2, sort_keys=True)


def identity_qk_norm(model):
    for layer in model.model.layers:
        layer.self_attn.q_norm = torch.nn.Identity()
        layer.self_attn.k_norm = torch.nn.Identity()
    return model


@torch.no_grad()
def references(m64, tokens, prompt, gen_prompt, tok, check_paths):
    """Both transformers paths in float64, perplexities, greedy continuations (ids and the text generate prints)."""
    dec = decode_logits(m64, tokens)
    full = m64(input_ids=torch.tensor([tokens])).logits[0]
    d_paths = float((full - dec).abs().max())
    if check_paths == "differ":
        assert d_paths > 1e-2, d_paths  # the keep rule must matter, or the fixture tests nothing
    ids_g, margin = list(prompt), float("inf")
    for _ in range(N_GREEDY):
        lg = decode_logits(m64, ids_g)[-1]
        top2 = torch.topk(lg, 2).values
        margin = min(margin, float(top2[0] - top2[1]))
        ids_g.append(int(lg.argmax()))
    hf_prompt = tokens[:14]
    hf_gen = hf_generate(m64, hf_prompt, N_GREEDY)
    out = m64.generate(torch.tensor([hf_prompt]), max_new_tokens=N_GREEDY, do_sample=False, eos_token_id=None,
                       pad_token_id=2)
    assert out[0, len(hf_prompt):].tolist() == hf_gen, (out, hf_gen)
    # `hyquant generate -p GEN_PROMPT -n N_GEN` (stops at EOS like generate does) and with --hf-prefill-quirk
    texts = {}
    gp = gen_prompt
    for mode in ("decode", "hf"):
        if mode == "hf":
            gen = hf_generate(m64, gp, N_GEN)
        else:
            ids = list(gp)
            for _ in range(N_GEN):
                ids.append(int(decode_logits(m64, ids)[-1].argmax()))
            gen = ids[len(gp):]
        if 1 in gen:
            gen = gen[:gen.index(1)]
        texts[mode] = GEN_PROMPT + tok.decode(gen, skip_special_tokens=False)
    return dict(dec=dec, full=full, d_paths=d_paths, greedy=ids_g[len(prompt):], margin=margin, hf_prompt=hf_prompt,
                hf_gen=hf_gen, texts=texts)


def write_refs(d, r, tokens, V, extra):
    np.ascontiguousarray(r["dec"].numpy(), dtype="<f4").tofile(os.path.join(d, "ref_logits.f32"))
    np.ascontiguousarray(r["full"].numpy(), dtype="<f4").tofile(os.path.join(d, "ref_logits_hf_prefill.f32"))
    ref = {"tokens": tokens, "n_vocab": V, "logits_file": "ref_logits.f32", "logits_shape": [len(tokens), V],
           "hf_prefill_logits_file": "ref_logits_hf_prefill.f32",
           "greedy_prompt": tokens[:6], "greedy_tokens": r["greedy"], "greedy_min_margin": r["margin"],
           "hf_generate_prompt": r["hf_prompt"], "hf_generate_tokens": r["hf_gen"],
           "ppl_text": "ppl_text.txt", "ppl_ctx": T_CTX,
           "ppl_decode": ppl_of(r["dec"], tokens), "ppl_hf_prefill": ppl_of(r["full"], tokens),
           "generate_prompt": GEN_PROMPT, "generate_n": N_GEN,
           "generate_text": r["texts"]["decode"], "generate_text_hf_prefill": r["texts"]["hf"],
           "max_abs_diff_decode_vs_full_forward": r["d_paths"]}
    ref.update(extra)
    for f, mode in (("generate.txt", "decode"), ("generate_hf_prefill.txt", "hf")):  # for cmp in tests/t_layouts.sh
        with open(os.path.join(d, f), "w") as fh:
            fh.write(r["texts"][mode])
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")


def fresh(d):
    if os.path.islink(d) or os.path.isfile(d):
        os.remove(d)
    elif os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)


def main():
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(TOK_SRC)
    V = len(tok)
    tokens = tok(PPL_TEXT)["input_ids"][:T_CTX]
    gen_prompt = tok(GEN_PROMPT)["input_ids"]
    assert tokens[0] == 0 and len(tokens) == T_CTX and len(gen_prompt) > KEEP, (tokens, gen_prompt)
    src = "HF transformers %s DogeForCausalLM" % transformers.__version__
    written = []
    for name, (seed, kw, dtype, keep_rel, style) in LAYOUTS.items():
        for keep, dname in ((KEEP, name), (keep_rel, "%s-kw%d" % (name, keep_rel))):
            d = os.path.join(MODELS, dname)
            fresh(d)
            model = make_model(kw, keep, seed, V).to(dtype)
            if keep == KEEP:
                model.save_pretrained(d)
                if style == "old":
                    to_old_config_style(os.path.join(d, "config.json"))
                # transformers reads the saved files back to the same model (config style included)
                back = AutoModelForCausalLM.from_pretrained(d, dtype=dtype)
                rp = model.config.rope_parameters
                assert {k: back.config.rope_parameters[k] for k in rp} == rp, name
                sb, sm = back.state_dict(), model.state_dict()
                assert sb.keys() == sm.keys() and all(torch.equal(sb[k], sm[k]) for k in sm), name
            else:  # same weights, the released keep window: a symlink to the first model's weights
                model.config.save_pretrained(d)
                if style == "old":
                    to_old_config_style(os.path.join(d, "config.json"))
                os.symlink(os.path.join("..", name, "model.safetensors"), os.path.join(d, "model.safetensors"))
            tok.save_pretrained(d)
            with open(os.path.join(d, "ppl_text.txt"), "w") as f:
                f.write(PPL_TEXT)
            m64 = weights_as(make_model(kw, keep, seed, V), dtype)
            r = references(m64, tokens, tokens[:6], gen_prompt, tok,
                           "differ" if keep < T_CTX else "any")
            if keep > T_CTX and not kw.get("is_moe"):
                assert r["d_paths"] < 1e-9, (dname, r["d_paths"])  # no key dropped, dense: the paths agree
            write_refs(d, r, tokens, V, {
                "keep_window_size": keep,
                "source": "%s (%s), random init seed %d, %s weights, keep_window_size %d %s %d tokens; model.double() "
                          "of those weights; ref_logits.f32: one token per call with the KV cache; "
                          "ref_logits_hf_prefill.f32: one multi-token forward (they differ by up to %.3g)."
                          % (src, dname, seed, str(dtype).replace("torch.", ""), keep, "<" if keep < T_CTX else ">",
                             T_CTX, r["d_paths"])})
            written.append(dname)
    # torch.save(state_dict) as transformers 4's save_pretrained(safe_serialization=False) wrote pytorch_model.bin
    seed, kw, dtype, _, _ = LAYOUTS["doge-like-40m"]
    d = os.path.join(MODELS, "doge-like-40m-bin")
    fresh(d)
    model = make_model(kw, KEEP, seed, V).to(dtype)
    sd = model.state_dict()
    assert sd["lm_head.weight"].data_ptr() == sd["model.embed_tokens.weight"].data_ptr()  # shared storage, tied
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    _copy_meta(os.path.join(MODELS, "doge-like-40m"), d, ("config.json", "tokenizer.json", "tokenizer_config.json",
                                                           "ppl_text.txt", "ref.json", "generate.txt",
                                                           "generate_hf_prefill.txt"))
    for f in ("ref_logits.f32", "ref_logits_hf_prefill.f32"):
        os.symlink(os.path.join("..", "doge-like-40m", f), os.path.join(d, f))
    written.append("doge-like-40m-bin")
    # the small-doge (spec §3.2) names, no q/k norm
    seed, kw, dtype, keep_rel, _ = LAYOUTS["doge-like-20m"]
    d = os.path.join(MODELS, "doge-like-20m-oldnames")
    fresh(d)
    model = make_model(kw, keep_rel, seed, V)
    from safetensors.torch import save_file

    sd = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight" or "_norm." in k:
            continue
        for a, b in OLD_NAMES:
            k = k.replace(a, b)
        sd[k] = v.contiguous()
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    # keep_window_size > context: the old code's keep rule differs (spec §6 item 10b), no key is dropped here
    _copy_meta(os.path.join(MODELS, "doge-like-20m-kw%d" % keep_rel), d,
               ("config.json", "tokenizer.json", "tokenizer_config.json", "ppl_text.txt"))
    # the config as small-doge wrote it then: hidden_bias instead of attention_bias / mlp_bias
    c = json.load(open(os.path.join(d, "config.json")))
    del c["attention_bias"], c["mlp_bias"]
    c["hidden_bias"] = False
    json.dump(c, open(os.path.join(d, "config.json"), "w"), indent=2, sort_keys=True)
    m64 = identity_qk_norm(weights_as(make_model(kw, keep_rel, seed, V), dtype))
    r = references(m64, tokens, tokens[:6], gen_prompt, tok, "any")
    write_refs(d, r, tokens, V, {"keep_window_size": keep_rel,
                                 "source": "%s (doge-like-20m weights, seed %d) saved under the small-doge names of "
                                           "spec §3.2 without q_norm/k_norm; references from the HF model with "
                                           "q_norm/k_norm = identity, model.double()" % (src, seed)})
    written.append("doge-like-20m-oldnames")
    for w in written:
        p = os.path.join(MODELS, w)
        size = sum(os.path.getsize(os.path.join(p, f)) for f in os.listdir(p) if not os.path.islink(os.path.join(p, f)))
        print("models/%-32s %8d bytes" % (w, size))


def _copy_meta(a, b, files):
    for f in files:
        shutil.copy(os.path.join(a, f), b)


if __name__ == "__main__":
    main()
