#!/usr/bin/env bash
# `make run`: on a fresh machine, install what is missing, build, start the suite on loopback,
# find the MST of the embedded simulator for the pairs in the repository's .env, print it next
# to the simulator's closed-form capacity and where the files are, and stop the suite again
# (also when something fails or the run is interrupted). The ports and folders of scripts/up.sh
# can be moved with its environment variables (MSTPERF_UP_*), e.g. when a default port is taken.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BUILD_DIR="${BUILD_DIR:-build}"
ENV_FILE="${MSTPERF_DEMO_ENV:-$ROOT/.env}"

scripts/deps.sh
if [ ! -x "$BUILD_DIR/bin/mstperfctl" ] || [ ! -x "$BUILD_DIR/bin/mstperf-controller" ]; then
  [ -f "$BUILD_DIR/build.ninja" ] || cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build "$BUILD_DIR" -j "$(nproc)"
fi

cleanup() {
  echo
  echo "run-demo: stopping the suite"
  scripts/down.sh || true
}
trap cleanup EXIT

MSTPERF_BIN_DIR="$ROOT/$BUILD_DIR/bin" MSTPERF_RESULTS_DIR="$ROOT" scripts/up.sh
echo
echo "run-demo: searching with $ENV_FILE (a few minutes; Ctrl-C stops the demo)"
echo
start=$SECONDS
status=0
"$BUILD_DIR/bin/mstperfctl" run --env-file "$ENV_FILE" \
  --controller "127.0.0.1:${MSTPERF_UP_CONTROLLER_PORT:-50051}" || status=$?
echo
echo "run-demo: finished in $((SECONDS - start)) s; the MST per pair is above, next to the"
echo "simulator's closed-form capacity. Every iteration's files are in $ROOT/requests/<pair>/<timestamp>/"
echo "(output.csv, first_half.csv, second_half.csv, results.csv, results.json, iteration.json);"
echo "logs of the services are in $ROOT/.run/logs/."
exit "$status"
