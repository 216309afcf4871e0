#!/usr/bin/env python3
"""tools/quant_py_check.py DIR — compare hyquant's ggml blocks with gguf-py.

DIR holds, per type NAME, files written by `build/tests/test_quant --dump DIR`:
NAME.f32 (input floats), NAME.bin (our from_float_ref blocks), NAME.deq (our
to_float_ref output). For every type:
  - gguf.quants.dequantize(NAME.bin) must equal NAME.deq bit for bit;
  - where gguf-py implements quantization for the type (Q8_0, Q4_0, Q4_1,
    Q5_0, Q5_1, BF16, F16, F32), gguf.quants.quantize(NAME.f32) must equal
    NAME.bin byte for byte (gguf-py mirrors ggml's *_ref quantizers).
Prints one line per check and "N passed, N failed" last; exit 1 on failure.
"""
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import quants


def main() -> int:
    d = sys.argv[1]
    names = sorted(f[:-4] for f in os.listdir(d) if f.endswith(".bin"))
    passed = failed = 0

    def check(ok: bool, what: str) -> None:
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"ok    {what}")
        else:
            failed += 1
            print(f"FAIL  {what}")

    for name in names:
        qt = QT[name]
        x = np.fromfile(os.path.join(d, name + ".f32"), dtype=np.float32)
        ours = np.fromfile(os.path.join(d, name + ".bin"), dtype=np.uint8)
        deq = np.fromfile(os.path.join(d, name + ".deq"), dtype=np.float32)
        try:
            ref = quants.dequantize(ours.reshape(1, -1), qt).reshape(-1).astype(np.float32)
        except NotImplementedError:
            print(f"skip  {name}: gguf-py cannot dequantize it")
            ref = None
        if ref is not None:
            same = ref.shape == deq.shape and np.array_equal(ref.view(np.uint32), deq.view(np.uint32))
            detail = ""
            if not same and ref.shape == deq.shape:
                bad = np.nonzero(ref.view(np.uint32) != deq.view(np.uint32))[0]
                detail = f" ({len(bad)} differ, first at {bad[0]}: gguf {ref[bad[0]]!r} ours {deq[bad[0]]!r})"
            check(same, f"{name}: dequantize(our blocks) == our to_float_ref{detail}")
        try:
            q = quants.quantize(x.reshape(1, -1), qt)
        except NotImplementedError:
            print(f"skip  {name}: gguf-py has no quantizer for it")
            continue
        q = np.ascontiguousarray(q).view(np.uint8).reshape(-1)
        same = q.shape == ours.shape and np.array_equal(q, ours)
        detail = ""
        if not same and q.shape == ours.shape:
            bad = np.nonzero(q != ours)[0]
            detail = f" ({len(bad)} bytes differ, first at {bad[0]})"
        check(same, f"{name}: gguf quantize(x) == our from_float_ref bytes{detail}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
