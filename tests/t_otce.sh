#!/usr/bin/env bash
# tests/t_otce.sh — OTCE from the command line on every fixture of
# tests/fixtures/otce (tools/make_otce_fixtures.py): convert, `perplexity`
# (PPL within 1e-5 of the float64 reference tools/otce_ref.py scoring the
# same chunks, tools/otce_ppl_check.py; skipped without torch), the same PPL
# under --backend cuda-emu (OTCE stays on the CPU with a note), `generate`
# greedy twice identical. Logits, greedy tokens and prefill == decode are
# checked in tests/test_runtime.c.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh otce
TXT=tests/fixtures/tokenizer/prose.txt
PY=1
python3 -c "import torch, safetensors" >/dev/null 2>&1 || PY=0
[ "${HQ_SANITIZED:-0}" = "1" ] && PY=0 # the Python side is independent of the build: once is enough
n=0
for dir in tests/fixtures/otce/*/; do
  name=$(basename "$dir")
  [ -f "$dir/ref.json" ] || continue
  n=$((n + 1))
  G="$T/$name.gguf"
  if ! "$HQ" convert "$dir" -o "$G" --outtype f32 --quiet 2>"$T/stderr"; then
    bad "$name: convert: $(cat "$T/stderr")"; continue; fi
  ok
  if ! "$HQ" perplexity "$G" --text "$TXT" --ctx 48 --chunks 2 -t 2 --quiet --save-logits "$T/$name.lg" \
      >"$T/ppl" 2>"$T/stderr"; then
    bad "$name: perplexity: $(cat "$T/stderr")"; continue; fi
  ok
  p_cpu=$(cat "$T/ppl")
  p_emu=$("$HQ" perplexity "$G" --text "$TXT" --ctx 48 --chunks 2 -t 2 --quiet --backend cuda-emu 2>"$T/stderr")
  [ "$p_emu" = "$p_cpu" ] && grep -q "running on CPU" "$T/stderr" && ok \
    || bad "$name: --backend cuda-emu: '$p_emu' vs '$p_cpu' ($(head -c 200 "$T/stderr"))"
  g1=$("$HQ" generate "$G" -p "The model" -n 12 --quiet 2>"$T/stderr") && \
    g2=$("$HQ" generate "$G" -p "The model" -n 12 --quiet -t 1 2>/dev/null) && [ -n "$g1" ] && [ "$g1" = "$g2" ] && ok \
    || bad "$name: generate: '$g1' vs '$g2' $(head -c 200 "$T/stderr")"
  if [ $PY = 1 ]; then
    if out=$(python3 -W ignore tools/otce_ppl_check.py "$dir" "$T/$name.lg" 2>&1); then ok; else bad "$name: $out"; fi
    echo "$name: $out ($p_cpu)"
  fi
done
[ $n -gt 0 ] && ok || bad "no fixture under tests/fixtures/otce (committed)"
[ $PY = 1 ] || echo "skip: PyTorch PPL reference (python3 with torch/safetensors not available, or the sanitizer pass)"
finish
