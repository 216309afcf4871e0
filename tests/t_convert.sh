#!/usr/bin/env bash
# tests/t_convert.sh — `hyquant convert` / `inspect` from the command line:
# success paths, and bad inputs that must fail with one clear line, exit 1
# (2 for usage), and leave neither the output nor a temporary file behind.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh convert # HQ, ok/bad, $T, finish
FX=tests/fixtures/convert

# no_leftovers DIR: nothing named *.tmp.* in DIR
no_leftovers() { ! ls "$1" | grep -q '\.tmp\.'; }

# expect_fail NAME WANT_RC NEEDLE -- hyquant args...  (output is $T/out/o.gguf;
# lib.sh's, plus: neither the output nor a temporary file is left behind, and
# the one-line rule only for exit 1)
expect_fail() {
  local name=$1 want=$2 needle=$3; shift 4
  rm -rf "$T/out"; mkdir -p "$T/out"
  "$HQ" "$@" >"$T/stdout" 2>"$T/stderr"; local rc=$?
  local lines; lines=$(grep -c . "$T/stderr")
  if [ "$rc" -ne "$want" ]; then bad "$name: exit $rc, want $want ($(head -c 300 "$T/stderr"))"; return; fi
  if ! grep -q -- "$needle" "$T/stderr"; then bad "$name: stderr lacks '$needle': $(head -c 300 "$T/stderr")"; return; fi
  if [ "$want" -eq 1 ] && [ "$lines" -ne 1 ]; then bad "$name: $lines stderr lines, want 1"; return; fi
  if [ -e "$T/out/o.gguf" ]; then bad "$name: output file left behind"; return; fi
  if ! no_leftovers "$T/out"; then bad "$name: temporary file left behind"; return; fi
  ok
}

# ---- success: convert, inspect the result
mkdir -p "$T/out"
if "$HQ" convert "$FX/cheems_alog" -o "$T/out/c.gguf" --quiet 2>"$T/stderr"; then ok; else bad "convert cheems: $(cat "$T/stderr")"; fi
[ -s "$T/out/c.gguf" ] && no_leftovers "$T/out" && ok || bad "output missing or temp left"
[ "$(head -c 4 "$T/out/c.gguf")" = "GGUF" ] && ok || bad "GGUF magic"
out=$("$HQ" inspect "$T/out/c.gguf" 2>&1); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q 'blk.0.ssm_a' && echo "$out" | grep -q 'cheems.layer_mixers\|ssd' && ok || bad "inspect gguf: $out"
echo "$out" | grep -q 'general.name *"cheems_alog"' && ok || bad "general.name defaults to the directory name"
out=$("$HQ" inspect "$T/out/c.gguf" --json 2>&1)
echo "$out" | grep -q '"variant":[[:space:]]*"cheems"' && echo "$out" | grep -q '"total"' && ok || bad "inspect gguf --json"
out=$("$HQ" inspect "$FX/cheems_alog" 2>&1); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q 'variant: *cheems' && echo "$out" | grep -q 'cdmoe_pk' &&
  echo "$out" | grep -q 'total' && ok || bad "inspect checkpoint: $out"
out=$("$HQ" inspect "$FX/doge_old_pk" --json 2>&1)
echo "$out" | grep -q '"variant":[[:space:]]*"doge-old"' && echo "$out" | grep -q '"experts"' && ok || bad "inspect --json doge"
# A_log -> -exp(A_log) < 0: no A > 0 warning; a raw positive A gets one (spec §4.5)
"$HQ" inspect "$FX/cheems_alog" | grep -q 'A > 0' && bad "A_log model warned" || ok
"$HQ" inspect "$FX/cheems_apos" | grep -q 'warning: blk.0.ssm_a has A > 0' && ok || bad "no A > 0 warning"
"$HQ" convert "$FX/cheems_apos" -o "$T/out/a.gguf" -q && "$HQ" inspect "$T/out/a.gguf" --json | grep -q 'A > 0' && ok ||
  bad "no A > 0 warning for the GGUF"
# outtype
"$HQ" convert "$FX/doge_old_pk" -o "$T/out/h.gguf" --outtype f16 -q && ok || bad "convert f16"
out=$("$HQ" inspect "$T/out/h.gguf")
echo "$out" | grep -q 'blk.0.ffn_gate.weight *F16' && echo "$out" | grep -q 'blk.0.attn_a *F32' &&
  echo "$out" | grep -q 'blk.0.ffn_pk_keys *F32' && ok || bad "f16 outtype types: $out"
# progress line without --quiet, on stderr
"$HQ" convert "$FX/doge_old_pk" -o "$T/out/p.gguf" 2>"$T/stderr" >/dev/null && grep -q 'convert:' "$T/stderr" && ok ||
  bad "progress line: $(cat "$T/stderr")"
# existing output is replaced atomically
"$HQ" convert "$FX/doge_old_pk_bf16" -o "$T/out/p.gguf" -q && "$HQ" inspect "$T/out/p.gguf" | grep -q 'BF16' && ok ||
  bad "overwrite existing output"

# ---- usage errors (exit 2)
expect_fail "no -o" 2 "output" -- convert "$FX/doge_old_pk"
expect_fail "bad outtype" 2 "outtype" -- convert "$FX/doge_old_pk" -o "$T/out/o.gguf" --outtype q4
expect_fail "two inputs" 2 "exactly one" -- convert "$FX/doge_old_pk" "$FX/doge_old_pk" -o "$T/out/o.gguf"
expect_fail "unknown option" 2 "bogus" -- convert "$FX/doge_old_pk" -o "$T/out/o.gguf" --bogus

# ---- bad inputs (exit 1, one line, no file)
cp -r "$FX/doge_old_pk" "$T/mis"
sed -i 's/"intermediate_size": 32/"intermediate_size": 40/' "$T/mis/config.json"
expect_fail "config mismatch" 1 "gate_proj.weight' has shape \[32, 16\] but config says \[40, 16\]" -- \
  convert "$T/mis" -o "$T/out/o.gguf"
cp -r "$FX/doge_old_pk" "$T/miss"
sed -i 's/"num_hidden_layers": 2/"num_hidden_layers": 3/' "$T/miss/config.json"
expect_fail "missing tensor" 1 "missing tensor 'model.layers.2." -- convert "$T/miss" -o "$T/out/o.gguf"
cp -r "$FX/doge_old_pk" "$T/few"
sed -i 's/"num_hidden_layers": 2/"num_hidden_layers": 1/' "$T/few/config.json"
expect_fail "extra tensor" 1 "unexpected tensor 'model.layers.1." -- convert "$T/few" -o "$T/out/o.gguf"
cp -r "$FX/doge_old_pk" "$T/ratio"
sed -i 's/"dynamic_mask_ratio": 0.0/"dynamic_mask_ratio": 0.5/' "$T/ratio/config.json"
expect_fail "dynamic_mask_ratio" 1 "dynamic_mask_ratio" -- convert "$T/ratio" -o "$T/out/o.gguf"
cp -r "$FX/doge_old_pk" "$T/noconf"; rm "$T/noconf/config.json"
expect_fail "no config" 1 "config.json" -- convert "$T/noconf" -o "$T/out/o.gguf"
# unknown layout: a valid safetensors file with a foreign tensor name
mkdir -p "$T/unk"; cp "$FX/doge_old_pk/config.json" "$T/unk/"
hdr='{"transformer.wte.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
python_free_len=$(printf '%s' "$hdr" | wc -c)
printf "$(printf '\\x%02x' $((python_free_len & 255)) $((python_free_len >> 8 & 255)) 0 0 0 0 0 0)" >"$T/unk/model.safetensors"
printf '%s' "$hdr" >>"$T/unk/model.safetensors"; printf '\0\0\0\0' >>"$T/unk/model.safetensors"
expect_fail "unknown variant" 1 "unknown model layout" -- convert "$T/unk" -o "$T/out/o.gguf"
# corrupt: truncated safetensors
cp -r "$FX/doge_old_pk" "$T/trunc"
sz=$(stat -c %s "$T/trunc/model.safetensors")
head -c $((sz - 100)) "$FX/doge_old_pk/model.safetensors" >"$T/trunc/model.safetensors"
expect_fail "truncated" 1 "model.safetensors" -- convert "$T/trunc" -o "$T/out/o.gguf"
# corrupt: garbage header
cp -r "$FX/doge_old_pk" "$T/garb"
printf 'garbage garbage garbage' | dd of="$T/garb/model.safetensors" bs=1 seek=8 conv=notrunc 2>/dev/null
expect_fail "garbage header" 1 "model.safetensors" -- convert "$T/garb" -o "$T/out/o.gguf"
expect_fail "missing input" 1 "nonexistent" -- convert "$T/nonexistent" -o "$T/out/o.gguf"
expect_fail "inspect mismatch" 1 "but config says" -- inspect "$T/mis"
# a failed run keeps an existing output untouched
rm -rf "$T/out"; mkdir -p "$T/out"; echo old >"$T/out/keep.gguf"
"$HQ" convert "$T/mis" -o "$T/out/keep.gguf" 2>/dev/null
[ "$(cat "$T/out/keep.gguf")" = "old" ] && no_leftovers "$T/out" && ok || bad "failed run clobbered the existing output"
# output directory that does not exist
"$HQ" convert "$FX/doge_old_pk" -o "$T/nodir/o.gguf" 2>"$T/stderr"; rc=$?
[ $rc -eq 1 ] && [ "$(grep -c . "$T/stderr")" -eq 1 ] && ok || bad "unwritable output: rc $rc $(cat "$T/stderr")"

finish
