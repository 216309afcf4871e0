#!/usr/bin/env python3
"""Checks a GGUF written by hyquant's writer with the reference Python reader
(gguf.GGUFReader from ggml-org's gguf-py). Usage: gguf_py_check.py sample FILE

'sample' = the file from `build/tests/test_gguf --write-sample FILE`; the
expected KVs and tensor values below are the definitions in tests/test_gguf.c
(build_sample / sample_tensor), recomputed here with numpy.
Prints "N passed, N failed" and exits non-zero on any failure."""
import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType, GGUFValueType

passed = failed = 0


def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", msg, file=sys.stderr)


def field(r, key):
    f = r.fields.get(key)
    check(f is not None, f"key {key} present")
    return f


def check_sample(path):
    r = GGUFReader(path)
    V = GGUFValueType
    want = [
        ("general.architecture", [V.STRING], "hyquant-test"),
        ("general.alignment", [V.UINT32], 32),
        ("test.u32", [V.UINT32], 123456789),
        ("test.i32", [V.INT32], -42),
        ("test.u64", [V.UINT64], 2 ** 40 + 7),
        ("test.f32", [V.FLOAT32], 0.15625),
        ("test.bool", [V.BOOL], True),
        ("test.str", [V.STRING], "h\u00e9llo w\u00f6rld"),
        ("test.arr_i32", [V.ARRAY, V.INT32], [1, -2, 3, -2 ** 31]),
        ("test.arr_f32", [V.ARRAY, V.FLOAT32], [float(np.float32(x)) for x in (0.5, -1.25, 1e-30)]),
        ("test.arr_bool", [V.ARRAY, V.BOOL], [True, False, True]),
        ("test.arr_str", [V.ARRAY, V.STRING], ["a", "bc", "", "h\u00e9llo"]),
        ("test.arr_empty", [V.ARRAY], []),
    ]
    keys = [k for k in r.fields if not k.startswith("GGUF.")]
    check(keys == [w[0] for w in want], f"keys in order: {keys}")
    for key, types, value in want:
        f = field(r, key)
        if f is None:
            continue
        check(list(f.types[: len(types)]) == types, f"{key}: types {f.types} want {types}")
        got = f.contents()
        if isinstance(value, list):
            got = [x.item() if hasattr(x, "item") else x for x in got]
        elif hasattr(got, "item"):
            got = got.item()
        check(got == value, f"{key}: {got!r} want {value!r}")
    check(r.alignment == 32, f"alignment {r.alignment}")

    T = GGMLQuantizationType
    t = {x.name: x for x in r.tensors}
    check(list(t) == ["t0.f32", "t1.f16", "t2.q8_0", "t3.bf16"], f"tensor names {list(t)}")
    exp = {
        "t0.f32": (T.F32, [5, 3], (np.arange(15, dtype=np.float32) * 0.5 - 3).reshape(3, 5)),
        "t1.f16": (T.F16, [8, 2], ((np.arange(16, dtype=np.float32) - 7) * 0.25).astype(np.float16).reshape(2, 8)),
        "t2.q8_0": (T.Q8_0, [64, 2], ((np.arange(136) * 7 + 2) % 251).astype(np.uint8)),
        "t3.bf16": (T.BF16, [4, 3, 2], (np.arange(24, dtype=np.float32) - 12).reshape(2, 3, 4)),
    }
    for name, (typ, shape, values) in exp.items():
        x = t.get(name)
        check(x is not None, f"tensor {name} present")
        if x is None:
            continue
        check(x.tensor_type == typ, f"{name}: type {x.tensor_type!r}")
        check([int(v) for v in x.shape] == shape, f"{name}: shape {list(x.shape)} want {shape}")
        check(x.data_offset % 32 == 0, f"{name}: data offset {x.data_offset} aligned")
        d = np.asarray(x.data)
        if typ == T.Q8_0:
            got = d.reshape(-1).view(np.uint8)
        elif typ == T.BF16:
            got = (d.reshape(-1).view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(values.shape)
        else:
            got = d.reshape(values.shape)
        check(got.dtype == values.dtype and np.array_equal(got, values), f"{name}: values {got} want {values}")


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "sample":
        print(__doc__, file=sys.stderr)
        return 2
    check_sample(sys.argv[2])
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
