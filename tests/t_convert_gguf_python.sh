#!/usr/bin/env bash
# tests/t_convert_gguf_python.sh — the reference Python `gguf` reader loads
# files written by `hyquant convert`, and every tensor equals the source
# checkpoint loaded independently with safetensors/numpy (name mapping
# re-derived here from docs/gguf-schema.md). Skips cleanly without Python.
set -u
cd "$(dirname "$0")/.."
HQ=${HYQUANT:-./hyquant}
if ! command -v python3 >/dev/null 2>&1 ||
   ! python3 -c 'import gguf, numpy, safetensors' >/dev/null 2>&1; then
  echo "skip: python3 with gguf, numpy and safetensors not available"
  echo "0 passed, 0 failed"
  exit 0
fi
T=$(mktemp -d /tmp/hq_t_cgp.XXXXXX)
trap 'rm -rf "$T"' EXIT
FX=tests/fixtures/convert
fail=0
for spec in cheems_alog:f32 doge_old_pk:f32 doge_old_pk:f16 doge_old_pk_bf16:f32 cheems_apos:f32; do
  fx=${spec%%:*}; ot=${spec##*:}
  if ! "$HQ" convert "$FX/$fx" -o "$T/$fx.$ot.gguf" --outtype "$ot" -q; then
    echo "FAIL: convert $fx" >&2; fail=$((fail + 1))
  fi
done
python3 - "$T" "$FX" <<'EOF'
import glob, json, os, re, sys
import numpy as np
import gguf
from safetensors.numpy import load_file
from safetensors import safe_open

tmp, fx = sys.argv[1], sys.argv[2]
passed = failed = 0

def check(cond, msg):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", msg, file=sys.stderr)

RULES = [  # (source regex, GGUF name) per docs/gguf-schema.md
    (r"model\.(word_embed|embed_tokens)\.weight", "token_embd.weight"),
    (r"model\.(final_layernorm|norm)\.weight", "output_norm.weight"),
    (r"lm_head\.weight", "output.weight"),
    (r"model\.layers\.(\d+)\.(pre_sequence_layernorm|pre_layernorm|input_layernorm)\.weight", "blk.{0}.attn_norm.weight"),
    (r"model\.layers\.(\d+)\.(post_sequence_residual|pre_residual)\.weight", "blk.{0}.attn_residual.weight"),
    (r"model\.layers\.(\d+)\.(pre_state_layernorm|post_layernorm)\.weight", "blk.{0}.ffn_norm.weight"),
    (r"model\.layers\.(\d+)\.(post_state_residual|post_residual)\.weight", "blk.{0}.ffn_residual.weight"),
    (r"model\.layers\.(\d+)\.(?:attn|self_attn)\.q_proj\.weight", "blk.{0}.attn_q.weight"),
    (r"model\.layers\.(\d+)\.(?:attn|self_attn)\.k_proj\.weight", "blk.{0}.attn_k.weight"),
    (r"model\.layers\.(\d+)\.(?:attn|self_attn)\.v_proj\.weight", "blk.{0}.attn_v.weight"),
    (r"model\.layers\.(\d+)\.(?:attn|self_attn)\.o_proj\.weight", "blk.{0}.attn_output.weight"),
    (r"model\.layers\.(\d+)\.(?:attn|self_attn)\.dt_proj\.weight", "blk.{0}.attn_dt.weight"),
    (r"model\.layers\.(\d+)\.(?:attn|self_attn)\.A", "blk.{0}.attn_a"),
    (r"model\.layers\.(\d+)\.ssd\.x_proj\.weight", "blk.{0}.ssm_x.weight"),
    (r"model\.layers\.(\d+)\.ssd\.b_proj\.weight", "blk.{0}.ssm_b.weight"),
    (r"model\.layers\.(\d+)\.ssd\.c_proj\.weight", "blk.{0}.ssm_c.weight"),
    (r"model\.layers\.(\d+)\.ssd\.dt_proj\.weight", "blk.{0}.ssm_dt.weight"),
    (r"model\.layers\.(\d+)\.ssd\.dt_bias", "blk.{0}.ssm_dt.bias"),
    (r"model\.layers\.(\d+)\.ssd\.A(_log)?", "blk.{0}.ssm_a"),
    (r"model\.layers\.(\d+)\.ssd\.D", "blk.{0}.ssm_d"),
    (r"model\.layers\.(\d+)\.ssd\.out_proj\.weight", "blk.{0}.ssm_out.weight"),
    (r"model\.layers\.(\d+)\.(?:feed_forward|mlp)\.gate_proj\.weight", "blk.{0}.ffn_gate.weight"),
    (r"model\.layers\.(\d+)\.(?:feed_forward|mlp)\.up_proj\.weight", "blk.{0}.ffn_up.weight"),
    (r"model\.layers\.(\d+)\.(?:feed_forward|mlp)\.down_proj\.weight", "blk.{0}.ffn_down.weight"),
    (r"model\.layers\.(\d+)\.(?:feed_forward|mlp)\.queries\.weight", "blk.{0}.ffn_pk_query.weight"),
    (r"model\.layers\.(\d+)\.(?:feed_forward|mlp)\.keys", "blk.{0}.ffn_pk_keys"),
    (r"model\.layers\.(\d+)\.(?:feed_forward|mlp)\.router_gate\.weight", "blk.{0}.ffn_gate_inp.weight"),
    (r"model\.layers\.(\d+)\.(?:feed_forward|mlp)\.down_embed\.weight", "blk.{0}.ffn_expert_down.weight"),
    (r"model\.layers\.(\d+)\.(?:feed_forward|mlp)\.up_embed\.weight", "blk.{0}.ffn_expert_up.weight"),
]

def gguf_name(src):
    for rx, out in RULES:
        m = re.fullmatch(rx, src)
        if m:
            return out.format(m.group(1) if m.groups() else "")
    return None

def load_source(d):
    sd = {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        with safe_open(f, "pt") as h:  # torch handles bf16
            for k in h.keys():
                sd[k] = h.get_tensor(k).float().numpy()
    return sd

for path in sorted(glob.glob(os.path.join(tmp, "*.gguf"))):
    base = os.path.basename(path)
    fxname, ot = base.split(".")[0], base.split(".")[1]
    try:
        r = gguf.GGUFReader(path)
    except Exception as e:  # noqa: BLE001
        check(False, f"{base}: gguf.GGUFReader failed: {e}")
        continue
    check(True, "load")
    src = load_source(os.path.join(fx, fxname))
    cfg = json.load(open(os.path.join(fx, fxname, "config.json")))
    arch = r.fields["general.architecture"].contents()
    check(arch in ("cheems", "doge"), f"{base}: architecture {arch}")
    check(r.fields[f"{arch}.block_count"].contents() == cfg["num_hidden_layers"], f"{base}: block_count")
    check(r.fields[f"{arch}.embedding_length"].contents() == cfg["hidden_size"], f"{base}: embedding_length")
    check(len(r.fields[f"{arch}.layer_mixers"].contents()) == cfg["num_hidden_layers"], f"{base}: layer_mixers")
    check(r.fields["hyquant.config_json"].contents() == open(os.path.join(fx, fxname, "config.json")).read(),
          f"{base}: config_json verbatim")
    tensors = {t.name: t for t in r.tensors}
    tied = "output.weight" not in tensors
    want = {}
    for k, v in src.items():
        if k.startswith("model.rotary_emb."):
            continue
        g = gguf_name(k)
        check(g is not None, f"{base}: no mapping for {k}")
        if g == "output.weight" and tied:
            check(np.array_equal(v, src.get("model.word_embed.weight", src.get("model.embed_tokens.weight"))),
                  f"{base}: dropped lm_head is not the embedding")
            continue
        want[g] = -np.exp(v) if k.endswith(".A_log") else v
    check(set(want) == set(tensors), f"{base}: tensor sets differ: {sorted(set(want) ^ set(tensors))[:5]}")
    for name, ref in want.items():
        t = tensors.get(name)
        if t is None:
            continue
        data = np.asarray(t.data)
        if t.tensor_type == gguf.GGMLQuantizationType.F16:
            exp = ref.astype(np.float16)
            ok = data.shape == exp.shape and np.array_equal(data.view(np.uint16), exp.view(np.uint16))
        else:
            check(t.tensor_type == gguf.GGMLQuantizationType.F32, f"{base}: {name} type {t.tensor_type.name}")
            if name.endswith("ssm_a") and fxname == "cheems_alog":
                ok = data.shape == ref.shape and np.allclose(data, ref, rtol=1e-6, atol=0)  # expf vs np.exp: 1 ulp
            else:
                ok = data.shape == ref.shape and np.array_equal(data.view(np.uint32), ref.astype(np.float32).view(np.uint32))
        check(ok, f"{base}: {name} differs from the source (shape {data.shape} vs {ref.shape})")
        if ot == "f16" and ref.ndim == 1:
            check(t.tensor_type == gguf.GGMLQuantizationType.F32, f"{base}: 1-D {name} not F32")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
EOF
rc=$?
if [ $fail -ne 0 ]; then echo "0 passed, $fail failed"; exit 1; fi
exit $rc
