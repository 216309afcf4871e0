#!/usr/bin/env python3
"""bench/bench_quality_peers.py — quantization quality at exactly equal size:
hyquant's quantizer against ggml's (llama.cpp) on the same tensors.

  python3 bench/bench_quality_peers.py [--model models/cheems-tiny | --gguf F32.gguf]
        [--presets Q8_0,Q4_K_M,IQ4_NL] [--methods rtn,imatrix,gptq] [--ctx 256] [--chunks 0]

1. `hyquant convert` → base F32 GGUF; `hyquant calibrate --full-hessian` on
   data/calib.txt → imatrix (llama-imatrix layout); `hyquant perplexity
   --save-logits` → base log-probs on data/eval.txt (reused by every verify).
2. for each preset and method: `hyquant quantize` → ours. bench/requant_ggml.cpp
   (linked with ggml from llama.cpp's sources) then rewrites that file with
   every quantized tensor re-made by ggml_quantize_chunk from the same F32
   values, in the same type, with the same imatrix for methods imatrix/gptq
   (ggml has no GPTQ: our GPTQ is compared with ggml's imatrix quantization);
   metadata and float tensors are identical, so sizes are byte-equal.
   llama-quantize itself cannot load the cheems/doge architectures.
3. `hyquant verify base X --base-logits …` on both → PPL ratio, KLD, top-1.
Writes bench/results/quality_peers.json and the README section.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

W = os.path.join(C.WORK, "quality")


def build_requant():
    C.ensure_llama(["ggml"])
    inc, libs = C.ggml_link_flags()
    exe = os.path.join(W, "requant_ggml")
    C.run(["g++", "-O2", "-std=c++17"] + inc + [os.path.join(C.ROOT, "bench", "requant_ggml.cpp")] + libs +
          ["-o", exe])
    return exe


def verify(base, q, logits, a):
    out = q[:-5] + ".verify.json"
    cmd = [C.HQ, "verify", base, q, "--base-logits", logits, "--json", out, "-q"]
    if a.chunks:
        cmd += ["--chunks", str(a.chunks)]
    C.run(cmd)
    with open(out) as f:
        v = json.load(f)
    return {"ppl": v["ppl"]["quant"]["value"], "ppl_base": v["ppl"]["base"]["value"],
            "ppl_ratio": v["ppl"]["ratio"]["value"], "ppl_ratio_err": v["ppl"]["ratio"]["err"],
            "kld": v["kld"]["mean"], "kld_err": v["kld"]["err"], "kld_p99": v["kld"]["p99"],
            "top1": v["top1"]["value"], "tokens": v["settings"]["scored_tokens"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(C.ROOT, "models", "cheems-tiny"))
    ap.add_argument("--gguf", help="an F32 GGUF to use instead of converting --model")
    ap.add_argument("--presets", default="Q8_0,Q4_K_M,IQ4_NL")
    ap.add_argument("--methods", default="rtn,imatrix,gptq")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=0)
    ap.add_argument("--calib", default=os.path.join(C.ROOT, "data", "calib.txt"))
    ap.add_argument("--eval", default=os.path.join(C.ROOT, "data", "eval.txt"))
    a = ap.parse_args()
    os.makedirs(W, exist_ok=True)
    C.ensure_hyquant()
    exe = build_requant()
    base = a.gguf
    label = os.path.basename(a.gguf) if a.gguf else os.path.basename(a.model.rstrip("/"))
    if not base:
        if not os.path.exists(os.path.join(a.model, "model.safetensors")) and \
                not os.path.exists(os.path.join(a.model, "pytorch_model.bin")):
            sys.exit("%s has no weights (models/cheems-tiny is trained by tools/train_tiny.py); pass --gguf" % a.model)
        base = os.path.join(W, "base-f32.gguf")
        C.run([C.HQ, "convert", a.model, "-o", base, "--outtype", "f32", "-q"])
    methods = a.methods.split(",")
    imat = os.path.join(W, "base.imatrix")
    if any(m != "rtn" for m in methods):
        C.run([C.HQ, "calibrate", base, "--text", a.calib, "-o", imat, "--ctx", str(a.ctx), "-q"] +
              (["--full-hessian"] if "gptq" in methods else []))
    logits = os.path.join(W, "base.logits")
    pcmd = [C.HQ, "perplexity", base, "--text", a.eval, "--ctx", str(a.ctx), "--save-logits", logits, "--json", "-q"]
    if a.chunks:
        pcmd += ["--chunks", str(a.chunks)]
    C.run(pcmd)

    rows = []
    for p in a.presets.split(","):
        for m in methods:
            ours = os.path.join(W, "hq-%s-%s.gguf" % (p, m))
            theirs = os.path.join(W, "ggml-%s-%s.gguf" % (p, m))
            q = [C.HQ, "quantize", base, ours, "--type", p, "--method", m, "--json", "-q"]
            if m != "rtn":
                q += ["--imatrix", imat]
            rep = json.loads(C.run(q).stdout)
            C.run([exe, base, ours, theirs] + ([imat] if m != "rtn" else []))
            so, st = os.path.getsize(ours), os.path.getsize(theirs)
            vo, vt = verify(base, ours, logits, a), verify(base, theirs, logits, a)
            types = sorted({t["out_type"] for t in rep["tensors"]})
            row = {"preset": p, "method": m, "ggml_method": "rtn" if m == "rtn" else "imatrix", "bytes_hq": so,
                   "bytes_ggml": st, "types": types, "hq": vo, "ggml": vt,
                   "kld_ratio": vo["kld"] / vt["kld"] if vt["kld"] > 0 else None,
                   "ppl_loss_ratio": ((vo["ppl_ratio"] - 1) / (vt["ppl_ratio"] - 1)) if vt["ppl_ratio"] != 1 else None}
            for k in ("bpw", "bits_per_weight"):
                if k in rep:
                    row["bpw"] = rep[k]
            rows.append(row)
            C.log("[quality] %s %s: KLD hq %.5f ggml %.5f  PPL ratio hq %.4f ggml %.4f" % (
                p, m, vo["kld"], vt["kld"], vo["ppl_ratio"], vt["ppl_ratio"]))

    info = C.machine()
    res = {"machine": info, "command": "python3 bench/bench_quality_peers.py " + " ".join(sys.argv[1:]),
           "model": label, "ctx": a.ctx, "rows": rows}
    C.write_json("quality_peers.json", res)
    head = ["preset", "hq method (ggml)", "size equal", "KLD hq ± err", "KLD ggml ± err", "KLD hq/ggml",
            "PPL ratio hq", "PPL ratio ggml", "top-1 hq / ggml"]
    tab = []
    for r in rows:
        h, g = r["hq"], r["ggml"]
        tab.append([r["preset"], "%s (%s)" % (r["method"], r["ggml_method"]),
                    "yes" if r["bytes_hq"] == r["bytes_ggml"] else "NO %d vs %d" % (r["bytes_hq"], r["bytes_ggml"]),
                    "%.5f ± %.5f" % (h["kld"], h["kld_err"]), "%.5f ± %.5f" % (g["kld"], g["kld_err"]),
                    "%.3f" % r["kld_ratio"] if r["kld_ratio"] else "-",
                    "%.4f ± %.4f" % (h["ppl_ratio"], h["ppl_ratio_err"]),
                    "%.4f ± %.4f" % (g["ppl_ratio"], g["ppl_ratio_err"]),
                    "%.2f %% / %.2f %%" % (100 * h["top1"], 100 * g["top1"])])
    print(C.md_table(head, tab))
    n_tok = rows[0]["hq"]["tokens"] if rows else 0
    text = ("%s, %s; model %s (base PPL %.3f), data/eval.txt, ctx %d, %d scored tokens "
            "(`%s`):\n\n" % (info["date"], info["cpu"], label, rows[0]["hq"]["ppl_base"] if rows else 0, a.ctx, n_tok,
                             res["command"]))
    text += C.md_table(head, tab) + "\n"
    C.readme_section("bench_quality_peers", text)


if __name__ == "__main__":
    main()
