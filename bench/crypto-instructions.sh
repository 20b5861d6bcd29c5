#!/usr/bin/env bash
# Instructions per operation (valgrind --tool=callgrind), ours beside the same-binary peer:
# envelope seal/open vs ring at each size, and the Lambda handler vs the bare seal. Instruction
# counts do not depend on the load of the machine, so they compare runs (before and after a
# change) where wall-clock medians on shared cores cannot; bench/crypto.sh gives the times.
# Usage: bash bench/crypto-instructions.sh [BENCH_BINARY]   (default: builds it with cargo)
source "$(dirname "$0")/../scripts/lib.sh"
cd "$SSM_ROOT"
bin=${1:-}
if [ -z "$bin" ]; then
  bin=$(cargo bench --locked -p ssm-crypto --bench crypto --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable") and m["target"]["name"] == "crypto"][-1])')
fi
cd lambdas/crypto
# Instructions of one run of `label` N times (the bench's untimed SSM_BENCH_ITERS mode).
count() {
  SSM_BENCH_ITERS=$3 SSM_BENCH_ONLY=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$bin" "$2" 2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
per_op() {
  local base; base=$(count "$1" "$2" 0)
  echo $(( ($(count "$1" "$2" "$3") - base) / $3 ))
}
printf '%-8s %12s %12s %7s %12s %12s %7s\n' size seal "ring seal" ratio open "ring open" ratio
for size in "64 B" "1 KiB" "64 KiB" "1 MiB"; do
  case $size in "64 KiB") n=20 ;; "1 MiB") n=2 ;; *) n=500 ;; esac
  s=$(per_op "seal $size" envelope $n); rs=$(per_op "ring seal $size" envelope $n)
  o=$(per_op "open $size" envelope $n); ro=$(per_op "ring open $size" envelope $n)
  printf '%-8s %12s %12s %7.2f %12s %12s %7.2f\n' "$size" "$s" "$rs" "$(bc -l <<<"$s/$rs")" \
    "$o" "$ro" "$(bc -l <<<"$o/$ro")"
done
h=$(per_op handler handler 500); b=$(per_op "bare seal" handler 500)
echo "handler, 1 KiB encrypt: $h instructions; bare seal $b; overhead $((h - b))"
