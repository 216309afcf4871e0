#!/usr/bin/env python3
"""bench/bench_gemm.py — before/after of the tiled block-type matmul (runtime/gemm_q.c, issue 14).

One hyquant binary, two modes interleaved in one run: `HQ_NO_GEMM=1` (the per-element vec_dot
path that was the only path before) and the default (tiles). The model is the random Doge of
bench_infer_peers.py (same generator, same dimensions by default: 110 M parameters, V 32768,
d 768, I 1536, 16 layers), timed with `hyquant generate -p <prompt> -n <gen> -t T` (its stderr
timing line). The load average is recorded with every sample: on a shared machine the absolute
rates are time-sliced, the interleaved after/before ratios are the figure to read. Decode GB/s
= GGUF tensor bytes × decode tok/s, against a read-only sweep measured in the same run.

    python3 bench/bench_gemm.py [--types F16,Q8_0,Q4_K_M] [--threads 1,2] [--prompt 512] [--gen 32] [--reps 3]
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
import bench_infer_peers as P  # noqa: E402


def hq_run(gguf, prompt, gen, threads, tiles):
    env = dict(os.environ)
    env.pop("HQ_NO_GEMM", None)
    if not tiles:
        env["HQ_NO_GEMM"] = "1"
    load = os.getloadavg()[0]
    r = C.run([C.HQ, "generate", gguf, "-p", prompt, "-n", str(gen), "-t", str(threads)], env=env)
    m = re.search(r"prompt (\d+) tokens in ([0-9.]+) s \(([0-9.]+) tok/s\), (\d+) generated in ([0-9.]+) s "
                  r"\(([0-9.]+) tok/s\)", r.stderr)
    if not m:
        raise RuntimeError("no timing line from hyquant generate: " + r.stderr[-500:])
    return {"n_prompt": int(m.group(1)), "pp": float(m.group(3)), "tg": float(m.group(6)), "load": load,
            "out": r.stdout}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--inter", type=int, default=1536)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv", type=int, default=3)
    ap.add_argument("--types", default="F16,Q8_0,Q4_K_M")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    C.ensure_hyquant()
    os.makedirs(P.W, exist_ok=True)
    tag = "v%d_d%d_i%d_l%d_h%d_kv%d" % (a.vocab, a.d, a.inter, a.layers, a.heads, a.kv)
    dirs = P.make_models(a, tag)
    f32 = os.path.join(P.W, "doge_%s-F32.gguf" % tag)
    if not os.path.exists(f32):
        C.run([C.HQ, "convert", dirs["doge"], "-o", f32, "--outtype", "f32", "-q"])
    types = a.types.split(",")
    files = {}
    for t in types:
        h = os.path.join(P.W, "doge_%s-%s.gguf" % (tag, t))
        if not os.path.exists(h):
            if t in ("F16", "BF16", "F32"):
                C.run([C.HQ, "convert", dirs["doge"], "-o", h, "--outtype", t.lower(), "-q"])
            else:
                C.run([C.HQ, "quantize", f32, h, "--type", t, "-q"])
        files[t] = h
    prompt = P.prompt_text(a.prompt)
    threads = [int(x) for x in a.threads.split(",")]
    mach = C.machine()
    bw = {t: {k: C.mmm(v) for k, v in C.bandwidth(t).items()} for t in threads}
    rows = []
    for ty in types:
        nbytes, _ = P.gguf_tensor_bytes(files[ty])
        for t in threads:
            s = {"before": [], "after": []}
            for rep in range(a.reps):
                for mode in ("before", "after") if rep % 2 == 0 else ("after", "before"):
                    s[mode].append(hq_run(files[ty], prompt, a.gen, t, mode == "after"))
                    C.log("%s t=%d %s: pp %.1f tg %.1f (load %.1f)" % (ty, t, mode, s[mode][-1]["pp"],
                                                                      s[mode][-1]["tg"], s[mode][-1]["load"]))
            same = all(x["out"] == s["before"][0]["out"] for x in s["before"] + s["after"])
            row = {"type": ty, "threads": t, "bytes": nbytes, "n_prompt": s["after"][0]["n_prompt"],
                   "same_output": same,
                   "before": {k: C.mmm([x[k] for x in s["before"]]) for k in ("pp", "tg", "load")},
                   "after": {k: C.mmm([x[k] for x in s["after"]]) for k in ("pp", "tg", "load")},
                   "ratio_pp": C.mmm([x["pp"] / y["pp"] for x, y in zip(s["after"], s["before"])]),
                   "ratio_tg": C.mmm([x["tg"] / y["tg"] for x, y in zip(s["after"], s["before"])])}
            rows.append(row)
    out = {"machine": mach, "args": vars(a), "bandwidth": bw, "rows": rows, "end_loadavg": os.getloadavg()[0]}
    C.write_json("gemm.json", out)
    head = ["type", "thr", "prefill tok/s before / after (median)", "after/before prefill min/med/max",
            "decode tok/s before / after (median)", "after/before decode min/med/max", "decode GB/s after",
            "% of read sweep", "load avg (min–max)", "same text"]
    tab = []
    for r in rows:
        sweep = bw[r["threads"]]["read"]["median"]
        gbs = r["bytes"] * r["after"]["tg"]["median"] / 1e9
        ld = [r["before"]["load"]["min"], r["after"]["load"]["min"], r["before"]["load"]["max"], r["after"]["load"]["max"]]
        tab.append([r["type"], str(r["threads"]),
                    "%.1f / %.1f" % (r["before"]["pp"]["median"], r["after"]["pp"]["median"]), C.fmt_mmm(r["ratio_pp"]),
                    "%.1f / %.1f" % (r["before"]["tg"]["median"], r["after"]["tg"]["median"]), C.fmt_mmm(r["ratio_tg"]),
                    "%.2f" % gbs, "%.0f %%" % (100 * gbs / sweep), "%.1f–%.1f" % (min(ld), max(ld)),
                    "yes" if r["same_output"] else "NO"])
    text = ("%s, %s (%d vCPUs); Doge %s, prompt %d tokens, %d generated, %d interleaved repeats "
            "(`python3 bench/bench_gemm.py %s`):\n\n" % (mach["date"], mach["cpu"], mach["nproc"], tag, a.prompt,
                                                          a.gen, a.reps, " ".join(sys.argv[1:])))
    text += C.md_table(head, tab) + "\n\nRead sweep (median): " + ", ".join(
        "%d thread%s %.2f GB/s" % (t, "s" if t > 1 else "", bw[t]["read"]["median"]) for t in threads) + \
        "; load average at the end %.1f.\n" % out["end_loadavg"]
    print(text)
    C.readme_section("bench_gemm", text)


if __name__ == "__main__":
    main()
