#!/usr/bin/env python3
"""Train the bundled tiny Cheems model (models/cheems-tiny/) on the Python docs.

Corpus: /usr/share/doc/python3.11/html/_sources/**/*.rst.txt (Debian
python3.11-doc).  Training uses every file EXCEPT tutorial/, faq/, howto/,
whatsnew/ (kept unseen).  data/eval.txt comes from tutorial/, data/calib.txt
from the training part.

Steps (each can be run alone; all deterministic given --seed):
  python3 tools/train_tiny.py prep            # tokenizer + data/*.txt + token cache
  python3 tools/train_tiny.py bench           # tokens/s of the configured model
  python3 tools/train_tiny.py train           # trains, checkpoints to --work
  python3 tools/train_tiny.py export          # writes models/cheems-tiny/ + reference_ppl.json

The schedule is fixed by --steps (warmup + cosine); --time-budget caps the
wall time by shrinking the remaining cosine schedule (logged), so a loaded
machine ends on time.  The resulting step count is recorded in the model dir.
"""
import argparse
import glob
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cheems_ref as cr  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = "/usr/share/doc/python3.11/html/_sources"
HELD_OUT = ("tutorial", "faq", "howto", "whatsnew")
SPECIALS = ["<s>", "</s>", "<pad>"]  # ids 0/1/2 = Cheems bos/eos/pad defaults


def model_config(args, vocab):
    return cr.CheemsConfig(
        vocab_size=vocab,
        hidden_size=args.d,
        intermediate_size=args.inter,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        attn_layer_period=args.period,
        attn_layer_offset=args.offset,
        is_moe=True,
        num_cdmoe_experts=args.experts,
        num_cdmoe_heads=args.moe_heads,
        num_cdmoe_experts_per_head=args.topk,
        expert_retrieval_size=args.retrieval,
        max_position_embeddings=2048,
        ssd_chunk_size=256,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )


# ------------------------------------------------------------------ data

def doc_files():
    files = sorted(glob.glob(os.path.join(DOCS, "**", "*.rst.txt"), recursive=True))
    train, held = [], {}
    for f in files:
        rel = os.path.relpath(f, DOCS)
        top = rel.split(os.sep)[0]
        if top in HELD_OUT:
            held.setdefault(top, []).append(f)
        else:
            train.append(f)
    return train, held


def read(f):
    with open(f, encoding="utf-8") as fh:
        return fh.read()


def take_text(files, lo, hi):
    """Concatenate whole files (sorted order) until >= lo bytes; cut at a line boundary at hi."""
    out = ""
    for f in files:
        out += read(f).rstrip("\n") + "\n\n"
        if len(out.encode()) >= lo:
            break
    b = out.encode()
    if len(b) > hi:
        cut = b[:hi].rfind(b"\n")
        out = b[: cut + 1].decode()
    return out


def prep(args):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    train, held = doc_files()
    os.makedirs(os.path.join(ROOT, "data"), exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    # eval: tutorial/ (unseen).  calib: library/ part of the training text.
    tut = held["tutorial"]
    eval_txt = take_text(tut, 45000, 60000)
    lib = [f for f in train if os.sep + "library" + os.sep in f]
    calib_txt = take_text(lib[::7], 80000, 100000)
    with open(os.path.join(ROOT, "data", "eval.txt"), "w", encoding="utf-8") as f:
        f.write(eval_txt)
    with open(os.path.join(ROOT, "data", "calib.txt"), "w", encoding="utf-8") as f:
        f.write(calib_txt)
    docs = [read(f) for f in train]
    print("train files %d, %.2f MB; eval %d B; calib %d B" % (
        len(train), sum(len(d.encode()) for d in docs) / 1e6, len(eval_txt.encode()), len(calib_txt.encode())))

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=args.vocab, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(docs, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 0)])
    write_tokenizer(tok, args.out)
    tok.save(os.path.join(args.work, "tokenizer.json"))
    ids = []
    for enc in tok.encode_batch(docs, add_special_tokens=True):  # BOS + doc
        ids.extend(enc.ids)
    arr = np.array(ids, dtype=np.uint16)
    arr.tofile(os.path.join(args.work, "train_ids.u16"))
    print("vocab %d, train tokens %d (%.2f bytes/token)" % (tok.get_vocab_size(), len(arr),
                                                            sum(len(d.encode()) for d in docs) / len(arr)))


def write_tokenizer(tok, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    tc = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
          "pad_token": "<pad>", "add_bos_token": True, "add_eos_token": False, "model_max_length": 2048,
          "clean_up_tokenization_spaces": False}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tc, f, indent=2, sort_keys=True)
        f.write("\n")


# ------------------------------------------------------------------ training

def batches(ids, B, T, gen):
    n = len(ids) - T - 1
    while True:
        starts = torch.randint(0, n, (B,), generator=gen).numpy()
        x = np.stack([ids[s: s + T + 1] for s in starts]).astype(np.int64)
        x = torch.from_numpy(x)
        # half the windows start with BOS (matches the per-chunk BOS of the ppl protocol)
        bos = torch.rand(B, generator=gen) < 0.5
        x[bos, 0] = 0
        yield x[:, :-1], x[:, 1:]


def make_optimizer(model, lr, wd):
    decay, nodecay = [], []
    seen = set()
    for n, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 and not n.endswith("keys") else nodecay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": nodecay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8)


def lr_at(step, total, warm, peak, floor_frac=0.1):
    if step < warm:
        return peak * (step + 1) / warm
    prog = min(1.0, (step - warm) / max(1, total - warm))
    return peak * (floor_frac + (1 - floor_frac) * 0.5 * (1 + math.cos(math.pi * prog)))


def build_model(args, vocab):
    cfg = model_config(args, vocab)
    m = cr.CheemsForCausalLM(cfg)
    cr.init_weights(m, seed=args.seed, std=args.init_std, ssd_A_range=(1.0, 16.0))
    # SSD dt_proj starts small so softplus(dt) ~ 0.7 (moderate decay); experts/keys default std.
    return m


def train(args, bench=False):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ids = np.fromfile(os.path.join(args.work, "train_ids.u16"), dtype=np.uint16)
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(os.path.join(args.work, "tokenizer.json")).get_vocab_size()
    model = build_model(args, vocab)
    nparam = cr.count_params(model)
    opt = make_optimizer(model, args.lr, args.wd)
    gen = torch.Generator().manual_seed(args.seed + 1)
    step = 0
    total = args.steps
    ck = os.path.join(args.work, "ckpt.pt")
    log = None
    if not bench:
        if os.path.exists(ck) and args.resume:
            st = torch.load(ck, weights_only=False)
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["opt"])
            gen.set_state(st["gen"])
            step, total = st["step"], st["total"]
            print("resumed at step %d/%d" % (step, total))
        log = open(os.path.join(args.work, "train.log"), "a")
    it = batches(ids, args.batch, args.seq, gen)
    t0 = time.time()
    elapsed0 = 0.0
    if not bench and os.path.exists(ck) and args.resume:
        elapsed0 = st.get("elapsed", 0.0)
    msg = "params %d (%.2fM), train tokens available %d, steps %d, batch %dx%d" % (
        nparam, nparam / 1e6, len(ids), total, args.batch, args.seq)
    print(msg, flush=True)
    if log:
        log.write(msg + "\n")
    model.train()
    ema = None
    while step < (args.bench_steps if bench else total):
        x, y = next(it)
        lr = lr_at(step, total, args.warmup, args.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        logits = model(x, ssd_mode=str(args.train_chunk))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        lv = loss.item()
        ema = lv if ema is None else 0.98 * ema + 0.02 * lv
        el = elapsed0 + time.time() - t0
        if bench:
            print("step %d loss %.3f  %.0f tok/s" % (step, lv, step * args.batch * args.seq / (time.time() - t0)),
                  flush=True)
            continue
        if step % 20 == 0 or step == total:
            tps = (step * args.batch * args.seq) / max(el, 1e-9)
            line = "step %d/%d loss %.4f ema %.4f lr %.2e elapsed %.0fs %.0f tok/s" % (step, total, lv, ema, lr, el, tps)
            print(line, flush=True)
            log.write(line + "\n")
            log.flush()
        # wall-clock cap: shrink the remaining schedule if we would overrun
        if args.time_budget and step % 50 == 0 and step > args.warmup:
            rate = step / el
            proj = step + (args.time_budget - el) * rate
            if proj < total:
                newt = max(step + 1, int(proj))
                line = "time cap: total steps %d -> %d" % (total, newt)
                print(line, flush=True)
                log.write(line + "\n")
                total = newt
        if step % args.ckpt_every == 0 or step >= total:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(), "step": step,
                        "total": total, "elapsed": el, "args": vars(args)}, ck + ".tmp")
            os.replace(ck + ".tmp", ck)
    if not bench:
        with open(os.path.join(args.work, "done.json"), "w") as f:
            json.dump({"steps": step, "tokens": step * args.batch * args.seq, "elapsed_s": elapsed0 + time.time() - t0,
                       "final_loss_ema": ema}, f)
        print("done", flush=True)


# ------------------------------------------------------------------ evaluation

@torch.no_grad()
def llama_ppl(model, ids, ctx, bos):
    """llama-perplexity protocol: chunks of ctx tokens from the BOS-prefixed
    token stream, first token of each chunk replaced by BOS, score positions
    ctx/2 .. ctx-2 predicting tokens ctx/2+1 .. ctx-1."""
    n_chunk = len(ids) // ctx
    first = ctx // 2
    nll, cnt = 0.0, 0
    per_chunk = []
    for c in range(n_chunk):
        chunk = torch.tensor(ids[c * ctx:(c + 1) * ctx], dtype=torch.long)
        if bos is not None:
            chunk[0] = bos
        logits = model(chunk)[0]
        lp = torch.log_softmax(logits.double(), dim=-1)
        tgt = chunk[first + 1:]
        s = -lp[first:ctx - 1].gather(1, tgt[:, None]).sum().item()
        nll += s
        cnt += ctx - 1 - first
        per_chunk.append(math.exp(nll / cnt))
    return math.exp(nll / cnt), n_chunk, cnt, per_chunk


def unigram_ppl(train_ids, eval_ids, vocab):
    counts = np.bincount(train_ids.astype(np.int64), minlength=vocab).astype(np.float64) + 1.0
    p = counts / counts.sum()
    return float(np.exp(-np.mean(np.log(p[np.asarray(eval_ids)]))))


def export(args):
    from tokenizers import Tokenizer

    torch.set_num_threads(args.threads)
    tok = Tokenizer.from_file(os.path.join(args.work, "tokenizer.json"))
    vocab = tok.get_vocab_size()
    st = torch.load(os.path.join(args.work, "ckpt.pt"), weights_only=False)
    for k, v in (st.get("args") or {}).items():  # model dims as trained
        if k in ("d", "inter", "layers", "heads", "kv_heads", "period", "offset", "experts", "moe_heads", "topk",
                 "retrieval", "seed", "init_std", "train_chunk"):
            setattr(args, k, v)
    model = build_model(args, vocab)
    model.load_state_dict(st["model"])
    model.eval()
    out = args.out
    cr.save_pretrained(model, out, dtype=torch.bfloat16, safetensors=True, bin=False)
    write_tokenizer(tok, out)
    # reference: the exported (bf16) weights, computed in float64 and float32
    m = cr.load_pretrained(out, dtype=torch.float64)
    m.eval()
    with open(os.path.join(ROOT, "data", "eval.txt"), encoding="utf-8") as f:
        text = f.read()
    ids = tok.encode(text, add_special_tokens=True).ids
    ppl64, n_chunk, n_scored, per_chunk = llama_ppl(m, ids, args.ctx, 0)
    m32 = m.float()
    ppl32, _, _, _ = llama_ppl(m32, ids, args.ctx, 0)
    train_ids = np.fromfile(os.path.join(args.work, "train_ids.u16"), dtype=np.uint16)
    uni = unigram_ppl(train_ids, ids[1:], vocab)
    done = {}
    dp = os.path.join(args.work, "done.json")
    if os.path.exists(dp):
        with open(dp) as f:
            done = json.load(f)
    ref = {
        "eval_file": "data/eval.txt",
        "eval_bytes": len(text.encode()),
        "eval_tokens": len(ids),
        "tokenization": "tokenizer.json encode(text, add_special_tokens=True): BOS <s> (id 0) prepended once",
        "protocol": "llama-perplexity: n_chunk = floor(n_tokens/ctx) consecutive chunks of ctx tokens; the first token "
                    "of every chunk is replaced by BOS (id 0); each chunk is evaluated independently from position 0; "
                    "score positions ctx/2..ctx-2 predicting tokens ctx/2+1..ctx-1 (ctx/2-1 tokens per chunk); "
                    "ppl = exp(mean NLL over all scored tokens)",
        "ctx": args.ctx,
        "n_chunk": n_chunk,
        "first": args.ctx // 2,
        "n_scored_per_chunk": args.ctx - 1 - args.ctx // 2,
        "n_scored_total": n_scored,
        "bos_id": 0,
        "ppl": round(ppl64, 6),
        "ppl_f64": ppl64,
        "ppl_f32": ppl32,
        "ppl_after_chunk": [round(p, 6) for p in per_chunk],
        "weights": "models/cheems-tiny/model.safetensors (bf16) upcast; ppl_f64 computed in float64, ppl_f32 in float32 "
                   "(tools/cheems_ref.py, chunked SSD, chunk 256)",
        "unigram_ppl": uni,
        "unigram_note": "add-one smoothed unigram distribution of the training tokens, scored on all eval tokens "
                        "after the BOS",
    }
    with open(os.path.join(out, "reference_ppl.json"), "w") as f:
        json.dump(ref, f, indent=2)
        f.write("\n")
    # greedy sample for the README
    prompt = tok.encode("The built-in function", add_special_tokens=True).ids
    gen_ids = cr.greedy(m32, prompt, 40)
    sample = tok.decode(prompt[1:] + gen_ids)
    info = {"params": cr.count_params(model), "config": model.config.to_dict(), "train": done,
            "train_args": st.get("args"), "ppl": ppl64, "ppl_f32": ppl32, "unigram_ppl": uni, "sample": sample}
    with open(os.path.join(args.work, "export_info.json"), "w") as f:
        json.dump(info, f, indent=2)
    print(json.dumps({k: info[k] for k in ("params", "train", "ppl", "ppl_f32", "unigram_ppl", "sample")}, indent=2))
    write_readme(args, info, ref, model)


def write_readme(args, info, ref, model):
    c = model.config
    ta = info["train_args"] or {}
    tr = info["train"] or {}
    files = sorted(os.listdir(args.out))
    sizes = ", ".join("%s %d B" % (f, os.path.getsize(os.path.join(args.out, f))) for f in files)
    kinds = ["DMAttn" if c.layer_is_attn(i) else "SSD" for i in range(c.num_hidden_layers)]
    cmd = ("python3 tools/train_tiny.py prep && OMP_WAIT_POLICY=PASSIVE python3 tools/train_tiny.py train %s && "
           "python3 tools/train_tiny.py export" % " ".join(
               "--%s %s" % (k, ta[k.replace("-", "_")]) for k in
               ("layers", "period", "offset", "batch", "steps", "warmup", "ckpt-every", "time-budget", "lr", "seed")
               if k.replace("-", "_") in ta))
    txt = f"""# models/

## cheems-tiny — the bundled default model

A small Cheems model (SSD + DMAttn + product-key CDMoE, spec §2.1/§3.1/§4) trained from scratch
by `tools/train_tiny.py` with the PyTorch reference `tools/cheems_ref.py`, so the toolchain has a real
trained checkpoint to convert, quantize, run and evaluate.

Files: {sizes}.
Weights are bfloat16 safetensors (HF layout, tied `lm_head` omitted); `config.json` uses the §2.1 keys
(`model_type: "cheems"`).

### Architecture
| | |
|---|---|
| vocab | {c.vocab_size} (byte-level BPE, GPT-2 style `ByteLevel` pre-tokenizer, trained with HF `tokenizers` on the training text; specials `<s>`=0 (BOS, prepended by the post-processor), `</s>`=1, `<pad>`=2) |
| hidden d | {c.hidden_size}, heads H={c.num_attention_heads} (P = N = {c.head_dim}), KV heads {c.num_key_value_heads} |
| layers | {c.num_hidden_layers}: {", ".join(kinds)} (attn_layer_period {c.attn_layer_period}, offset {c.attn_layer_offset}) |
| FFN | CDMoE on every layer: SwiGLU I={c.intermediate_size} + E={c.num_cdmoe_experts} single-neuron experts (Kk={int(math.isqrt(c.num_cdmoe_experts))}), Hr={c.num_cdmoe_heads} retrieval heads, top-k={c.num_cdmoe_experts_per_head}, R={c.expert_retrieval_size} |
| RoPE | θ={c.rope_theta}, dynamic NTK ×{c.rope_scaling.get("factor")} beyond {c.max_position_embeddings} |
| parameters | {info["params"]:,} (embedding tied with lm_head) |

SSD `A` initialised to −U(1,16) (spec §6 item 1) and stored raw (all still negative after training, −1.2 … −16);
DMAttn `A` starts at 0 and stays small (|A| ≤ 0.11), so the dynamic bias is nearly constant in this model. Other init: normal(0, {ta.get("init_std", 0.02)}), norms/residual scales 1, DMAttn A 0.

### Data
Python 3.11 documentation sources (Debian `python3.11-doc`, `/usr/share/doc/python3.11/html/_sources/**/*.rst.txt`)
EXCLUDING `tutorial/`, `faq/`, `howto/`, `whatsnew/` (429 files, 8.2 MB, ~2.25 M tokens; every document prefixed with BOS).
- `data/eval.txt` ({ref["eval_bytes"]} bytes, {ref["eval_tokens"]} tokens incl. BOS): whole `tutorial/*.rst.txt` files in
  sorted order — never seen in training.
- `data/calib.txt`: every 7th `library/*.rst.txt` file (sorted) up to ~80 KB — part of the training text; use it
  for imatrix/GPTQ calibration.

### Training
AdamW (β=0.9/0.95, wd {ta.get("wd")} on matrices), peak lr {ta.get("lr")}, {ta.get("warmup")} warmup steps then cosine to
10 %, grad-clip 1.0, batch {ta.get("batch")}×{ta.get("seq")} tokens (random windows; half of them start with BOS as in the
perplexity protocol), seed {ta.get("seed")}, float32 on CPU with 2 threads, SSD chunked form with chunk {ta.get("train_chunk")}.
Ran {tr.get("steps")} steps = {tr.get("tokens", 0):,} training tokens in {tr.get("elapsed_s", 0):.0f} s wall time (the
machine's 2 cores were shared with other builds; `--time-budget` shrank the cosine schedule to end on time — see
the log lines `time cap:`). Final training-loss EMA {tr.get("final_loss_ema", float("nan")):.3f}.{(" Note: " + tr["note"] + ".") if tr.get("note") else ""}

Reproduce: `{cmd}`.
The run is deterministic given the seed except for the wall-clock cap: each `time cap: total steps A -> B` line
in `models/cheems-tiny.train.log` (the training log) changed the cosine schedule at that step, so a bit-exact rerun
needs the same caps applied at the same steps (`--time-budget 0` disables the cap).

### Results (data/eval.txt, unseen tutorial text)
| | perplexity |
|---|---|
| cheems-tiny, ctx {ref["ctx"]}, llama-perplexity protocol ({ref["n_chunk"]} chunks, {ref["n_scored_total"]} scored tokens), float64 | **{ref["ppl_f64"]:.4f}** |
| same, float32 | {ref["ppl_f32"]:.4f} |
| unigram baseline (add-one smoothed training-token frequencies, no context) | {ref["unigram_ppl"]:.2f} |

`cheems-tiny/reference_ppl.json` holds the exact protocol and numbers; `hyquant perplexity` on the converted F32/BF16
GGUF must reproduce `ppl` to 4 significant digits.

Greedy sample (prompt "The built-in function"): `{info["sample"]!r}`

## Test fixtures (tests/fixtures/models/, `make fixtures` = tools/make_fixtures.py)

Tiny random models with float64 reference outputs (`ref.json` + `ref_logits.f32`, see the script's docstring):
`doge-dense` / `doge-dense-sharded` / `doge-dense-bin` and `doge-moe` (HF transformers `DogeForCausalLM`),
`cheems-tiny-random` / `-bin` / `cheems-bf16` and `cheems-dense-random` (tools/cheems_ref.py). All share one
byte-level BPE tokenizer (V=320). `tools/check_ref.py` (tests/t_pyref.sh) re-checks them and checks cheems_ref
against HF Doge.
"""
    with open(os.path.join(ROOT, "models", "README.md"), "w") as f:
        f.write(txt)
    lp = os.path.join(args.work, "train.log")
    if os.path.exists(lp) and os.path.abspath(args.out) == os.path.join(ROOT, "models", "cheems-tiny"):
        import shutil

        shutil.copy(lp, os.path.join(ROOT, "models", "cheems-tiny.train.log"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["prep", "bench", "train", "export"])
    ap.add_argument("--work", default="/tmp/cheems_tiny_work")
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "cheems-tiny"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--inter", type=int, default=256)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--period", type=int, default=4)
    ap.add_argument("--offset", type=int, default=3)
    ap.add_argument("--experts", type=int, default=1024)
    ap.add_argument("--moe-heads", type=int, default=2)
    ap.add_argument("--topk", type=int, default=8)
    ap.add_argument("--retrieval", type=int, default=32)
    ap.add_argument("--init-std", type=float, default=0.02)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=1300)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--time-budget", type=float, default=0.0, help="seconds; 0 = no cap")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--bench-steps", type=int, default=5)
    ap.add_argument("--resume", type=int, default=1)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--train-chunk", type=int, default=64, help="SSD chunk size used in training (numerics only)")
    args = ap.parse_args()
    if args.cmd == "prep":
        prep(args)
    elif args.cmd == "bench":
        train(args, bench=True)
    elif args.cmd == "train":
        train(args)
    else:
        export(args)


if __name__ == "__main__":
    main()
