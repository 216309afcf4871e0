#!/usr/bin/env bash
# tests/t_mpi.sh — `mpirun -np N hyquant …` (docs/scale-out.md): perplexity
# and calibrate split their chunks over the ranks and give the one-process
# answer, printed once: the same PPL digits, the same --save-logits bytes, the
# same imatrix bytes (Σx², counts); a command that does not split runs once;
# ranks with different models or a failing rank end every rank non-zero with
# one message and no output file. Skips (with the reason) when the binary has
# no MPI or mpirun is missing.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh mpi # HQ, ok/bad, $T, finish

if ! "$HQ" --version 2>/dev/null | grep -q '^mpi: yes'; then
  echo "skip: $HQ built without MPI (apt-get install openmpi-bin libopenmpi-dev, rebuild)"; finish; fi
if ! command -v mpirun >/dev/null; then echo "skip: no mpirun"; finish; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 # Open MPI's own allocations at exit are not ours
MPI=(mpirun --oversubscribe -q)
G=$T/m.gguf
"$HQ" convert models/cheems-tiny -o "$G" -q || { bad "convert"; finish; }
P=(perplexity "$G" --text data/eval.txt --ctx 96 --chunks 7 -q)

one=$("$HQ" "${P[@]}" --json 2>"$T/e1" --save-logits "$T/l1.bin") || bad "one process: $(cat "$T/e1")"
ppl1=$(echo "$one" | sed -n 's/.*"ppl":\([0-9.e+-]*\).*/\1/p')
for np in 2 3; do
  out=$("${MPI[@]}" -np $np "$HQ" "${P[@]}" --json --save-logits "$T/l$np.bin" 2>"$T/e$np")
  ppl=$(echo "$out" | sed -n 's/.*"ppl":\([0-9.e+-]*\).*/\1/p')
  [ -n "$ppl1" ] && [ "$ppl" = "$ppl1" ] && ok || bad "np $np: PPL '$ppl', one process '$ppl1' ($(head -c 300 "$T/e$np"))"
  [ "$(echo "$out" | grep -c '"ppl"')" = 1 ] && ok || bad "np $np: the result printed $(echo "$out" | grep -c '"ppl"') times"
  echo "$out" | grep -q "\"ranks\":$np" && ok || bad "np $np: JSON does not say $np ranks: $out"
  cmp -s "$T/l1.bin" "$T/l$np.bin" && ok || bad "np $np: --save-logits differs from one process"
done

C=(calibrate "$G" --text data/eval.txt --ctx 96 --chunks 7 -q)
"$HQ" "${C[@]}" -o "$T/i1.imatrix" >/dev/null 2>"$T/e" || bad "calibrate: $(cat "$T/e")"
"${MPI[@]}" -np 3 "$HQ" "${C[@]}" -o "$T/i3.imatrix" >"$T/o" 2>"$T/e"
cmp -s "$T/i1.imatrix" "$T/i3.imatrix" && ok || bad "calibrate np 3: imatrix differs from one process ($(cat "$T/e"))"
[ "$(grep -c '^wrote' "$T/o")" = 1 ] && ok || bad "calibrate np 3: 'wrote' printed $(grep -c '^wrote' "$T/o") times"
"${MPI[@]}" -np 3 "$HQ" calibrate "$G" --text data/eval.txt --ctx 96 --chunks 2 -o "$T/i4.imatrix" -q >/dev/null 2>"$T/e"
rc=$?; [ $rc -ne 0 ] && grep -q 'chunks of 96 tokens for 3 MPI ranks' "$T/e" && [ ! -e "$T/i4.imatrix" ] && ok ||
  bad "calibrate with fewer chunks than ranks: rc $rc: $(cat "$T/e")"

# a command that does not split: rank 0 runs it, once
n=$("${MPI[@]}" -np 2 "$HQ" inspect "$G" 2>/dev/null | grep -c '^gguf:')
[ "$n" = 1 ] && ok || bad "inspect under mpirun -np 2 printed $n times"

# rank 1 on another model: refused before any work, nothing written
"$HQ" convert tests/fixtures/models/doge-dense -o "$T/d.gguf" -q
"${MPI[@]}" -np 1 "$HQ" "${P[@]}" --save-logits "$T/x.bin" : -np 1 "$HQ" perplexity "$T/d.gguf" --text data/eval.txt \
  --ctx 96 --chunks 7 -q --save-logits "$T/x.bin" >/dev/null 2>"$T/e"
rc=$?; [ $rc -ne 0 ] && grep -q 'differs on rank 1' "$T/e" && [ ! -e "$T/x.bin" ] && ok ||
  bad "mismatched models: rc $rc, $(head -c 300 "$T/e")"
# rank 1 cannot read its model: every rank exits non-zero, rank 1's message once
: >"$T/empty.gguf"
"${MPI[@]}" -np 1 "$HQ" "${P[@]}" --save-logits "$T/y.bin" : -np 1 "$HQ" perplexity "$T/empty.gguf" --text data/eval.txt \
  --ctx 96 --chunks 7 -q --save-logits "$T/y.bin" >/dev/null 2>"$T/e"
rc=$?; [ $rc -ne 0 ] && [ "$(grep -c 'empty.gguf' "$T/e")" = 1 ] && [ ! -e "$T/y.bin" ] && ok ||
  bad "failing rank: rc $rc, $(head -c 400 "$T/e")"
ls "$T" | grep -q '\.tmp' && bad "temporary files left: $(ls "$T")" || ok
finish
