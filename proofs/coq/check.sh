#!/usr/bin/env bash
# Builds the Coq proofs of proofs/coq/ and checks that every main theorem is closed: no Admitted, no axiom.
# Needs Coq 8.16 and MathComp 1.15 (Debian: coq libcoq-mathcomp-ssreflect libcoq-mathcomp-algebra).
set -euo pipefail
cd "$(dirname "$0")"
if grep -nE '^\s*(Admitted|Axiom|Axioms|Parameter|Parameters|Conjecture)\b|\badmit\b|Admitted\.' ./*.v; then
  echo "check.sh: an admitted proof or an axiom above" >&2
  exit 1
fi
coq_makefile -f _CoqProject -o Makefile >/dev/null
make -s -j2 >/dev/null
out=$(coqc -w none -Q . CnnAsMlp Assumptions.v)
# One line per theorem when closed: print them side by side.
paste -d' ' <(grep '^Print Assumptions' Assumptions.v | sed 's/^Print Assumptions \(.*\)\.$/\1:/') <(printf '%s\n' "$out")
theorems=$(grep -c '^Print Assumptions' Assumptions.v)
closed=$(printf '%s\n' "$out" | grep -c '^Closed under the global context$' || true)
if [ "$closed" -ne "$theorems" ]; then
  echo "check.sh: $closed of $theorems theorems are closed under the global context" >&2
  exit 1
fi
echo "check.sh: all $theorems theorems closed under the global context"
