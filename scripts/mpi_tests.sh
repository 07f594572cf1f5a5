#!/bin/bash
# Data-parallel training under MPI gives the bytes of one process (src/distributed.rs).
# Needs: apt-get install -y libopenmpi-dev openmpi-bin libclang-dev; builds with --features mpi.
# For every engine: lenet5 trained by one process vs `mpirun -np R` for R = 1..4 (--threads 1 per rank),
# `cmp` of model.safetensors and state.safetensors; then a run resumed under MPI vs one uninterrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --features mpi
BIN=$PWD/target/release/cnn-as-mlp
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
MPIRUN="mpirun --allow-run-as-root --oversubscribe"
# batch 100 = shards 32,32,32,4: uneven blocks over 3 ranks; limit 300 adds a short last batch (shards 0..3).
COMMON="--model lenet5 --limit 300 --batch 100 --epochs 1 --threads 1 --seed 3"
fail=0
for engine in sparse direct im2col; do
  $BIN train $COMMON --engine $engine --out "$T/one-$engine" > /dev/null
  for R in 1 2 3 4; do
    $MPIRUN -np $R $BIN train $COMMON --engine $engine --out "$T/mpi$R-$engine" > "$T/log" 2>&1 || { cat "$T/log"; exit 1; }
    for f in model.safetensors state.safetensors; do
      if cmp -s "$T/one-$engine/$f" "$T/mpi$R-$engine/$f"; then echo "ok   $engine R=$R $f"; else echo "FAIL $engine R=$R $f differs"; fail=1; fi
    done
  done
done
# Resume under MPI: 1 epoch on 2 ranks, then --resume to 2 epochs on 3 ranks, equals 2 epochs in one process.
R2="--model lenet5 --limit 300 --batch 64 --threads 1 --lr-schedule constant"
$BIN train $R2 --epochs 2 --out "$T/straight" > /dev/null
$MPIRUN -np 2 $BIN train $R2 --epochs 1 --out "$T/resumed" > /dev/null 2>&1
$MPIRUN -np 3 $BIN train --resume "$T/resumed" --epochs 2 --threads 1 > /dev/null 2>&1
for f in model.safetensors state.safetensors; do
  if cmp -s "$T/straight/$f" "$T/resumed/$f"; then echo "ok   resume under MPI $f"; else echo "FAIL resume under MPI $f differs"; fail=1; fi
done
# A sweep spread over 3 ranks equals the sweep in one process, run by run; the summary is written once.
SW="sweep --model lenet5 --engine sparse,direct --seeds 0..2 --limit 200 --epochs 1 --threads 1"
$BIN $SW --out "$T/sw1" > /dev/null
$MPIRUN -np 3 $BIN $SW --out "$T/sw3" > /dev/null 2>&1
for d in "$T"/sw1/lenet5-*; do
  run=$(basename "$d")
  if cmp -s "$d/model.safetensors" "$T/sw3/$run/model.safetensors"; then echo "ok   sweep under MPI $run"; else echo "FAIL sweep under MPI $run differs"; fail=1; fi
done
if cmp -s "$T/sw1/sweep.csv" "$T/sw3/sweep.csv" || [ "$(cut -d, -f1-11 "$T/sw1/sweep.csv")" = "$(cut -d, -f1-11 "$T/sw3/sweep.csv")" ]; then
  echo "ok   sweep under MPI: summary accuracy and loss columns"
else echo "FAIL sweep under MPI: summary differs"; fail=1; fi
exit $fail
