#!/usr/bin/env python3
"""Score the chunks of a `hyquant perplexity --save-logits` file with the
float64 OTCE reference (tools/otce_ref.py) and compare the perplexity.

    otce_ppl_check.py FIXTURE_DIR LOGITS_FILE [--rtol 1e-5]

The file holds the evaluated tokens (BOS substituted) and the C runtime's
nll_sum (runtime/logits_file.h); each chunk is one prefill here, as in
`hyquant perplexity`, and the rows first .. n_ctx-2 predict the next token.
Prints "ppl C REF rel" and exits 1 when rel > rtol."""
import math
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import otce_ref as orf  # noqa: E402


def main():
    args = sys.argv[1:]
    rtol = 1e-5
    if "--rtol" in args:
        i = args.index("--rtol")
        rtol = float(args[i + 1])
        del args[i:i + 2]
    fixture, path = args
    with open(path, "rb") as f:
        hdr = f.read(96)
        if hdr[:8] != b"HQLOGITS":
            sys.exit(f"{path}: not a --save-logits file")
        n_vocab, n_ctx, n_chunks, first, n_scored = struct.unpack_from("<5I", hdr, 12)
        (nll_c,) = struct.unpack_from("<d", hdr, 64)
        toks = struct.unpack(f"<{n_chunks * n_ctx}i", f.read(4 * n_chunks * n_ctx))
    torch.set_num_threads(1)
    m = orf.load_pretrained(fixture, dtype=torch.float64)
    nll = 0.0
    with torch.no_grad():
        for k in range(n_chunks):
            ids = torch.tensor(toks[k * n_ctx:(k + 1) * n_ctx])
            lp = torch.log_softmax(m(ids), dim=-1)
            for j in range(first, n_ctx - 1):
                nll -= float(lp[j, ids[j + 1]])
    n = n_chunks * n_scored
    p_c, p_r = math.exp(nll_c / n), math.exp(nll / n)
    rel = abs(p_c - p_r) / p_r
    print(f"ppl {p_c:.9g} {p_r:.9g} {rel:.3g}")
    sys.exit(0 if rel <= rtol else 1)


if __name__ == "__main__":
    main()
