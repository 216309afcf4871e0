#!/usr/bin/env python3
"""bench/bench_embd_policy.py — which type a tied token embedding should get
in the K-quant presets (issue 16 item 5): our Q8_0 (policy.h: tied or
d <= 512 -> 8 bits) or llama.cpp's Q6_K (llama-quantize gives the head,
and so a tied embedding, Q6_K in every K-quant mix).

For each model (a checkpoint directory, converted to F32 GGUF first):
  * base log-probs once (`hyquant perplexity --save-logits` on data/eval.txt),
  * for each preset in --presets, the preset as is and with
    `--tensor-type token_embd.weight=T` for each T in --embd-types,
  * whole-file bpw (every tensor counted), the embedding's own type and bpw,
    KLD / PPL ratio / top-1 against the base (`hyquant verify`).
"Better per bpw" = on the lower-left of the (bpw, KLD) plane: a variant that
is both smaller and closer to F32 than another dominates it.

  python3 bench/bench_embd_policy.py [--model models/cheems-tiny] [--random-d256]
         [--presets Q4_K_M,Q3_K_M,Q5_K_M] [--embd-types Q8_0,Q6_K] [--ctx 256] [--chunks 0]

--random-d256 also builds a random Doge with d = 256 (tools/gen_doge.py: 4 layers,
intermediate 768, 4 heads / 2 kv heads, the bundled tokenizer's 4096 tokens, tied):
rows of 256 take the K-quants, but its weights are random, so its KLD numbers
only show how much each choice perturbs the logits, not quality on text.
Writes bench/results/embd_policy.json and the README section.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

W = os.path.join(C.WORK, "embd_policy")


def quantize(f32, out, preset, embd):
    cmd = [C.HQ, "quantize", f32, out, "--type", preset, "--json", "-q"]
    if embd:
        cmd += ["--tensor-type", "token_embd.weight=" + embd]
    rep = json.loads(C.run(cmd).stdout)
    emb = [t for t in rep["tensors"] if t["name"] == "token_embd.weight"][0]
    return rep, emb


def verify(f32, q, lp, a):
    js = os.path.join(W, "verify.json")
    cmd = [C.HQ, "verify", f32, q, "--base-logits", lp, "--text", a.eval, "--ctx", str(a.ctx), "--json", js, "-q"]
    if a.chunks:
        cmd += ["--chunks", str(a.chunks)]
    C.run(cmd)
    with open(js) as f:
        d = json.load(f)
    return {"kld": d["kld"]["mean"], "kld_err": d["kld"]["err"], "ratio": d["ppl"]["ratio"]["value"],
            "top1": d["top1"]["value"]}


def one_model(name, src, a):
    f32 = os.path.join(W, name + "-F32.gguf")
    C.run([C.HQ, "convert", src, "-o", f32, "--outtype", "f32", "-q"])
    lp = os.path.join(W, name + ".logits")
    cmd = [C.HQ, "perplexity", f32, "--text", a.eval, "--ctx", str(a.ctx), "--save-logits", lp, "--json", "-q"]
    if a.chunks:
        cmd += ["--chunks", str(a.chunks)]
    C.run(cmd)
    rows = []
    for p in a.presets:
        for e in [None] + a.embd_types:
            out = os.path.join(W, "%s-%s-%s.gguf" % (name, p, e or "default"))
            rep, emb = quantize(f32, out, p, e)
            v = verify(f32, out, lp, a)
            r = {"model": name, "preset": p, "embd_override": e or "", "embd_type": emb["out_type"],
                 "embd_fallback": emb["fallback"], "bpw": rep["bpw"],
                 "embd_bpw": 8.0 * emb["out_bytes"] / (emb["shape"][0] * emb["shape"][1]),
                 "bytes": rep["out_file_bytes"], **v}
            rows.append(r)
            C.log("%-16s %-7s embd %-6s (-> %-5s) bpw %.3f kld %.6f ± %.6f ratio %.4f top1 %.4f" % (
                name, p, e or "preset", r["embd_type"], r["bpw"], r["kld"], r["kld_err"], r["ratio"], r["top1"]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(C.ROOT, "models", "cheems-tiny"))
    ap.add_argument("--random-d256", action="store_true")
    ap.add_argument("--presets", default="Q4_K_M,Q3_K_M,Q5_K_M")
    ap.add_argument("--embd-types", default="Q8_0,Q6_K")
    ap.add_argument("--eval", default=os.path.join(C.ROOT, "data", "eval.txt"))
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=0)
    a = ap.parse_args()
    a.presets = a.presets.split(",")
    a.embd_types = [t for t in a.embd_types.split(",") if t]
    os.makedirs(W, exist_ok=True)
    C.ensure_hyquant()
    rows = one_model(os.path.basename(a.model.rstrip("/")), a.model, a)
    if a.random_d256:
        d = os.path.join(W, "doge-d256")
        C.run([sys.executable, os.path.join(C.ROOT, "tools", "gen_doge.py"), d, "--hidden", "256", "--layers", "4",
               "--intermediate", "768", "--heads", "4", "--kv-heads", "2", "--vocab", "4096", "--dtype", "f32",
               "--seed", "3"])
        rows += one_model("doge-d256-random", d, a)
    C.write_json("embd_policy.json", {"machine": C.machine(), "rows": rows})
    head = ["model", "preset", "--tensor-type token_embd", "embd type", "file bpw", "KLD", "PPL ratio", "top-1"]
    tab = [[r["model"], r["preset"], r["embd_override"] or "(preset)",
            r["embd_type"] + (" (fallback)" if r["embd_fallback"] else ""), "%.3f" % r["bpw"],
            "%.6f ± %.6f" % (r["kld"], r["kld_err"]), "%.4f" % r["ratio"], "%.4f" % r["top1"]] for r in rows]
    C.readme_section("bench_embd_policy", "`python3 bench/bench_embd_policy.py %s`, %s, ctx %d:\n\n%s" % (
        " ".join(sys.argv[1:]), C.machine()["date"], a.ctx, C.md_table(head, tab)))


if __name__ == "__main__":
    main()
