#!/usr/bin/env bash
# Remakes every measured result on this machine: docs/results/<cpu>/ (see scripts/results.py for what it
# measures and how). Usage: scripts/results.sh [--quick] [--out DIR]
#   PYTHON: an interpreter with torch and numpy for the PyTorch peers [default: python3]; without torch the
#   PyTorch columns are skipped with a note. A full run takes about 45 minutes on 2 cores; --quick about 5.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/results.py "$@"
