#!/usr/bin/env bash
# Runs every benchmark: bench/<area>/run.sh, in name order. Each prints its own results; copy
# them into BENCHMARKS.md with the command and the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for script in bench/*/run.sh; do
  [ -x "$script" ] || continue
  echo "=== $script"
  "$script" || { echo "FAILED: $script" >&2; status=1; }
done
exit $status
