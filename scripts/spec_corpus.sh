#!/usr/bin/env bash
# Runs every spec of tests/corpus/specs.txt through the binary's `show --layer 0` and
# `train --epochs 1 --limit 64`, each under `ulimit -v 8000000` and `timeout 60`, and checks the outcome:
# exit 0, or exit 2 with exactly one stderr line starting with `error: ` (and no run directory left).
# Anything else (a panic, an abort, a kill, a timeout, a multi-line error) is a failure.
# Usage: scripts/spec_corpus.sh [BINARY] (default: target/release/cnn-as-mlp). Prints the counts.
set -u
cd "$(dirname "$0")/.."
BIN=${1:-target/release/cnn-as-mlp}
CORPUS=tests/corpus/specs.txt
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
declare -A count
fail=0
check() { # what spec rc stderr-file out-path
    local what=$1 spec=$2 rc=$3 err=$4 out=$5
    if [ "$rc" -eq 0 ]; then
        count[$what-ok]=$(( ${count[$what-ok]:-0} + 1 ))
    elif [ "$rc" -eq 2 ] && [ "$(wc -l < "$err")" -eq 1 ] && head -c 7 "$err" | grep -q '^error: ' && [ ! -e "$out" ]; then
        count[$what-refused]=$(( ${count[$what-refused]:-0} + 1 ))
    else
        count[$what-FAILED]=$(( ${count[$what-FAILED]:-0} + 1 ))
        fail=1
        echo "FAILED $what rc=$rc spec=$spec"
        head -c 600 "$err"; echo
    fi
}
while IFS=$'\t' read -r tag spec; do
    rm -rf "$TMP/x.png" "$TMP/run"
    ( ulimit -v 8000000; timeout 60 "$BIN" show --model "$spec" --layer 0 --out "$TMP/x.png" ) >/dev/null 2>"$TMP/err"
    rc=$?
    # show writes its picture on success only.
    [ "$rc" -eq 0 ] && rm -f "$TMP/x.png"
    check show "$spec" "$rc" "$TMP/err" "$TMP/x.png"
    ( ulimit -v 8000000; timeout 60 "$BIN" train --model "$spec" --epochs 1 --limit 64 --out "$TMP/run" ) >/dev/null 2>"$TMP/err"
    rc=$?
    check train "$spec" "$rc" "$TMP/err" "$TMP/run"
    count[$tag]=$(( ${count[$tag]:-0} + 1 ))
done < "$CORPUS"
for k in $(printf '%s\n' "${!count[@]}" | sort); do echo "$k ${count[$k]}"; done
exit $fail
