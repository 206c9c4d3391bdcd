#!/bin/sh
# Routescope against llama.cpp's llama-bench on the same GGUF files, in
# one sitting: the two engines alternate, R rounds of one repetition each,
# and the medians and their ratio are printed. Both lock the model in RAM
# (--mlock / -lm mmap+mlock), since MoE decoding touches only the active
# experts and the kernel evicts the rest between uses otherwise.
#
# Usage: LLAMA_BENCH=/path/to/llama-bench bench/bench-vs-llama.sh BUILD_DIR MODEL.gguf... 
# Environment: ROUNDS (default 5), THREADS (2), NP (128), NG (64).
# llama-bench is not part of Routescope: build llama.cpp yourself.
set -eu
BUILD=$1; shift
ROUNDS=${ROUNDS:-5}; THREADS=${THREADS:-2}; NP=${NP:-128}; NG=${NG:-64}
: "${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary}"
CLI="$BUILD/app/routescope-cli"
median () { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
printf '%-32s %10s %10s %10s %10s %8s %8s\n' model rs_pp ll_pp rs_tg ll_tg pp_ratio tg_ratio
for model in "$@"; do
  tmp=$(mktemp -d)
  for r in $(seq "$ROUNDS"); do
    "$CLI" bench -m "$model" --mlock -t "$THREADS" -p "$NP" -n "$NG" -r 1 --json > "$tmp/rs.json"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["prefill_tok_s"]); print(d["decode_tok_s"], file=sys.stderr)' \
      "$tmp/rs.json" >> "$tmp/rs_pp" 2>> "$tmp/rs_tg"
    "$LLAMA_BENCH" -m "$model" -lm mmap+mlock -t "$THREADS" -p "$NP" -n "$NG" -r 1 -o json > "$tmp/ll.json" 2>/dev/null
    python3 -c '
import json,sys
for t in json.load(open(sys.argv[1])):
    (print if t["n_prompt"] > 0 else (lambda v: print(v, file=sys.stderr)))(t["avg_ts"])' \
      "$tmp/ll.json" >> "$tmp/ll_pp" 2>> "$tmp/ll_tg"
  done
  rs_pp=$(median < "$tmp/rs_pp"); ll_pp=$(median < "$tmp/ll_pp")
  rs_tg=$(median < "$tmp/rs_tg"); ll_tg=$(median < "$tmp/ll_tg")
  printf '%-32s %10.2f %10.2f %10.2f %10.2f %8.2f %8.2f\n' "$(basename "$model")" \
    "$rs_pp" "$ll_pp" "$rs_tg" "$ll_tg" "$(echo "$rs_pp / $ll_pp" | bc -l)" "$(echo "$rs_tg / $ll_tg" | bc -l)"
  rm -rf "$tmp"
done
