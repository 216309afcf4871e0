#!/usr/bin/env python3
"""bench/bench_infer_peers.py — prefill and decode tokens/s of `hyquant` on a
Doge model against llama.cpp on a Llama model of identical dimensions, and
against PyTorch eager (transformers, F32) on the same Doge weights; decode
expressed as weight GB/s against the machine's measured memory bandwidth.

  python3 bench/bench_infer_peers.py [--vocab 32768 --d 768 --inter 1536 --layers 16 --heads 6 --kv 3]
        [--types F16,Q8_0,Q4_K_M] [--threads 1,2] [--prompt 256] [--gen 32] [--reps 3] [--no-torch]

Models (random weights, normal(0, 0.02) as the classes initialise them, tied
embeddings, bos/eos/pad 0/1/2; tokenizer = models/cheems-tiny's):
  Doge : transformers DogeForCausalLM(...).save_pretrained → `hyquant convert`
         (--outtype f16 for F16; f32 → `hyquant quantize --type Q8_0|Q4_K_M`)
  Llama: LlamaForCausalLM with the same vocab/width/layers/heads/KV heads/FFN
         → llama.cpp's convert_hf_to_gguf.py (from the same sdist; two
         methods patched at run time so a BPE tokenizer it does not know is
         accepted as "gpt-2" — tokenization plays no part in the timing) →
         `llama-quantize` (F32 → Q8_0 / Q4_K_M).
  Doge has a few extra small tensors per layer (dt_proj, A, q/k norms,
  residual scales); they are < 0.1 % of the bytes.
Timing:
  hyquant  `generate -p <P-token text> -n G -t T`: its stderr line gives the
           prompt (prefill, lm_head on the last token only) and decode rates;
           the prefill includes first-touch page faults of the mmap'd weights.
  llama.cpp `llama-bench -p P -n G -t T -r 1 -o json` (its warm-up included,
           not timed), one repeat per call, interleaved with hyquant.
  PyTorch  model(ids) for prefill, then G−1 single-token steps with the KV
           cache (past_key_values), torch.set_num_threads(T), no_grad, F32.
Decode GB/s = tensor bytes of the GGUF (tied embedding counted once, as the
lm_head reads it all per token) × decode tok/s. Bandwidth: a read-only sweep
and a STREAM triad over 256 MiB arrays (bench/common.py).
Writes bench/results/infer_peers.json and the README section.
"""
import argparse
import json
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

W = os.path.join(C.WORK, "infer")
TOK = os.path.join(C.ROOT, "models", "cheems-tiny")

LLCONV = r'''
import sys, os
L = sys.argv[1]
sys.path.insert(0, os.path.join(L, "gguf-py")); sys.path.insert(0, L)
import conversion.base as B
def _nosp(self, *a, **k): raise FileNotFoundError("bench: no sentencepiece model")
B.TextModel._set_vocab_sentencepiece = _nosp
B.TextModel._set_vocab_llama_hf = _nosp
B.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
import convert_hf_to_gguf as cv
sys.argv = ["convert_hf_to_gguf.py"] + sys.argv[2:]
cv.main()
'''


def make_models(a, tag):
    import torch
    from transformers import DogeConfig, DogeForCausalLM, LlamaConfig, LlamaForCausalLM
    common = dict(vocab_size=a.vocab, hidden_size=a.d, intermediate_size=a.inter, num_hidden_layers=a.layers,
                  num_attention_heads=a.heads, num_key_value_heads=a.kv, tie_word_embeddings=True, bos_token_id=0,
                  eos_token_id=1, pad_token_id=2, max_position_embeddings=2048, rms_norm_eps=1e-6)
    out = {}
    for name, cfgc, modc, extra in (("doge", DogeConfig, DogeForCausalLM, dict(keep_window_size=2048)),
                                    ("llama", LlamaConfig, LlamaForCausalLM, {})):
        d = os.path.join(W, "%s_%s" % (name, tag))
        if not os.path.exists(os.path.join(d, "model.safetensors")):
            torch.manual_seed(0)
            m = modc(cfgc(**common, **extra))
            m.save_pretrained(d)
            for f in ("tokenizer.json", "tokenizer_config.json"):
                shutil.copy(os.path.join(TOK, f), d)
            del m
        out[name] = d
    return out


def gguf_tensor_bytes(path):
    import gguf
    r = gguf.GGUFReader(path)
    return int(sum(int(t.n_bytes) for t in r.tensors)), int(sum(int(t.n_elements) for t in r.tensors))


def make_ggufs(dirs, types, tag):
    hq, files = C.HQ, {}
    f32 = os.path.join(W, "doge_%s-F32.gguf" % tag)
    if not os.path.exists(f32):
        C.run([hq, "convert", dirs["doge"], "-o", f32, "--outtype", "f32", "-q"])
    lf32 = os.path.join(W, "llama_%s-F32.gguf" % tag)
    conv = os.path.join(W, "llconv.py")
    with open(conv, "w") as f:
        f.write(LLCONV)
    if not os.path.exists(lf32):
        C.run([sys.executable, conv, C.LLAMA_SRC, dirs["llama"], "--outfile", lf32, "--outtype", "f32"])
    for t in types:
        h = os.path.join(W, "doge_%s-%s.gguf" % (tag, t))
        ll = os.path.join(W, "llama_%s-%s.gguf" % (tag, t))
        if not os.path.exists(h):
            if t in ("F16", "BF16", "F32"):
                C.run([hq, "convert", dirs["doge"], "-o", h, "--outtype", t.lower(), "-q"])
            else:
                C.run([hq, "quantize", f32, h, "--type", t, "-q"])
        if not os.path.exists(ll):
            if t in ("F16", "BF16", "F32"):
                C.run([sys.executable, conv, C.LLAMA_SRC, dirs["llama"], "--outfile", ll, "--outtype", t.lower()])
            else:
                C.run([C.llama_bin("llama-quantize"), lf32, ll, t])
        files[t] = {"hyquant": h, "llama.cpp": ll}
    return files


def prompt_text(n_tokens):
    """a prefix of data/eval.txt that tokenizes to n_tokens − 1 tokens (+ BOS)"""
    from tokenizers import Tokenizer
    tk = Tokenizer.from_file(os.path.join(TOK, "tokenizer.json"))
    with open(os.path.join(C.ROOT, "data", "eval.txt"), encoding="utf-8") as f:
        text = f.read()
    ids = tk.encode(text, add_special_tokens=False).ids
    s = tk.decode(ids[:n_tokens - 1])
    return s


def hq_run(gguf, prompt, gen, threads):
    r = C.run([C.HQ, "generate", gguf, "-p", prompt, "-n", str(gen), "-t", str(threads)])
    m = re.search(r"prompt (\d+) tokens in ([0-9.]+) s \(([0-9.]+) tok/s\), (\d+) generated in ([0-9.]+) s "
                  r"\(([0-9.]+) tok/s\)", r.stderr)
    if not m:
        raise RuntimeError("no timing line from hyquant generate: " + r.stderr[-500:])
    return {"n_prompt": int(m.group(1)), "pp": float(m.group(3)), "n_gen": int(m.group(4)), "tg": float(m.group(6))}


def llama_run(gguf, n_prompt, gen, threads):
    r = C.run([C.llama_bin("llama-bench"), "-m", gguf, "-p", str(n_prompt), "-n", str(gen), "-t", str(threads),
               "-r", "1", "-o", "json"])
    res = {}
    for t in json.loads(r.stdout):
        if t["n_prompt"] > 0 and t["n_gen"] == 0:
            res["pp"] = t["avg_ts"]
        elif t["n_gen"] > 0 and t["n_prompt"] == 0:
            res["tg"] = t["avg_ts"]
    return res


def torch_run(d, n_prompt, gen, threads, reps):
    import torch
    from transformers import DogeForCausalLM
    torch.set_num_threads(threads)
    m = DogeForCausalLM.from_pretrained(d, dtype=torch.float32)
    m.eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 4096, (1, n_prompt), generator=g)
    out = []
    with torch.no_grad():
        m(ids[:, :8])
        for _ in range(reps):
            t0 = time.perf_counter()
            o = m(ids, use_cache=True)
            t1 = time.perf_counter()
            pkv, tok = o.past_key_values, o.logits[:, -1:].argmax(-1)
            t2 = time.perf_counter()
            for _ in range(gen - 1):
                o = m(tok, past_key_values=pkv, use_cache=True)
                pkv, tok = o.past_key_values, o.logits[:, -1:].argmax(-1)
            t3 = time.perf_counter()
            out.append({"pp": n_prompt / (t1 - t0), "tg": (gen - 1) / (t3 - t2)})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--inter", type=int, default=1536)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv", type=int, default=3)
    ap.add_argument("--types", default="F16,Q8_0,Q4_K_M")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-torch", action="store_true")
    a = ap.parse_args()
    t_start = time.monotonic()
    os.makedirs(W, exist_ok=True)
    C.ensure_hyquant()
    C.ensure_llama(["llama-bench", "llama-quantize"])
    tag = "v%d_d%d_i%d_l%d_h%d_kv%d" % (a.vocab, a.d, a.inter, a.layers, a.heads, a.kv)
    dirs = make_models(a, tag)
    types = a.types.split(",")
    files = make_ggufs(dirs, types, tag)
    threads = [int(x) for x in a.threads.split(",")]
    prompt = prompt_text(a.prompt)
    C.log("[infer] models ready after %.0f s" % (time.monotonic() - t_start))

    bw = {t: C.bandwidth(t) for t in threads}
    rows = []
    for ty in types:
        sizes = {k: gguf_tensor_bytes(v) for k, v in files[ty].items()}
        for t in threads:
            samples = {"hyquant": [], "llama.cpp": []}
            n_prompt = None
            for _ in range(a.reps):
                h = hq_run(files[ty]["hyquant"], prompt, a.gen, t)
                n_prompt = h["n_prompt"]
                samples["hyquant"].append(h)
                samples["llama.cpp"].append(llama_run(files[ty]["llama.cpp"], n_prompt, a.gen, t))
            row = {"type": ty, "threads": t, "n_prompt": n_prompt, "n_gen": a.gen}
            for k in samples:
                row[k] = {"pp": C.mmm([s["pp"] for s in samples[k]]), "tg": C.mmm([s["tg"] for s in samples[k]]),
                          "bytes": sizes[k][0], "params": sizes[k][1]}
                row[k]["decode_GBps"] = sizes[k][0] * row[k]["tg"]["median"] / 1e9
            row["ratio_pp"] = C.mmm([h["pp"] / l["pp"] for h, l in zip(samples["hyquant"], samples["llama.cpp"])])
            row["ratio_tg"] = C.mmm([h["tg"] / l["tg"] for h, l in zip(samples["hyquant"], samples["llama.cpp"])])
            row["bandwidth"] = {k: C.mmm(v) for k, v in bw[t].items()}
            rows.append(row)
            C.log(json.dumps({k: row[k] for k in ("type", "threads", "ratio_pp", "ratio_tg")}))
    torch_rows = []
    if not a.no_torch:
        f32 = os.path.join(W, "doge_%s-F32.gguf" % tag)
        for t in threads:
            ts = torch_run(dirs["doge"], a.prompt, a.gen, t, a.reps)
            hs = [hq_run(f32, prompt, a.gen, t) for _ in range(a.reps)]
            torch_rows.append({"threads": t, "torch": {"pp": C.mmm([x["pp"] for x in ts]),
                                                       "tg": C.mmm([x["tg"] for x in ts])},
                               "hyquant_f32": {"pp": C.mmm([x["pp"] for x in hs]),
                                               "tg": C.mmm([x["tg"] for x in hs])},
                               "ratio_pp": C.mmm([h["pp"] / x["pp"] for h, x in zip(hs, ts)]),
                               "ratio_tg": C.mmm([h["tg"] / x["tg"] for h, x in zip(hs, ts)])})
            C.log(json.dumps(torch_rows[-1]["ratio_pp"]))

    info = C.machine()
    params = rows[0]["hyquant"]["params"] if rows else 0
    res = {"machine": info, "command": "python3 bench/bench_infer_peers.py " + " ".join(sys.argv[1:]),
           "dims": {k: getattr(a, k) for k in ("vocab", "d", "inter", "layers", "heads", "kv")},
           "params": params, "rows": rows, "torch": torch_rows, "seconds": time.monotonic() - t_start}
    C.write_json("infer_peers.json", res)

    head = ["type", "thr", "size hq / llama MiB", "prefill tok/s hq / llama (median)", "hq/llama prefill min/med/max",
            "decode tok/s hq / llama (median)", "hq/llama decode min/med/max", "decode GB/s hq / llama",
            "read-sweep GB/s (median)"]
    tab = []
    for r in rows:
        h, l = r["hyquant"], r["llama.cpp"]
        tab.append([r["type"], r["threads"], "%.0f / %.0f" % (h["bytes"] / 2**20, l["bytes"] / 2**20),
                    "%.1f / %.1f" % (h["pp"]["median"], l["pp"]["median"]), C.fmt_mmm(r["ratio_pp"]),
                    "%.1f / %.1f" % (h["tg"]["median"], l["tg"]["median"]), C.fmt_mmm(r["ratio_tg"]),
                    "%.2f / %.2f" % (h["decode_GBps"], l["decode_GBps"]),
                    "%.2f" % r["bandwidth"]["read"]["median"]])
    print(C.md_table(head, tab))
    thead = ["thr", "prefill tok/s hq F32 / torch", "hq/torch prefill min/med/max", "decode tok/s hq F32 / torch",
             "hq/torch decode min/med/max"]
    ttab = [[r["threads"], "%.1f / %.1f" % (r["hyquant_f32"]["pp"]["median"], r["torch"]["pp"]["median"]),
             C.fmt_mmm(r["ratio_pp"]), "%.1f / %.1f" % (r["hyquant_f32"]["tg"]["median"], r["torch"]["tg"]["median"]),
             C.fmt_mmm(r["ratio_tg"])] for r in torch_rows]
    if ttab:
        print()
        print(C.md_table(thead, ttab))
    bwl = "; ".join("%d thread%s: read sweep %s GB/s, triad %s GB/s" % (
        t, "s" if t > 1 else "", C.fmt_mmm(C.mmm(bw[t]["read"])), C.fmt_mmm(C.mmm(bw[t]["triad"]))) for t in threads)
    text = ("%s, %s (%d vCPUs, load average %.1f at the end); Doge vs Llama, V=%d d=%d I=%d L=%d H=%d KV=%d "
            "(%.1f M params), prompt %d tokens, %d generated, %d interleaved repeats; %.0f s in all "
            "(`%s`):\n\n" % (info["date"], info["cpu"], info["nproc"], info["loadavg"], a.vocab, a.d, a.inter,
                             a.layers, a.heads, a.kv, params / 1e6, rows[0]["n_prompt"] if rows else 0, a.gen,
                             a.reps, res["seconds"], res["command"]))
    text += C.md_table(head, tab) + "\n\nMemory bandwidth (min / median / max): " + bwl + ".\n"
    if ttab:
        text += "\nPyTorch eager (transformers DogeForCausalLM, F32, KV cache) on the same Doge weights vs " \
                "hyquant on the F32 GGUF:\n\n" + C.md_table(thead, ttab) + "\n"
    C.readme_section("bench_infer_peers", text)


if __name__ == "__main__":
    main()
