#!/bin/sh
# Cost of the router probes: decode and prefill tokens/s with every probe
# recording a trace against no probes, alternating in one sitting, medians
# of ROUNDS rounds and their ratio (on/off).
#
# Usage: bench/bench-probes.sh BUILD_DIR MODEL.gguf   (ROUNDS, THREADS, NP, NG as in bench-vs-llama.sh)
set -eu
BUILD=$1; MODEL=$2
ROUNDS=${ROUNDS:-7}; THREADS=${THREADS:-2}; NP=${NP:-128}; NG=${NG:-64}
CLI="$BUILD/app/routescope-cli"
median () { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
tmp=$(mktemp -d)
for r in $(seq "$ROUNDS"); do
  for p in on off; do
    "$CLI" bench -m "$MODEL" --mlock -t "$THREADS" -p "$NP" -n "$NG" -r 1 --probes $p --json |
      python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["prefill_tok_s"]); print(d["decode_tok_s"], file=sys.stderr)' \
      >> "$tmp/pp_$p" 2>> "$tmp/tg_$p"
  done
done
pp_on=$(median < "$tmp/pp_on"); pp_off=$(median < "$tmp/pp_off")
tg_on=$(median < "$tmp/tg_on"); tg_off=$(median < "$tmp/tg_off")
printf 'probes on:  pp %.2f tok/s  tg %.2f tok/s\n' "$pp_on" "$tg_on"
printf 'probes off: pp %.2f tok/s  tg %.2f tok/s\n' "$pp_off" "$tg_off"
printf 'ratio on/off: pp %.3f  tg %.3f\n' "$(echo "$pp_on / $pp_off" | bc -l)" "$(echo "$tg_on / $tg_off" | bc -l)"
rm -rf "$tmp"
