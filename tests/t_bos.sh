#!/usr/bin/env bash
# tests/t_bos.sh — does a converted model start its texts with BOS exactly
# when transformers' tokenizer(text) does? transformers 5 decides it in
# tokenizer.json's post_processor alone (no add_bos_token in the saved config,
# and the key is ignored when a post_processor exists). Each case of
# tests/fixtures/tokenizer/bos (tools/make_bos_fixtures.py, with the pinned
# transformers) is a tokenizer and what tokenizer(text) returned; the model is
# tests/fixtures/models/doge-dense with that tokenizer.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh bos # HQ, ok/bad, $T, finish

field() { tr -d ' \n' <"$2" | sed -n "s/.*\"$1\":\([a-z0-9]*\).*/\1/p"; }
n=0
for c in tests/fixtures/tokenizer/bos/*/; do
  c=${c%/}; name=$(basename "$c"); n=$((n + 1))
  rm -rf "$T/m" && cp -r tests/fixtures/models/doge-dense "$T/m" && cp "$c/tokenizer.json" "$c/tokenizer_config.json" "$T/m/"
  if ! "$HQ" convert "$T/m" -o "$T/m.gguf" -q 2>"$T/err"; then bad "$name: convert: $(cat "$T/err")"; continue; fi
  "$HQ" inspect "$T/m.gguf" >"$T/insp" 2>&1
  got_add=$(sed -n 's/^ *tokenizer.ggml.add_bos_token *\([a-z]*\).*/\1/p' "$T/insp")
  got_bos=$(sed -n 's/^ *tokenizer.ggml.bos_token_id *\([0-9]*\).*/\1/p' "$T/insp")
  want_add=$(field add_bos "$c/expected.json"); want_bos=$(field bos_id "$c/expected.json")
  [ -n "$want_add" ] && [ "$got_add" = "$want_add" ] && ok ||
    bad "$name: add_bos_token '$got_add', transformers' tokenizer(text) says '$want_add'"
  if [ "$want_add" = true ]; then
    [ "$got_bos" = "$want_bos" ] && ok || bad "$name: bos_token_id '$got_bos', tokenizer(text) starts with $want_bos"
  fi
done
[ "$n" -ge 5 ] && ok || bad "expected the 5 committed cases under tests/fixtures/tokenizer/bos, found $n"
finish
