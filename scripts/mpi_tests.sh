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
    # The metrics too, but for the timing columns (img_per_s, train_s, wall_s).
    if [ "$(cut -d, -f1-6,8 "$T/one-$engine/metrics.csv")" = "$(cut -d, -f1-6,8 "$T/mpi$R-$engine/metrics.csv")" ]; then
      echo "ok   $engine R=$R metrics.csv (loss, accuracies, lr)"
    else echo "FAIL $engine R=$R metrics.csv differs"; fail=1; fi
  done
done
# The cifar preset (3x32x32, five convolutions) on a small CIFAR-10-format set written here (perl is part of
# every Debian system): 120 training records over five batch files, 40 test records, labels 0..9.
C="$T/cifar"; mkdir -p "$C"
for i in 1 2 3 4 5; do
  perl -e 'srand($ARGV[0]); for (1..24) { print chr(int(rand(10))); print chr(int(rand(256))) for 1..3072 }' $i > "$C/data_batch_$i.bin"
done
perl -e 'srand(9); for (1..40) { print chr(int(rand(10))); print chr(int(rand(256))) for 1..3072 }' > "$C/test_batch.bin"
CC="--model cifar --data $C --batch 100 --epochs 1 --threads 1 --seed 5"
for engine in sparse direct im2col; do
  $BIN train $CC --engine $engine --out "$T/c-one-$engine" > /dev/null
  for R in 2 3 4; do
    $MPIRUN -np $R $BIN train $CC --engine $engine --out "$T/c-mpi$R-$engine" > "$T/log" 2>&1 || { cat "$T/log"; exit 1; }
    if cmp -s "$T/c-one-$engine/model.safetensors" "$T/c-mpi$R-$engine/model.safetensors"; then echo "ok   cifar $engine R=$R"; else echo "FAIL cifar $engine R=$R model differs"; fail=1; fi
  done
done
# A rank that dies, and a rank that hangs: the others must not hang. `mpirun` ends the job when a rank dies
# (SIGKILL); a rank that stops (SIGSTOP) is caught by the collectives' watchdog (src/mpi.rs), which ends the
# waiting rank with a clear error after CNN_AS_MLP_MPI_TIMEOUT seconds.
lost_rank() { # SIGNAL NAME
  CNN_AS_MLP_MPI_TIMEOUT=15 timeout 300 $MPIRUN -np 2 $BIN train --model lenet5 --epochs 100 --threads 1 --out "$T/lost-$2" > "$T/lost-$2.log" 2>&1 &
  local job=$! mp="" victim="" rc=0 i
  # Wait (up to a minute) until both ranks run and training has started, then take the last rank.
  for i in $(seq 120); do
    mp=$(pgrep -P $job -x mpirun || true)
    victim=$( [ -n "$mp" ] && pgrep -P "$mp" -x cnn-as-mlp | tail -1 || true)
    if [ -n "$victim" ] && grep -q "step" "$T/lost-$2.log"; then break; fi
    victim=""
    sleep 0.5
  done
  if [ -z "$victim" ]; then echo "FAIL $2: no rank process found"; fail=1; wait $job || true; return; fi
  kill -"$1" "$victim"
  wait $job || rc=$?
  if [ $rc -eq 0 ]; then echo "FAIL $2: the job reported success"; fail=1
  elif [ $rc -eq 124 ]; then echo "FAIL $2: the job hung"; cat "$T/lost-$2.log"; fail=1
  else echo "ok   $2: the job ended with exit $rc"; fi
}
lost_rank KILL "a rank killed"
lost_rank STOP "a rank stopped"
if grep -q "another rank has probably died" "$T/lost-a rank stopped.log"; then echo "ok   the watchdog named the problem"
else echo "FAIL the watchdog's message is missing:"; cat "$T/lost-a rank stopped.log"; fail=1; fi
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
