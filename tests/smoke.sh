#!/usr/bin/env bash
# tests/smoke.sh — a short end-to-end run of one build variant (make test runs
# it on the NO_OMP=1 and NO_CUDA=1 builds; tests/run.sh --smoke): on the
# bundled model, convert → perplexity (4 chunks of 256, against the PyTorch
# value of models/cheems-tiny/reference_ppl.json) → calibrate --full-hessian →
# quantize Q4_K_M with GPTQ → verify. With HQ_REF (the default build's binary)
# the converted model, the imatrix and the quantized model must equal its
# bytes: the knobs change how the work is scheduled, never the result.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh smoke
REF=${HQ_REF:-}
MODEL=models/cheems-tiny
for f in "$MODEL/model.safetensors" "$MODEL/reference_ppl.json" data/eval.txt data/calib.txt; do
  [ -f "$f" ] || { bad "committed file $f is missing"; finish; }
done

# run NAME OUT_PREFIX BIN: the pipeline with one binary, outputs $T/<prefix>.*
run() {
  local bin=$1 p=$2
  "$bin" convert "$MODEL" -o "$T/$p.f32.gguf" --outtype f32 --quiet 2>"$T/err" || { bad "$p convert: $(cat "$T/err")"; return 1; }
  "$bin" calibrate "$T/$p.f32.gguf" --text data/calib.txt --ctx 128 --chunks 2 --full-hessian -q \
    -o "$T/$p.imatrix" >/dev/null 2>"$T/err" || { bad "$p calibrate: $(cat "$T/err")"; return 1; }
  "$bin" quantize "$T/$p.f32.gguf" "$T/$p.q4.gguf" --type Q4_K_M --method gptq --imatrix "$T/$p.imatrix" \
    >/dev/null 2>"$T/err" || { bad "$p quantize: $(cat "$T/err")"; return 1; }
  ok
}
run "$HQ" t || finish
j=$("$HQ" perplexity "$T/t.f32.gguf" --text data/eval.txt --ctx 256 --chunks 4 --json 2>"$T/err")
p=$(echo "$j" | sed -n 's/.*"ppl": *\([0-9.]*\).*/\1/p')
# ppl_after_chunk[3] of the reference: the same protocol stopped after 4 chunks
want=$(sed -n '/"ppl_after_chunk"/,/]/p' "$MODEL/reference_ppl.json" | grep -Eo '[0-9]+\.[0-9]+' | sed -n 4p)
[ -n "$p" ] && [ -n "$want" ] && awk -v a="$p" -v b="$want" 'BEGIN{d=(a-b)/b; exit !(d < 1e-5 && d > -1e-5)}' \
  && ok || bad "perplexity after 4 chunks: '$p', PyTorch '$want' ($(cat "$T/err"))"
out=$("$HQ" verify "$T/t.f32.gguf" "$T/t.q4.gguf" --text data/eval.txt --ctx 256 --chunks 2 2>"$T/err"); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q 'KLD' && ok || bad "verify: exit $rc $(cat "$T/err")"

if [ -n "$REF" ] && [ -x "$REF" ]; then
  if run "$REF" r; then
    for f in f32.gguf imatrix q4.gguf; do
      cmp -s "$T/t.$f" "$T/r.$f" && ok || bad "$f differs from $REF's"
    done
  fi
fi
finish
