#!/usr/bin/env bash
# tests/t_keep_window.sh — `hyquant perplexity` on Doge models whose context
# (24) is 3 × keep_window_size (8), against transformers' own numbers
# (tests/fixtures/models/doge-kw-*, tools/make_keep_window_fixtures.py;
# docs/doge-keep-window.md): by default the PPL of transformers' cached decode
# (one token per call), with --hf-prefill-quirk the PPL of its multi-token
# forward model(input_ids), each to 1e-5 relative. The two references differ
# by ~5 %, so a regression of either rule fails here. The same numbers from
# the emulated CUDA backend and from verify; calibrate honours the option.
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
  # the emulated CUDA backend follows both tie orders
  for q in "" --hf-prefill-quirk; do
    w=$want; [ -n "$q" ] && w=$want_hf
    ge=$("$HQ" perplexity "$G" --text "$d/ppl_text.txt" --ctx "$ctx" --chunks 1 --json -q --backend cuda-emu $q \
         2>"$T/stderr" | ppl_of)
    close "$ge" "$w" && ok || bad "$name: cuda-emu $q PPL '$ge', want $w ($(cat "$T/stderr"))"
    # verify runs the base model like perplexity does, and calibrate collects other statistics under the quirk
    "$HQ" verify "$G" "$G" --text "$d/ppl_text.txt" --ctx "$ctx" --chunks 1 --json "$T/v.json" -q $q >/dev/null 2>"$T/stderr"
    gv=$(tr -d " \t\n" <"$T/v.json" 2>/dev/null | sed -n 's/.*"ppl":{"base":{"value":\([0-9.e+-]*\).*/\1/p')
    close "$gv" "$w" && ok || bad "$name: verify $q base PPL '$gv', want $w ($(cat "$T/stderr"))"
    "$HQ" calibrate "$G" --text "$d/ppl_text.txt" --ctx "$ctx" -o "$T/c${q:+q}.imatrix" -q $q 2>"$T/stderr" && ok ||
      bad "$name: calibrate $q: $(cat "$T/stderr")"
  done
  ! cmp -s "$T/c.imatrix" "$T/cq.imatrix" && ok || bad "$name: calibrate --hf-prefill-quirk changes nothing"
  g1=$("$HQ" generate "$G" -p "def greet" -n 12 -q 2>/dev/null); g2=$("$HQ" generate "$G" -p "def greet" -n 12 -q --hf-prefill-quirk 2>/dev/null)
  [ -n "$g1" ] && [ -n "$g2" ] && ok || bad "$name: generate with/without --hf-prefill-quirk"
done
[ "$n" -ge 2 ] && ok || bad "expected the doge-kw-dense and doge-kw-moe fixtures, found $n"
finish
