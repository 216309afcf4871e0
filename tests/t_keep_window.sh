#!/usr/bin/env bash
# tests/t_keep_window.sh — `hyquant perplexity` on Doge models whose context
# (24) is 3 × keep_window_size (8), against transformers' own numbers
# (tests/fixtures/models/doge-kw-*, tools/make_keep_window_fixtures.py;
# docs/doge-keep-window.md): by default the PPL of transformers' cached decode
# (one token per call), with --hf-prefill-quirk the PPL of its multi-token
# forward model(input_ids), each to 1e-5 relative. The two references differ
# by ~5 %, so a regression of either rule fails here.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh kw # HQ, ok/bad, $T, finish

ppl_of() { sed -n 's/.*"ppl": *\([0-9.]*\).*/\1/p'; }
ref_of() { sed -n "s/.*\"$1\": \([0-9.e+-]*\).*/\1/p" "$2" | head -1; }
close() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "") exit 1; d = (a - b) / b; exit !(d < 1e-5 && d > -1e-5) }'; }

n=0
for d in tests/fixtures/models/doge-kw-*; do
  [ -f "$d/ref.json" ] || continue
  n=$((n + 1)); name=$(basename "$d"); G="$T/$name.gguf"
  if "$HQ" convert "$d" -o "$G" --outtype f32 --quiet 2>"$T/stderr"; then ok; else
    bad "convert $name: $(cat "$T/stderr")"; continue; fi
  ctx=$(ref_of ppl_ctx "$d/ref.json")
  want=$(ref_of ppl_decode "$d/ref.json"); want_hf=$(ref_of ppl_hf_prefill "$d/ref.json")
  got=$("$HQ" perplexity "$G" --text "$d/ppl_text.txt" --ctx "$ctx" --chunks 1 --json -q 2>"$T/stderr" | ppl_of)
  close "$got" "$want" && ok || bad "$name: PPL '$got', transformers' cached decode gives $want ($(cat "$T/stderr"))"
  got1=$("$HQ" perplexity "$G" --text "$d/ppl_text.txt" --ctx "$ctx" --chunks 1 --json -q -t 1 2>/dev/null | ppl_of)
  close "$got1" "$want" && ok || bad "$name: PPL with 1 thread '$got1', want $want"
  got_hf=$("$HQ" perplexity "$G" --text "$d/ppl_text.txt" --ctx "$ctx" --chunks 1 --json -q --hf-prefill-quirk \
           2>"$T/stderr" | ppl_of)
  close "$got_hf" "$want_hf" && ok || bad "$name: --hf-prefill-quirk PPL '$got_hf', transformers' model(input_ids) gives $want_hf"
  ! close "$want" "$want_hf" && ok || bad "$name: the two references coincide, the fixture tests nothing"
  g1=$("$HQ" generate "$G" -p "def greet" -n 12 -q 2>/dev/null); g2=$("$HQ" generate "$G" -p "def greet" -n 12 -q --hf-prefill-quirk 2>/dev/null)
  [ -n "$g1" ] && [ -n "$g2" ] && ok || bad "$name: generate with/without --hf-prefill-quirk"
done
[ "$n" -ge 2 ] && ok || bad "expected the doge-kw-dense and doge-kw-moe fixtures, found $n"
finish
