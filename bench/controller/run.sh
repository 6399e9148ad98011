#!/usr/bin/env bash
# Controller benchmarks.
#  1. The search's cost in `most` vs default mode on a simulated server
#     (bench/controller/search_bench.cc: pure, simulated time, 2000 capacities), for three widths
#     of the band around the capacity where verdicts are a coin flip. Wall time is in DURATIONs.
#  2. Early stop on loopback (bench/controller/early_stop_bench.cc: real simulator, evaluator,
#     two loadgen replicas, controller): the same default-mode search with the evaluator's early
#     verdicts on and off, side by side; the search's wall time and the ratio. About 6 minutes
#     with 30 s iterations (EARLY_STOP_DURATION_S).
# Usage: bench/controller/run.sh [search_bench flags]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
[ -f "$BUILD_DIR/build.ninja" ] || cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j 2 --target controller_search_bench controller_early_stop_bench >/dev/null
for noise in 0 0.01 0.03; do
  echo "== coin-flip band +-${noise} x C"
  "$BUILD_DIR/bench/controller_search_bench" --noise="$noise" "$@" | tail -n 3
done
echo "== early stop on vs off, real search on loopback"
"$BUILD_DIR/bench/controller_early_stop_bench" --duration_s="${EARLY_STOP_DURATION_S:-30}"
