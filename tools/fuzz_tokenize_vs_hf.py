#!/usr/bin/env python3
"""tools/fuzz_tokenize_vs_hf.py — differential check of fuzz-found tokenizer
inputs: every file of the given fuzz_tokenize corpora (first byte picks the
tokenizer exactly as fuzz/fuzz_tokenize.c does, the rest is the text) that is
valid UTF-8 is tokenized by the C tokenizer (build/tests/test_tokenizer --batch)
and by HF `tokenizers` (encode, add_special_tokens=False); the ids must agree.
Not part of `make test` (needs Python).

  make build/tests/test_tokenizer && python3 tools/fuzz_tokenize_vs_hf.py \
      fuzz/corpus/tokenize build/fuzz/corpus/tokenize fuzz/regressions/tokenize
"""
import collections
import os
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the table of fuzz/fuzz_tokenize.c, in order
TOKS = ["tests/fixtures/tokenizer/gpt2.json", "tests/fixtures/tokenizer/llama3.json",
        "tests/fixtures/tokenizer/qwen2.json", "tests/fixtures/tokenizer/sp.json",
        "tests/fixtures/tokenizer/sp_meta.json", "tests/fixtures/tokenizer/sp_meta_split.json",
        "tests/fixtures/tokenizer/sp_unk.json", "tests/fixtures/tokenizer/behaviors1.json",
        "tests/fixtures/tokenizer/behaviors2.json", "tests/fixtures/tokenizer/behaviors3.json",
        "tests/fixtures/tokenizer/gpt2_prefix.json", "models/cheems-tiny/tokenizer.json"]


def main():
    dirs = sys.argv[1:] or [os.path.join(ROOT, "fuzz/corpus/tokenize")]
    groups = collections.defaultdict(list)
    skipped = 0
    for d in dirs:
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            data = open(os.path.join(d, name), "rb").read()
            if not data:
                continue
            try:
                text = data[1:].decode("utf-8")
            except UnicodeDecodeError:
                skipped += 1
                continue
            if "\x1e" in text:  # the --batch separator
                skipped += 1
                continue
            groups[data[0] % len(TOKS)].append(text)
    bad_total = n_total = 0
    for idx, texts in sorted(groups.items()):
        path = os.path.join(ROOT, TOKS[idx])
        tok = Tokenizer.from_file(path)
        with tempfile.NamedTemporaryFile(suffix=".txt") as tf:
            tf.write("\x1e".join(texts).encode("utf-8"))
            tf.flush()
            out = subprocess.run([os.path.join(ROOT, "build/tests/test_tokenizer"), "--batch", path, tf.name],
                                 capture_output=True, text=True, cwd=ROOT).stdout.split("\n")
        bad = 0
        for s, o in zip(texts, out):
            want = tok.encode(s, add_special_tokens=False).ids
            got = None if o.startswith("ERR") else [int(x) for x in o.split()]
            if got != want:
                bad += 1
                if bad <= 3:
                    print("  %s: %r: got %s want %s" % (TOKS[idx], s[:80], got if got is not None else o, want[:20]))
        print("%s: %d texts, %d mismatches" % (TOKS[idx], len(texts), bad))
        bad_total += bad
        n_total += len(texts)
    print("%d texts compared (%d skipped: invalid UTF-8 or separator), %d mismatches" % (n_total, skipped, bad_total))
    sys.exit(1 if bad_total else 0)


if __name__ == "__main__":
    main()
