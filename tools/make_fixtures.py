#!/usr/bin/env python3
"""Generate the model fixtures under tests/fixtures/models/ (run by `make fixtures`).

Every fixture directory holds an HF-layout model (config.json, tokenizer.json,
tokenizer_config.json, weights) plus reference outputs:

  ref.json          {"tokens", "n_vocab", "logits_file", "logits_shape", "greedy_prompt",
                     "greedy_tokens", "source", ...}
  ref_logits.f32    raw little-endian float32 [T, V], computed in float64

Doge fixtures come from HF transformers DogeForCausalLM (random init, seeded);
Cheems fixtures from tools/cheems_ref.py.  Deterministic: rerunning gives the
same files (seeds fixed, tokenizer trained on fixed Python-doc text).
Needs /usr/share/doc/python3.11/html/_sources (Debian python3.11-doc).
"""
import glob
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cheems_ref as cr  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "models")
DOCS = "/usr/share/doc/python3.11/html/_sources"
SPECIALS = ["<s>", "</s>", "<pad>"]  # ids 0 / 1 / 2
V_FIX = 320
REF_TEXT = "def greet(name):\n    \"\"\"Return a greeting.\"\"\"\n    return 'Hello, ' + name + '!'  # tiny example\n"
T_REF = 24
N_GREEDY = 8
PROMPT_LEN = 6

torch.use_deterministic_algorithms(True)


# ------------------------------------------------------------------ tokenizer

def train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    files = sorted(glob.glob(os.path.join(DOCS, "library", "*.rst.txt")))[:40]
    texts = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            texts.append(fh.read())
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=V_FIX, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 0)])
    assert tok.get_vocab_size() == V_FIX, tok.get_vocab_size()
    return tok


def write_tokenizer(tok, d):
    tok.save(os.path.join(d, "tokenizer.json"))
    tc = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
          "pad_token": "<pad>", "add_bos_token": True, "add_eos_token": False, "model_max_length": 2048,
          "clean_up_tokenization_spaces": False}
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(tc, f, indent=2, sort_keys=True)
        f.write("\n")


def ref_tokens(tok):
    ids = tok.encode(REF_TEXT, add_special_tokens=True).ids
    assert len(ids) >= T_REF, len(ids)
    return ids[:T_REF]


def fresh_dir(name):
    d = os.path.join(OUT, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    return d


def write_ref(d, tokens, logits, prompt, greedy_tokens, margin, source, extra=None):
    logits = np.ascontiguousarray(logits, dtype="<f4")
    logits.tofile(os.path.join(d, "ref_logits.f32"))
    ref = {"tokens": [int(t) for t in tokens], "n_vocab": int(logits.shape[1]), "logits_file": "ref_logits.f32",
           "logits_shape": [int(logits.shape[0]), int(logits.shape[1])],
           "greedy_prompt": [int(t) for t in prompt], "greedy_tokens": [int(t) for t in greedy_tokens],
           "greedy_min_margin": float(margin), "source": source}
    if extra:
        ref.update(extra)
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")


# ------------------------------------------------------------------ Doge (HF)

def doge_config(is_moe, V):
    from transformers import DogeConfig

    kw = dict(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=2048, keep_window_size=2048,
              rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, tie_word_embeddings=True,
              bos_token_id=0, eos_token_id=1, pad_token_id=2, rms_norm_eps=1e-6, hidden_act="silu", is_moe=is_moe)
    if is_moe:
        kw.update(num_experts=64, num_experts_per_tok=4, norm_topk_prob=False)
    cfg = DogeConfig(**kw)
    cfg._attn_implementation = "eager"
    return cfg


def make_doge(is_moe, seed, V):
    from transformers import DogeForCausalLM

    torch.manual_seed(seed)
    cfg = doge_config(is_moe, V)
    return init_doge_weights(DogeForCausalLM(cfg), seed)


def init_doge_weights(model, seed, a_init=None):
    """Random non-trivial weights (seeded); a_init(shape, generator) -> tensor for every self_attn.A."""
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "lm_head.weight":
                continue  # tied to the embedding
            if name.endswith("self_attn.A"):
                if a_init:
                    p.copy_(a_init(p.shape, g))
                else:
                    p.copy_(2 * torch.rand(p.shape, generator=g) - 1)  # HF inits 0: make the bias matter
            elif name.endswith("norm.weight") or name.endswith("residual"):
                p.copy_(0.8 + 0.4 * torch.rand(p.shape, generator=g))
            elif name.endswith("dt_proj.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)  # makes beta vary across keys
            elif name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)
            elif name.endswith("down_embed.weight") or name.endswith("up_embed.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)
            else:
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / fan_in ** 0.5))
    model.eval()
    return model


@torch.no_grad()
def doge_decode_logits(model, tokens):
    """Token-by-token forward with the KV cache (per-token router semantics)."""
    out = []
    past = None
    for t in tokens:
        r = model(input_ids=torch.tensor([[t]]), past_key_values=past, use_cache=True)
        past = r.past_key_values
        out.append(r.logits[0, -1])
    return torch.stack(out)


@torch.no_grad()
def greedy_from_logits_fn(step_logits_fn, prompt, n):
    """step_logits_fn(ids) -> logits of the last position, float64."""
    ids = list(prompt)
    margin = float("inf")
    for _ in range(n):
        lg = step_logits_fn(ids)
        top2 = torch.topk(lg, 2).values
        margin = min(margin, float(top2[0] - top2[1]))
        ids.append(int(lg.argmax()))
    return ids[len(prompt):], margin


def doge_fixtures(tok):
    V = tok.get_vocab_size()
    tokens = ref_tokens(tok)
    prompt = tokens[:PROMPT_LEN]
    written = []
    for is_moe, name, seed in ((False, "doge-dense", 11), (True, "doge-moe", 12)):
        model = make_doge(is_moe, seed, V)
        d = fresh_dir(name)
        model.save_pretrained(d)
        write_tokenizer(tok, d)
        m64 = make_doge(is_moe, seed, V).double()  # same weights (same seeds), float64
        m64.config._attn_implementation = "eager"
        with torch.no_grad():
            dec = doge_decode_logits(m64, tokens)
            full = m64(input_ids=torch.tensor([tokens])).logits[0]
        extra = {}
        if is_moe:
            logits = dec
            greedy_fn = lambda ids: doge_decode_logits(m64, ids)[-1]  # noqa: E731
            np.ascontiguousarray(full.numpy(), dtype="<f4").tofile(os.path.join(d, "ref_logits_hf_prefill.f32"))
            extra["hf_prefill_logits_file"] = "ref_logits_hf_prefill.f32"
            extra["hf_prefill_note"] = ("one multi-token HF forward of all tokens: reproduces the router quirk "
                                        "(spec 6 item 8, flat [2, N_tok, Kk] reinterpretation of the router logits)")
            src = ("HF transformers %s DogeForCausalLM (is_moe=True, router CDMoE), random init seed %d, "
                   "model.double(), eager attention; logits computed TOKEN BY TOKEN with the KV cache "
                   "(use_cache, one token per call) = per-token router semantics (spec 6 item 8); greedy likewise. "
                   "Note HF keeps RMSNorm and attention softmax in float32 inside the double model."
                   % (_tf_version(), seed))
        else:
            logits = full
            diff = float((full - dec).abs().max())
            assert diff < 1e-5, diff  # HF keeps RMSNorm/softmax in fp32 even in a double model
            greedy_fn = lambda ids: m64(input_ids=torch.tensor([ids])).logits[0, -1]  # noqa: E731
            src = ("HF transformers %s DogeForCausalLM (dense MLP), random init seed %d, model.double(), eager "
                   "attention, one full forward; equals token-by-token KV-cache decode to %.1e. "
                   "Note HF keeps RMSNorm and attention softmax in float32 inside the double model."
                   % (_tf_version(), seed, diff))
        g, margin = greedy_from_logits_fn(greedy_fn, prompt, N_GREEDY)
        write_ref(d, tokens, logits.numpy(), prompt, g, margin, src, extra)
        written.append(name)
        if not is_moe:
            # sharded safetensors and pytorch_model.bin copies of the same weights
            ds = fresh_dir("doge-dense-sharded")
            model.save_pretrained(ds, max_shard_size="100KB")
            write_tokenizer(tok, ds)
            shutil.copy(os.path.join(d, "ref.json"), ds)
            shutil.copy(os.path.join(d, "ref_logits.f32"), ds)
            nshard = len(glob.glob(os.path.join(ds, "model-*.safetensors")))
            assert nshard >= 2, nshard
            db = fresh_dir("doge-dense-bin")
            model.config.save_pretrained(db)
            # legacy torch.save(state_dict) layout; tied lm_head.weight shares the embedding's storage
            torch.save(model.state_dict(), os.path.join(db, "pytorch_model.bin"))
            write_tokenizer(tok, db)
            shutil.copy(os.path.join(d, "ref.json"), db)
            shutil.copy(os.path.join(d, "ref_logits.f32"), db)
            written += ["doge-dense-sharded", "doge-dense-bin"]
    return written


def _tf_version():
    import transformers

    return transformers.__version__


# ------------------------------------------------------------------ Cheems (reference)

def cheems_tiny_random_cfg(V):
    return cr.CheemsConfig(vocab_size=V, hidden_size=64, intermediate_size=64, num_hidden_layers=4,
                           num_attention_heads=4, num_key_value_heads=2, attn_layer_period=2, attn_layer_offset=1,
                           is_moe=True, num_cdmoe_experts=64, num_cdmoe_heads=2, num_cdmoe_experts_per_head=4,
                           expert_retrieval_size=16, max_position_embeddings=2048, ssd_chunk_size=8,
                           bos_token_id=0, eos_token_id=1, pad_token_id=2)


def cheems_dense_random_cfg(V):
    # max_position_embeddings 16 < T_REF: the 24-token prefill exercises dynamic NTK RoPE (spec 4.3);
    # prompt + greedy (14 tokens) stays below it.
    return cr.CheemsConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, attn_layer_period=2, attn_layer_offset=1,
                           is_moe=False, max_position_embeddings=16,
                           rope_scaling={"rope_type": "dynamic", "factor": 4.0, "original_max_position_embeddings": 16},
                           ssd_chunk_size=5, bos_token_id=0, eos_token_id=1, pad_token_id=2)


def make_cheems(cfg, seed, ssd_A_range, positive_last_head=False):
    m = cr.CheemsForCausalLM(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("ssd.A"):
                lo, hi = ssd_A_range
                p.copy_(lo + (hi - lo) * torch.rand(p.shape, generator=g))
                if positive_last_head:
                    p[-1] = 0.25  # a growing head, as the authors' A = +1 init gives
            elif name.endswith("attn.A"):
                p.copy_(2 * torch.rand(p.shape, generator=g) - 1)
            elif name.endswith("layernorm.weight") or name.endswith("residual.weight"):
                p.copy_(0.8 + 0.4 * torch.rand(p.shape, generator=g))
            elif name.endswith("attn.dt_proj.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif name.endswith("ssd.dt_proj.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            elif name.endswith("word_embed.weight") or name.endswith("_embed.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)
            elif name.endswith("feed_forward.keys"):
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / p.shape[-1] ** 0.5))
    m.eval()
    return m


@torch.no_grad()
def cheems_ref(model64, tokens, prompt):
    rec = model64(torch.tensor(tokens), ssd_mode="recurrent")[0]
    chk = model64(torch.tensor(tokens), ssd_mode="chunked")[0]
    diff = float((rec - chk).abs().max())
    assert diff < 1e-9, diff
    g, margin = greedy_from_logits_fn(lambda ids: model64(torch.tensor(ids), ssd_mode="recurrent")[0, -1],
                                      prompt, N_GREEDY)
    return rec, g, margin, diff


def cheems_fixtures(tok):
    V = tok.get_vocab_size()
    tokens = ref_tokens(tok)
    prompt = tokens[:PROMPT_LEN]
    written = []
    specs = [
        ("cheems-tiny-random", cheems_tiny_random_cfg(V), 21, (-8.0, -1.0), False),
        # A mixes signs (spec 6 item 1: the authors' code inits A = +1 and uses it verbatim)
        ("cheems-dense-random", cheems_dense_random_cfg(V), 22, (-4.0, -0.5), True),
    ]
    for name, cfg, seed, arange, pos in specs:
        m = make_cheems(cfg, seed, arange, pos)
        d = fresh_dir(name)
        cr.save_pretrained(m, d, safetensors=True, bin=False)
        write_tokenizer(tok, d)
        m64 = cr.load_pretrained(d, dtype=torch.float64)
        logits, g, margin, diff = cheems_ref(m64, tokens, prompt)
        ssd_a = [float(x) for l in m.model.layers if not l.is_attn for x in l.ssd.A]
        src = ("tools/cheems_ref.py random init seed %d, float64 from the float32 weights, SSD step recurrence "
               "(chunked form, chunk %d, agrees to %.1e); greedy = full recompute per step, float64"
               % (seed, cfg.ssd_chunk_size, diff))
        extra = {"ssd_chunked_vs_recurrent_max_abs_diff": diff, "ssd_A_has_positive": any(a > 0 for a in ssd_a)}
        write_ref(d, tokens, logits.numpy(), prompt, g, margin, src, extra)
        written.append(name)
        if name == "cheems-tiny-random":
            db = fresh_dir("cheems-tiny-random-bin")
            cr.save_pretrained(m, db, safetensors=False, bin=True)
            write_tokenizer(tok, db)
            shutil.copy(os.path.join(d, "ref.json"), db)
            shutil.copy(os.path.join(d, "ref_logits.f32"), db)
            written.append("cheems-tiny-random-bin")
            # bf16 copy; its references use the bf16-rounded weights
            dh = fresh_dir("cheems-bf16")
            cr.save_pretrained(m, dh, dtype=torch.bfloat16, safetensors=True, bin=False)
            write_tokenizer(tok, dh)
            mh = cr.load_pretrained(dh, dtype=torch.float64)
            logits, g, margin, diff = cheems_ref(mh, tokens, prompt)
            src = ("tools/cheems_ref.py, the cheems-tiny-random weights rounded to bfloat16 (round-to-nearest-even) "
                   "and upcast to float64; SSD step recurrence (chunked agrees to %.1e)" % diff)
            write_ref(dh, tokens, logits.numpy(), prompt, g, margin, src,
                      {"ssd_chunked_vs_recurrent_max_abs_diff": diff})
            written.append("cheems-bf16")
    return written


def main():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    tok = train_tokenizer()
    written = doge_fixtures(tok) + cheems_fixtures(tok)
    for name in written:
        d = os.path.join(OUT, name)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print("%-24s %8d bytes  %s" % (name, size, " ".join(sorted(os.listdir(d)))))


if __name__ == "__main__":
    main()
