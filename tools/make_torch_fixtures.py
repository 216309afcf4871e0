#!/usr/bin/env python3
"""tools/make_torch_fixtures.py — writes the torch checkpoint fixtures that
tests/test_torch.c reads, plus the values torch itself reports for them.

    python3 tools/make_torch_fixtures.py [--out tests/fixtures/torch]

Rerunnable and deterministic in content (fixed seed); byte-exact output may
differ between torch versions (serialization ids, record order), which is fine:
the test only compares tensor values and metadata against expected.txt, which
this script regenerates from the files it just wrote (torch.load(weights_only=
True) reads them back, so the expectations are torch's own reading).

expected.txt, one line per item, space separated:
    file <name> <n_tensors>
    tensor <name> <DTYPE> <ndim> <shape...> <stride...> <offset> <group> <n> <values...>
`group` numbers the distinct storages inside one file (tied weights / views
share one); values are the tensor's elements in row-major order, printed with
repr() of the float64 (exact for every dtype used here).
"""
import argparse
import collections
import os

import torch

DT = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}


def vals(t):
    return [repr(float(v)) for v in t.detach().reshape(-1).to(torch.float64).tolist()]


def flatten_state(obj):
    """Mirror of fmt_torch_parse's container rule (for the expectations)."""
    def is_t(v):
        return isinstance(v, torch.Tensor)
    def holds(v):
        return isinstance(v, dict) and (any(is_t(x) for x in v.values()) or any(holds(x) for x in v.values()))
    while True:
        if any(is_t(v) for v in obj.values()):
            return [(k, v) for k, v in obj.items() if is_t(v)]
        for key in ("state_dict", "model_state_dict", "model", "module"):
            if key in obj and holds(obj[key]):
                obj = obj[key]
                break
        else:
            cands = [v for v in obj.values() if holds(v)]
            assert len(cands) == 1
            obj = cands[0]


def describe(path, out):
    obj = torch.load(path, weights_only=True)
    items = flatten_state(obj)
    groups = {}
    out.append(f"file {os.path.basename(path)} {len(items)}")
    for name, t in items:
        ptr = t.untyped_storage().data_ptr()
        g = groups.setdefault(ptr, len(groups))
        shape = list(t.shape)
        stride = list(t.stride())
        v = vals(t)
        out.append(" ".join(["tensor", name, DT[t.dtype], str(t.dim())] + [str(s) for s in shape] +
                            [str(s) for s in stride] + [str(t.storage_offset()), str(g), str(len(v))] + v))


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(5, 3)
        self.proj = torch.nn.Linear(3, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.head = torch.nn.Linear(3, 5, bias=False)
        self.head.weight = self.embed.weight  # tied: separate REDUCEs sharing one storage key
        self.register_buffer("steps", torch.tensor(7, dtype=torch.int64))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/torch")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(1234)
    P = lambda n: os.path.join(args.out, n)
    written = []

    # 1. several dtypes, views, transpose, tied, scalar, expand, empty, Parameter
    base = torch.randn(4, 3)
    sd = {
        "f32": torch.randn(2, 3),
        "f16": torch.randn(5).to(torch.float16),
        "bf16": torch.randn(3, 2).to(torch.bfloat16),
        "f64": torch.randn(2, 2, dtype=torch.float64),
        "i64": torch.tensor([-3, 0, 5, 1 << 40], dtype=torch.int64),
        "i32": torch.tensor([-7, 9], dtype=torch.int32),
        "i16": torch.tensor([-300, 300], dtype=torch.int16),
        "i8": torch.tensor([-5, 6], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "base": base,
        "view": base[1:3],            # storage offset 3
        "transposed": base.t(),       # non-contiguous, stride (1, 3)
        "scalar": torch.tensor(2.5),  # 0-dim
        "expanded": torch.arange(3, dtype=torch.float32).expand(2, 3),  # stride 0
        "empty": torch.zeros(0, 3),
        "param": torch.nn.Parameter(torch.randn(2, 2)),
        "rank5": torch.randn(1, 2, 1, 2, 2),
    }
    sd["tied"] = sd["f32"]  # the same Python object: one REDUCE, a BINGET
    torch.save(sd, P("dtypes.pt"))
    written.append("dtypes.pt")

    # 2. nn.Module.state_dict(): OrderedDict + _metadata via BUILD, tied weights
    m = Tiny()
    torch.save(m.state_dict(), P("module.pt"))
    written.append("module.pt")

    # 3. nested containers
    torch.save({"state_dict": m.state_dict(), "epoch": 3}, P("nested.pt"))
    written.append("nested.pt")
    torch.save({"model": {"w": torch.randn(2, 2)}, "step": 10, "note": "x"}, P("model_key.pt"))
    written.append("model_key.pt")

    # 4. Lightning-like checkpoint with non-tensor entries and optimizer state
    ck = {
        "epoch": 6,
        "global_step": 1 << 33,  # LONG1
        "pytorch-lightning_version": "1.4.2",
        "state_dict": collections.OrderedDict((k, v) for k, v in m.state_dict().items()),
        "optimizer_states": [{"state": {0: {"exp_avg": torch.ones(3), "step": 4}},
                              "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99), "params": [0]}]}],
        "lr_schedulers": [],
        "hyper_parameters": {"lr": 1e-3, "flag": True, "none": None, "neg": -5, "huge": -(1 << 62)},
        "callbacks": {"ModelCheckpoint": {"best": 0.25, "path": "/tmp/x"}},
    }
    torch.save(ck, P("lightning.ckpt"))
    written.append("lightning.ckpt")

    # 5. legacy (pre-1.6) stream
    lg = torch.randn(3, 4)
    torch.save({"w": lg, "w_t": lg.t(), "row": lg[1], "idx": torch.tensor([1, 2, 3]),
                "h": torch.randn(3).to(torch.float16), "nested_meta": {"a": 1}},
               P("legacy.pt"), _use_new_zipfile_serialization=False)
    written.append("legacy.pt")

    # 6. dtype we do not read (uint16 goes through _rebuild_tensor_v3)
    torch.save({"u16": torch.tensor([1, 2], dtype=torch.uint16)}, P("uint16.pt"))

    # 7. a bare tensor (no names)
    torch.save(torch.ones(2), P("bare_tensor.pt"))

    out = []
    for n in written:
        describe(P(n), out)
    with open(P("expected.txt"), "w") as f:
        f.write("\n".join(out) + "\n")
    print("wrote", ", ".join(written + ["uint16.pt", "bare_tensor.pt", "expected.txt"]), "in", args.out)


if __name__ == "__main__":
    main()
