#!/usr/bin/env bash
# Builds the Coq proofs of proofs/coq/ and checks that every main theorem is closed: no Admitted, no axiom.
# Needs Coq 8.16 and MathComp 1.15 (Debian: coq libcoq-mathcomp-ssreflect libcoq-mathcomp-algebra).
#
# Prints `Print Assumptions` for every theorem Assumptions.v lists, then the count, and exits non-zero if a
# source admits a proof or declares an axiom or parameter, if a Theorem or Corollary of the sources is not
# listed, or if any listed theorem depends on anything but the global context (the library's axioms included).
set -euo pipefail
cd "$(dirname "$0")"
if grep -nE '^\s*((Local|Global)\s+)?(Admitted|Axiom|Axioms|Parameter|Parameters|Conjecture)\b|\badmit\b|Admitted\.' ./*.v; then
  echo "check.sh: an admitted proof or an axiom above" >&2
  exit 1
fi
coq_makefile -f _CoqProject -o Makefile >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if ! make -s -j2 >/dev/null 2>"$out/make.log"; then
  cat "$out/make.log" >&2
  exit 1
fi

# Every Theorem and Corollary of the sources is a main theorem: Assumptions.v must list it.
missing=0
for v in $(grep -v '^-' _CoqProject); do
  module=${v%.v}
  for name in $(sed -nE 's/^\s*(Theorem|Corollary)\s+([A-Za-z0-9_]+).*/\2/p' "$v"); do
    if ! grep -qx "Print Assumptions $module\.$name\." Assumptions.v; then
      echo "check.sh: $module.$name is a Theorem or Corollary that Assumptions.v does not list" >&2
      missing=1
    fi
  done
done
[ "$missing" -eq 0 ] || exit 1

# One Redirect per theorem, so that each one's output (possibly several lines of axioms) is read alone.
mapfile -t names < <(sed -n 's/^Print Assumptions \(.*\)\.$/\1/p' Assumptions.v)
{
  grep -v '^Print Assumptions' Assumptions.v
  for i in "${!names[@]}"; do
    echo "Redirect \"$out/$i\" Print Assumptions ${names[$i]}."
  done
} >"$out/Check.v"
coqc -w none -Q . CnnAsMlp "$out/Check.v" >/dev/null
closed=0
for i in "${!names[@]}"; do
  text=$(tr -s ' \n' ' ' <"$out/$i.out" | sed 's/ $//')
  if [ "$text" = "Closed under the global context" ]; then
    echo "${names[$i]}: Closed under the global context"
    closed=$((closed + 1))
  else
    echo "${names[$i]}: NOT CLOSED:"
    sed 's/^/  /' "$out/$i.out"
  fi
done
theorems=${#names[@]}
lemmas=$(cat $(grep -v '^-' _CoqProject) | grep -cE '^\s*(Theorem|Lemma|Corollary)\s' || true)
if [ "$closed" -ne "$theorems" ]; then
  echo "check.sh: $((theorems - closed)) of $theorems theorems depend on axioms (above)" >&2
  exit 1
fi
echo "check.sh: all $theorems theorems closed under the global context ($lemmas Theorem/Lemma/Corollary declarations in all)"
