#!/usr/bin/env python3
"""bench/bench_quant_peers.py — quantization speed of hyquant's block
quantizers against ggml's own (llama.cpp built from its sources, see
bench/common.py), one thread, same data, same process.

  python3 bench/bench_quant_peers.py [--rows 256 --cols 4096] [--reps 5] [--min-s 0.15]
                                     [--types Q8_0,Q4_0,Q4_K,Q6_K,IQ4_NL] [--no-own-tools]

1. bench/quant_peers.c (linked with the hyquant library objects and the ggml
   static libraries) times, for each type, interleaved hq / ggml:
     ref   from_float_ref on both sides (plain scalar quantizers)
     fast  hyquant from_float vs ggml-cpu from_float
     chunk q_quantize_rows(NULL) vs ggml_quantize_chunk(NULL)  — what
           `hyquant quantize` / `llama-quantize` run per tensor without imatrix
     imat  the same with an importance vector
   and reports params/s/core, the ratio hq/ggml (min/median/max over the
   repeats), the RMSE of both outputs and the fraction of identical bytes.
2. cross-check with each project's own timing tool: `build/tests/test_quant
   --perf` (hyquant) and llama.cpp's `test-quantize-perf` (ggml, its cos()
   test data), single run each.
3. end to end (--e2e-types, "" to skip): whole-model quantize on one thread of
   the random 110 M-parameter Doge / Llama pair of bench_infer_peers.py (made
   if absent): `hyquant quantize F32 OUT --type T --threads 1` vs
   `llama-quantize --pure F32 OUT T 1` (--pure: every matrix in T, no mixture;
   hyquant's plain type + --tensor-type token_embd.weight=T does the same;
   Doge's small dt/A/norm tensors stay F32 on both), wall time incl. reading and writing,
   params/s = quantized parameters / wall seconds, --e2e-reps interleaved runs.
Writes bench/results/quant_peers.json and the README section.
"""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

TYPE_IDS = {"Q4_0": 2, "Q8_0": 8, "Q4_K": 12, "Q6_K": 14, "IQ4_NL": 20, "Q5_K": 13, "Q4_1": 3, "Q2_K": 10, "Q3_K": 11}
OPS = ["ref", "fast", "chunk", "imat"]


def build_harness():
    lib = C.hq_lib()
    C.ensure_llama(["ggml"])
    inc, libs = C.ggml_link_flags()
    exe = os.path.join(C.WORK, "quant_peers")
    obj = exe + ".o"
    C.run(["gcc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-I" + C.ROOT] + inc +
          ["-c", os.path.join(C.ROOT, "bench", "quant_peers.c"), "-o", obj])
    C.run(["g++", obj, lib] + libs + ["-lcjson", "-lz", "-o", exe])
    return exe


def own_tools(types):
    """hyquant's test_quant --perf and ggml's test-quantize-perf, as printed"""
    out = {}
    C.run(["make", "-s", "-j2", "build/tests/test_quant"], cwd=C.ROOT)
    r = C.run([os.path.join(C.ROOT, "build", "tests", "test_quant"), "--perf"])
    for line in r.stdout.splitlines():
        f = line.split()
        if f and f[0] in types and len(f) >= 4:
            out.setdefault(f[0], {})["hq_test_quant"] = {"ref": float(f[1]) * 1e6, "fast": float(f[2]) * 1e6,
                                                         "imatrix_null": float(f[3]) * 1e6}
    exe = C.llama_bin("test-quantize-perf")
    if not os.path.exists(exe):
        C.log("test-quantize-perf not built; skipping the ggml own-tool cross-check")
        return out
    for t in types:
        gname = {"Q4_K": "q4_K", "Q6_K": "q6_K", "Q5_K": "q5_K", "Q2_K": "q2_K", "Q3_K": "q3_K"}.get(t, t.lower())
        d = {}
        for op in ("quantize_row_q_reference", "quantize_row_q"):
            r = C.run([exe, "--type", gname, "--op", op, "--size", str(1 << 20), "-i", "10"])
            m = re.search(r"float32 throughput\s*:\s*([0-9.]+) GB/s", r.stdout)
            if m:  # GiB/s of float32 input -> params/s
                d["ref" if op.endswith("reference") else "fast"] = float(m.group(1)) * (1 << 30) / 4
        out.setdefault(t, {})["ggml_test_quantize_perf"] = d
    return out


def end_to_end(types, reps):
    if not types:
        return []
    import bench_infer_peers as B
    C.ensure_llama(["llama-quantize"])

    class A:
        vocab, d, inter, layers, heads, kv = 32768, 768, 1536, 16, 6, 3
    tag = "v%d_d%d_i%d_l%d_h%d_kv%d" % (A.vocab, A.d, A.inter, A.layers, A.heads, A.kv)
    os.makedirs(B.W, exist_ok=True)
    dirs = B.make_models(A, tag)
    B.make_ggufs(dirs, [], tag)
    hf32 = os.path.join(B.W, "doge_%s-F32.gguf" % tag)
    lf32 = os.path.join(B.W, "llama_%s-F32.gguf" % tag)
    out = []
    for t in types:
        ho, lo = os.path.join(B.W, "e2e-hq-%s.gguf" % t), os.path.join(B.W, "e2e-llama-%s.gguf" % t)
        hs, ls, params = [], [], 0
        for _ in range(reps):
            r = C.run([C.HQ, "quantize", hf32, ho, "--type", t, "--tensor-type", "token_embd.weight=" + t,
                      "--threads", "1", "--json", "-q"],
                      env=dict(os.environ, OMP_NUM_THREADS="1"))
            rep = json.loads(r.stdout)
            params = sum(x["in_bytes"] // 4 for x in rep["tensors"] if x["out_type"] == t)
            hs.append(params / r.seconds)
            r = C.run([C.llama_bin("llama-quantize"), "--pure", lf32, lo, t, "1"])
            ls.append(params / r.seconds)
        out.append({"type": t, "params": params, "hq": hs, "llama": ls, "hq_mmm": C.mmm(hs), "llama_mmm": C.mmm(ls),
                    "ratio": C.mmm([h / l for h, l in zip(hs, ls)]), "bytes_hq": os.path.getsize(ho),
                    "bytes_llama": os.path.getsize(lo)})
        C.log("[e2e] %s hq %.2f M/s llama %.2f M/s" % (t, out[-1]["hq_mmm"]["median"] / 1e6,
                                                      out[-1]["llama_mmm"]["median"] / 1e6))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-s", type=float, default=0.15)
    ap.add_argument("--types", default="Q8_0,Q4_0,Q4_K,Q6_K,IQ4_NL")
    ap.add_argument("--no-own-tools", action="store_true")
    ap.add_argument("--e2e-types", default="Q8_0,Q4_K")
    ap.add_argument("--e2e-reps", type=int, default=2)
    args = ap.parse_args()
    types = args.types.split(",")
    exe = build_harness()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [exe, str(args.rows), str(args.cols), str(args.reps), str(args.min_s)] + [str(TYPE_IDS[t]) for t in types]
    if C.run(["sh", "-c", "command -v taskset"], check=False).returncode == 0:
        cmd = ["taskset", "-c", "0"] + cmd  # one core, as "per core" means
    C.log("[quant] " + " ".join(cmd))
    r = C.run(cmd, env=env)
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    for x in rows:
        x["ratio"] = C.mmm([h / g for h, g in zip(x["hq"], x["ggml"])])
        x["hq_mmm"], x["ggml_mmm"] = C.mmm(x["hq"]), C.mmm(x["ggml"])
    own = {} if args.no_own_tools else own_tools(types)
    e2e = end_to_end([t for t in args.e2e_types.split(",") if t], args.e2e_reps)

    head = ["type", "op", "hyquant Mparam/s (median)", "ggml Mparam/s (median)", "hq/ggml min / med / max",
            "RMSE hq / ggml", "same bytes"]
    table = []
    for x in rows:
        table.append([x["type"], x["op"], "%.1f" % (x["hq_mmm"]["median"] / 1e6),
                      "%.1f" % (x["ggml_mmm"]["median"] / 1e6), C.fmt_mmm(x["ratio"]),
                      "%.3g / %.3g (%.3f)" % (x["rmse_hq"], x["rmse_ggml"], x["rmse_hq"] / x["rmse_ggml"]),
                      "%.1f %%" % (100 * x["same_bytes"])])
    print(C.md_table(head, table))
    otable = []
    for t in types:
        o = own.get(t, {})
        h, g = o.get("hq_test_quant", {}), o.get("ggml_test_quantize_perf", {})
        otable.append([t, "%.1f" % (h.get("ref", 0) / 1e6), "%.1f" % (h.get("fast", 0) / 1e6),
                       "%.1f" % (g.get("ref", 0) / 1e6), "%.1f" % (g.get("fast", 0) / 1e6)])
    ohead = ["type", "test_quant --perf ref", "test_quant --perf fast", "test-quantize-perf ref",
             "test-quantize-perf fast"]
    if own:
        print()
        print(C.md_table(ohead, otable))
    etable = []
    ehead = ["type", "hyquant quantize Mparam/s (median)", "llama-quantize Mparam/s (median)", "hq/llama min / med / max",
             "output MiB hq / llama"]
    for e in e2e:
        etable.append([e["type"], "%.2f" % (e["hq_mmm"]["median"] / 1e6), "%.2f" % (e["llama_mmm"]["median"] / 1e6),
                       C.fmt_mmm(e["ratio"]), "%.1f / %.1f" % (e["bytes_hq"] / 2**20, e["bytes_llama"] / 2**20)])
    if e2e:
        print()
        print(C.md_table(ehead, etable))
    info = C.machine()
    res = {"machine": info, "command": " ".join(sys.argv), "harness": " ".join(cmd[-len(types) - 5:]),
           "shape": [args.rows, args.cols], "rows": rows, "own_tools": own, "end_to_end": e2e}
    C.write_json("quant_peers.json", res)

    targets = []
    by = {(x["type"], x["op"]): x for x in rows}
    for t, goal in (("Q8_0", 200e6), ("Q4_0", 200e6), ("Q4_K", 50e6)):
        x = by.get((t, "fast")) or by.get((t, "chunk"))
        if x:
            v = x["hq_mmm"]["median"]
            targets.append("%s fast quantize %.0f M/s vs target %.0f M/s — %s" % (t, v / 1e6, goal / 1e6,
                                                                               "met" if v >= goal else "MISSED"))
    text = ("%s, %s (%d vCPUs, load average %.1f at the end), %d×%d matrix, %d interleaved repeats "
            "(`%s`):\n\n" % (info["date"], info["cpu"], info["nproc"], info["loadavg"], args.rows, args.cols,
                             args.reps, "python3 bench/bench_quant_peers.py " + " ".join(sys.argv[1:])))
    text += C.md_table(head, table) + "\n"
    if own:
        text += "\nEach project's own timing tool (single run, Mparam/s):\n\n" + C.md_table(ohead, otable) + "\n"
    if e2e:
        text += ("\nWhole model, one thread, F32 GGUF → type (%.1f M quantized params, wall time incl. I/O):\n\n"
                 % (e2e[0]["params"] / 1e6)) + C.md_table(ehead, etable) + "\n"
    text += "\nTargets (earlier quant issue, one core): " + "; ".join(targets) + ".\n"
    C.readme_section("bench_quant_peers", text)


if __name__ == "__main__":
    main()
