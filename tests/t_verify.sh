#!/usr/bin/env bash
# tests/t_verify.sh — `hyquant verify` from the command line: usage errors
# (exit 2, one line), bad inputs (exit 1), and on the converted fixture model
# tests/fixtures/models/cheems-tiny-random (skipped when absent): the report's
# PPL of each model equals `hyquant perplexity` of that model, JSON/Markdown/
# SVG written (atomically: no temporary files left, nothing written on a
# failed run), thresholds give exit 3, a --save-logits base gives the same
# base PPL, and a file saved with another --ctx / text is refused.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh verify # HQ, ok/bad, $T, finish, expect_fail
# json_num FILE OBJ KEY [SUB]: the number at "OBJ": {... "KEY": ...} (cJSON's layout: one key per line)
json_num() {
  awk -v o="\"$2\":" -v k="\"$3\":" -v s="${4:+\"$4\":}" '
    $1 == o { in_o = 1; next }
    in_o && s == "" && $1 == k { v = $2; sub(/,$/, "", v); print v; exit }
    in_o && s != "" && $1 == k { in_k = 1; next }
    in_k && $1 == s { v = $2; sub(/,$/, "", v); print v; exit }' "$1"
}

words=(the model quantized weights drift state space attention expert routing layer token of and a is in to hidden)
RANDOM=7
for i in $(seq 1 1200); do printf '%s ' "${words[$((RANDOM % ${#words[@]}))]}"; [ $((i % 15)) -eq 0 ] && echo; done > "$T/text.txt"
echo "some other text entirely, and longer than the first few tokens of a chunk" > "$T/other.txt"
: > "$T/empty.txt"

# ---- usage (no model needed)
expect_fail "no models" 2 "two model paths" -- verify --text "$T/text.txt"
expect_fail "one model" 2 "two model paths" -- verify "$T/a.gguf" --text "$T/text.txt"
expect_fail "no --text" 2 "--text" -- verify "$T/a.gguf" "$T/b.gguf"
expect_fail "unknown option" 2 "bogus" -- verify "$T/a.gguf" "$T/b.gguf" --text "$T/text.txt" --bogus
expect_fail "bad backend" 2 "--backend" -- verify "$T/a.gguf" "$T/b.gguf" --text "$T/text.txt" --backend tpu
expect_fail "min-top1 range" 2 "must be in" -- verify "$T/a.gguf" "$T/b.gguf" --text "$T/text.txt" --min-top1 2
expect_fail "ctx range" 2 "must be in" -- verify "$T/a.gguf" "$T/b.gguf" --text "$T/text.txt" --ctx 2
expect_fail "missing model" 1 "a.gguf" -- verify "$T/a.gguf" "$T/b.gguf" --text "$T/text.txt"
"$HQ" verify --help >/dev/null 2>&1 && ok || bad "verify --help"

FX=tests/fixtures/models/cheems-tiny-random
if [ ! -d "$FX" ]; then
  bad "committed fixture $FX is missing"
  finish
fi
B="$T/base.gguf"; Q="$T/q8.gguf"
if "$HQ" convert "$FX" -o "$B" --outtype f32 --quiet 2>"$T/stderr" &&
   "$HQ" quantize "$B" "$Q" --type Q8_0 >/dev/null 2>"$T/stderr"; then ok; else
  bad "convert/quantize $FX: $(cat "$T/stderr")"; finish; fi
ARGS=(--text "$T/text.txt" --ctx 32 --chunks 4 -q)

# ---- --backend cuda: on the GPU when there is one, else on the CPU with a note; same figures
"$HQ" verify "$B" "$Q" "${ARGS[@]}" --backend cuda --json "$T/cuda.json" >/dev/null 2>"$T/stderr"; rc=$?
"$HQ" verify "$B" "$Q" "${ARGS[@]}" --json "$T/cpu.json" >/dev/null 2>&1
if [ "$rc" -eq 0 ]; then
  on=$(grep '"ran_on"' "$T/cuda.json" | sed 's/.*: *"\(.*\)".*/\1/')
  a=$(json_num "$T/cuda.json" kld mean); c=$(json_num "$T/cpu.json" kld mean)
  if [ "$on" = cpu ]; then
    grep -q "note:" "$T/stderr" && [ "$a" = "$c" ] && ok || bad "cuda fallback: note/figures ($a vs $c)"
  else  # on the device: the same figures to float tolerance
    awk -v a="$a" -v c="$c" 'BEGIN { exit !(a - c < 1e-3 + 0.05 * c && c - a < 1e-3 + 0.05 * c) }' && ok ||
      bad "cuda KLD $a vs cpu $c"
  fi
else bad "--backend cuda: exit $rc $(cat "$T/stderr")"; fi

# ---- input errors
expect_fail "empty text" 2 "empty" -- verify "$B" "$Q" --text "$T/empty.txt" --ctx 32
expect_fail "short text" 2 "fewer than --ctx" -- verify "$B" "$Q" --text "$T/other.txt" --ctx 512
printf 'GGUF\3\0\0\0garbage' > "$T/bad.gguf"
expect_fail "corrupt model" 1 "bad.gguf" -- verify "$B" "$T/bad.gguf" "${ARGS[@]}"

# ---- a run with every report
R="$T/out"; mkdir -p "$R"
"$HQ" verify "$B" "$Q" "${ARGS[@]}" --json "$R/v.json" --report "$R/v.md" --plot "$R/v.svg" >"$T/table" 2>"$T/stderr"
rc=$?
[ "$rc" -eq 0 ] && ok || bad "verify run: exit $rc: $(cat "$T/stderr")"
grep -q "KLD mean" "$T/table" && grep -q "top-1 agreement" "$T/table" && grep -q "largest weight errors" "$T/table" \
  && ok || bad "terminal table: $(head -5 "$T/table")"
[ -s "$R/v.json" ] && [ -s "$R/v.md" ] && [ -s "$R/v.svg" ] && ok || bad "report files missing"
[ "$(ls "$R" | wc -l)" -eq 3 ] && ok || bad "temporary files left: $(ls "$R")"
grep -q '^# Quantization drift' "$R/v.md" && grep -q '| KLD mean |' "$R/v.md" && ok || bad "markdown content"
grep -q '</svg>' "$R/v.svg" && ok || bad "svg content"
# the report's PPL of each model = `hyquant perplexity` of that model
for m in base quant; do
  f=$B; [ $m = quant ] && f=$Q
  want=$(printf '%.6f' "$("$HQ" perplexity "$f" --text "$T/text.txt" --ctx 32 --chunks 4 --json -q | sed 's/.*"ppl": *\([0-9.]*\),.*/\1/')")
  got=$(printf '%.6f' "$(json_num "$R/v.json" ppl $m value)")
  [ -n "$want" ] && [ "$want" = "$got" ] && ok || bad "PPL $m: verify $got, perplexity $want"
done
kld=$(json_num "$R/v.json" kld mean)
awk -v k="$kld" 'BEGIN { exit !(k > 0 && k < 0.1) }' && ok || bad "Q8_0 KLD $kld"

# ---- thresholds: exit 3, reports still written; met thresholds exit 0
rm -f "$R"/*
"$HQ" verify "$B" "$Q" "${ARGS[@]}" --max-kld 0 --json "$R/t.json" >/dev/null 2>"$T/stderr"; rc=$?
[ "$rc" -eq 3 ] && grep -q "threshold exceeded: mean KLD" "$T/stderr" && [ -s "$R/t.json" ] && ok ||
  bad "--max-kld 0: exit $rc $(cat "$T/stderr")"
"$HQ" verify "$B" "$Q" "${ARGS[@]}" --min-top1 1 >/dev/null 2>"$T/stderr"; rc=$?
[ "$rc" -eq 3 ] && ok || bad "--min-top1 1: exit $rc"
"$HQ" verify "$B" "$Q" "${ARGS[@]}" --max-ppl-ratio 0.5 >/dev/null 2>"$T/stderr"; rc=$?
[ "$rc" -eq 3 ] && grep -q "PPL ratio" "$T/stderr" && ok || bad "--max-ppl-ratio 0.5: exit $rc"
"$HQ" verify "$B" "$Q" "${ARGS[@]}" --max-kld 10 --max-ppl-ratio 10 --min-top1 0 >/dev/null 2>"$T/stderr"; rc=$?
[ "$rc" -eq 0 ] && ok || bad "met thresholds: exit $rc $(cat "$T/stderr")"
# base against itself: exactly KLD 0, ratio 1, top-1 100%
"$HQ" verify "$B" "$B" "${ARGS[@]}" --max-kld 0 --max-ppl-ratio 1 --min-top1 1 --json "$R/self.json" >/dev/null 2>"$T/stderr"
rc=$?
[ "$rc" -eq 0 ] && [ "$(json_num "$R/self.json" kld max)" = "0" ] && [ "$(json_num "$R/self.json" top1 value)" = "1" ] \
  && ok || bad "self: exit $rc, KLD max $(json_num "$R/self.json" kld max) $(cat "$T/stderr")"

# ---- a report that cannot be written: exit 1, nothing left behind
expect_fail "unwritable report" 1 "nodir" -- verify "$B" "$Q" "${ARGS[@]}" --json "$T/nodir/v.json"

# ---- saved base log-probs
"$HQ" perplexity "$B" --text "$T/text.txt" --ctx 32 --chunks 4 -q --save-logits "$T/base.logits" >/dev/null 2>&1 \
  && ok || bad "perplexity --save-logits"
"$HQ" verify "$B" "$Q" --base-logits "$T/base.logits" -q --json "$R/f.json" >/dev/null 2>"$T/stderr"; rc=$?
[ "$rc" -eq 0 ] && ok || bad "verify --base-logits: exit $rc $(cat "$T/stderr")"
for m in base quant; do
  a=$(printf '%.9f' "$(json_num "$R/f.json" ppl $m value)")
  b=$(printf '%.9f' "$(json_num "$R/self.json" ppl base value)")
  [ $m = quant ] && b=$(printf '%.9f' "$(json_num "$R/t.json" ppl quant value)")
  [ "$a" = "$b" ] && ok || bad "PPL $m from file $a vs in process $b"
done
[ "$(json_num "$R/f.json" settings drift_chunks)" = "1" ] && ok || bad "drift over the first chunk with a saved base"
expect_fail "file ctx" 1 "--ctx 32, not --ctx 64" -- verify "$B" "$Q" --base-logits "$T/base.logits" --ctx 64 -q
RANDOM=8
for i in $(seq 1 1200); do printf '%s ' "${words[$((RANDOM % ${#words[@]}))]}"; done > "$T/text2.txt"
expect_fail "file text" 1 "another text" -- verify "$B" "$Q" --base-logits "$T/base.logits" --text "$T/text2.txt" -q
if [ -d tests/fixtures/models/doge-dense ] &&
   "$HQ" convert tests/fixtures/models/doge-dense -o "$T/doge.gguf" --outtype f32 --quiet 2>/dev/null; then
  expect_fail "file from another model" 1 "not saved from" -- verify "$T/doge.gguf" "$T/doge.gguf" \
    --base-logits "$T/base.logits" -q
  expect_fail "different models" 1 "model" -- verify "$B" "$T/doge.gguf" "${ARGS[@]}"
fi

finish
