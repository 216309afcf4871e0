#!/usr/bin/env python3
"""Runtime speed: prefill and decode tokens/s of `hyquant` (CPU, F32 weights)
on 1 and 2 threads, against PyTorch eager (tools/cheems_ref.py, float32,
torch.set_num_threads(t)) on the same weights.

Models: the bundled models/cheems-tiny (when its weights exist) and a random
Cheems generated here (default d=768, 16 layers, 6 heads, I=2048, V=4096,
is_moe=False: ~115 M parameters; --random-moe adds product-key CDMoE).

  prefill: hyquant perplexity --ctx N --chunks K --json  (tokens_per_second
           counts every token of the chunks; the lm_head runs on the scored
           half only, as perplexity needs)
           PyTorch: model(tokens[:N]) under no_grad, best of --repeat
  decode:  hyquant generate -n D (per-token decode with KV/β/SSD caches,
           rate over the D-1 tokens after the first)
           PyTorch: cheems_ref has no cache, so its decode is a full
           recompute of the growing sequence per token (what cheems_ref.greedy
           does) — reported for completeness, not a like-for-like comparison.

Writes bench/results/runtime.json and prints a table. Inputs are generated
under bench/work/ (gitignored).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))


def make_random(out, d, layers, heads, inter, vocab, moe, seed=0):
    import torch
    import cheems_ref as cr

    if os.path.exists(os.path.join(out, "model.safetensors")):
        return
    cfg = cr.CheemsConfig(vocab_size=vocab, hidden_size=d, intermediate_size=inter, num_hidden_layers=layers,
                          num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), attn_layer_period=4,
                          attn_layer_offset=3, is_moe=moe, num_cdmoe_experts=1024, num_cdmoe_heads=2,
                          num_cdmoe_experts_per_head=8, expert_retrieval_size=32, max_position_embeddings=2048,
                          ssd_chunk_size=64)
    torch.manual_seed(seed)
    m = cr.CheemsForCausalLM(cfg)
    cr.init_weights(m, seed=seed)
    cr.save_pretrained(m, out, safetensors=True, bin=False)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(ROOT, "models", "cheems-tiny", f), out)


def run(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), r.stderr[-500:]))
    return r


def hq_prefill(hq, gguf, text, ctx, chunks, threads):
    r = run([hq, "perplexity", gguf, "--text", text, "--ctx", str(ctx), "--chunks", str(chunks), "--json", "-t",
             str(threads)])
    return json.loads(r.stdout)["tokens_per_second"]


def hq_decode(hq, gguf, n, threads):
    r = run([hq, "generate", gguf, "-p", "The built-in function", "-n", str(n), "-t", str(threads)])
    m = re.search(r"generated in ([0-9.]+) s \(([0-9.]+) tok/s\)", r.stderr)
    return float(m.group(2))


def torch_speed(model_dir, ctx, n_dec, threads, repeat):
    import torch
    import cheems_ref as cr

    torch.set_num_threads(threads)
    m = cr.load_pretrained(model_dir, dtype=torch.float32)
    m.eval()
    V = m.config.vocab_size
    g = torch.Generator().manual_seed(1)
    toks = torch.randint(0, V, (ctx,), generator=g)
    best = 1e9
    with torch.no_grad():
        m(toks[:8])
        for _ in range(repeat):
            t0 = time.perf_counter()
            m(toks)
            best = min(best, time.perf_counter() - t0)
        ids = list(toks[:6].tolist())
        t0 = time.perf_counter()
        for _ in range(n_dec):
            lg = m(torch.tensor(ids))
            ids.append(int(lg[0, -1].argmax()))
        dec = n_dec / (time.perf_counter() - t0)
    return ctx / best, dec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hyquant", default=os.path.join(ROOT, "hyquant"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=2)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--random-d", type=int, default=768)
    ap.add_argument("--random-layers", type=int, default=16)
    ap.add_argument("--random-heads", type=int, default=6)
    ap.add_argument("--random-inter", type=int, default=2048)
    ap.add_argument("--random-moe", action="store_true")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "runtime.json"))
    args = ap.parse_args()
    work = os.path.join(ROOT, "bench", "work", "runtime")
    os.makedirs(work, exist_ok=True)
    text = os.path.join(ROOT, "data", "eval.txt")
    models = []
    tiny = os.path.join(ROOT, "models", "cheems-tiny")
    if os.path.exists(os.path.join(tiny, "model.safetensors")):
        models.append(("cheems-tiny (bundled)", tiny))
    rnd = os.path.join(work, "random_d%d_L%d%s" % (args.random_d, args.random_layers, "_moe" if args.random_moe else ""))
    make_random(rnd, args.random_d, args.random_layers, args.random_heads, args.random_inter, 4096, args.random_moe)
    models.append(("random Cheems d=%d L=%d%s" % (args.random_d, args.random_layers, " MoE" if args.random_moe else ""),
                   rnd))
    results = []
    for label, d in models:
        gguf = os.path.join(work, os.path.basename(d.rstrip("/")) + ".gguf")
        run([args.hyquant, "convert", d, "-o", gguf, "--outtype", "f32", "--quiet"])
        import cheems_ref as cr
        import torch
        n_params = cr.count_params(cr.load_pretrained(d, dtype=torch.float32))
        for t in [int(x) for x in args.threads.split(",")]:
            row = {"model": label, "params": n_params, "threads": t, "ctx": args.ctx,
                   "hq_prefill_tok_s": hq_prefill(args.hyquant, gguf, text, args.ctx, args.chunks, t),
                   "hq_decode_tok_s": hq_decode(args.hyquant, gguf, args.decode, t)}
            if not args.no_torch:
                p, dec = torch_speed(d, args.ctx, min(args.decode, 16), t, args.repeat)
                row["torch_prefill_tok_s"] = p
                row["torch_decode_full_recompute_tok_s"] = dec
            results.append(row)
            print(json.dumps(row))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    info = {"date": time.strftime("%Y-%m-%d"), "cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0]
            .strip(": ") if os.path.exists("/proc/cpuinfo") else "?", "nproc": os.cpu_count(),
            "loadavg_at_end": os.getloadavg()[0], "results": results}
    with open(args.out, "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print("\n| model | params | threads | hyquant prefill tok/s | hyquant decode tok/s | torch prefill tok/s | "
          "torch decode (recompute) tok/s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print("| %s | %.1f M | %d | %.0f | %.1f | %s | %s |" % (
            r["model"], r["params"] / 1e6, r["threads"], r["hq_prefill_tok_s"], r["hq_decode_tok_s"],
            "%.0f" % r["torch_prefill_tok_s"] if "torch_prefill_tok_s" in r else "-",
            "%.1f" % r["torch_decode_full_recompute_tok_s"] if "torch_decode_full_recompute_tok_s" in r else "-"))


if __name__ == "__main__":
    main()
