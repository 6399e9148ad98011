#!/usr/bin/env bash
# Simulator benchmark: streamed tokens per second served on one core with 1,000 concurrent
# streams. The simulator is pinned to CPU 0, the client (bench/simulator/stream_client.cc) to
# CPU 1. Three settings, each run REPEATS times (median reported):
#   paced      5 ms steps: the model asks for 1000 / 5 ms = 200,000 tokens/s
#   one-write  the same with --coalesce_late_steps=false: every token is its own write even
#              when the server falls behind, so tokens per server CPU-second is the cost of the
#              plain path (what one whole core sustains)
#   saturated  1 ms steps (1,000,000 tokens/s asked): what one core delivers when it cannot
#              keep up (overdue steps are coalesced into one write per stream)
# The machine may be shared: the simulator's own CPU time is read from /proc, so
# "tokens per server CPU-second" holds even when it did not get a whole core.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-build/bin}
STREAMS=${STREAMS:-1000}
DURATION_S=${DURATION_S:-10}
REPEATS=${REPEATS:-3}
[ -x "$BIN/mstperf-simulator" ] && [ -x "$BIN/mstperf-simulator-bench" ] || {
  echo "build first: cmake --build build --target mstperf-simulator mstperf-simulator-bench" >&2
  exit 1
}
ulimit -n 8192 2>/dev/null || true
CPU_SIM=0
CPU_CLIENT=1
[ "$(nproc)" -lt 2 ] && CPU_CLIENT=0
TMP=$(mktemp -d)
SIM_PID=""
trap '[ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null; rm -rf "$TMP"' EXIT

metric() { grep -E "^$1 " "$TMP/metrics" | awk '{print $2}'; }

run_once() {  # step_ms coalesce -> one JSON line
  local step_ms=$1 coalesce=$2
  rm -f "$TMP/ready"
  taskset -c $CPU_SIM "$BIN/mstperf-simulator" --host=127.0.0.1 --port=0 \
    --ready_file="$TMP/ready" --max_num_seqs="$STREAMS" --step_base_ms="$step_ms" \
    --step_per_seq_ms=0 --prefill_per_token_ms=0 --kv_cache_tokens=0 --max_model_len=100000 \
    --coalesce_late_steps="$coalesce" >"$TMP/sim.log" 2>&1 &
  SIM_PID=$!
  for _ in $(seq 100); do [ -s "$TMP/ready" ] && break; sleep 0.05; done
  local port
  port=$(sed -E 's/.*"http_port":([0-9]+).*/\1/' "$TMP/ready")
  local out
  out=$(taskset -c $CPU_CLIENT "$BIN/mstperf-simulator-bench" --port="$port" \
    --streams="$STREAMS" --duration_s="$DURATION_S" --warmup_s=2 --max_tokens=4000 \
    --server_pid="$SIM_PID")
  curl -s "http://127.0.0.1:$port/metrics" >"$TMP/metrics"
  kill "$SIM_PID"
  wait "$SIM_PID" 2>/dev/null || true
  SIM_PID=""
  local late steps
  late=$(metric mstperf_simulator_late_steps_total)
  steps=$(metric mstperf_simulator_step_duration_seconds_count)
  echo "${out%\}}, \"step_ms\": $step_ms, \"late_step_share\": $(awk -v l="$late" -v s="$steps" 'BEGIN{printf "%.3f", (s>0)?l/s:0}')}"
}

median_of() {  # field, lines on stdin -> median value
  sed -E "s/.*\"$1\": ([-0-9.]+).*/\1/" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'
}

echo "simulator bench: $STREAMS streams, ${DURATION_S}s counted, median of $REPEATS runs; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for setting in "paced 5 true" "one-write 5 false" "saturated 1 true"; do
  set -- $setting
  : >"$TMP/runs"
  for _ in $(seq "$REPEATS"); do run_once "$2" "$3" | tee -a "$TMP/runs" >&2; done
  printf '%-10s step %2s ms: %8s tokens/s, server CPU share %s, %9s tokens per server CPU-second, late steps %s\n' \
    "$1" "$2" "$(median_of tokens_per_s <"$TMP/runs")" "$(median_of server_cpu_share <"$TMP/runs")" \
    "$(median_of tokens_per_server_cpu_s <"$TMP/runs")" "$(median_of late_step_share <"$TMP/runs")"
done
