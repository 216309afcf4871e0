#!/usr/bin/env python3
"""Consistency checks of the Python reference and the committed fixtures
(run by tests/t_pyref.sh; skipped there when torch/transformers are absent).

 1. cheems_ref: SSD chunked form == step recurrence (float64, several chunk sizes,
    A of both signs); CDMoE top-k-of-top-k == brute force over all Kk^2 experts.
 2. cheems_ref's shared pieces (RMSNorm, RoPE, residual scales, DMAttn with
    dynamic bias + GQA + q/k norm, SwiGLU, tied head) against an independent
    implementation: HF transformers' DogeForCausalLM on the doge-dense fixture
    (weights renamed to Cheems names, every layer DMAttn).
 3. Every Cheems fixture's ref_logits.f32 is reproduced from its committed weights.
Prints "N passed, N failed"; exit status 1 on any failure.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cheems_ref as cr  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures", "models")
npass = nfail = 0


def check(ok, what):
    global npass, nfail
    if ok:
        npass += 1
    else:
        nfail += 1
        print("FAIL:", what)


def ref_logits(d):
    with open(os.path.join(d, "ref.json")) as f:
        r = json.load(f)
    lg = np.fromfile(os.path.join(d, r["logits_file"]), dtype="<f4").reshape(r["logits_shape"])
    return r, torch.from_numpy(lg.astype(np.float64))


@torch.no_grad()
def check_ssd_and_cdmoe():
    for pos_A in (False, True):
        cfg = cr.CheemsConfig(vocab_size=50, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=4, attn_layer_period=2,
                              attn_layer_offset=1, is_moe=True, num_cdmoe_experts=40, num_cdmoe_heads=2,
                              num_cdmoe_experts_per_head=3, expert_retrieval_size=8)
        m = cr.init_weights(cr.CheemsForCausalLM(cfg), seed=5, std=0.3, attn_A_range=(-1, 1),
                            randomize_scales=0.2, ssd_A_range=(-0.5, 0.3) if pos_A else (1, 16)).double()
        toks = torch.arange(19) % 50
        rec = m(toks, "recurrent")
        for ch in ("1", "4", "7", "19", "64"):
            d = float((m(toks, ch) - rec).abs().max())
            check(d < 1e-10, "SSD chunk %s vs recurrence (A>0 %s): %g" % (ch, pos_A, d))
        ff = m.model.layers[0].feed_forward
        x = torch.randn(5, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
        w, eid = ff.route(x)
        q = ff.queries(x).view(5, 2, ff.Hr, ff.R // 2)
        for t in range(5):
            for h in range(ff.Hr):
                s0 = q[t, 0, h] @ ff.keys[h, :, 0].T  # [Kk]
                s1 = q[t, 1, h] @ ff.keys[h, :, 1].T
                full = (s0[:, None] + s1[None, :]).flatten()
                sc, best = full.topk(ff.k)
                check(sorted(best.tolist()) == sorted(eid[t, h].tolist()), "CDMoE brute force t%d h%d" % (t, h))
                check(torch.allclose(torch.softmax(sc, -1).sort().values, w[t, h].sort().values),
                      "CDMoE weights t%d h%d" % (t, h))


@torch.no_grad()
def check_against_hf_doge():
    d = os.path.join(FIX, "doge-dense")
    with open(os.path.join(d, "config.json")) as f:
        hc = json.load(f)
    from safetensors.torch import load_file

    sd = load_file(os.path.join(d, "model.safetensors"))
    H, KV = hc["num_attention_heads"], hc["num_key_value_heads"]
    cfg = cr.CheemsConfig(vocab_size=hc["vocab_size"], hidden_size=hc["hidden_size"],
                          intermediate_size=hc["intermediate_size"], num_hidden_layers=hc["num_hidden_layers"],
                          num_attention_heads=H, num_key_value_heads=KV, attn_layer_period=1, attn_layer_offset=0,
                          rope_theta=hc["rope_parameters"]["rope_theta"], rope_scaling=None,
                          rms_norm_eps=hc["rms_norm_eps"], max_position_embeddings=hc["max_position_embeddings"])
    m = cr.CheemsForCausalLM(cfg)
    P = cfg.head_dim
    for layer in m.model.layers:
        layer.attn.enable_qk_norm()
        layer.attn.A = torch.nn.Parameter(torch.zeros(KV))  # HF: A and dt_proj sized KV (spec 3.4)
        layer.attn.dt_proj = torch.nn.Linear(KV * P, KV, bias=False)
    ren = {"model.embed_tokens.weight": "model.word_embed.weight", "model.norm.weight": "model.final_layernorm.weight"}
    out = {}
    for k, v in sd.items():
        if k in ren:
            out[ren[k]] = v
            continue
        k2 = (k.replace("input_layernorm.weight", "pre_sequence_layernorm.weight")
              .replace("post_attention_layernorm.weight", "pre_state_layernorm.weight")
              .replace("input_residual", "post_sequence_residual.weight")
              .replace("post_attention_residual", "post_state_residual.weight")
              .replace("self_attn.", "attn.").replace("mlp.", "feed_forward."))
        out[k2] = v
    missing, unexpected = m.load_state_dict(out, strict=False)
    check(set(missing) <= {"lm_head.weight"} and not unexpected, "doge rename: %s %s" % (missing, unexpected))
    r, lg = ref_logits(d)
    mine = m.double()(torch.tensor(r["tokens"]))[0]
    diff = float((mine - lg).abs().max())
    # HF keeps RMSNorm and softmax in float32 inside the double model -> ~1e-6
    check(diff < 2e-5, "cheems_ref vs HF Doge logits: %g" % diff)
    print("cheems_ref vs HF DogeForCausalLM (doge-dense): max |diff| %.2e" % diff)


@torch.no_grad()
def check_cheems_fixtures():
    for name in sorted(os.listdir(FIX)):
        d = os.path.join(FIX, name)
        with open(os.path.join(d, "config.json")) as f:
            if json.load(f).get("model_type") != "cheems":
                continue
        r, lg = ref_logits(d)
        m = cr.load_pretrained(d, dtype=torch.float64)
        mine = m(torch.tensor(r["tokens"]), ssd_mode="recurrent")[0]
        diff = float((mine - lg).abs().max() / lg.abs().max())
        check(diff < 1e-6, "%s: logits differ from ref (rel %g)" % (name, diff))
        g = cr.greedy(m, r["greedy_prompt"], len(r["greedy_tokens"]), ssd_mode="recurrent")
        check(g == r["greedy_tokens"], "%s: greedy %s != %s" % (name, g, r["greedy_tokens"]))


def main():
    torch.set_num_threads(1)
    check_ssd_and_cdmoe()
    check_against_hf_doge()
    check_cheems_fixtures()
    print("%d passed, %d failed" % (npass, nfail))
    sys.exit(1 if nfail else 0)


if __name__ == "__main__":
    main()
