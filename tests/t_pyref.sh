#!/usr/bin/env bash
# tests/t_pyref.sh — the Python reference (tools/cheems_ref.py) and the
# committed model fixtures agree: SSD chunked == recurrence, CDMoE shortcut ==
# brute force, cheems_ref == HF DogeForCausalLM on doge-dense, every Cheems
# fixture's ref_logits.f32 reproduced from its weights (tools/check_ref.py).
# Independent of the C build, so it runs once (skipped in the sanitizer pass)
# and skips when torch/transformers are missing.
set -u
cd "$(dirname "$0")/.."
if [ "${HQ_SANITIZED:-0}" = "1" ]; then
  echo "skip: Python-only check, already run in the normal pass"
  echo "0 passed, 0 failed"
  exit 0
fi
if ! python3 -c "import torch, transformers, safetensors, numpy" >/dev/null 2>&1; then
  echo "skip: python3 with torch/transformers/safetensors/numpy not available"
  echo "0 passed, 0 failed"
  exit 0
fi
python3 -W ignore tools/check_ref.py
