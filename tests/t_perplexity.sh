#!/usr/bin/env bash
# tests/t_perplexity.sh — `hyquant perplexity` and `hyquant generate` from the
# command line: usage errors (exit 2), bad inputs (exit 1, one line), and on
# the bundled model models/cheems-tiny (committed: missing weights fail): JSON output,
# thread-count independence, the --save-logits file size, greedy determinism,
# and the PyTorch perplexity of models/cheems-tiny/reference_ppl.json
# reproduced to 4 significant digits (tools/train_tiny.py export computes it
# with the same llama-perplexity protocol).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh ppl # HQ, ok/bad, $T, finish, expect_fail

echo "some text" > "$T/short.txt"
# ---- usage and missing files (no model needed)
expect_fail "no model" 2 "model path" -- perplexity --text "$T/short.txt"
expect_fail "no --text" 2 "--text" -- perplexity "$T/none.gguf"
expect_fail "ctx range" 2 "must be in" -- perplexity "$T/none.gguf" --text "$T/short.txt" --ctx 1
expect_fail "unknown option" 2 "bogus" -- perplexity "$T/none.gguf" --text "$T/short.txt" --bogus
expect_fail "missing text" 1 "none.txt" -- perplexity "$T/none.gguf" --text "$T/none.txt"
expect_fail "missing model" 1 "none.gguf" -- perplexity "$T/none.gguf" --text "$T/short.txt"
expect_fail "generate no prompt" 2 "prompt" -- generate "$T/none.gguf"
expect_fail "generate missing model" 1 "none.gguf" -- generate "$T/none.gguf" -p hi
printf 'GGUF\3\0\0\0garbage' > "$T/bad.gguf"
expect_fail "corrupt model" 1 "bad.gguf" -- perplexity "$T/bad.gguf" --text "$T/short.txt"
"$HQ" perplexity --help >/dev/null 2>&1 && ok || bad "perplexity --help"
"$HQ" generate --help >/dev/null 2>&1 && ok || bad "generate --help"

MODEL=${HQ_PPL_MODEL:-models/cheems-tiny}  # override to try another checkpoint dir
if [ ! -f "$MODEL/model.safetensors" ] && [ ! -f "$MODEL/pytorch_model.bin" ]; then
  bad "$MODEL has no weights (committed)"
  finish
fi
G="$T/tiny.gguf"
if "$HQ" convert "$MODEL" -o "$G" --outtype f32 --quiet 2>"$T/stderr"; then ok; else
  bad "convert $MODEL: $(cat "$T/stderr")"; finish; fi

# ---- bad text
: > "$T/empty.txt"
expect_fail "empty text" 2 "empty" -- perplexity "$G" --text "$T/empty.txt"
printf 'valid start \xff\xfe invalid bytes' > "$T/nonutf8.txt"
expect_fail "non-UTF-8 text" 1 "UTF-8" -- perplexity "$G" --text "$T/nonutf8.txt"
expect_fail "text shorter than ctx" 2 "fewer than --ctx" -- perplexity "$G" --text "$T/short.txt" --ctx 64

# ---- a run, JSON, thread independence
TXT=data/eval.txt
[ -f "$TXT" ] || TXT=tests/fixtures/tokenizer/prose.txt
j1=$("$HQ" perplexity "$G" --text "$TXT" --ctx 64 --chunks 3 --json -t 1 2>"$T/stderr"); rc=$?
[ $rc -eq 0 ] && ok || bad "perplexity --json: exit $rc $(cat "$T/stderr")"
p1=$(echo "$j1" | sed -n 's/.*"ppl": *\([0-9.]*\).*/\1/p')
j2=$("$HQ" perplexity "$G" --text "$TXT" --ctx 64 --chunks 3 --json -t 2 2>/dev/null)
p2=$(echo "$j2" | sed -n 's/.*"ppl": *\([0-9.]*\).*/\1/p')
[ -n "$p1" ] && awk -v a="$p1" -v b="$p2" 'BEGIN{exit !(a > 1 && (a-b)/a < 1e-5 && (b-a)/a < 1e-5)}' && ok \
  || bad "PPL with 1 vs 2 threads: '$p1' vs '$p2'"
echo "$j1" | grep -Eq '"tokens_scored": *93' && ok || bad "3 chunks of 64 score 3*31 tokens: $j1"
out=$("$HQ" perplexity "$G" --text "$TXT" --ctx 64 --chunks 2 2>/dev/null)
echo "$out" | grep -Eq '^PPL = [0-9]+\.[0-9]{4} ± [0-9]+\.[0-9]+$' && ok || bad "text output: '$out'"

# ---- --save-logits: header + tokens + per-token records of 8 + 2V bytes
V=$("$HQ" inspect "$G" 2>/dev/null | sed -n 's/.*cheems.vocab_size *\([0-9]*\).*/\1/p' | head -1)
[ -n "$V" ] || V=4096
"$HQ" perplexity "$G" --text "$TXT" --ctx 64 --chunks 2 --save-logits "$T/l.bin" -q >/dev/null 2>&1 && ok || bad "save-logits run"
want=$((96 + 4 * 2 * 64 + 2 * 31 * (8 + 2 * V)))
got=$(stat -c %s "$T/l.bin" 2>/dev/null || echo 0)
[ "$got" -eq "$want" ] && ok || bad "logits file size $got, want $want (V=$V)"
[ "$(head -c 8 "$T/l.bin")" = "HQLOGITS" ] && ok || bad "logits file magic"
! ls "$T" | grep -q '\.tmp\.' && ok || bad "temporary file left behind"

# ---- generate: greedy is deterministic and prints the prompt first
g1=$("$HQ" generate "$G" -p "The built-in function" -n 12 -q 2>/dev/null); rc=$?
g2=$("$HQ" generate "$G" -p "The built-in function" -n 12 -q -t 1 2>/dev/null)
[ $rc -eq 0 ] && [ "$g1" = "$g2" ] && ok || bad "greedy generate not deterministic: '$g1' vs '$g2'"
case "$g1" in "The built-in function"*) ok ;; *) bad "generate output does not start with the prompt: '$g1'" ;; esac
s1=$("$HQ" generate "$G" -p "The" -n 8 --temp 0.8 --top-k 20 --seed 7 -q 2>/dev/null)
s2=$("$HQ" generate "$G" -p "The" -n 8 --temp 0.8 --top-k 20 --seed 7 -q 2>/dev/null)
[ -n "$s1" ] && [ "$s1" = "$s2" ] && ok || bad "seeded sampling not reproducible"

# ---- the PyTorch reference perplexity of the bundled model (4 significant digits)
REF="$MODEL/reference_ppl.json"
if [ -n "${HQ_SANITIZED:-}" ]; then
  echo "skip reference PPL: sanitizer pass (the normal pass checks it)"
elif [ ! -f "$REF" ] || [ ! -f data/eval.txt ]; then
  bad "reference PPL: $REF or data/eval.txt is missing (committed)"
else
  ctx=$(sed -n 's/.*"ctx": *\([0-9]*\).*/\1/p' "$REF" | head -1)
  want=$(sed -n 's/.*"ppl_f64": *\([0-9.eE+-]*\).*/\1/p' "$REF" | head -1)
  js=$("$HQ" perplexity "$G" --text data/eval.txt --ctx "$ctx" --json 2>"$T/stderr")
  got=$(echo "$js" | sed -n 's/.*"ppl": *\([0-9.]*\).*/\1/p')
  if awk -v a="$got" -v b="$want" 'BEGIN{d=a-b; if (d<0) d=-d; exit !(b > 0 && d/b < 5e-5)}'; then ok; else
    bad "bundled model PPL $got vs PyTorch $want (ctx $ctx): $(cat "$T/stderr" | tail -2)"; fi
  echo "bundled model: hyquant PPL $got, PyTorch (float64) $want, ctx $ctx"
fi

finish
