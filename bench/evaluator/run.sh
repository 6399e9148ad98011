#!/usr/bin/env bash
# Evaluator benchmark: time to judge 10k / 100k / 1M records, `most` vs default mode, stable and
# drifting iterations; then, when Python with pandas/scipy/numpy is available, the original
# tool's evaluation (re-implemented in tests/data/evaluator/make_reference.py) on the same
# output.csv files, side by side. Usage: bench/evaluator/run.sh [--sizes=10000,100000]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
[ -f "$BUILD_DIR/build.ninja" ] || cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j 2 --target evaluator_bench >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "== mstperf evaluator (C++), median of 3 runs (1 run at 1M)"
"$BUILD_DIR/bench/evaluator_bench" --write_csv_dir="$tmp" "$@"
if python3 -c 'import pandas, scipy, numpy' 2>/dev/null; then
  echo "== the original's evaluation in Python (pandas/SciPy/NumPy), 1 run, on the same files"
  python3 bench/evaluator/original_evaluate.py "$tmp"/*.csv
else
  echo "(python3 with pandas/scipy/numpy not found: skipping the original's timing)"
fi
