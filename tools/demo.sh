#!/usr/bin/env bash
# tools/demo.sh — `make demo`: the main job on the bundled model.
# convert -> inspect -> perplexity -> calibrate -> quantize (Q8_0, Q4_K_M) -> verify.
# Everything lands in out/.
set -euo pipefail
cd "$(dirname "$0")/.."
# libgomp's idle spin starves the working thread on a busy machine (bench/README.md)
[ -n "${OMP_WAIT_POLICY:-}${GOMP_SPINCOUNT:-}" ] || export OMP_WAIT_POLICY=passive
HQ=./hyquant
MODEL=models/cheems-tiny
EVAL=data/eval.txt
CALIB=data/calib.txt
mkdir -p out
step() { printf '\n=== %s\n' "$*"; }

[ -d "$MODEL" ] || { echo "demo: $MODEL is missing (run tools/train_tiny.py)"; exit 1; }
step "convert $MODEL -> out/cheems-tiny-f32.gguf"
"$HQ" convert "$MODEL" -o out/cheems-tiny-f32.gguf --outtype f32
step "inspect out/cheems-tiny-f32.gguf"
"$HQ" inspect out/cheems-tiny-f32.gguf
step "perplexity of the original on $EVAL"
"$HQ" perplexity out/cheems-tiny-f32.gguf --text "$EVAL" --ctx 256 --save-logits out/base.logits
step "calibrate on $CALIB"
"$HQ" calibrate out/cheems-tiny-f32.gguf --text "$CALIB" --ctx 256 -o out/cheems-tiny.imatrix
IMX=(--imatrix out/cheems-tiny.imatrix)
step "quantize Q8_0"
"$HQ" quantize out/cheems-tiny-f32.gguf out/cheems-tiny-q8_0.gguf --type Q8_0
step "quantize Q4_K_M ${IMX[*]:-}"
"$HQ" quantize out/cheems-tiny-f32.gguf out/cheems-tiny-q4_k_m.gguf --type Q4_K_M "${IMX[@]}"
for q in q8_0 q4_k_m; do
  step "verify $q against the original"
  "$HQ" verify out/cheems-tiny-f32.gguf out/cheems-tiny-$q.gguf --text "$EVAL" --ctx 256 --base-logits out/base.logits \
    --json out/verify-$q.json --report out/verify-$q.md --plot out/verify-$q.svg
done
