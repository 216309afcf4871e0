#!/usr/bin/env python3
"""Differential fuzzing of the C tokenizer against HF `tokenizers`.

Generates seeded random strings (tricky atoms from make_tokenizer_fixtures.py
plus random BMP / supplementary-plane characters), tokenizes them with every
tokenizer under tests/fixtures/tokenizer/ (and the bundled model's) through
`build/tests/test_tokenizer --batch`, and compares with HF encode
(add_special_tokens=False). Not part of `make test` (needs Python).

  make build/tests/test_tokenizer && python3 tools/tokenizer_fuzz.py [--seed N] [--count N]
"""
import argparse
import glob
import os
import random
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from make_tokenizer_fixtures import RANDOM_ATOMS  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=4000)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "tests", "test_tokenizer"))
    a = ap.parse_args()
    rng = random.Random(a.seed)
    rand_chars = [chr(rng.randrange(0x20, 0x3000)) for _ in range(200)]
    rand_chars += [chr(rng.randrange(0x10000, 0x32000)) for _ in range(50)]
    atoms = RANDOM_ATOMS + rand_chars + ["<", "|", ">", "<|", "\u0085", "\x0b", "\x0c", "\u2029", "\u205f", " \n", " \r\n "]
    strs = ["".join(rng.choice(atoms) for _ in range(rng.randint(1, 25))) for _ in range(a.count)]
    strs = [s for s in strs if "\x1e" not in s and not any(0xD800 <= ord(c) < 0xE000 for c in s)]
    toks = [f for f in sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/tokenizer/*.json"))) if not f.endswith(".expected.json")]
    model = os.path.join(ROOT, "models/cheems-tiny/tokenizer.json")
    if os.path.exists(model):
        toks.append(model)
    total_bad = 0
    with tempfile.NamedTemporaryFile(suffix=".txt") as tf:
        tf.write("\x1e".join(strs).encode("utf-8"))
        tf.flush()
        for f in toks:
            tok = Tokenizer.from_file(f)
            out = subprocess.run([a.bin, "--batch", f, tf.name], capture_output=True, text=True, cwd=ROOT).stdout.split("\n")
            bad = 0
            for s, o in zip(strs, out):
                want = tok.encode(s, add_special_tokens=False).ids
                got = None if o.startswith("ERR") else [int(x) for x in o.split()]
                if got != want:
                    bad += 1
                    if bad <= 3:
                        print(f"  {os.path.relpath(f, ROOT)}: {s!r}: got {got if got is not None else o} want {want}")
            print(f"{os.path.relpath(f, ROOT)}: {len(strs)} strings, {bad} mismatches")
            total_bad += bad
    sys.exit(1 if total_bad else 0)


if __name__ == "__main__":
    main()
