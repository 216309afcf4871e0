#!/usr/bin/env python3
"""bench/bench_convert.py — throughput and peak memory of `hyquant convert`.

Generates a random Cheems checkpoint of about --gb GB (F32; SSD + attention +
MLP layers) in bench/work/ as model.safetensors and as pytorch_model.bin, then
times, --runs times each (min / median / max):
  * hyquant convert <safetensors dir> and <.bin dir>  -> GGUF
  * cp of the same safetensors bytes (+ fsync, as hyquant fsyncs its output)
  * what users do by hand in Python: safetensors.torch.load_file + gguf.GGUFWriter
    (+ fsync)
Peak RSS is per child process (os.wait4). Targets: convert >= 50 % of copy
speed; peak RSS <= largest tensor + 64 MB. Prints a table and writes
bench/results/convert.json.

usage: python3 bench/bench_convert.py [--gb 2.0] [--runs 3] [--hyquant ./hyquant]
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "bench", "work")
RESULTS = os.path.join(ROOT, "bench", "results")


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_checkpoint(gb, d=2048, V=32000, I=5632, H=16):
    """Cheems layout sized to ~gb GB of F32; returns (dir_st, dir_bin, bytes, largest tensor bytes)."""
    import torch
    from safetensors.torch import save_file

    per_layer = (4 * d * d + H * d + H + 3 * d * I + 4 * d) * 4
    emb = V * d * 4
    L = max(2, int(round((gb * 1e9 - emb) / per_layer)))
    tag = f"cheems_{L}L_d{d}"
    dst, dbin = os.path.join(WORK, tag + "_st"), os.path.join(WORK, tag + "_bin")
    cfg = {
        "model_type": "cheems", "vocab_size": V, "hidden_size": d, "intermediate_size": I, "num_hidden_layers": L,
        "num_attention_heads": H, "num_key_value_heads": H, "attn_layer_period": L, "attn_layer_offset": L - 1,
        "is_moe": False, "tie_word_embeddings": True, "max_position_embeddings": 4096,
    }
    marker = os.path.join(dbin, "pytorch_model.bin")
    if os.path.exists(os.path.join(dst, "model.safetensors")) and os.path.exists(marker):
        sd_bytes = os.path.getsize(os.path.join(dst, "model.safetensors"))
        return dst, dbin, sd_bytes, emb, L
    g = torch.Generator().manual_seed(0)
    P = d // H
    sd = {"model.word_embed.weight": torch.randn(V, d, generator=g), "model.final_layernorm.weight": torch.ones(d)}
    for i in range(L):
        p = f"model.layers.{i}."
        for n in ("pre_sequence_layernorm", "post_sequence_residual", "pre_state_layernorm", "post_state_residual"):
            sd[p + n + ".weight"] = torch.ones(d)
        if i == L - 1:
            a = p + "attn."
            sd[a + "q_proj.weight"] = torch.randn(H * P, d, generator=g)
            sd[a + "k_proj.weight"] = torch.randn(H * P, d, generator=g)
            sd[a + "v_proj.weight"] = torch.randn(H * P, d, generator=g)
            sd[a + "A"] = torch.zeros(H)
            sd[a + "dt_proj.weight"] = torch.randn(H, H * P, generator=g)
            sd[a + "o_proj.weight"] = torch.randn(d, H * P, generator=g)
        else:
            s = p + "ssd."
            for n in ("x_proj", "b_proj", "c_proj"):
                sd[s + n + ".weight"] = torch.randn(H * P, d, generator=g)
            sd[s + "dt_proj.weight"] = torch.randn(H, d, generator=g)
            sd[s + "A"] = -torch.rand(H, generator=g)
            sd[s + "out_proj.weight"] = torch.randn(d, H * P, generator=g)
        f = p + "feed_forward."
        sd[f + "gate_proj.weight"] = torch.randn(I, d, generator=g)
        sd[f + "up_proj.weight"] = torch.randn(I, d, generator=g)
        sd[f + "down_proj.weight"] = torch.randn(d, I, generator=g)
    for dd in (dst, dbin):
        shutil.rmtree(dd, ignore_errors=True)
        os.makedirs(dd)
        json.dump(cfg, open(os.path.join(dd, "config.json"), "w"), indent=1)
    save_file(sd, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    torch.save(sd, marker)
    largest = max(t.numel() * 4 for t in sd.values())
    return dst, dbin, os.path.getsize(os.path.join(dst, "model.safetensors")), largest, L


def run_child(argv, env=None):
    """(seconds, peak RSS bytes, rc, stderr tail) of one child process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return dt, ru.ru_maxrss * 1024, p.returncode, err.decode(errors="replace")[-300:]


PY_BASELINE = r"""
import os, sys
import gguf
from safetensors.torch import load_file
src, out = sys.argv[1], sys.argv[2]
sd = load_file(src)
w = gguf.GGUFWriter(out, "cheems")
for k, v in sd.items():
    w.add_tensor(k[-60:], v.numpy())
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
fd = os.open(out, os.O_RDONLY); os.fsync(fd); os.close(fd)
"""


def cp_fsync(src, dst):
    return ["sh", "-c", f'cp "$0" "$1" && sync "$1"', src, dst]


def stats(xs):
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gb", type=float, default=2.0, help="checkpoint size in GB (default 2.0)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hyquant", default=os.path.join(ROOT, "hyquant"))
    ap.add_argument("--no-python", action="store_true", help="skip the Python baseline")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(RESULTS, exist_ok=True)
    if a.generate_only:
        print(json.dumps(make_checkpoint(a.gb)))
        return
    t0 = time.time()
    # generated in a child so this process stays small: a forked child's peak
    # RSS (os.wait4) includes the parent's pages until exec
    gen = subprocess.run([sys.executable, os.path.abspath(__file__), "--generate-only", "--gb", str(a.gb)],
                         check=True, capture_output=True, text=True)
    dst, dbin, nbytes, largest, L = json.loads(gen.stdout.strip().splitlines()[-1])
    print(f"checkpoint: {L} layers, {nbytes / 1e9:.2f} GB safetensors, largest tensor {largest / 2**20:.0f} MiB "
          f"(generated/reused in {time.time() - t0:.0f} s)", flush=True)
    out = os.path.join(WORK, "out.gguf")
    cases = [
        ("hyquant convert (safetensors)", lambda: [a.hyquant, "convert", dst, "-o", out, "--quiet"]),
        ("hyquant convert (.bin)", lambda: [a.hyquant, "convert", dbin, "-o", out, "--quiet"]),
        ("cp + fsync (same bytes)", lambda: cp_fsync(os.path.join(dst, "model.safetensors"), out)),
    ]
    if not a.no_python:
        cases.append(("python safetensors+gguf", lambda: [sys.executable, "-c", PY_BASELINE,
                                                           os.path.join(dst, "model.safetensors"), out]))
    # runs interleaved round-robin, so disk/CPU noise from other work on the
    # machine is spread over all cases instead of hitting one
    samples = {name: {"t": [], "rss": [], "err": ""} for name, _ in cases}
    for _ in range(a.runs):
        for name, argv in cases:
            sm = samples[name]
            if sm["err"]:
                continue
            if os.path.exists(out):
                os.unlink(out)
            dt, peak, rc, err = run_child(argv())
            if rc != 0:
                sm["err"] = f"failed (exit {rc}): {err.strip().splitlines()[-1] if err.strip() else ''}"
                continue
            sm["t"].append(dt)
            sm["rss"].append(peak)
    if os.path.exists(out):
        os.unlink(out)
    rows = {}
    for name, _ in cases:
        sm = samples[name]
        if sm["t"] and not sm["err"]:
            ts, rss = sm["t"], sm["rss"]
            rows[name] = {"seconds": stats(ts), "gb_per_s": stats([nbytes / t / 1e9 for t in ts]),
                          "peak_rss_mib": stats([r / 2**20 for r in rss]), "runs": len(ts)}
        else:
            rows[name] = {"error": sm["err"] or "no runs"}
    print(f"{'case':34s} {'min / median / max s':>26s} {'GB/s (med)':>11s} {'peak RSS':>13s}")
    for name, _ in cases:
        r = rows[name]
        if "error" in r:
            print(f"  {name:32s} {r['error']}", flush=True)
        else:
            s = r["seconds"]
            print(f"  {name:32s} {s['min']:7.2f} / {s['median']:7.2f} / {s['max']:7.2f}  "
                  f"{r['gb_per_s']['median']:9.2f}   {r['peak_rss_mib']['max']:8.1f} MiB", flush=True)
    copy = rows.get("cp + fsync (same bytes)", {})
    conv = rows.get("hyquant convert (safetensors)", {})
    verdict = {}
    if "seconds" in copy and "seconds" in conv:
        ratio = copy["seconds"]["median"] / conv["seconds"]["median"]
        rss_limit = largest / 2**20 + 64
        verdict = {"speed_vs_copy": ratio, "speed_target": 0.5, "speed_ok": ratio >= 0.5,
                   "rss_limit_mib": rss_limit, "rss_ok": conv["peak_rss_mib"]["max"] <= rss_limit}
        print(f"convert speed = {100 * ratio:.0f} % of copy (target >= 50 %); peak RSS "
              f"{conv['peak_rss_mib']['max']:.0f} MiB vs limit {rss_limit:.0f} MiB (largest tensor + 64 MB)")
    res = {
        "date": datetime.date.today().isoformat(), "cpu": cpu_model(), "cores": os.cpu_count(),
        "checkpoint": {"layers": L, "bytes": nbytes, "largest_tensor_bytes": largest, "dtype": "F32"},
        "runs": a.runs, "results": rows, "verdict": verdict,
    }
    with open(os.path.join(RESULTS, "convert.json"), "w") as f:
        json.dump(res, f, indent=2)
    print("wrote bench/results/convert.json")


if __name__ == "__main__":
    main()
