#!/usr/bin/env bash
# Training throughput of the `cifar` preset on each engine beside the PyTorch peer (issue 12's measurement),
# in one run, with PyTorch's SGEMM rate measured in the same run: each configuration runs REPEATS times,
# interleaved; medians are printed with the effective GFLOP/s of training (3 x the forward pass's
# 2 x 29,723,136 multiply-adds per image: forward, input gradient, parameter gradient).
# Usage: scripts/cifar_speed_vs_torch.sh DATA_DIR [PYTHON] [REPEATS] [IMAGES]
#   DATA_DIR: a CIFAR-10 binary directory (e.g. from scripts/make_synthetic_cifar.py);
#   PYTHON: an interpreter with torch and numpy (default: $PYTHON, else python3); REPEATS default 3;
#   IMAGES: training images per epoch (--limit), default 3200.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$1
PY=${2:-${PYTHON:-python3}}
REPEATS=${3:-3}
IMAGES=${4:-3200}
BIN=target/release/cnn-as-mlp
PEER=../shared/peers/torch_cifar.py
[ -x "$BIN" ] || cargo build --release
FLOP_PER_IMAGE=178338816   # 3 x 2 x 29,723,136
sgemm() {  # median GFLOP/s of a 1024^3 f32 matrix product on T threads
  "$PY" - "$1" <<'PY'
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
for _ in range(3): a @ b
ts = []
for _ in range(15):
    t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
print(f"{2 * 1024**3 / sorted(ts)[7] / 1e9:.1f}")
PY
}
declare -A runs
for rep in $(seq "$REPEATS"); do
  for t in 1 2; do
    runs["sgemm-$t"]+="$(sgemm "$t") "
    for e in sparse direct; do
      r=$("$BIN" train --model cifar --data "$DATA" --epochs 1 --limit "$IMAGES" --test-limit 100 --threads "$t" \
            --engine "$e" --out "$(mktemp -d)/run" --quiet 2>&1 | sed -n 's/.*img_per_s=\([0-9]*\).*/\1/p' | tail -1)
      runs["$e-$t"]+="$r "
    done
    r=$("$PY" "$PEER" --data "$DATA" --threads "$t" --epochs 1 --batch 64 --lr 0.01 --limit "$IMAGES" \
          | sed -n 's/.*img_per_s=\([0-9]*\).*/\1/p')
    runs["torch-$t"]+="$r "
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-8s %-8s %-12s %-10s %-24s %s\n' threads engine median_img/s GFLOP/s runs "vs torch"
for t in 1 2; do
  tm=$(echo "${runs[torch-$t]}" | median)
  for e in sparse direct torch; do
    m=$(echo "${runs[$e-$t]}" | median)
    printf '%-8s %-8s %-12s %-10.1f %-24s %.2fx\n' "$t" "$e" "$m" "$(echo "$m * $FLOP_PER_IMAGE / 1000000000" | bc -l)" \
      "${runs[$e-$t]}" "$(echo "$m / $tm" | bc -l)"
  done
  printf '%-8s %-8s %-12s %-10s %s\n' "$t" sgemm - "$(echo "${runs[sgemm-$t]}" | median)" "(torch 1024^3 f32, same run)"
done
