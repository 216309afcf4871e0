#!/usr/bin/env python3
"""tools/make_fuzz_corpus.py — (re)builds the fuzz seed corpora fuzz/corpus/<harness>/
from the committed test fixtures plus a few small synthetic files.

    python3 tools/make_fuzz_corpus.py [--hyquant ./hyquant] [--out fuzz/corpus]

Seeds stay small (each < 64 KiB) so the committed corpora are a few hundred
KiB; libFuzzer grows its own working corpus from them (make fuzz keeps that
in build/fuzz/corpus/, not in git). Deterministic (fixed seeds) except for
the GGUF files converted by hyquant (byte-stable for a given hyquant).
Needs: python3 with numpy and gguf; torch only for the extra pickles (skipped
without it)."""
import argparse
import collections
import glob
import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
MAX_SEED = 64 * 1024


def put(out, harness, name, data):
    d = os.path.join(out, harness)
    os.makedirs(d, exist_ok=True)
    if len(data) > MAX_SEED:
        return
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def rd(p):
    with open(p, "rb") as f:
        return f.read()


def fixture_files(pattern):
    return sorted(glob.glob(os.path.join(FIX, pattern), recursive=True))


def short(p):
    return os.path.relpath(p, FIX).replace("/", "_")


def synthetic_ggufs():
    """Small GGUFs: every value type, string/nested arrays, every block type with ne0 = 256."""
    import gguf
    res = {}
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as td:
        p = os.path.join(td, "kv.gguf")
        w = gguf.GGUFWriter(p, "cheems")
        w.add_uint8("t.u8", 7); w.add_int8("t.i8", -7); w.add_uint16("t.u16", 700); w.add_int16("t.i16", -700)
        w.add_uint32("t.u32", 70000); w.add_int32("t.i32", -70000); w.add_float32("t.f32", 1.5)
        w.add_bool("t.bool", True); w.add_string("t.str", "h\u00e9llo"); w.add_uint64("t.u64", 1 << 40)
        w.add_int64("t.i64", -(1 << 40)); w.add_float64("t.f64", 2.25)
        w.add_array("t.arr_i32", [1, 2, 3]); w.add_array("t.arr_str", ["a", "bc", ""])
        w.add_array("t.arr_nested", [[1, 2], [3]])
        w.add_tensor("a.weight", rng.standard_normal((2, 8)).astype(np.float32))
        w.add_tensor("b.weight", rng.standard_normal((3,)).astype(np.float16))
        w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
        res["synthetic_kv.gguf"] = rd(p)
        Q = gguf.GGMLQuantizationType
        for group, types in (("legacy", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "IQ4_NL"]),
                             ("kquants", ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "BF16"])):
            p = os.path.join(td, group + ".gguf")
            w = gguf.GGUFWriter(p, "cheems")
            w.add_uint32("general.alignment", 64)
            for tn in types:
                qt = Q[tn]
                blck, tsz = gguf.GGML_QUANT_SIZES[qt]
                raw = rng.integers(0, 256, size=(2, (256 // blck) * tsz), dtype=np.uint8)
                w.add_tensor("blk.0." + tn.lower() + ".weight", raw, raw_dtype=qt)  # byte shape
            w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
            res["synthetic_%s.gguf" % group] = rd(p)
    return res


def synthetic_imatrices():
    import gguf
    res = {}
    rng = np.random.default_rng(11)
    with tempfile.TemporaryDirectory() as td:
        for name, full in (("plain", False), ("full_hessian", True)):
            p = os.path.join(td, name + ".imatrix")
            w = gguf.GGUFWriter(p, arch="", endianess=gguf.GGUFEndian.LITTLE)
            w.add_string("general.type", "imatrix")
            w.add_array("imatrix.datasets", ["calib.txt"])
            w.add_uint32("imatrix.chunk_count", 2)
            w.add_uint32("imatrix.chunk_size", 32)
            for wn, ncols, nmat in (("blk.0.attn_q.weight", 8, 1), ("blk.0.ffn_expert_down.weight", 8, 3),
                                    ("output.weight", 16, 1)):
                s2 = (rng.random((nmat, ncols)) * 10).astype(np.float32)
                cnt = np.full((nmat, 1), 32.0, dtype=np.float32)
                if nmat == 3:
                    cnt[1, 0] = 0.0
                w.add_tensor(wn + ".in_sum2", s2)
                w.add_tensor(wn + ".counts", cnt)
                if full and nmat == 1:
                    x = rng.standard_normal((ncols, ncols)).astype(np.float32)
                    w.add_tensor(wn + ".in_xtx", (x @ x.T).astype(np.float32))
            w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
            res["synthetic_%s.imatrix" % name] = rd(p)
    return res


def extra_pickles():
    od = collections.OrderedDict()
    od["a"] = 1
    od["b"] = (2, 3.5, "x" * 3, b"\x00\x01", None, True, False, [1, 2, {"k": "v"}], 1 << 40, -5)
    seeds = {"plain_containers.pkl": pickle.dumps(od, protocol=2),
             "shared_memo.pkl": pickle.dumps([od, od, (od,)], protocol=2),
             # refused globals / opcodes: the VM must name them and stop
             "global_os_system.pkl": b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.",
             "global_eval.pkl": b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.",
             "proto4_frame.pkl": pickle.dumps({"a": [1, 2]}, protocol=4)}
    return seeds


def torch_zip_deflated():
    """A torch-layout zip whose records are deflated (torch never writes this; the
    reader accepts method 8), built from the committed bare_tensor.pt."""
    src = os.path.join(FIX, "torch", "bare_tensor.pt")
    zin = zipfile.ZipFile(src)
    bio = io.BytesIO()
    with zipfile.ZipFile(bio, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    return bio.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hyquant", default=os.path.join(ROOT, "hyquant"))
    ap.add_argument("--out", default=os.path.join(ROOT, "fuzz", "corpus"))
    a = ap.parse_args()
    out = a.out

    # zip / torch / pickle
    torch_files = fixture_files("torch/*.pt") + fixture_files("torch/*.ckpt") + \
        fixture_files("formats/torch_legacy/*.pt") + fixture_files("formats/torch_zip/*.bin") + \
        fixture_files("formats/sharded_torch/*.bin") + fixture_files("convert/doge_old_pk_bin/*.bin")
    for p in torch_files:
        data = rd(p)
        put(out, "torch", short(p), data)
        if data[:4] == b"PK\x03\x04":
            put(out, "zip", short(p), data)
            z = zipfile.ZipFile(p)
            for n in z.namelist():
                if n.endswith("data.pkl"):
                    put(out, "pickle", short(p) + ".data.pkl", z.read(n))
        else:
            put(out, "pickle", short(p) + ".legacy", data)
    dz = torch_zip_deflated()
    put(out, "zip", "deflated_bare_tensor.zip", dz)
    put(out, "torch", "deflated_bare_tensor.pt", dz)
    for k, v in extra_pickles().items():
        put(out, "pickle", k, v)

    # safetensors
    for p in fixture_files("formats/**/*.safetensors") + fixture_files("convert/**/*.safetensors"):
        put(out, "safetensors", short(p), rd(p))

    # sharded index (first byte: 0 safetensors shards, 1 torch shards)
    put(out, "ckpt_index", "sharded_st", b"\x00" + rd(os.path.join(FIX, "formats/sharded/model.safetensors.index.json")))
    put(out, "ckpt_index", "sharded_torch", b"\x01" + rd(os.path.join(FIX, "formats/sharded_torch/pytorch_model.bin.index.json")))

    # config.json
    seen = set()
    for p in fixture_files("**/config.json"):
        d = rd(p)
        h = hashlib.sha1(d).hexdigest()[:8]
        if h not in seen:
            seen.add(h)
            put(out, "config", short(p), d)

    # tokenizers
    tok = [p for p in fixture_files("**/tokenizer.json") + fixture_files("tokenizer/*.json")
           if not p.endswith(".expected.json")]
    seen = set()
    for p in tok:
        d = rd(p)
        h = hashlib.sha1(d).hexdigest()[:8]
        if h not in seen:
            seen.add(h)
            put(out, "tokenizer_load", short(p), d)
    prose = rd(os.path.join(FIX, "tokenizer/prose.txt"))
    stress = rd(os.path.join(FIX, "tokenizer/stress.txt"))
    for i in range(12):  # fuzz_tokenize.c: first byte % 12 picks the tokenizer
        put(out, "tokenize", "t%02d_prose" % i, bytes([i]) + prose[300 * i: 300 * i + 300])
        put(out, "tokenize", "t%02d_stress" % i, bytes([i]) + stress[200 * i: 200 * i + 200])

    # gguf + imatrix
    for k, v in synthetic_ggufs().items():
        put(out, "gguf", k, v)
    for k, v in synthetic_imatrices().items():
        put(out, "imatrix", k, v)
    if os.access(a.hyquant, os.X_OK):
        with tempfile.TemporaryDirectory() as td:
            for m in ("convert/cheems_apos", "convert/doge_old_pk"):
                g = os.path.join(td, os.path.basename(m) + ".gguf")
                subprocess.run([a.hyquant, "convert", os.path.join(FIX, m), "-o", g, "-q"], check=True)
                put(out, "gguf", os.path.basename(g), rd(g))
                put(out, "model", os.path.basename(g), rd(g))
                q = g.replace(".gguf", "_q8_0.gguf")
                subprocess.run([a.hyquant, "quantize", g, q, "-t", "Q8_0", "-q"], check=True,
                               stdout=subprocess.DEVNULL)
                put(out, "gguf", os.path.basename(q), rd(q))
                put(out, "model", os.path.basename(q), rd(q))
    else:
        print("note: %s not built; GGUF seeds from hyquant skipped" % a.hyquant, file=sys.stderr)
    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(out, "*", "*")))
    print("corpus: %d files, %.0f KiB" % (len(glob.glob(os.path.join(out, "*", "*"))), total / 1024))


if __name__ == "__main__":
    main()
