#!/usr/bin/env bash
# Training throughput of the crate's engines beside the PyTorch peer, in one run, on Fashion-MNIST
# (issue 5's measurement). Each configuration runs REPEATS times, interleaved; the medians are printed.
# Usage: scripts/speed_vs_torch.sh [PYTHON] [REPEATS]
#   PYTHON: an interpreter with torch and numpy (default: $PYTHON, else python3); REPEATS default 3.
# Needs: apt-get install dataset-fashion-mnist; cargo build --release.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-${PYTHON:-python3}}
REPEATS=${2:-3}
DATA=/usr/share/datasets/fashion-mnist
BIN=target/release/cnn-as-mlp
PEER=../shared/peers/torch_lenet.py
[ -x "$BIN" ] || cargo build --release
declare -A runs
for rep in $(seq "$REPEATS"); do
  for t in 1 2; do
    for e in sparse direct; do
      r=$("$BIN" train --model lenet5 --data fashion --epochs 1 --batch 64 --threads "$t" --engine "$e" \
            --out "$(mktemp -d)/run" 2>&1 | sed -n 's/.*img_per_s=\([0-9]*\).*/\1/p' | tail -1)
      runs["$e-$t"]+="$r "
    done
    r=$("$PY" "$PEER" --data "$DATA" --threads "$t" --epochs 1 --batch 64 | sed -n 's/.*img_per_s=\([0-9]*\).*/\1/p')
    runs["torch-$t"]+="$r "
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-8s %-8s %-12s %s\n' threads engine median_img/s runs
for t in 1 2; do
  tm=$(echo "${runs[torch-$t]}" | median)
  for e in sparse direct torch; do
    m=$(echo "${runs[$e-$t]}" | median)
    printf '%-8s %-8s %-12s %s (%.2fx torch)\n' "$t" "$e" "$m" "${runs[$e-$t]}" "$(echo "$m / $tm" | bc -l)"
  done
done
