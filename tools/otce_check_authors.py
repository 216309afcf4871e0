#!/usr/bin/env python3
"""Cross-check tools/otce_ref.py against the authors' own OTCE module (optional; not run by make).

    python3 tools/otce_check_authors.py /path/to/LoserCheems/OTCE [fixture names...]

Copies modeling_cheems_OTCE.py / configuration_cheems_OTCE.py from that
checkout (tested at 4abf186) into a temporary package, applies the minimal
patches listed in tools/otce_ref.py (PATCH 1-4; PATCH 5 is avoided by passing
output_router_logits=False) plus removal of the float32 casts, loads each
fixture of tests/fixtures/otce/ with strict state-dict loading, and prints the
max |difference| of the authors' float64 prefill logits and of their
token-by-token cached decode against tools/otce_ref.py.
Result at the time of writing (torch 2.15, transformers 5.23): <= 4e-14 on
every fixture, prefill and decode.
"""
import json
import os
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "otce")

PATCHES = [
    # transformers 5 removed these (PATCH 3)
    ("from transformers.pytorch_utils import is_torch_greater_or_equal_than_1_13\n", ""),
    ("from transformers.utils.import_utils import is_torch_fx_available\n", "is_torch_fx_available = lambda: False\n"),
    ("key_states.size[-2]", "key_states.shape[-2]"),  # PATCH 2
    ("if past_key_values and not past_key_values.has_previous_state:",  # PATCH 4
     "if past_key_values is not None and not past_key_values.has_previous_state:"),
    # PATCH 1: RoPE cache long enough for the absolute positions
    ("cos, sin = self.BC_rotary_emb(hidden_states, seq_len=seq_len)",
     "cos, sin = self.BC_rotary_emb(hidden_states, seq_len=int(position_ids.max()) + 1)"),
    ("cos, sin = self.QK_rotary_emb(value_states, seq_len=kv_seq_len)",
     "cos, sin = self.QK_rotary_emb(value_states, seq_len=int(position_ids.max()) + 1)"),
    # float32 casts removed so the model runs in float64
    ("variance = hidden_states.to(torch.float32).pow(2).mean(-1, keepdim=True)",
     "variance = hidden_states.pow(2).mean(-1, keepdim=True)"),
    ("routing_weights = F.softmax(router_logits, dim=1, dtype=torch.float)",
     "routing_weights = F.softmax(router_logits, dim=1)"),
    ("A = -torch.exp(self.A_log.float())", "A = -torch.exp(self.A_log)"),
    ("B[:, None, :, :].float()", "B[:, None, :, :]"),
    ("hidden_states[:, :, :, None].float()", "hidden_states[:, :, :, None]"),
    ("logits = logits.float()", ""),
]


def main():
    repo = sys.argv[1]
    names = sys.argv[2:] or sorted(n for n in os.listdir(FIX) if not n.endswith("-bin"))
    tmp = tempfile.mkdtemp()
    pkg = os.path.join(tmp, "otce_authors")
    os.makedirs(pkg)
    open(os.path.join(pkg, "__init__.py"), "w").close()
    for f in ("modeling_cheems_OTCE.py", "configuration_cheems_OTCE.py"):
        src = open(os.path.join(repo, f)).read() if os.path.exists(os.path.join(repo, f)) else \
            subprocess.check_output(["git", "-C", repo, "show", "HEAD:" + f], text=True)
        if f.startswith("modeling"):
            for a, b in PATCHES:
                assert a in src, "patch target not found: %r" % a
                src = src.replace(a, b)
        open(os.path.join(pkg, f), "w").write(src)
    sys.path[:0] = [tmp, HERE]
    from otce_authors.configuration_cheems_OTCE import CheemsOTCEConfig
    from otce_authors.modeling_cheems_OTCE import CheemsOTCEForCausalLM, HybridMambaAttentionDynamicCache
    from safetensors.torch import load_file
    import otce_ref as orf

    worst = 0.0
    for name in names:
        d = os.path.join(FIX, name)
        cj = json.load(open(os.path.join(d, "config.json")))
        for k in ("architectures", "model_type", "torch_dtype"):
            cj.pop(k, None)
        cj["use_mamba_kernels"] = False  # the CUDA kernels are not installed; slow_forward is the reference
        cfg = CheemsOTCEConfig(**cj)
        cfg._attn_implementation = "sdpa"
        m = CheemsOTCEForCausalLM(cfg)
        missing, unexpected = m.load_state_dict(load_file(os.path.join(d, "model.safetensors")), strict=False)
        assert not missing and not unexpected, (missing, unexpected)
        m = m.double().eval()
        toks = json.load(open(os.path.join(d, "ref.json")))["tokens"]
        with torch.no_grad():
            full = m(input_ids=torch.tensor([toks]), output_router_logits=False, use_cache=False).logits[0]
            ref = orf.load_pretrained(d, torch.float64)(torch.tensor(toks))
            cache = HybridMambaAttentionDynamicCache(cfg, 1, torch.float64)
            dec = torch.stack([m(input_ids=torch.tensor([[t]]), past_key_values=cache, use_cache=True,
                                 output_router_logits=False, cache_position=torch.tensor([i]),
                                 position_ids=torch.tensor([[i]])).logits[0, -1] for i, t in enumerate(toks)])
        a, b = float((full - ref).abs().max()), float((dec - ref).abs().max())
        worst = max(worst, a, b)
        print("%-16s authors prefill vs otce_ref %.2e   authors decode vs otce_ref %.2e" % (name, a, b))
    print("worst %.2e" % worst)
    sys.exit(0 if worst < 1e-10 else 1)


if __name__ == "__main__":
    main()
